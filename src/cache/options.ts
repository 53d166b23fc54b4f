import { StrataError } from '../errors.js';

/** Tuning of HybridConversationCache. Every field has a default; see docs/config.md. */
export interface CacheTuning {
  /** Archived turns kept in the hot tier after compaction, and the default `recent` window. Default 20. */
  recentTurns: number;
  /** Compact a session once it holds this many unarchived turns. Default 100. */
  maxUnarchivedTurns: number;
  /** Compact a session once its oldest unarchived turn is this old (ms). Default 3,600,000 (60 min). */
  maxUnarchivedAgeMs: number;
  /** Sessions idle this long (ms) are compacted and dropped from the hot tier. Default 1,800,000 (30 min). */
  sessionIdleTtlMs: number;
  /** Approximate hot-tier byte budget; above it, least-recently-used sessions are compacted and dropped. Default 256 MiB. */
  hotBudgetBytes: number;
  /** Largest message content in UTF-8 bytes. Default 20,971,520 (20 MiB, as the configuration's). */
  maxMessageBytes: number;
  /** Largest metadata object as JSON bytes. Default 16,384. */
  maxMetadataBytes: number;
  /** Largest inline payload (`data:` URL or base64 file data) of one content part, in bytes. Default 10 MiB. */
  maxInlineDataBytes: number;
  /** Period of the background maintenance loop (ms); 0 disables the timer (tests call `runMaintenance`). Default 5,000. */
  maintenanceIntervalMs: number;
  /** Texts per embedding call at compaction. Default 64. */
  embedBatchSize: number;
  /** Unarchived turns this instance may hold before addMessage answers STRATA_ERR_BACKPRESSURE. Default 200,000. */
  maxPendingTurns: number;
  /** Archive retention in days (null keeps forever); applied by the maintenance loop once a day. Default null. */
  retentionDays: number | null;
  /** Milestone summary every this many turns (0 disables). Default 50. */
  summaryEveryTurns: number;
  /** How long an idempotency key answers its first call's turn ids (ms). Default 86,400,000 (24 h). */
  idempotencyWindowMs: number;
}

export const DEFAULT_TUNING: Readonly<CacheTuning> = Object.freeze({
  recentTurns: 20,
  maxUnarchivedTurns: 100,
  maxUnarchivedAgeMs: 60 * 60 * 1000,
  sessionIdleTtlMs: 30 * 60 * 1000,
  hotBudgetBytes: 256 * 1024 * 1024,
  maxMessageBytes: 20 * 1024 * 1024,
  maxMetadataBytes: 16_384,
  maxInlineDataBytes: 10 * 1024 * 1024,
  maintenanceIntervalMs: 5_000,
  embedBatchSize: 64,
  maxPendingTurns: 200_000,
  retentionDays: null,
  summaryEveryTurns: 50,
  idempotencyWindowMs: 24 * 3600 * 1000,
});

const POSITIVE_INTEGER: ReadonlySet<keyof CacheTuning> = new Set(['recentTurns', 'maxUnarchivedTurns', 'maxMessageBytes', 'maxMetadataBytes', 'maxInlineDataBytes', 'embedBatchSize', 'maxPendingTurns', 'idempotencyWindowMs']);

/** Merges with defaults, validates eagerly (naming option, expectation and value) and freezes. */
export function resolveTuning(input: Partial<CacheTuning> = {}): Readonly<CacheTuning> {
  const out: CacheTuning = { ...DEFAULT_TUNING };
  for (const [key, value] of Object.entries(input) as Array<[keyof CacheTuning, unknown]>) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_TUNING)) throw new StrataError('STRATA_ERR_CONFIG_INVALID', `unknown cache option \`${key}\``);
    if (key === 'retentionDays') {
      if (value !== null && (typeof value !== 'number' || !(value > 0))) throw invalid(key, 'a positive number of days or null', value);
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (POSITIVE_INTEGER.has(key) && (!Number.isInteger(value) || value < 1))) {
      throw invalid(key, POSITIVE_INTEGER.has(key) ? 'a positive integer' : 'a non-negative number', value);
    }
    (out as unknown as Record<string, unknown>)[key] = value;
  }
  return Object.freeze(out);
}

function invalid(option: string, expected: string, received: unknown): StrataError {
  return new StrataError('STRATA_ERR_CONFIG_INVALID', `option \`${option}\`: expected ${expected}, received ${JSON.stringify(received) ?? String(received)}`, { details: { option } });
}
