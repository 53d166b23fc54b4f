import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { StrataError } from '../../errors.js';
import type { SessionRef, Turn } from '../../types.js';
import { decodeTurn, decodeTurnWithKey, encodeTurn, encodedTurnKey, turnBytes } from '../encoding.js';
import type { HotAppendOptions, HotAppendResult, HotSeed, HotSeedOptions, HotSessionMeta, HotStore, NewHotTurn } from '../store.js';
import { MAX_READ_TURNS, checkInt, checkNewTurn, checkRef, checkSeed, checkTime, checkToken } from '../validate.js';
import { DEFAULT_KEY_PREFIX, HotKeys, parseSessionMember, sessionMember } from './keys.js';
import { mapRedisError, runScript } from './scripts.js';
import type { RedisCommandClient } from './scripts.js';

export interface RedisHotStoreOptions {
  /** Redis URL (`redis://host:port/db`); the store creates, connects and closes its own client. Exactly one of `url` and `client`. */
  url?: string;
  /**
   * A node-redis v5+ client (or anything with `sendCommand`), already connected; the caller keeps
   * ownership (`close()` does not close it). Exactly one of `url` and `client`.
   */
  client?: RedisCommandClient;
  /** Prefix of every key. Default `strata:`. Several stores on one Redis need distinct prefixes. */
  keyPrefix?: string;
  /** CLIENT SETNAME of the connection the store creates (only with `url`), to find it in CLIENT LIST. Default: none. */
  clientName?: string;
}

/** What the store does with a client it created itself. */
interface OwnedClient extends RedisCommandClient {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
}

/** How long a void marker outlives the confirm that wrote it: far longer than any append takes. */
const VOID_WINDOW_MS = 24 * 3600 * 1000;

const META_FIELDS = ['nextTurnId', 'archivedUpTo', 'turnCount', 'unarchivedCount', 'oldestUnarchivedAt', 'bytes', 'lastAccess', 'createdAt', 'userId'] as const;

function configError(option: string, expected: string, got: unknown): StrataError {
  const shown = typeof got === 'string' ? JSON.stringify(got) : typeof got;
  return new StrataError('STRATA_ERR_CONFIG_INVALID', `RedisHotStore option \`${option}\`: expected ${expected}, got ${shown}`, { details: { option } });
}

function toTurns(reply: unknown, descending: boolean, withKeys = false): Turn[] {
  const flat = reply as string[];
  const out: Turn[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push((withKeys ? decodeTurnWithKey : decodeTurn)(Number(flat[i]), flat[i + 1]!));
  return descending ? out.reverse() : out;
}

/**
 * The hot tier in Redis, shared by every app instance that uses the same Redis and key prefix.
 * Layout and scripts: docs/redis-keys.md. Every multi-step update is one Lua script; turn ids
 * are assigned inside the append script, so concurrent instances agree on order. No key that
 * holds turns ever gets a TTL: idle expiry goes through compaction in the cache.
 * Requires `maxmemory-policy noeviction` (the default) for the same reason.
 */
export class RedisHotStore implements HotStore {
  readonly keys: HotKeys;
  readonly #client: RedisCommandClient;
  readonly #owned: OwnedClient | null;
  #connecting: Promise<void> | null = null;
  #everConnected = false;
  #closed = false;

  constructor(options: RedisHotStoreOptions) {
    if (typeof options !== 'object' || options === null) throw configError('options', 'an object', options);
    const { url, client, keyPrefix = DEFAULT_KEY_PREFIX, clientName } = options;
    if ((url === undefined) === (client === undefined)) throw configError('url/client', 'exactly one of `url` and `client`', url === undefined ? 'neither' : 'both');
    if (clientName !== undefined && (typeof clientName !== 'string' || !/^[!-~]{1,64}$/.test(clientName))) {
      throw configError('clientName', '1-64 printable characters without spaces', clientName);
    }
    this.keys = new HotKeys(keyPrefix);
    if (client !== undefined) {
      if (typeof client !== 'object' || client === null || typeof client.sendCommand !== 'function') throw configError('client', 'a node-redis client with sendCommand()', client);
      this.#client = client;
      this.#owned = null;
      this.#everConnected = true;
    } else {
      if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) throw configError('url', 'a redis:// or rediss:// URL', url);
      const owned = createClient({
        url,
        RESP: 2,
        ...(clientName === undefined ? {} : { name: clientName }),
        // Fail fast while disconnected instead of queueing: the cache's journal already holds
        // every acknowledged turn, and callers get STRATA_ERR_HOT_UNAVAILABLE at once.
        disableOfflineQueue: true,
        socket: {
          connectTimeout: 5000,
          // The first connection gives up after a few tries (so a wrong URL fails quickly);
          // once connected, reconnect forever with capped backoff.
          reconnectStrategy: (retries: number, cause: Error) => (this.#everConnected ? Math.min(50 * 2 ** retries, 2000) : retries >= 3 ? cause : 100),
        },
      });
      // Without a listener an 'error' event would crash the process; failures surface per call.
      owned.on('error', () => {});
      this.#client = owned as unknown as OwnedClient;
      this.#owned = owned as unknown as OwnedClient;
    }
  }

  async #ready(): Promise<RedisCommandClient> {
    if (this.#closed) throw new StrataError('STRATA_ERR_CLOSED', 'the Redis hot store is closed');
    if (this.#owned !== null && !this.#everConnected) {
      this.#connecting ??= this.#owned.connect().then(
        () => {
          this.#everConnected = true;
        },
        (err: unknown) => {
          this.#connecting = null;
          throw mapRedisError(err, 'connect');
        },
      );
      await this.#connecting;
    }
    return this.#client;
  }

  async #command(operation: string, args: string[]): Promise<unknown> {
    const client = await this.#ready();
    try {
      return await client.sendCommand(args);
    } catch (err) {
      throw mapRedisError(err, operation);
    }
  }

  async #script(name: Parameters<typeof runScript>[1], keys: string[], args: string[]): Promise<unknown> {
    return runScript(await this.#ready(), name, keys, args);
  }

  #sessionAndGlobal(ref: SessionRef): string[] {
    const s = this.keys.session(ref);
    const g = this.keys.global;
    return [s.meta, s.turns, g.lru, g.backlog, g.age, g.bytes];
  }

  async append(ref: SessionRef, turn: NewHotTurn, now: number, options: HotAppendOptions = {}): Promise<HotAppendResult> {
    checkRef(ref);
    checkNewTurn(turn);
    checkTime('now', now);
    const s = this.keys.session(ref);
    const idem = options.idempotency;
    const epochKey = this.keys.global.epoch;
    const reply = (await this.#script('append-9', [...this.#sessionAndGlobal(ref), epochKey, s.idem, s.idemAge], [
      sessionMember(ref),
      encodeTurn(turn),
      String(turn.createdAt),
      String(now),
      turn.userId ?? '',
      options.epoch === undefined ? '' : String(options.epoch),
      idem?.key ?? '',
      idem?.hash ?? '',
      String(idem?.windowMs ?? 1),
    ])) as unknown[];
    const status = Number(reply[0]);
    const turnId = Number(reply[1]);
    if (status === 1) return { turnId };
    if (status === 2) return { turnId, known: true };
    if (status === 0) return { needsSeed: true };
    if (status === -1) return { epochChanged: true };
    return { mismatch: true, knownTurnId: turnId };
  }

  async confirm(ref: SessionRef, epoch: number, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]> {
    checkRef(ref);
    if (turns.length === 0) return [];
    const s = this.keys.session(ref);
    const args = [String(epoch), String(VOID_WINDOW_MS)];
    for (const t of turns) args.push(String(t.turnId), t.key);
    const reply = (await this.#script('confirm-4', [this.keys.global.epoch, s.turns, s.idem, s.voids], args)) as unknown[];
    return reply.map((v) => Number(v) === 1);
  }

  async holds(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]> {
    checkRef(ref);
    if (turns.length === 0) return [];
    const values = (await this.#command('holds', ['HMGET', this.keys.session(ref).turns, ...turns.map((t) => String(t.turnId))])) as Array<string | null>;
    return turns.map((t, i) => typeof values[i] === 'string' && encodedTurnKey(values[i]) === t.key);
  }

  async voided(ref: SessionRef): Promise<string[]> {
    checkRef(ref);
    return (await this.#command('voided', ['SMEMBERS', this.keys.session(ref).voids])) as string[];
  }

  async floor(ref: SessionRef): Promise<number> {
    checkRef(ref);
    return Number((await this.#command('floor', ['GET', this.keys.session(ref).floor])) ?? 0);
  }

  async seed(ref: SessionRef, seed: HotSeed, now: number, options: HotSeedOptions = {}): Promise<boolean | 'epochChanged' | 'conflict'> {
    checkRef(ref);
    const { unarchived, oldestUnarchivedAt } = checkSeed(seed);
    checkTime('now', now);
    const turnArgs: string[] = [];
    let bytes = 0;
    for (const t of seed.turns) {
      const encoded = encodeTurn(t);
      bytes += turnBytes(t.turnId, encoded);
      turnArgs.push(String(t.turnId), encoded);
    }
    const idem = options.idempotency ?? [];
    const idemArgs: string[] = [];
    for (const e of idem) idemArgs.push(e.key, `${e.turnId}:${e.hash}`, String(e.createdAt));
    const voidCandidates = seed.turns.filter((t) => t.turnId > seed.archivedUpTo && t.key !== undefined).map((t) => `${t.key}#${t.turnId}#${t.epoch ?? 0}`);
    const first = seed.turns[0]?.turnId ?? seed.nextTurnId;
    const s = this.keys.session(ref);
    const args = [
      sessionMember(ref),
      String(now),
      String(seed.nextTurnId),
      String(seed.archivedUpTo),
      seed.userId ?? '',
      String(first),
      String(unarchived.length),
      oldestUnarchivedAt === null ? '' : String(oldestUnarchivedAt),
      String(bytes),
      options.epoch === undefined ? '' : String(options.epoch),
      String(options.windowMs ?? 1),
      String(idem.length),
      ...idemArgs,
      String(voidCandidates.length),
      ...voidCandidates,
      ...turnArgs,
    ];
    const reply = Number(await this.#script('seed-11', [...this.#sessionAndGlobal(ref), this.keys.global.epoch, s.floor, s.voids, s.idem, s.idemAge], args));
    if (reply === 1) return true;
    if (reply === 0) return false;
    return reply === -1 ? 'epochChanged' : 'conflict';
  }

  async recent(ref: SessionRef, count: number, now: number): Promise<Turn[]> {
    checkRef(ref);
    checkInt('count', count, 0, MAX_READ_TURNS);
    checkTime('now', now);
    const s = this.keys.session(ref);
    return toTurns(await this.#script('recent-3', [s.meta, s.turns, this.keys.global.lru], [sessionMember(ref), String(count), String(now)]), true);
  }

  async unarchived(ref: SessionRef, limit: number): Promise<Turn[]> {
    checkRef(ref);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    const s = this.keys.session(ref);
    return toTurns(await this.#script('range-2', [s.meta, s.turns], ['0', String(Number.MAX_SAFE_INTEGER), String(limit), 'unarchived']), false, true);
  }

  async idempotencyEntries(ref: SessionRef, keys: readonly string[]): Promise<Array<{ turnId: number; hash: string } | null>> {
    checkRef(ref);
    if (keys.length === 0) return [];
    const values = (await this.#command('idempotencyEntries', ['HMGET', this.keys.session(ref).idem, ...keys])) as Array<string | null>;
    return values.map((v) => {
      if (typeof v !== 'string') return null;
      const sep = v.indexOf(':');
      return { turnId: Number(v.slice(0, sep)), hash: v.slice(sep + 1) };
    });
  }

  async range(ref: SessionRef, fromTurn: number, toTurn: number): Promise<Turn[]> {
    checkRef(ref);
    checkInt('fromTurn', fromTurn, 0);
    checkInt('toTurn', toTurn, 0);
    const s = this.keys.session(ref);
    return toTurns(await this.#script('range-2', [s.meta, s.turns], [String(fromTurn), String(toTurn), String(MAX_READ_TURNS), '']), false);
  }

  async markArchived(ref: SessionRef, upTo: number, keepRecent: number, leaseToken?: string): Promise<void> {
    checkRef(ref);
    checkInt('upTo', upTo, 0);
    checkInt('keepRecent', keepRecent, 0);
    if (leaseToken !== undefined) checkToken(leaseToken);
    const s = this.keys.session(ref);
    const g = this.keys.global;
    await this.#script('markarchived-6', [s.meta, s.turns, g.backlog, g.age, g.bytes, s.lease], [sessionMember(ref), String(upTo), String(keepRecent), leaseToken ?? '']);
  }

  async meta(ref: SessionRef): Promise<HotSessionMeta | null> {
    checkRef(ref);
    const v = (await this.#command('meta', ['HMGET', this.keys.session(ref).meta, ...META_FIELDS])) as Array<string | null>;
    if (v[0] === null || v[0] === undefined) return null;
    const num = (i: number): number => Number(v[i] ?? 0);
    return {
      nextTurnId: num(0),
      archivedUpTo: num(1),
      turnCount: num(2),
      unarchivedCount: num(3),
      oldestUnarchivedAt: v[4] === null || v[4] === '' || v[4] === undefined ? null : Number(v[4]),
      bytes: num(5),
      lastAccess: num(6),
      createdAt: num(7),
      userId: v[8] ?? null,
    };
  }

  async dropIfArchived(ref: SessionRef): Promise<boolean> {
    checkRef(ref);
    const s = this.keys.session(ref);
    const reply = (await this.#script('remove-10', [...this.#sessionAndGlobal(ref), s.floor, s.idem, s.idemAge, this.keys.global.epoch], [sessionMember(ref), 'ifArchived', '', '0'])) as number[];
    return Number(reply[0]) === 1;
  }

  async deleteSession(ref: SessionRef, options: { epoch?: number; minFloor?: number } = {}): Promise<{ turns: number; lastTurnId: number } | 'epochChanged'> {
    checkRef(ref);
    const s = this.keys.session(ref);
    const reply = (await this.#script('remove-10', [...this.#sessionAndGlobal(ref), s.floor, s.idem, s.idemAge, this.keys.global.epoch], [sessionMember(ref), 'always', options.epoch === undefined ? '' : String(options.epoch), String(options.minFloor ?? 0)])) as number[];
    if (Number(reply[0]) === -1) return 'epochChanged';
    return { turns: Number(reply[1]), lastTurnId: Number(reply[2]) };
  }

  async deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<number> {
    checkRef(ref);
    if (!Array.isArray(turnIds)) throw new StrataError('STRATA_ERR_VALIDATION', 'turnIds: expected an array of turn ids');
    for (const id of turnIds) checkInt('turn id', id, 1);
    if (turnIds.length === 0) return 0;
    const s = this.keys.session(ref);
    const g = this.keys.global;
    const unique = [...new Set(turnIds)].map(String);
    return Number(await this.#script('deleteturns-5', [s.meta, s.turns, g.backlog, g.age, g.bytes], [sessionMember(ref), ...unique]));
  }

  async lruSessions(limit: number): Promise<Array<{ ref: SessionRef; lastAccess: number }>> {
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    if (limit === 0) return [];
    const reply = (await this.#command('lruSessions', ['ZRANGE', this.keys.global.lru, '0', String(limit - 1), 'WITHSCORES'])) as unknown[];
    // RESP2 answers [member, score, …]; RESP3 (a caller's client may speak it) [[member, score], …].
    const flat = reply.flatMap((e) => (Array.isArray(e) ? e : [e])) as Array<string | number>;
    const out: Array<{ ref: SessionRef; lastAccess: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ ref: parseSessionMember(String(flat[i])), lastAccess: Number(flat[i + 1]) });
    return out;
  }

  async idleSessions(before: number, limit: number): Promise<SessionRef[]> {
    checkTime('before', before);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    if (limit === 0) return [];
    const members = (await this.#command('idleSessions', ['ZRANGEBYSCORE', this.keys.global.lru, '-inf', `(${before}`, 'LIMIT', '0', String(limit)])) as string[];
    return members.map(parseSessionMember);
  }

  async sessionsToCompact(minUnarchived: number, oldestBefore: number, limit: number): Promise<SessionRef[]> {
    checkInt('minUnarchived', minUnarchived, 1);
    checkTime('oldestBefore', oldestBefore);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    if (limit === 0) return [];
    const g = this.keys.global;
    // Oldest backlog first (age), then the biggest backlog; a session in both appears once.
    const [byAge, byCount] = (await Promise.all([
      this.#command('sessionsToCompact', ['ZRANGEBYSCORE', g.age, '-inf', `(${oldestBefore}`, 'LIMIT', '0', String(limit)]),
      this.#command('sessionsToCompact', ['ZREVRANGEBYSCORE', g.backlog, '+inf', String(minUnarchived), 'LIMIT', '0', String(limit)]),
    ])) as [string[], string[]];
    return [...new Set([...byAge, ...byCount])].slice(0, limit).map(parseSessionMember);
  }

  async totalBytes(): Promise<number> {
    return Number((await this.#command('totalBytes', ['GET', this.keys.global.bytes])) ?? 0);
  }

  async acquireLease(ref: SessionRef, owner: string, ttlMs: number, now: number): Promise<{ token: string; fence: number } | null> {
    checkRef(ref);
    if (typeof owner !== 'string' || owner.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'owner: expected a non-empty string');
    checkInt('ttlMs', ttlMs, 1);
    checkTime('now', now);
    // Expiry is Redis's own clock (PX), the same for every instance; `now` is not needed here.
    const token = `${owner}:${randomBytes(12).toString('hex')}`;
    const s = this.keys.session(ref);
    const reply = (await this.#script('acquirelease-3', [s.lease, s.fence, this.keys.global.epoch], [token, String(ttlMs)])) as unknown[];
    const status = Number(reply[0]);
    if (status === 0) return null;
    return { token, fence: Number(reply[2]) * 2 ** 32 + Number(reply[1]) };
  }

  async renewLease(ref: SessionRef, token: string, ttlMs: number, now: number): Promise<boolean> {
    checkRef(ref);
    checkToken(token);
    checkInt('ttlMs', ttlMs, 1);
    checkTime('now', now);
    return Number(await this.#script('renewlease-1', [this.keys.session(ref).lease], [token, String(ttlMs)])) === 1;
  }

  async releaseLease(ref: SessionRef, token: string): Promise<void> {
    checkRef(ref);
    checkToken(token);
    await this.#script('releaselease-1', [this.keys.session(ref).lease], [token]);
  }

  async releaseOwnerLease(ref: SessionRef, owner: string): Promise<boolean> {
    checkRef(ref);
    if (typeof owner !== 'string' || owner.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'owner: expected a non-empty string');
    return Number(await this.#script('releaseownerlease-1', [this.keys.session(ref).lease], [owner])) === 1;
  }

  async epoch(): Promise<number | null> {
    const v = await this.#script('epoch-1', [this.keys.global.epoch], ['']);
    return v === null || v === undefined || v === false ? null : Number(v);
  }

  async initEpoch(candidate: number): Promise<number> {
    checkInt('epoch', candidate, 1);
    return Number(await this.#script('epoch-1', [this.keys.global.epoch], [String(candidate)]));
  }

  async ping(): Promise<void> {
    await this.#command('ping', ['PING']);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned !== null && this.#owned.isOpen) {
      try {
        await this.#owned.close();
      } catch {
        this.#owned.destroy();
      }
    }
  }
}
