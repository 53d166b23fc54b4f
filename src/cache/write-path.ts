import { performance } from 'node:perf_hooks';
import { StrataError } from '../errors.js';
import type { NewHotTurn } from '../hot/store.js';
import { randomToken, sessionKey } from '../ids.js';
import type { TurnRecord, VoidRecord } from '../journal/types.js';
import { messageFields, sameMessage, type ValidMessage } from '../message.js';
import type { SessionRef } from '../types.js';
import { CachePart, type CacheCore } from './core.js';
import type { Compactor } from './compactor.js';
import { clientKey, messageHash } from './recovery.js';
import type { Rehydration } from './rehydration.js';
import { TokenCounts } from './token-counts.js';

/**
 * The write path (docs/consistency.md, "Acknowledging a turn"): ids from the hot tier, records
 * into the journal, confirmation in the hot tier; a session over its unarchived threshold is
 * handed to the compactor off the request path.
 */
export class WritePath extends CachePart {
  private readonly addsSinceCheck = new Map<string, { ref: SessionRef; adds: number }>();
  /** Token counts of the turns appended, after the ack (appends store their turns uncounted). */
  readonly counts: TokenCounts;

  constructor(
    core: CacheCore,
    private readonly rehydration: Rehydration,
    private readonly compactor: Compactor,
  ) {
    super(core);
    this.counts = new TokenCounts(core.hot, core.preparer, { onError: (err) => this.noteBackgroundError(err), onSkip: (turns) => this.metrics.tokenCountsSkipped?.(turns) });
  }

  /**
   * The write path (docs/consistency.md, "Acknowledging a turn"): the hot tier assigns ids under
   * the current epoch (a known idempotency key answers its id instead); the records are
   * journaled (durable); the hot tier confirms that each id still holds this writer's turn. A
   * turn the hot tier lost in between (Redis loss while this call ran) is voided in the journal
   * and appended again, so the caller only ever sees ids that hold its messages.
   */
  async append(ref: SessionRef, messages: ValidMessage[], userId: string | undefined, idempotencyKey: string | undefined): Promise<number[]> {
    this.assertOpen();
    if (this.pending.size + messages.length > this.tuning.maxPendingTurns) {
      throw new StrataError('STRATA_ERR_BACKPRESSURE', `${this.pending.size} turns are waiting for compaction (limit ${this.tuning.maxPendingTurns}); retry later`);
    }
    const ids: Array<number | undefined> = new Array(messages.length).fill(undefined);
    /** The turns stored under their ids, for their token counts. */
    const appended: Array<{ turnId: number; key: string; message: ValidMessage }> = [];
    /** Voided records a re-seed brought back meanwhile: journaled again under the current epoch. */
    let carried: Array<{ slot: number; record: TurnRecord }> = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      const epoch = await this.rehydration.currentEpoch();
      const now = this.clock.now();
      const records: TurnRecord[] = carried.map((c) => ({ ...c.record, epoch }));
      const slots: number[] = carried.map((c) => c.slot);
      carried = [];
      let epochChanged = false;
      for (let i = 0; i < messages.length; i++) {
        if (ids[i] !== undefined || slots.includes(i)) continue;
        const m = messages[i]!;
        const client = idempotencyKey === undefined ? null : clientKey(idempotencyKey, i, messages.length);
        const key = client === null ? `n:${randomToken(9)}` : client.appendKey;
        const turn: NewHotTurn = { ...messageFields(m), createdAt: now, key };
        if (m.metadata !== undefined) turn.metadata = m.metadata;
        if (userId !== undefined) turn.userId = userId;
        const idem = client === null ? undefined : { key: client.entry, hash: messageHash(m, userId, messages.length), windowMs: this.tuning.idempotencyWindowMs };
        const result = await this.hotAppend(ref, turn, now, epoch, idem);
        if (result === 'epochChanged') {
          epochChanged = true;
          break;
        }
        let record: TurnRecord = { type: 'turn', tenant: ref.tenant, sessionId: ref.sessionId, turnId: result.turnId, ...messageFields(m), createdAt: now, key, epoch };
        if (m.metadata !== undefined) record.metadata = m.metadata;
        if (userId !== undefined) record.userId = userId;
        if (result.known) {
          // A retry: the first call's turn may not be durable yet (its instance may have died
          // before journaling it). Journal the turn as the hot tier holds it; archived = durable.
          const held = (await this.hot.range(ref, result.turnId, result.turnId))[0];
          const meta = await this.hot.meta(ref);
          if (!held && meta && result.turnId <= meta.archivedUpTo) {
            ids[i] = result.turnId;
            continue;
          }
          if (held) record = { ...record, createdAt: held.createdAt, ...(held.metadata !== undefined ? { metadata: held.metadata } : {}) };
        }
        records.push(record);
        slots.push(i);
      }
      if (records.length > 0) {
        const started = performance.now();
        await this.journal.appendMany(records);
        this.metrics.journalAppend?.((performance.now() - started) / 1000, records.length);
      }
      if (epochChanged) {
        // Records journaled in this attempt are confirmed (or voided) like any other.
        await this.rehydration.recover();
      }
      const confirmed = records.length === 0 ? [] : await this.hot.confirm(ref, records[0]!.epoch!, records.map((r) => ({ turnId: r.turnId, key: r.key! })));
      const voids: VoidRecord[] = [];
      const voided: Array<{ slot: number; record: TurnRecord }> = [];
      for (let j = 0; j < records.length; j++) {
        // Not held by the hot tier any more, but archived before the loss: the id is this
        // writer's (a new dataset never hands out an archived id again), so it is stored.
        const r = records[j]!;
        if (confirmed[j] || r.key === undefined) continue;
        const archived = await this.archive.committedTurn(ref, r.turnId);
        if (archived && sameMessage(archived, r)) confirmed[j] = true;
      }
      records.forEach((r, j) => {
        if (confirmed[j]) {
          ids[slots[j]!] = r.turnId;
          appended.push({ turnId: r.turnId, key: r.key!, message: messages[slots[j]!]! });
        } else {
          voids.push({ type: 'void', tenant: r.tenant, sessionId: r.sessionId, turnId: r.turnId, key: r.key!, epoch: r.epoch! });
          voided.push({ slot: slots[j]!, record: r });
        }
      });
      if (voids.length > 0) {
        await this.journal.appendMany(voids);
        this.metrics.appendRetry?.(voids.length);
        // Between the void marker (in the hot tier) and the durable void record, the hot tier
        // may have lost its data again and a re-seed taken the record from this journal. If
        // the id now holds this writer's turn, that is its place: journal it again under the
        // current epoch (the void names only the old one) and confirm it in the next attempt.
        await this.rehydration.recover();
        const holds = await this.hot.holds(ref, voided.map((v) => ({ turnId: v.record.turnId, key: v.record.key! })));
        carried = voided.filter((_, j) => holds[j]);
      }
      if (ids.every((id) => id !== undefined)) {
        this.retrieval?.invalidate(ref);
        this.noteAdds(ref, records.length);
        // Counted after the ack, off the request path (src/cache/token-counts.ts).
        if (this.tokenizer) this.counts.add(ref, appended);
        return ids as number[];
      }
    }
    throw new StrataError('STRATA_ERR_RECOVERING', `the hot tier kept losing session ${ref.sessionId} while appending; nothing was acknowledged, retry`, { details: { sessionId: ref.sessionId } });
  }

  /** Appends to the hot store, seeding the session first when the store does not know it. */
  async hotAppend(ref: SessionRef, turn: NewHotTurn, now: number, epoch: number, idempotency: { key: string; hash: string; windowMs: number } | undefined): Promise<{ turnId: number; known?: true } | 'epochChanged'> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await this.hot.append(ref, turn, now, { epoch, ...(idempotency ? { idempotency } : {}) });
      if ('turnId' in result) return result;
      if ('epochChanged' in result) return 'epochChanged';
      if ('mismatch' in result) {
        throw new StrataError('STRATA_ERR_IDEMPOTENCY_MISMATCH', `idempotency key was used for another message in session ${ref.sessionId} (turn ${result.knownTurnId})`, { details: { sessionId: ref.sessionId, turnId: result.knownTurnId } });
      }
      const seeded = await this.rehydration.seedHot(ref, turn.userId, true);
      if (seeded === 'epochChanged') return 'epochChanged';
    }
    throw new StrataError('STRATA_ERR_RECOVERING', `the hot store keeps losing session ${ref.sessionId} while seeding it`, { details: { sessionId: ref.sessionId } });
  }

  noteAdds(ref: SessionRef, adds: number): void {
    const key = sessionKey(ref);
    const entry = this.addsSinceCheck.get(key) ?? { ref, adds: 0 };
    entry.adds += adds;
    this.addsSinceCheck.set(key, entry);
    if (entry.adds >= this.tuning.maxUnarchivedTurns) {
      this.addsSinceCheck.delete(key);
      // Off the request path: the ack does not wait for compaction.
      void this.hot.meta(ref).then((meta) => {
        if (meta && meta.unarchivedCount >= this.tuning.maxUnarchivedTurns) return this.compactor.compactSession(ref);
        return 0;
      }).catch(() => undefined);
    }
  }
}

/** Idempotency keys: 1-255 printable ASCII characters (they travel in an HTTP header and in Lua). */
export function validateIdempotencyKey(key: unknown): string | undefined {
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new StrataError('STRATA_ERR_VALIDATION', `idempotencyKey must be 1-255 printable ASCII characters without spaces; received ${typeof key === 'string' ? `${key.length} characters` : typeof key}`, { details: { field: 'idempotencyKey' } });
  }
  return key;
}
