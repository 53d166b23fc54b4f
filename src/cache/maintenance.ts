import { sessionKey, toSessionRef } from '../ids.js';
import type { StrataSnapshot } from '../metrics.js';
import type { SessionRef } from '../types.js';
import type { TenantOption } from './api.js';
import type { Compactor } from './compactor.js';
import { CachePart, type CacheCore } from './core.js';
import type { Rehydration } from './rehydration.js';

const ARCHIVE_STATS_PERIOD_MS = 5 * 60 * 1000;

/**
 * Background work: a pass compacts sessions over their count or age threshold, evicts idle
 * sessions and enforces the hot tier's byte budget, applies retention and checkpoints the
 * journal. One session's failure is counted and retried with backoff, never stops the pass.
 */
export class Maintenance extends CachePart {
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastRetentionRun = 0;
  private lastArchiveStats = 0;
  private readonly failures = new Map<string, { count: number; retryAt: number }>();
  /** Per session: the highest turn id replayed from the journal at start, until archived. */
  private readonly replayedUpTo = new Map<string, { ref: SessionRef; upTo: number }>();
  private replayDone = false;

  constructor(
    core: CacheCore,
    private readonly rehydration: Rehydration,
    private readonly compactor: Compactor,
  ) {
    super(core);
    // The journal's ledger holds what its replay found unarchived (records of previous runs).
    for (const ref of this.pending.refs()) this.replayedUpTo.set(sessionKey(ref), { ref, upTo: this.pending.maxTurnId(ref) });
  }

  /**
   * Archives what the journal replay left pending. Sessions the hot tier still knows are
   * compacted through it (it may hold other instances' turns); sessions it lost are archived
   * straight from the journal records.
   */
  async archiveReplayed(): Promise<void> {
    for (const ref of this.pending.refs()) {
      // Per session and never fatal: a session that cannot be archived now (lease held, hot tier
      // away) is retried by maintenance; its records stay in the journal until then.
      await this.isolated(ref, async () => {
        if (this.core.leaseOwner) await this.hot.releaseOwnerLease(ref, this.core.leaseOwner);
        await this.compactor.compactSession(ref);
      });
    }
    this.checkReplayDone();
    await this.compactor.checkpoint();
  }

  /** What the service's metrics read at scrape time (StrataMetrics.snapshot): never stale. */
  async metricsSnapshot(): Promise<StrataSnapshot> {
    const now = this.clock.now();
    // The session whose oldest unarchived turn is the oldest of all (the store's age index, read first).
    const [oldest] = await this.hot.sessionsToCompact(Number.MAX_SAFE_INTEGER, now + 1, 1);
    const [meta, hotBytes] = await Promise.all([oldest ? this.hot.meta(oldest) : null, this.hot.totalBytes()]);
    return { now, unarchivedTurns: this.pending.size, unarchivedTurnsLimit: this.tuning.maxPendingTurns, oldestUnarchivedAt: meta?.oldestUnarchivedAt ?? null, hotBytes, hotBudgetBytes: this.tuning.hotBudgetBytes };
  }

  /**
   * One pass of background work: detect a lost hot tier, compact sessions over their count or
   * age threshold, evict idle sessions and enforce the byte budget, checkpoint the journal.
   */
  runMaintenance(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.maintain().finally(() => (this.running = null));
    return this.running;
  }

  /** Runs a pass every `maintenanceIntervalMs` (0: never; tests call `runMaintenance`). */
  startTimer(): void {
    if (this.tuning.maintenanceIntervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.runMaintenance().catch((err: unknown) => this.noteBackgroundError(err)), this.tuning.maintenanceIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass that is running. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private async maintain(): Promise<void> {
    if (this.core.closed) return;
    const now = this.clock.now();
    const epoch = await this.hot.epoch();
    if (epoch !== this.rehydration.epoch) {
      // The hot tier lost its state: recover, then re-seed every session this instance holds
      // unarchived turns of (other instances' sessions are re-seeded on first use).
      await this.rehydration.recover();
    }
    for (const ref of this.pending.refs()) if (!(await this.hot.meta(ref))) await this.isolated(ref, () => this.compactor.compactSession(ref));
    for (const ref of await this.hot.sessionsToCompact(this.tuning.maxUnarchivedTurns, now - this.tuning.maxUnarchivedAgeMs, 1000)) await this.isolated(ref, () => this.compactor.compactSession(ref));
    for (const ref of await this.hot.idleSessions(now - this.tuning.sessionIdleTtlMs, 1000)) await this.isolated(ref, () => this.evict(ref, 'idle'));
    await this.evictToDiskLru();
    this.checkReplayDone();
    await this.compactor.checkpoint();
    if (this.tuning.retentionDays !== null && now - this.lastRetentionRun > 24 * 3600 * 1000) {
      this.lastRetentionRun = now;
      await this.archive.cleanupExpiredSessions(this.tuning.retentionDays);
    }
    this.metrics.tierBytes?.('hot', await this.hot.totalBytes());
    if (this.metrics.tierBytes && now - this.lastArchiveStats > ARCHIVE_STATS_PERIOD_MS) {
      // Archive totals walk every file: refreshed rarely.
      this.lastArchiveStats = now;
      this.metrics.tierBytes('archive', (await this.archive.stats()).bytes);
    }
  }

  async evictToDiskLru(sessionId?: string, options: TenantOption = {}): Promise<{ evicted: number }> {
    if (sessionId !== undefined) {
      const ref = toSessionRef(sessionId, options.tenant);
      if (!(await this.hot.meta(ref))) return { evicted: 0 };
      const dropped = await this.evict(ref, 'explicit');
      return { evicted: dropped ? 1 : 0 };
    }
    let evicted = 0;
    while ((await this.hot.totalBytes()) > this.tuning.hotBudgetBytes) {
      const lru = await this.hot.lruSessions(16);
      if (lru.length === 0) break;
      let progress = false;
      for (const { ref } of lru) {
        if (await this.evict(ref, 'lru')) {
          evicted++;
          progress = true;
        }
        if ((await this.hot.totalBytes()) <= this.tuning.hotBudgetBytes) break;
      }
      if (!progress) break;
    }
    return { evicted };
  }

  /** Compacts then drops the session from the hot tier; never drops unarchived turns. */
  async evict(ref: SessionRef, reason: 'lru' | 'idle' | 'explicit'): Promise<boolean> {
    await this.compactor.compactSession(ref);
    const dropped = await this.hot.dropIfArchived(ref);
    if (dropped) this.metrics.eviction?.(reason);
    return dropped;
  }

  /**
   * The journal may checkpoint past the records of previous runs only once every replayed
   * record is archived: until then they are its only durable copy.
   */
  checkReplayDone(): void {
    if (this.replayDone) return;
    for (const [key, { ref, upTo }] of this.replayedUpTo) if (this.pending.records(ref).every((r) => r.turnId > upTo)) this.replayedUpTo.delete(key);
    if (this.replayedUpTo.size > 0) return;
    this.replayDone = true;
    this.journal.markReplayed();
  }

  /**
   * Runs one session's background work so that its failure (a damaged file, a lost lease, a
   * full disk) is counted and retried later with backoff, and never stops the pass for the
   * other sessions.
   */
  async isolated(ref: SessionRef, work: () => Promise<unknown>): Promise<void> {
    const key = sessionKey(ref);
    const failed = this.failures.get(key);
    if (failed && failed.retryAt > this.clock.now()) return;
    try {
      await work();
      this.failures.delete(key);
    } catch (err) {
      const count = (failed?.count ?? 0) + 1;
      // 1 s, 2 s, 4 s … capped at 5 minutes.
      this.failures.set(key, { count, retryAt: this.clock.now() + Math.min(300_000, 1000 * 2 ** (count - 1)) });
      this.noteBackgroundError(err);
    }
  }
}
