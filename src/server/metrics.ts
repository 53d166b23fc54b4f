import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StrataMetrics } from '../metrics.js';

/**
 * Prometheus metrics of one Strata process. `hooks` is what `createStrata({ metrics })` takes,
 * so the core reports without depending on prom-client; `observeRequest` is called by the
 * HTTP layer for every answered request.
 */
export interface ServerMetrics {
  readonly registry: Registry;
  readonly hooks: StrataMetrics;
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** An error answer, by its STRATA_ERR_* code and route. */
  observeError(code: string, route: string): void;
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createServerMetrics(options: { registry?: Registry; defaultMetrics?: boolean } = {}): ServerMetrics {
  const registry = options.registry ?? new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'strata_process_' });
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
  const compactionLag = new Gauge({ name: 'strata_compaction_lag_seconds', help: 'Age of the oldest unarchived turn', registers });
  const fsync = new Histogram({ name: 'strata_journal_fsync_duration_seconds', help: 'Journal group-commit fsync latency', buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5], registers });
  const journalRecords = new Counter({ name: 'strata_journal_records_total', help: 'Records made durable by the journal', registers });
  const journalCorrupt = new Counter({ name: 'strata_journal_corrupt_total', help: 'Damaged journal stretches found at open (records around them were replayed)', registers });
  const tierBytes = new Gauge({ name: 'strata_tier_bytes', help: 'Bytes held per tier', labelNames: ['tier'], registers });
  const errors = new Counter({ name: 'strata_errors_total', help: 'Error answers by code and route', labelNames: ['code', 'route'], registers });
  const recoveries = new Counter({ name: 'strata_recoveries_total', help: 'Recoveries after the hot tier lost its data (every journal read)', registers });
  const recoverySeconds = new Histogram({ name: 'strata_recovery_seconds', help: 'Time to read every journal after a loss of the hot tier', registers, buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30] });
  const appendRetries = new Counter({ name: 'strata_append_retries_total', help: 'Turns whose id the hot tier lost before confirmation (voided and appended again)', registers });
  const backgroundErrors = new Counter({ name: 'strata_background_errors_total', help: 'Background (maintenance) failures by error code; the session is retried with backoff', labelNames: ['code'], registers });
  const evictions = new Counter({ name: 'strata_evictions_total', help: 'Sessions dropped from the hot tier', labelNames: ['reason'], registers });
  const embedSeconds = new Histogram({ name: 'strata_embedding_batch_duration_seconds', help: 'Latency of one embedding batch', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers });
  const embeddedTexts = new Counter({ name: 'strata_embedded_texts_total', help: 'Texts embedded', registers });

  const hooks: StrataMetrics = Object.freeze({
    journalFsync(seconds: number, records: number) {
      fsync.observe(seconds);
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
    },
    compactionLag(seconds: number) {
      compactionLag.set(seconds);
    },
    eviction(reason: 'lru' | 'idle' | 'explicit') {
      evictions.inc({ reason });
    },
    embedBatch(seconds: number, texts: number) {
      embedSeconds.observe(seconds);
      embeddedTexts.inc(texts);
    },
    tierBytes(tier: 'hot' | 'archive', bytes: number) {
      tierBytes.set({ tier }, bytes);
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
