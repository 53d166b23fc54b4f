import { access, constants as fsConstants } from 'node:fs/promises';
import type { ArchiveStore } from '../archive/store.js';
import type { Tokenizer } from '../context/tokenizer.js';
import { StrataError } from '../errors.js';
import type { HotStore } from '../hot/store.js';
import { toSessionRef, validateId } from '../ids.js';
import type { StrataMetrics } from '../metrics.js';
import { noMetrics } from '../metrics.js';
import type { MessageContent } from '../message.js';
import { validateMessage } from '../message.js';
import type { Embedder } from '../retrieval/embedder.js';
import type { Clock, Role, SessionLock, SessionRef, Turn } from '../types.js';
import { systemClock } from '../types.js';
import { defaultWorkerThreads } from '../workers/pool.js';
import { Preparer } from '../workers/preparer.js';
import type {
  AddMessageOptions,
  ContextRequest,
  ContextResult,
  ConversationMemory,
  DeletionReceipt,
  HealthReport,
  NewMessage,
  SearchHit,
  SearchScopeInput,
  SessionInfo,
  TenantOption,
} from './api.js';
import { Compactor } from './compactor.js';
import { MAX_PAGE, type CacheCore } from './core.js';
import { Lifecycle } from './lifecycle.js';
import { Maintenance } from './maintenance.js';
import type { CacheTuning } from './options.js';
import { resolveTuning } from './options.js';
import type { JournalPort } from './ports.js';
import { Reads } from './reads.js';
import { Rehydration } from './rehydration.js';
import type { RetrievalPort } from './retrieval-port.js';
import { WritePath, validateIdempotencyKey } from './write-path.js';

export interface HybridCacheOptions extends Partial<CacheTuning> {
  hot: HotStore;
  archive: ArchiveStore;
  journal: JournalPort;
  /** Serialises writers of one session's archive file (a Redis lease when instances share a Redis). */
  lock: SessionLock;
  clock?: Clock;
  /** Computes embeddings at compaction; none means turns are archived without vectors. */
  embedder?: Embedder | null;
  /** Counts tokens per turn (after an add is acknowledged, on the worker pool; at reads and compaction what has none); none stores no counts. */
  tokenizer?: Tokenizer | null;
  /**
   * Worker threads for token counts and local embeddings (`hash`, `glove`); 0 computes them on
   * the calling thread. Default `min(4, max(1, availableParallelism() - 1))`.
   */
  workers?: number;
  /** Tasks that may wait for a worker thread before compaction awaits room. Default 2 × workers. */
  workerQueue?: number;
  retrieval?: RetrievalPort | null;
  metrics?: StrataMetrics;
  /**
   * Lease owner name of this instance (the journal's instance id). At start, leases this owner
   * left behind when it was killed are released. Default none.
   */
  leaseOwner?: string;
  /** No writes, no compaction, no maintenance (see `createStrata({ readOnly })`). Default false. */
  readOnly?: boolean;
  /** For health reports. */
  hotDriver?: 'redis' | 'memory';
  dataDir?: string;
}

/**
 * The application's entry point to memory: composes the journal (durability), a hot store
 * (recent turns, shared by instances) and the archive (full history). A façade over its parts,
 * one job each:
 *
 * - `WritePath` (write-path.ts): validate → assign the turn id in the hot store (atomic, shared)
 *   → journal append (durable before the promise resolves) → confirm → ack.
 * - `Rehydration` (rehydration.ts): epochs, recovery after a loss of the hot tier, re-seeding a
 *   session from the archive and every instance's unarchived journal records.
 * - `Compactor` (compactor.ts): moves unarchived turns into the archive under the session's
 *   fenced lease, tells the journal's ledger, checkpoints the journal.
 * - `Reads` (reads.ts): context, messages, search, session info.
 * - `Maintenance` (maintenance.ts): thresholds, TTL, LRU, retention, checkpoints, metrics.
 * - `Lifecycle` (lifecycle.ts): deletion, export, import, re-embedding.
 */
export class HybridConversationCache implements ConversationMemory {
  readonly tuning: Readonly<CacheTuning>;
  private readonly core: CacheCore;
  private readonly rehydration: Rehydration;
  private readonly compactor: Compactor;
  private readonly writes: WritePath;
  private readonly reads: Reads;
  private readonly maintenance: Maintenance;
  private readonly lifecycle: Lifecycle;

  constructor(options: HybridCacheOptions) {
    const { hot, archive, journal, lock, clock, embedder, tokenizer, retrieval, metrics, hotDriver, dataDir, leaseOwner, readOnly, workers, workerQueue, ...tuning } = options;
    this.tuning = resolveTuning(tuning);
    const threads = workers ?? defaultWorkerThreads();
    if (!Number.isInteger(threads) || threads < 0) throw new StrataError('STRATA_ERR_CONFIG_INVALID', `option \`workers\`: expected a non-negative integer, received ${JSON.stringify(workers)}`, { details: { option: 'workers' } });
    this.core = {
      hot,
      archive,
      journal,
      pending: journal.pending,
      lock,
      clock: clock ?? systemClock,
      embedder: embedder ?? null,
      tokenizer: tokenizer ?? null,
      // Read-only cores never compact: no pool.
      preparer: new Preparer(tokenizer ?? null, embedder ?? null, readOnly ? 0 : threads, workerQueue === undefined ? {} : { maxQueue: workerQueue }),
      retrieval: retrieval ?? null,
      metrics: metrics ?? noMetrics,
      tuning: this.tuning,
      readOnly: readOnly ?? false,
      hotDriver: hotDriver ?? 'memory',
      dataDir,
      leaseOwner: leaseOwner ?? null,
      closed: false,
    };
    this.rehydration = new Rehydration(this.core);
    this.compactor = new Compactor(this.core, this.rehydration);
    this.writes = new WritePath(this.core, this.rehydration, this.compactor);
    this.reads = new Reads(this.core, this.rehydration, this.compactor);
    this.maintenance = new Maintenance(this.core, this.rehydration, this.compactor);
    this.lifecycle = new Lifecycle(this.core, this.rehydration, this.compactor, this.reads);
    this.core.metrics.snapshot?.(() => this.maintenance.metricsSnapshot());
    this.core.metrics.workerPool?.(() => {
      const s = this.core.preparer.stats();
      return s ? { threads: s.threads, busy: s.busy, queued: s.queued + s.waiting } : { threads: 0, busy: 0, queued: 0 };
    });
  }

  /**
   * Recovers (the hot tier's epoch), archives what the journal replay left pending, then starts
   * the maintenance timer.
   */
  async start(): Promise<void> {
    try {
      await this.rehydration.recover();
    } catch (err) {
      // The hot tier is down right now (Redis restarting): start anyway; the first write, read
      // or maintenance pass recovers, and /readyz says the hot tier is not ready meanwhile.
      if (!(err instanceof StrataError) || err.code !== 'STRATA_ERR_HOT_UNAVAILABLE') throw err;
      this.core.metrics.backgroundError?.(err.code);
    }
    if (this.core.readOnly) return;
    await this.maintenance.archiveReplayed();
    this.maintenance.startTimer();
  }

  // ---------------------------------------------------------------- writes

  async addMessage(sessionId: string, roleOrMessage: Role | NewMessage, contentOrOptions?: MessageContent | AddMessageOptions, maybeOptions?: AddMessageOptions): Promise<{ turnId: number }> {
    const whole = typeof roleOrMessage === 'object' && roleOrMessage !== null;
    const options: AddMessageOptions = (whole ? (contentOrOptions as AddMessageOptions | undefined) : maybeOptions) ?? {};
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const idempotencyKey = validateIdempotencyKey(options.idempotencyKey);
    const input = whole ? roleOrMessage : { role: roleOrMessage, content: contentOrOptions, ...(options.metadata !== undefined ? { metadata: options.metadata } : {}) };
    const message = validateMessage(input, this.tuning, '');
    const [turnId] = await this.writes.append(ref, [message], userId, idempotencyKey);
    return { turnId: turnId! };
  }

  async addMessages(sessionId: string, messages: readonly NewMessage[], options: Omit<AddMessageOptions, 'metadata'> = {}): Promise<{ turnIds: number[] }> {
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const idempotencyKey = validateIdempotencyKey(options.idempotencyKey);
    if (!Array.isArray(messages) || messages.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'messages must be a non-empty array');
    if (messages.length > MAX_PAGE) throw new StrataError('STRATA_ERR_VALIDATION', `at most ${MAX_PAGE} messages per call; received ${messages.length}`);
    // Validate every message before writing any, so a bad one changes nothing.
    const validated = messages.map((m, i) => validateMessage(m, this.tuning, `messages[${i}]`));
    return { turnIds: await this.writes.append(ref, validated, userId, idempotencyKey) };
  }

  // ---------------------------------------------------------------- reads

  getContext(sessionId: string, request: ContextRequest): Promise<ContextResult> {
    return this.reads.getContext(sessionId, request);
  }

  getMessages(sessionId: string, options: TenantOption & { after?: number; limit?: number } = {}): Promise<{ messages: Turn[]; nextAfter: number | null }> {
    return this.reads.getMessages(sessionId, options);
  }

  searchDiskHistory(query: string, topK: number, scope: SearchScopeInput): Promise<SearchHit[]> {
    return this.reads.searchDiskHistory(query, topK, scope);
  }

  getSession(sessionId: string, options: TenantOption = {}): Promise<SessionInfo> {
    return this.reads.getSession(sessionId, options);
  }

  listSessions(options: TenantOption & { cursor?: string | null; limit?: number; userId?: string } = {}): Promise<{ sessions: SessionInfo[]; nextCursor: string | null }> {
    return this.reads.listSessions(options);
  }

  // ---------------------------------------------------------------- compaction and maintenance

  flush(sessionId?: string, options: TenantOption = {}): Promise<{ sessions: number; turns: number }> {
    return this.compactor.flush(sessionId, options);
  }

  /** Compacts one session; concurrent calls for the same session share one run. */
  compactSession(ref: SessionRef): Promise<number> {
    return this.compactor.compactSession(ref);
  }

  evictToDiskLru(sessionId?: string, options: TenantOption = {}): Promise<{ evicted: number }> {
    return this.maintenance.evictToDiskLru(sessionId, options);
  }

  /**
   * One pass of background work: detect a lost hot tier, compact sessions over their count or
   * age threshold, evict idle sessions and enforce the byte budget, checkpoint the journal.
   */
  runMaintenance(): Promise<void> {
    return this.maintenance.runMaintenance();
  }

  // ---------------------------------------------------------------- deletion and lifecycle

  deleteSession(sessionId: string, options: TenantOption = {}): Promise<DeletionReceipt> {
    return this.lifecycle.deleteSession(sessionId, options);
  }

  deleteUser(userId: string, options: TenantOption = {}): Promise<DeletionReceipt> {
    return this.lifecycle.deleteUser(userId, options);
  }

  exportSession(sessionId: string, options: TenantOption = {}): Promise<Uint8Array> {
    return this.lifecycle.exportSession(sessionId, options);
  }

  importSession(sessionId: string, file: Uint8Array, options: TenantOption & { userId?: string } = {}): Promise<SessionInfo> {
    return this.lifecycle.importSession(sessionId, file, options);
  }

  cleanupExpiredSessions(maxAgeDays: number): Promise<number> {
    return this.lifecycle.cleanupExpiredSessions(maxAgeDays);
  }

  reindex(options: TenantOption & { onProgress?: (done: number, total: number) => void } = {}): Promise<{ sessions: number; turns: number }> {
    return this.lifecycle.reindex(options);
  }

  async health(): Promise<HealthReport> {
    const hot = await this.core.hot.ping().then(
      () => ({ ok: true, driver: this.core.hotDriver }),
      (err: unknown) => ({ ok: false, driver: this.core.hotDriver, error: (err as Error).message }),
    );
    const path = this.core.dataDir ?? '';
    const dataDir = this.core.dataDir
      ? await access(this.core.dataDir, fsConstants.W_OK).then(
          () => ({ ok: true, path }),
          (err: unknown) => ({ ok: false, path, error: (err as Error).message }),
        )
      : { ok: true, path };
    const journal = this.core.journal.health();
    return { ok: hot.ok && dataDir.ok && journal.ok && !this.core.closed, hot, dataDir, journal };
  }

  /**
   * After a failed start(): stops the timer and the threads the cache started, flushes nothing
   * (the journal keeps every record). The stores stay open: they are the opener's to close.
   */
  async discard(): Promise<void> {
    this.core.closed = true;
    await this.maintenance.stop();
    await this.writes.counts.stop();
    await this.core.retrieval?.close?.().catch(() => undefined);
    await this.core.preparer.close();
  }

  async close(): Promise<void> {
    if (this.core.closed) return;
    await this.maintenance.stop();
    try {
      if (!this.core.readOnly) await this.flush();
    } finally {
      await this.discard();
      await this.core.journal.close();
      await this.core.hot.close();
      await this.core.archive.close();
    }
  }

  /** Unarchived turns this instance holds in its journal (for metrics and tests). */
  get pendingTurns(): number {
    return this.core.pending.size;
  }
}
