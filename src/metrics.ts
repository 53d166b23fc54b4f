/**
 * Hooks the core calls so the service can export Prometheus metrics without the core depending
 * on prom-client. Every method is optional; the default does nothing.
 */
export interface StrataMetrics {
  /** One journal fsync (group commit: `appends` queued appends made durable by it; 0 for a timed `batch` sync). */
  journalFsync?(seconds: number, appends: number): void;
  /** One durable append as the writer waits for it (journal queue + group commit): `records` journaled. */
  journalAppend?(seconds: number, records: number): void;
  /** Journal damage found at open (`Journal.recovery.corrupt`): `records` damaged stretches, each usually one lost frame. */
  journalCorruption?(records: number): void;
  hotAccess?(hit: boolean): void;
  rehydration?(): void;
  /** One session compaction; `encodedBytes` is what the session's archive file grew by. */
  compaction?(seconds: number, turns: number, encodedBytes: number, rawBytes: number): void;
  eviction?(reason: 'lru' | 'idle' | 'explicit'): void;
  embedBatch?(seconds: number, texts: number): void;
  /** Absolute bytes of a tier: the hot tier after maintenance, the archive after a full walk (every 5 minutes). */
  tierBytes?(tier: 'hot' | 'archive', bytes: number): void;
  /** The archive grew (import) or shrank (deletion) by `delta` bytes outside compaction. */
  archiveBytes?(delta: number): void;
  /** A recovery after the hot tier lost its data: time to read every journal, sessions found in them. */
  recovery?(seconds: number, sessions: number): void;
  /** Turns whose id the hot tier lost before the writer could confirm it (voided and appended again). */
  appendRetry?(turns: number): void;
  /** Appended turns left without a token count because too many waited for one (reads and compaction count them). */
  tokenCountsSkipped?(turns: number): void;
  /** A background (maintenance) failure, by error code; the session is retried with backoff. */
  backgroundError?(code: string): void;
  /** Who this core is, once its journal is open (a read-only core has no journal and says nothing). */
  instance?(info: StrataInstanceInfo): void;
  /** The core hands over a function the metrics call at scrape time for the values below. */
  snapshot?(collect: () => Promise<StrataSnapshot>): void;
  /** The core hands over a function the metrics call at scrape time for its worker pool's occupancy. */
  workerPool?(collect: () => WorkerPoolSnapshot): void;
}

/** The worker pool (token counts, local embeddings) at one moment; all 0 when it runs inline (`workers: 0`). */
export interface WorkerPoolSnapshot {
  threads: number;
  /** Tasks running on a thread. */
  busy: number;
  /** Tasks waiting for a thread, plus callers waiting for room in the bounded queue. */
  queued: number;
}

export interface StrataInstanceInfo {
  /** The name of this instance's journal (`STRATA_INSTANCE_ID`, or the next free `<host>-N`). */
  instanceId: string;
  hotDriver: 'memory' | 'redis';
  durability: 'fsync' | 'batch' | 'none';
}

/** Values computed when metrics are read, so they are never stale. */
export interface StrataSnapshot {
  /** The core's clock when the snapshot was taken (ms). */
  now: number;
  /** Turns this instance journaled that are not archived yet: what `STRATA_ERR_BACKPRESSURE` counts. */
  unarchivedTurns: number;
  /** The count at which appends answer `STRATA_ERR_BACKPRESSURE` (`maxPendingTurns`). */
  unarchivedTurnsLimit: number;
  /** Creation time (ms) of the oldest unarchived turn the hot tier holds (every instance's), null when none. */
  oldestUnarchivedAt: number | null;
  /** Approximate bytes the hot tier holds (with Redis: every instance's sessions). */
  hotBytes: number;
  /** The hot-tier size above which least-recently-used sessions are archived and dropped (`hotBudgetBytes`). */
  hotBudgetBytes: number;
}

export const noMetrics: StrataMetrics = Object.freeze({});
