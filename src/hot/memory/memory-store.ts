import { randomBytes } from 'node:crypto';
import { StrataError } from '../../errors.js';
import type { SessionRef, Turn } from '../../types.js';
import { decodeTurn, decodeTurnWithKey, encodeTurn, encodedTurnKey, turnBytes, withEncodedTokens } from '../encoding.js';
import type { HotAppendOptions, HotAppendResult, HotSeed, HotSeedOptions, HotSessionMeta, HotStore, NewHotTurn } from '../store.js';
import { MAX_READ_TURNS, checkInt, checkNewTurn, checkRef, checkSeed, checkTime, checkToken, checkTokenCounts } from '../validate.js';

interface Session {
  ref: SessionRef;
  /** Encoded turns by id. Ids are only ever inserted in ascending order, so iteration is ascending. */
  turns: Map<number, string>;
  nextTurnId: number;
  archivedUpTo: number;
  /** No turn below this id is held (ids at or above it may have holes after deleteTurns). */
  firstTurnId: number;
  unarchivedCount: number;
  oldestUnarchivedAt: number | null;
  bytes: number;
  lastAccess: number;
  createdAt: number;
  userId: string | null;
}

const keyOf = (ref: SessionRef): string => `${ref.tenant}:${ref.sessionId}`;

/**
 * The embedded hot tier: the same contract as the Redis driver, in this process. Every method
 * runs synchronously inside its promise, so each one is atomic with respect to the others.
 * Turns are held in the same compact encoding as in Redis, which keeps memory low and makes
 * every read return fresh objects (callers cannot mutate stored turns). Time is never read
 * here: every call that needs it takes `now` from the caller's injected clock, so LRU order,
 * idle sessions and lease expiry follow that clock (the Redis driver expires leases with
 * Redis's own clock, PX, and uses `now` for everything else).
 */
export class MemoryHotStore implements HotStore {
  readonly #sessions = new Map<string, Session>();
  readonly #leases = new Map<string, { token: string; expiresAt: number }>();
  readonly #fences = new Map<string, number>();
  /** Per session: client idempotency key → turn id and message hash (kept while the process lives). */
  readonly #idem = new Map<string, Map<string, { turnId: number; hash: string }>>();
  readonly #voids = new Map<string, Set<string>>();
  readonly #floors = new Map<string, number>();
  #epoch: number | null = null;
  #totalBytes = 0;
  #closed = false;

  #open(): void {
    if (this.#closed) throw new StrataError('STRATA_ERR_CLOSED', 'the memory hot store is closed');
  }

  #get(ref: SessionRef): Session | undefined {
    this.#open();
    return this.#sessions.get(keyOf(checkRef(ref)));
  }

  #recomputeOldest(s: Session): void {
    s.oldestUnarchivedAt = null;
    for (let id = Math.max(s.archivedUpTo + 1, s.firstTurnId); id < s.nextTurnId; id++) {
      const enc = s.turns.get(id);
      if (enc !== undefined) {
        s.oldestUnarchivedAt = decodeTurn(id, enc).createdAt;
        return;
      }
    }
  }

  async append(ref: SessionRef, turn: NewHotTurn, now: number, options: HotAppendOptions = {}): Promise<HotAppendResult> {
    checkNewTurn(turn);
    checkTime('now', now);
    if (options.epoch !== undefined && options.epoch !== this.#epoch) return { epochChanged: true };
    const idem = options.idempotency;
    if (idem !== undefined) {
      const known = this.#idem.get(keyOf(checkRef(ref)))?.get(idem.key);
      if (known !== undefined) return known.hash === idem.hash ? { turnId: known.turnId, known: true } : { mismatch: true, knownTurnId: known.turnId };
    }
    const s = this.#get(ref);
    if (s === undefined) return { needsSeed: true };
    const turnId = s.nextTurnId;
    const encoded = encodeTurn(turn);
    const size = turnBytes(turnId, encoded);
    s.turns.set(turnId, encoded);
    s.nextTurnId += 1;
    s.unarchivedCount += 1;
    if (s.unarchivedCount === 1) s.oldestUnarchivedAt = turn.createdAt;
    s.bytes += size;
    this.#totalBytes += size;
    s.lastAccess = Math.max(s.lastAccess, now);
    if (s.userId === null && turn.userId !== undefined) s.userId = turn.userId;
    if (idem !== undefined) this.#remember(ref, idem.key, turnId, idem.hash);
    return { turnId };
  }

  #remember(ref: SessionRef, key: string, turnId: number, hash: string): void {
    const k = keyOf(ref);
    let map = this.#idem.get(k);
    if (map === undefined) this.#idem.set(k, (map = new Map()));
    if (!map.has(key)) map.set(key, { turnId, hash });
  }

  async confirm(ref: SessionRef, epoch: number, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]> {
    const k = keyOf(checkRef(ref));
    this.#open();
    return turns.map(({ turnId, key }) => {
      if (epoch === this.#epoch) return true;
      const enc = this.#sessions.get(k)?.turns.get(turnId);
      if (enc !== undefined && encodedTurnKey(enc) === key) return true;
      if (this.#idem.get(k)?.get(/^(k:.*)\/\d+$/.exec(key)?.[1] ?? key)?.turnId === turnId) return true;
      let voids = this.#voids.get(k);
      if (voids === undefined) this.#voids.set(k, (voids = new Set()));
      voids.add(`${key}#${turnId}#${epoch}`);
      return false;
    });
  }

  async setTokens(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string; tokens: number }>): Promise<number> {
    this.#open();
    checkTokenCounts(turns);
    const s = this.#sessions.get(keyOf(checkRef(ref)));
    if (s === undefined) return 0;
    let changed = 0;
    for (const t of turns) {
      const enc = s.turns.get(t.turnId);
      if (enc === undefined || encodedTurnKey(enc) !== t.key) continue;
      const counted = withEncodedTokens(enc, t.tokens);
      if (counted === null) continue;
      s.turns.set(t.turnId, counted);
      s.bytes += counted.length - enc.length;
      this.#totalBytes += counted.length - enc.length;
      changed++;
    }
    return changed;
  }

  async holds(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]> {
    this.#open();
    const s = this.#sessions.get(keyOf(checkRef(ref)));
    return turns.map((t) => {
      const enc = s?.turns.get(t.turnId);
      return enc !== undefined && encodedTurnKey(enc) === t.key;
    });
  }

  async voided(ref: SessionRef): Promise<string[]> {
    this.#open();
    return [...(this.#voids.get(keyOf(checkRef(ref))) ?? [])];
  }

  async floor(ref: SessionRef): Promise<number> {
    this.#open();
    return this.#floors.get(keyOf(checkRef(ref))) ?? 0;
  }

  async seed(ref: SessionRef, seed: HotSeed, now: number, options: HotSeedOptions = {}): Promise<boolean | 'epochChanged' | 'conflict'> {
    const { unarchived, oldestUnarchivedAt } = checkSeed(seed);
    checkTime('now', now);
    if (options.epoch !== undefined && options.epoch !== this.#epoch) return 'epochChanged';
    if (this.#get(ref) !== undefined) return false;
    const floor = this.#floors.get(keyOf(ref)) ?? 0;
    const voids = this.#voids.get(keyOf(ref));
    if (seed.nextTurnId <= floor || (seed.turns[0] !== undefined && seed.turns[0].turnId <= floor)) return 'conflict';
    if (voids !== undefined && seed.turns.some((t) => t.turnId > seed.archivedUpTo && t.key !== undefined && voids.has(`${t.key}#${t.turnId}#${t.epoch ?? 0}`))) return 'conflict';
    for (const e of options.idempotency ?? []) this.#remember(ref, e.key, e.turnId, e.hash);
    const s: Session = {
      ref: { tenant: ref.tenant, sessionId: ref.sessionId },
      turns: new Map(),
      nextTurnId: seed.nextTurnId,
      archivedUpTo: seed.archivedUpTo,
      firstTurnId: seed.turns[0]?.turnId ?? seed.nextTurnId,
      unarchivedCount: unarchived.length,
      oldestUnarchivedAt,
      bytes: 0,
      lastAccess: now,
      createdAt: now,
      userId: seed.userId ?? null,
    };
    for (const t of seed.turns) {
      const encoded = encodeTurn(t);
      s.turns.set(t.turnId, encoded);
      s.bytes += turnBytes(t.turnId, encoded);
    }
    this.#totalBytes += s.bytes;
    this.#sessions.set(keyOf(s.ref), s);
    return true;
  }

  async recent(ref: SessionRef, count: number, now: number): Promise<Turn[]> {
    checkInt('count', count, 0, MAX_READ_TURNS);
    checkTime('now', now);
    const s = this.#get(ref);
    if (s === undefined) return [];
    const out: Turn[] = [];
    for (let id = s.nextTurnId - 1; id >= s.firstTurnId && out.length < count; id--) {
      const enc = s.turns.get(id);
      if (enc !== undefined) out.push(decodeTurn(id, enc));
    }
    s.lastAccess = Math.max(s.lastAccess, now);
    return out.reverse();
  }

  async unarchived(ref: SessionRef, limit: number): Promise<Turn[]> {
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    const s = this.#get(ref);
    if (s === undefined) return [];
    return this.#collect(s, s.archivedUpTo + 1, s.nextTurnId - 1, limit, true);
  }

  async idempotencyEntries(ref: SessionRef, keys: readonly string[]): Promise<Array<{ turnId: number; hash: string } | null>> {
    this.#open();
    const map = this.#idem.get(keyOf(checkRef(ref)));
    return keys.map((k) => {
      const e = map?.get(k);
      return e === undefined ? null : { turnId: e.turnId, hash: e.hash };
    });
  }

  async range(ref: SessionRef, fromTurn: number, toTurn: number): Promise<Turn[]> {
    checkInt('fromTurn', fromTurn, 0);
    checkInt('toTurn', toTurn, 0);
    const s = this.#get(ref);
    if (s === undefined) return [];
    return this.#collect(s, fromTurn, toTurn, MAX_READ_TURNS);
  }

  #collect(s: Session, from: number, to: number, limit: number, withKeys = false): Turn[] {
    const out: Turn[] = [];
    const hi = Math.min(to, s.nextTurnId - 1);
    for (let id = Math.max(from, s.firstTurnId); id <= hi && out.length < limit; id++) {
      const enc = s.turns.get(id);
      if (enc !== undefined) out.push((withKeys ? decodeTurnWithKey : decodeTurn)(id, enc));
    }
    return out;
  }

  async markArchived(ref: SessionRef, upTo: number, keepRecent: number, leaseToken?: string): Promise<void> {
    checkInt('upTo', upTo, 0);
    checkInt('keepRecent', keepRecent, 0);
    if (leaseToken !== undefined && this.#leases.get(keyOf(checkRef(ref)))?.token !== leaseToken) {
      throw new StrataError('STRATA_ERR_FENCED', `the compaction lease of session ${ref.sessionId} is no longer held by this token`);
    }
    const s = this.#get(ref);
    // A session dropped or deleted while it was being compacted: nothing left to mark.
    if (s === undefined) return;
    if (upTo >= s.nextTurnId) {
      throw new StrataError('STRATA_ERR_VALIDATION', `upTo ${upTo} is beyond the last turn ${s.nextTurnId - 1}`, { details: { argument: 'upTo' } });
    }
    if (upTo < s.archivedUpTo) return;
    s.archivedUpTo = upTo;
    // Keep the last `keepRecent` held archived turns, counting held turns (not ids) so holes left
    // by deleteTurns do not shrink the recent window.
    let kept = 0;
    let cut = upTo + 1;
    while (kept < keepRecent && cut > s.firstTurnId) {
      cut -= 1;
      if (s.turns.has(cut)) kept += 1;
    }
    for (let id = s.firstTurnId; id < cut; id++) {
      const enc = s.turns.get(id);
      if (enc === undefined) continue;
      s.turns.delete(id);
      const size = turnBytes(id, enc);
      s.bytes -= size;
      this.#totalBytes -= size;
    }
    s.firstTurnId = Math.max(s.firstTurnId, cut);
    let unarchived = 0;
    for (let id = Math.max(upTo + 1, s.firstTurnId); id < s.nextTurnId; id++) if (s.turns.has(id)) unarchived += 1;
    s.unarchivedCount = unarchived;
    this.#recomputeOldest(s);
  }

  async meta(ref: SessionRef): Promise<HotSessionMeta | null> {
    const s = this.#get(ref);
    if (s === undefined) return null;
    return {
      nextTurnId: s.nextTurnId,
      archivedUpTo: s.archivedUpTo,
      turnCount: s.turns.size,
      unarchivedCount: s.unarchivedCount,
      oldestUnarchivedAt: s.oldestUnarchivedAt,
      bytes: s.bytes,
      lastAccess: s.lastAccess,
      createdAt: s.createdAt,
      userId: s.userId,
    };
  }

  #remove(s: Session): number {
    this.#sessions.delete(keyOf(s.ref));
    this.#totalBytes -= s.bytes;
    return s.turns.size;
  }

  async dropIfArchived(ref: SessionRef): Promise<boolean> {
    const s = this.#get(ref);
    if (s === undefined || s.unarchivedCount > 0) return false;
    this.#remove(s);
    return true;
  }

  async deleteSession(ref: SessionRef, options: { epoch?: number; minFloor?: number } = {}): Promise<{ turns: number; lastTurnId: number } | 'epochChanged'> {
    if (options.epoch !== undefined && options.epoch !== this.#epoch) return 'epochChanged';
    const s = this.#get(ref);
    const k = keyOf(ref);
    const floor = Math.max(this.#floors.get(k) ?? 0, options.minFloor ?? 0);
    if (floor > 0) this.#floors.set(k, floor);
    if (s === undefined) return { turns: 0, lastTurnId: floor };
    const lastTurnId = Math.max(floor, s.nextTurnId - 1);
    this.#floors.set(k, lastTurnId);
    return { turns: this.#remove(s), lastTurnId };
  }

  async deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<number> {
    if (!Array.isArray(turnIds)) throw new StrataError('STRATA_ERR_VALIDATION', 'turnIds: expected an array of turn ids');
    for (const id of turnIds) checkInt('turn id', id, 1);
    const s = this.#get(ref);
    if (s === undefined) return 0;
    let removed = 0;
    let unarchivedRemoved = 0;
    for (const id of turnIds) {
      const enc = s.turns.get(id);
      if (enc === undefined) continue;
      s.turns.delete(id);
      const size = turnBytes(id, enc);
      s.bytes -= size;
      this.#totalBytes -= size;
      removed += 1;
      if (id > s.archivedUpTo) unarchivedRemoved += 1;
    }
    if (unarchivedRemoved > 0) {
      s.unarchivedCount -= unarchivedRemoved;
      this.#recomputeOldest(s);
    }
    return removed;
  }

  async lruSessions(limit: number): Promise<Array<{ ref: SessionRef; lastAccess: number }>> {
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    this.#open();
    return [...this.#sessions.values()]
      .sort((a, b) => a.lastAccess - b.lastAccess || keyOf(a.ref).localeCompare(keyOf(b.ref)))
      .slice(0, limit)
      .map((s) => ({ ref: { ...s.ref }, lastAccess: s.lastAccess }));
  }

  async idleSessions(before: number, limit: number): Promise<SessionRef[]> {
    checkTime('before', before);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    this.#open();
    return [...this.#sessions.values()]
      .filter((s) => s.lastAccess < before)
      .sort((a, b) => a.lastAccess - b.lastAccess || keyOf(a.ref).localeCompare(keyOf(b.ref)))
      .slice(0, limit)
      .map((s) => ({ ...s.ref }));
  }

  async sessionsToCompact(minUnarchived: number, oldestBefore: number, limit: number): Promise<SessionRef[]> {
    checkInt('minUnarchived', minUnarchived, 1);
    checkTime('oldestBefore', oldestBefore);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    this.#open();
    const all = [...this.#sessions.values()];
    // Same order as the Redis driver: the oldest backlog first (age), then the biggest backlog.
    const byAge = all
      .filter((s) => s.oldestUnarchivedAt !== null && s.oldestUnarchivedAt < oldestBefore)
      .sort((a, b) => (a.oldestUnarchivedAt ?? 0) - (b.oldestUnarchivedAt ?? 0));
    const byCount = all.filter((s) => s.unarchivedCount >= minUnarchived).sort((a, b) => b.unarchivedCount - a.unarchivedCount);
    const out = new Map<string, SessionRef>();
    for (const s of [...byAge, ...byCount]) {
      if (out.size >= limit) break;
      out.set(keyOf(s.ref), { ...s.ref });
    }
    return [...out.values()];
  }

  async totalBytes(): Promise<number> {
    this.#open();
    return this.#totalBytes;
  }

  async acquireLease(ref: SessionRef, owner: string, ttlMs: number, now: number): Promise<{ token: string; fence: number } | null> {
    if (typeof owner !== 'string' || owner.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'owner: expected a non-empty string');
    checkInt('ttlMs', ttlMs, 1);
    checkTime('now', now);
    this.#open();
    const key = keyOf(checkRef(ref));
    const held = this.#leases.get(key);
    if (held !== undefined && held.expiresAt > now) return null;
    const token = `${owner}:${randomBytes(12).toString('hex')}`;
    this.#leases.set(key, { token, expiresAt: now + ttlMs });
    const counter = (this.#fences.get(key) ?? 0) + 1;
    this.#fences.set(key, counter);
    return { token, fence: (this.#epoch ?? 0) * 2 ** 32 + counter };
  }

  async renewLease(ref: SessionRef, token: string, ttlMs: number, now: number): Promise<boolean> {
    checkToken(token);
    checkInt('ttlMs', ttlMs, 1);
    checkTime('now', now);
    this.#open();
    const held = this.#leases.get(keyOf(checkRef(ref)));
    if (held === undefined || held.token !== token || held.expiresAt <= now) return false;
    held.expiresAt = now + ttlMs;
    return true;
  }

  async releaseLease(ref: SessionRef, token: string): Promise<void> {
    checkToken(token);
    this.#open();
    const key = keyOf(checkRef(ref));
    const held = this.#leases.get(key);
    if (held !== undefined && held.token === token) this.#leases.delete(key);
  }

  async releaseOwnerLease(ref: SessionRef, owner: string): Promise<boolean> {
    if (typeof owner !== 'string' || owner.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'owner: expected a non-empty string');
    this.#open();
    const key = keyOf(checkRef(ref));
    const held = this.#leases.get(key);
    if (held === undefined || !held.token.startsWith(`${owner}:`)) return false;
    this.#leases.delete(key);
    return true;
  }

  async epoch(): Promise<number | null> {
    this.#open();
    return this.#epoch;
  }

  async initEpoch(candidate: number): Promise<number> {
    checkInt('epoch', candidate, 1);
    this.#open();
    this.#epoch ??= candidate;
    return this.#epoch;
  }

  async ping(): Promise<void> {
    this.#open();
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
