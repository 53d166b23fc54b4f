/**
 * Hooks the core calls so the service can export Prometheus metrics without the core depending
 * on prom-client. Every method is optional; the default does nothing.
 */
export interface StrataMetrics {
  journalFsync?(seconds: number, records: number): void;
  /** Journal damage found at open (`Journal.recovery.corrupt`): `records` damaged stretches, each usually one lost frame. */
  journalCorruption?(records: number): void;
  hotAccess?(hit: boolean): void;
  rehydration?(): void;
  compaction?(seconds: number, turns: number, encodedBytes: number, rawBytes: number): void;
  compactionLag?(seconds: number): void;
  eviction?(reason: 'lru' | 'idle' | 'explicit'): void;
  embedBatch?(seconds: number, texts: number): void;
  tierBytes?(tier: 'hot' | 'archive', bytes: number): void;
  /** A recovery after the hot tier lost its data: time to read every journal, sessions found in them. */
  recovery?(seconds: number, sessions: number): void;
  /** Turns whose id the hot tier lost before the writer could confirm it (voided and appended again). */
  appendRetry?(turns: number): void;
  /** A background (maintenance) failure, by error code; the session is retried with backoff. */
  backgroundError?(code: string): void;
}

export const noMetrics: StrataMetrics = Object.freeze({});
