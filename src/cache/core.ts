import type { ArchiveStore } from '../archive/store.js';
import type { Tokenizer } from '../context/tokenizer.js';
import { StrataError } from '../errors.js';
import type { HotStore } from '../hot/store.js';
import type { PendingTurns } from '../journal/store.js';
import type { StrataMetrics } from '../metrics.js';
import type { Embedder } from '../retrieval/embedder.js';
import type { ArchivedTurn, Clock, SessionLock, SessionRef, Turn } from '../types.js';
import type { Preparer } from '../workers/preparer.js';
import type { CacheTuning } from './options.js';
import type { JournalPort } from './ports.js';
import type { RetrievalPort } from './retrieval-port.js';

/**
 * What every part of the cache shares: the stores it composes, its tuning and the state that
 * is the instance's, not one part's. The parts (`WritePath`, `Rehydration`, `Compactor`,
 * `Reads`, `Maintenance`, `Lifecycle`) each hold the one `CacheCore` of their
 * `HybridConversationCache`.
 */
export interface CacheCore {
  readonly hot: HotStore;
  readonly archive: ArchiveStore;
  readonly journal: JournalPort;
  /** The journal's ledger of this instance's unarchived records. */
  readonly pending: PendingTurns;
  readonly lock: SessionLock;
  readonly clock: Clock;
  readonly embedder: Embedder | null;
  readonly tokenizer: Tokenizer | null;
  /** Token counts and embeddings: on the worker pool, or inline (`workers: 0`). */
  readonly preparer: Preparer;
  readonly retrieval: RetrievalPort | null;
  readonly metrics: StrataMetrics;
  readonly tuning: CacheTuning;
  readonly readOnly: boolean;
  readonly hotDriver: 'redis' | 'memory';
  readonly dataDir: string | undefined;
  /** Lease owner name of this instance (its journal's instance id), if leases are shared. */
  readonly leaseOwner: string | null;
  closed: boolean;
}

/** A part of the cache: the core's members under their own names. */
export abstract class CachePart {
  protected readonly hot: HotStore;
  protected readonly archive: ArchiveStore;
  protected readonly journal: JournalPort;
  protected readonly pending: PendingTurns;
  protected readonly lock: SessionLock;
  protected readonly clock: Clock;
  protected readonly embedder: Embedder | null;
  protected readonly tokenizer: Tokenizer | null;
  protected readonly preparer: Preparer;
  protected readonly retrieval: RetrievalPort | null;
  protected readonly metrics: StrataMetrics;
  protected readonly tuning: CacheTuning;
  protected readonly readOnly: boolean;

  constructor(protected readonly core: CacheCore) {
    this.hot = core.hot;
    this.archive = core.archive;
    this.journal = core.journal;
    this.pending = core.pending;
    this.lock = core.lock;
    this.clock = core.clock;
    this.embedder = core.embedder;
    this.tokenizer = core.tokenizer;
    this.preparer = core.preparer;
    this.retrieval = core.retrieval;
    this.metrics = core.metrics;
    this.tuning = core.tuning;
    this.readOnly = core.readOnly;
  }

  /** Counts a failure of background work (maintenance, start-up archiving) by its code. */
  protected noteBackgroundError(err: unknown): void {
    this.metrics.backgroundError?.(err instanceof StrataError ? err.code : 'STRATA_ERR_INTERNAL');
  }

  protected assertOpen(): void {
    if (this.core.closed) throw new StrataError('STRATA_ERR_CLOSED', 'this Strata instance is closed');
    if (this.readOnly) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'this Strata instance was opened read-only');
  }
}

export const MAX_PAGE = 1000;
/** Turns per hot-tier read when a whole range is needed (the stores' read limit). */
export const HOT_READ_PAGE = 10_000;

export function stripEmbedding(turn: ArchivedTurn): Turn {
  const { embedding: _embedding, ...rest } = turn;
  return rest;
}

export function pageLimit(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > MAX_PAGE) throw new StrataError('STRATA_ERR_VALIDATION', `limit must be an integer from 1 to ${MAX_PAGE}; received ${JSON.stringify(value)}`);
  return value;
}

export function notFound(ref: SessionRef): StrataError {
  return new StrataError('STRATA_ERR_NOT_FOUND', `session ${ref.sessionId} not found`, { details: { sessionId: ref.sessionId } });
}
