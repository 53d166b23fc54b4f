import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StrataInstanceInfo, StrataMetrics, StrataSnapshot, WorkerPoolSnapshot } from '../metrics.js';
import { STRATA_VERSION } from '../version.js';

/**
 * Prometheus metrics of one Strata process. `hooks` is what `createStrata({ metrics })` takes,
 * so the core reports without depending on prom-client; `observeRequest` is called by the
 * HTTP layer for every answered request. Backlog, compaction lag and hot-tier size are read from
 * the core when metrics are scraped (`StrataMetrics.snapshot`), so they are never stale; the
 * alerting guide built on them is docs/operations.md.
 */
export interface ServerMetrics {
  readonly registry: Registry;
  readonly hooks: StrataMetrics;
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** An error answer, by its STRATA_ERR_* code and route. */
  observeError(code: string, route: string): void;
}

/** Scrapes closer together than this share one snapshot of the core (a few hot-store reads). */
const SNAPSHOT_REUSE_MS = 1_000;

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createServerMetrics(options: { registry?: Registry; defaultMetrics?: boolean; /** Default 1 000 ms. */ snapshotReuseMs?: number } = {}): ServerMetrics {
  const reuseMs = options.snapshotReuseMs ?? SNAPSHOT_REUSE_MS;
  const registry = options.registry ?? new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'strata_' });
  const registers = [registry];

  const requests = new Histogram({ name: 'strata_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['method', 'route', 'status'], buckets: LATENCY_BUCKETS, registers });
  const hotAccess = new Counter({ name: 'strata_hot_access_total', help: 'Hot-tier reads by result', labelNames: ['result'], registers });
  new Gauge({
    name: 'strata_hot_hit_ratio',
    help: 'Hot-tier hits / reads since start',
    registers,
    async collect() {
      const values = (await hotAccess.get()).values;
      const hits = values.find((v) => v.labels.result === 'hit')?.value ?? 0;
      const total = values.reduce((sum, v) => sum + v.value, 0);
      this.set(total === 0 ? 0 : hits / total);
    },
  });
  const rehydrations = new Counter({ name: 'strata_rehydrations_total', help: 'Sessions reloaded from the archive into the hot tier', registers });
  const compactionSeconds = new Histogram({ name: 'strata_compaction_duration_seconds', help: 'Duration of one session compaction', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers });
  const compactedTurns = new Counter({ name: 'strata_compacted_turns_total', help: 'Turns moved to the archive', registers });
  const rawBytes = new Counter({ name: 'strata_compaction_raw_bytes_total', help: 'Uncompressed bytes of compacted turns', registers });
  const encodedBytes = new Counter({ name: 'strata_compaction_encoded_bytes_total', help: 'Bytes written to the archive by compaction', registers });
  let rawSum = 0;
  let encodedSum = 0;
  new Gauge({
    name: 'strata_compression_ratio',
    help: 'Raw bytes / archived bytes over every compaction since start',
    registers,
    collect() {
      this.set(encodedSum === 0 ? 0 : rawSum / encodedSum);
    },
  });
  // Read from the core at scrape time. A snapshot that fails (the hot tier unreachable) reports
  // NaN and counts the failure, rather than repeating an old value as if it were current.
  let collectSnapshot: (() => Promise<StrataSnapshot>) | null = null;
  let cached: { at: number; value: Promise<StrataSnapshot | null> } | null = null;
  const snapshotErrors: Counter = new Counter({
    name: 'strata_metrics_snapshot_errors_total',
    help: 'Scrapes whose read of the core failed (the backlog gauges then read NaN)',
    registers,
    // Metrics are collected concurrently: waiting for this scrape's read counts its failure in the same scrape.
    async collect() {
      await snapshot();
    },
  });
  const snapshot = (): Promise<StrataSnapshot | null> => {
    if (collectSnapshot === null) return Promise.resolve(null);
    const now = Date.now();
    if (cached === null || now - cached.at >= reuseMs) {
      cached = {
        at: now,
        value: collectSnapshot().catch(() => {
          snapshotErrors.inc();
          return null;
        }),
      };
    }
    return cached.value;
  };
  new Gauge({
    name: 'strata_unarchived_turns',
    help: 'Turns this instance journaled that are not archived yet (appends answer 429 STRATA_ERR_BACKPRESSURE at strata_unarchived_turns_limit)',
    registers,
    async collect() {
      const s = await snapshot();
      this.set(s ? s.unarchivedTurns : collectSnapshot ? NaN : 0);
    },
  });
  new Gauge({
    name: 'strata_unarchived_turns_limit',
    help: 'maxPendingTurns: the unarchived turns at which this instance answers STRATA_ERR_BACKPRESSURE',
    registers,
    async collect() {
      const s = await snapshot();
      this.set(s ? s.unarchivedTurnsLimit : NaN);
    },
  });
  new Gauge({
    name: 'strata_compaction_lag_seconds',
    help: 'Age of the oldest unarchived turn in the hot tier (every instance\'s sessions), 0 when everything is archived; computed at scrape time',
    registers,
    async collect() {
      const s = await snapshot();
      this.set(s ? (s.oldestUnarchivedAt === null ? 0 : Math.max(0, s.now - s.oldestUnarchivedAt) / 1000) : collectSnapshot ? NaN : 0);
    },
  });
  new Gauge({
    name: 'strata_hot_budget_bytes',
    help: 'hotBudgetBytes: above this strata_tier_bytes{tier="hot"}, least-recently-used sessions are archived and dropped',
    registers,
    async collect() {
      const s = await snapshot();
      this.set(s ? s.hotBudgetBytes : NaN);
    },
  });
  // The worker pool is this process's: read directly at scrape time (no hot-store read involved).
  let workerPool: (() => WorkerPoolSnapshot) | null = null;
  new Gauge({
    name: 'strata_worker_threads',
    help: 'Worker threads for token counts and local embeddings (0: computed on the request thread)',
    registers,
    collect() {
      this.set(workerPool?.().threads ?? 0);
    },
  });
  new Gauge({
    name: 'strata_worker_busy_threads',
    help: 'Worker threads running a task (token counts, embeddings) at scrape time',
    registers,
    collect() {
      this.set(workerPool?.().busy ?? 0);
    },
  });
  new Gauge({
    name: 'strata_worker_queue_depth',
    help: 'Tasks waiting for a worker thread at scrape time (a full queue makes compaction wait)',
    registers,
    collect() {
      this.set(workerPool?.().queued ?? 0);
    },
  });
  const instanceInfo = new Gauge({ name: 'strata_instance_info', help: 'Always 1: the version, instance id, hot-tier driver and durability of this process', labelNames: ['version', 'instance_id', 'hot_driver', 'durability'], registers });
  instanceInfo.set({ version: STRATA_VERSION, instance_id: '', hot_driver: '', durability: '' }, 1);
  const fsync = new Histogram({ name: 'strata_journal_fsync_duration_seconds', help: 'Latency of one journal fsync (a group commit)', buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5], registers });
  const append = new Histogram({ name: 'strata_journal_append_duration_seconds', help: 'Latency of one durable append as the writer waits for it (journal queue and group-commit fsync)', buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5], registers });
  const journalRecords = new Counter({ name: 'strata_journal_records_total', help: 'Records made durable by the journal', registers });
  const journalCorrupt = new Counter({ name: 'strata_journal_corrupt_total', help: 'Damaged journal stretches found at open (records around them were replayed)', registers });
  // Archive bytes: the last full walk (every 5 minutes, also counting other instances' writes)
  // plus what this instance added or removed since (compaction, import, deletion).
  let archiveWalked = 0;
  let archiveSinceWalk = 0;
  let hotBytes = 0;
  new Gauge({
    name: 'strata_tier_bytes',
    help: 'Bytes held per tier: hot (approximate, read at scrape time) and archive (files on disk, kept current by this instance\'s writes, re-counted every 5 minutes)',
    labelNames: ['tier'],
    registers,
    async collect() {
      const s = await snapshot();
      if (s) hotBytes = s.hotBytes;
      this.set({ tier: 'hot' }, hotBytes);
      this.set({ tier: 'archive' }, Math.max(0, archiveWalked + archiveSinceWalk));
    },
  });
  const errors = new Counter({ name: 'strata_errors_total', help: 'Error answers by code and route', labelNames: ['code', 'route'], registers });
  const recoveries = new Counter({ name: 'strata_recoveries_total', help: 'Recoveries after the hot tier lost its data (every journal read)', registers });
  const recoverySeconds = new Histogram({ name: 'strata_recovery_seconds', help: 'Time to read every journal after a loss of the hot tier', registers, buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30] });
  const appendRetries = new Counter({ name: 'strata_append_retries_total', help: 'Turns whose id the hot tier lost before confirmation (voided and appended again)', registers });
  const tokenCountsSkipped = new Counter({ name: 'strata_token_counts_skipped_total', help: 'Appended turns left without a token count because 8,192 waited for one (reads and compaction count them)', registers });
  const backgroundErrors = new Counter({ name: 'strata_background_errors_total', help: 'Background (maintenance) failures by error code; the session is retried with backoff', labelNames: ['code'], registers });
  const evictions = new Counter({ name: 'strata_evictions_total', help: 'Sessions dropped from the hot tier', labelNames: ['reason'], registers });
  const embedSeconds = new Histogram({ name: 'strata_embedding_batch_duration_seconds', help: 'Latency of one embedding batch', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers });
  const embeddedTexts = new Counter({ name: 'strata_embedded_texts_total', help: 'Texts embedded', registers });

  const hooks: StrataMetrics = Object.freeze({
    journalFsync(seconds: number) {
      fsync.observe(seconds);
    },
    journalAppend(seconds: number, records: number) {
      append.observe(seconds);
      journalRecords.inc(records);
    },
    journalCorruption(records: number) {
      journalCorrupt.inc(records);
    },
    hotAccess(hit: boolean) {
      hotAccess.inc({ result: hit ? 'hit' : 'miss' });
    },
    recovery(seconds: number) {
      recoveries.inc();
      recoverySeconds.observe(seconds);
    },
    appendRetry(turns: number) {
      appendRetries.inc(turns);
    },
    tokenCountsSkipped(turns: number) {
      tokenCountsSkipped.inc(turns);
    },
    backgroundError(code: string) {
      backgroundErrors.inc({ code });
    },
    rehydration() {
      rehydrations.inc();
    },
    compaction(seconds: number, turns: number, encoded: number, raw: number) {
      compactionSeconds.observe(seconds);
      compactedTurns.inc(turns);
      rawBytes.inc(raw);
      encodedBytes.inc(encoded);
      rawSum += raw;
      encodedSum += encoded;
      archiveSinceWalk += encoded;
    },
    eviction(reason: 'lru' | 'idle' | 'explicit') {
      evictions.inc({ reason });
    },
    embedBatch(seconds: number, texts: number) {
      embedSeconds.observe(seconds);
      embeddedTexts.inc(texts);
    },
    tierBytes(tier: 'hot' | 'archive', bytes: number) {
      if (tier === 'hot') {
        hotBytes = bytes;
      } else {
        archiveWalked = bytes;
        archiveSinceWalk = 0;
      }
    },
    archiveBytes(delta: number) {
      archiveSinceWalk += delta;
    },
    instance(info: StrataInstanceInfo) {
      instanceInfo.reset();
      instanceInfo.set({ version: STRATA_VERSION, instance_id: info.instanceId, hot_driver: info.hotDriver, durability: info.durability }, 1);
    },
    snapshot(collect: () => Promise<StrataSnapshot>) {
      collectSnapshot = collect;
      cached = null;
    },
    workerPool(collect: () => WorkerPoolSnapshot) {
      workerPool = collect;
    },
  });

  return {
    registry,
    hooks,
    observeRequest(method, route, status, seconds) {
      requests.observe({ method, route, status: String(status) }, seconds);
    },
    observeError(code, route) {
      errors.inc({ code, route });
    },
  };
}
