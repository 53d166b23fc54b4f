import { performance } from 'node:perf_hooks';
import pLimit, { type LimitFunction } from 'p-limit';
import { searchText } from '../message.js';
import { sessionKey, toSessionRef } from '../ids.js';
import type { ArchivedTurn, SessionRef, Turn } from '../types.js';
import type { TenantOption } from './api.js';
import { CachePart, notFound, type CacheCore } from './core.js';
import { isClientKey, parseClientKey } from './recovery.js';
import type { Rehydration } from './rehydration.js';
import type { ArchivedSpan } from './retrieval-port.js';

/**
 * Turns per archive segment written by one compaction step. Token counts and local embeddings
 * run on the worker pool (src/workers) in batches of `embedBatchSize`; what stays here (brotli,
 * inline work with `workers: 0`) is sliced by this step and a yield between batches, so the
 * event loop stays responsive for requests while a large backlog is archived.
 */
const UNARCHIVED_BATCH = 256;

/**
 * Compaction: moves a session's unarchived turns from the hot tier into the archive under the
 * session's lease (fenced), then tells the journal's ledger what the archive holds and
 * checkpoints the journal. Concurrent compactions of one session share one run.
 */
export class Compactor extends CachePart {
  private readonly inflightCompactions = new Map<string, Promise<number>>();
  /**
   * Compactions running at once: four per worker thread plus four (most of a compaction is
   * waiting: for Redis, the archive's fsyncs, its batch on the pool; with 8 against 4, a
   * backlog of 60,000 turns flushed ~15 % faster on 2 cores). The rest wait here, before taking
   * their session's lease: a lease is held only while its compaction works, never while it
   * queues behind every other session's batches for the pool.
   */
  private readonly slots: LimitFunction;

  constructor(
    core: CacheCore,
    private readonly rehydration: Rehydration,
  ) {
    super(core);
    this.slots = pLimit(4 + 4 * core.preparer.threads());
  }

  async flush(sessionId?: string, options: TenantOption = {}): Promise<{ sessions: number; turns: number }> {
    if (sessionId !== undefined) {
      const ref = toSessionRef(sessionId, options.tenant);
      const [meta, info] = await Promise.all([this.hot.meta(ref), this.archive.info(ref)]);
      if (!meta && !info && !this.pending.has(ref) && !this.rehydration.recoveryIndex.has(ref)) throw notFound(ref);
      const turns = await this.compactSession(ref);
      await this.checkpoint();
      return { sessions: 1, turns };
    }
    const unique = new Map<string, SessionRef>();
    for (const ref of [...this.pending.refs(), ...(await this.hot.sessionsToCompact(1, Number.MAX_SAFE_INTEGER, 10_000))]) {
      const key = sessionKey(ref);
      if (!unique.has(key)) unique.set(key, ref);
    }
    // Every session at once, as many running as compactions may (`slots`): both cores stay busy.
    const results = await Promise.allSettled([...unique.values()].map((ref) => this.compactSession(ref)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    let sessions = 0;
    let turns = 0;
    for (const r of results) {
      const n = (r as PromiseFulfilledResult<number>).value;
      sessions += n > 0 ? 1 : 0;
      turns += n;
    }
    await this.checkpoint();
    return { sessions, turns };
  }

  /** Compacts one session; concurrent calls for the same session share one run. */
  compactSession(ref: SessionRef): Promise<number> {
    if (this.readOnly) return Promise.resolve(0);
    const key = sessionKey(ref);
    const running = this.inflightCompactions.get(key);
    const start = (): Promise<number> => this.slots(() => this.compactSessionNow(ref));
    if (running) return running.then(start);
    const run = start().finally(() => this.inflightCompactions.delete(key));
    this.inflightCompactions.set(key, run);
    return run;
  }

  async compactSessionNow(ref: SessionRef): Promise<number> {
    if (!(await this.hot.meta(ref))) {
      // The hot tier does not hold the session (lost, dropped or deleted). Turns are archived
      // only through it: re-seed when some journal still holds unarchived turns of it (ids are
      // then known to the hot tier before anyone archives), else what this instance holds is
      // archived or deleted already.
      const plan = await this.rehydration.planSeed(ref);
      if (plan.unarchived.length === 0) {
        this.markArchived(ref, Math.max(plan.info?.highWater ?? 0, plan.floor));
        return 0;
      }
      await this.rehydration.seedHot(ref, undefined, false);
    }
    return this.lock.withLock(ref, async (held) => {
      let total = 0;
      const started = performance.now();
      let raw = 0;
      let bytesBefore: number | null = null;
      const meta = await this.hot.meta(ref);
      const appendOptions = {
        ...(meta?.userId ? { userId: meta.userId } : {}),
        ...(this.embedder ? { embedderId: this.embedder.id } : {}),
        fence: held.fence,
        ...(held.assertHeld ? { precommit: () => held.assertHeld!() } : {}),
      };
      /** Consecutive batches appended whole, the last two (docs of `ArchivedSpan`). */
      let written: ArchivedSpan[] = [];
      while (true) {
        const turns = await this.hot.unarchived(ref, UNARCHIVED_BATCH);
        if (turns.length === 0) break;
        if (bytesBefore === null) {
          // A file without segments is the empty header the session's first append created: the
          // first compaction counts it (metrics: compression ratio, archive bytes).
          const before = await this.archive.info(ref);
          bytesBefore = before && before.segments > 0 ? before.bytes : 0;
        }
        const prepared = await this.prepareForArchive(turns);
        // Turns appended since the last compaction may still wait for their count (or were left
        // uncounted under load): the ones that stay in the hot tier as the recent window get
        // the counts compaction computed, so reads of that window need not count them.
        const counted = turns.flatMap((t, i) => (t.tokens === undefined && t.key !== undefined && prepared[i]!.tokens !== undefined ? [{ turnId: t.turnId, key: t.key, tokens: prepared[i]!.tokens! }] : []));
        if (counted.length > 0) await this.hot.setTokens(ref, counted.slice(-this.tuning.recentTurns));
        // Client idempotency keys go into the archive with their turns: after a loss of the hot
        // tier a re-seed registers them again, so a late retry still gets its first answer.
        const keyed = turns.filter((t) => isClientKey(t.key)).map((t) => ({ turn: t, entry: parseClientKey(t.key!).entry }));
        const entries = await this.hot.idempotencyEntries(ref, keyed.map((k) => k.entry));
        const idempotency = keyed.flatMap((k, i) => (entries[i]?.turnId === k.turn.turnId ? [{ key: k.entry, turnId: k.turn.turnId, hash: entries[i]!.hash, createdAt: k.turn.createdAt }] : []));
        const result = await this.archive.append(ref, prepared, { ...appendOptions, idempotency, keysSince: this.clock.now() - this.tuning.idempotencyWindowMs });
        const upTo = turns.at(-1)!.turnId;
        // Every turn appended (none was archived already): the archive holds exactly these from
        // the first one's id up. The last two batches are kept for the milestone summaries.
        if (result.skipped === 0 && result.appended === prepared.length) {
          written = [...written.slice(-1), { fromTurn: prepared[0]!.turnId, toTurn: result.highWater, turns: prepared }];
        } else {
          written = [];
        }
        // Fenced: a holder whose lease expired meanwhile must not trim what the next holder owns.
        await this.hot.markArchived(ref, Math.max(upTo, 0), this.tuning.recentTurns, held.token ?? undefined);
        this.markArchived(ref, Math.max(upTo, result.highWater));
        total += turns.length;
        for (const t of turns) raw += Buffer.byteLength(searchText(t));
        if (turns.length < UNARCHIVED_BATCH) break;
      }
      if (total === 0) {
        // Nothing in the hot tier, but this instance may still hold records that were archived
        // by someone else (or before a crash): forget those at or below the high-water mark.
        const info = await this.archive.info(ref);
        if (info) this.markArchived(ref, info.highWater);
      }
      if (total > 0) {
        this.retrieval?.invalidate(ref);
        const span = written.length === 0 ? undefined : { fromTurn: written[0]!.fromTurn, toTurn: written.at(-1)!.toTurn, turns: written.flatMap((w) => w.turns) };
        await this.retrieval?.afterCompaction?.(ref, this.preparer, span);
        // Measured after the milestone summaries compaction may write into the same file.
        const bytesAfter = (await this.archive.info(ref))?.bytes ?? 0;
        this.metrics.compaction?.((performance.now() - started) / 1000, total, Math.max(0, bytesAfter - (bytesBefore ?? 0)), raw);
      }
      return total;
    });
  }

  /**
   * Token counts (where a turn has none) and embeddings, in batches of `embedBatchSize`, on the
   * worker pool when there is one (the compactor awaits room when its queue is full).
   */
  async prepareForArchive(turns: ReadonlyArray<Turn & { key?: string }>): Promise<ArchivedTurn[]> {
    const out: ArchivedTurn[] = turns.map(({ key: _key, ...t }) => ({ ...t }));
    if (!this.embedder && !this.tokenizer) return out;
    for (let i = 0; i < out.length; i += this.tuning.embedBatchSize) {
      const batch = out.slice(i, i + this.tuning.embedBatchSize);
      const count = this.tokenizer ? batch.flatMap((t, j) => (t.tokens === undefined ? [j] : [])) : [];
      if (count.length === 0 && !this.embedder) continue;
      const started = performance.now();
      const prepared = await this.preparer.prepare(batch, count);
      // With a pool the batch's token counts run in the same task: the time is the batch's.
      if (this.embedder) this.metrics.embedBatch?.((performance.now() - started) / 1000, batch.length);
      batch.forEach((t, j) => {
        const tokens = prepared.tokens[j];
        if (tokens !== undefined) t.tokens = tokens;
        const vector = prepared.vectors[j];
        if (vector !== undefined) t.embedding = vector;
      });
      await yieldToEventLoop();
    }
    return out;
  }

  /**
   * Search reads the archive only, so unarchived turns it must see are archived first: those
   * outside the recent window (`keepRecentWindow`; the window is excluded from search and
   * packed from the hot tier anyway), or all of them.
   */
  async flushIfUnarchived(ref: SessionRef, keepRecentWindow = false): Promise<void> {
    const meta = await this.hot.meta(ref);
    const allowed = keepRecentWindow ? this.tuning.recentTurns : 0;
    if ((meta && meta.unarchivedCount > allowed) || (!meta && this.pending.has(ref))) await this.compactSession(ref);
  }

  markArchived(ref: SessionRef, upTo: number): void {
    this.journal.markArchived(ref.tenant, ref.sessionId, upTo);
  }

  async checkpoint(): Promise<void> {
    await this.journal.checkpoint();
  }
}

/** Lets pending I/O callbacks (requests) run between slices of CPU-bound work. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
