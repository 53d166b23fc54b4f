import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InProcessSessionLock } from './archive/lock.js';
import { HybridConversationCache } from './cache/hybrid-cache.js';
import type { CoreConfig, DeepPartial } from './config.js';
import { loadConfig } from './config.js';
import { getTokenizer } from './context/gpt-tokenizer.js';
import { ChatSummarizer, ExtractiveSummarizer } from './context/summarizer.js';
import type { Summarizer } from './context/summarizer.js';
import type { Tokenizer } from './context/tokenizer.js';
import { StrataError } from './errors.js';
import { LeaseSessionLock } from './hot/lease-lock.js';
import { MemoryHotStore } from './hot/memory/memory-store.js';
import { RedisHotStore } from './hot/redis/redis-store.js';
import type { HotStore } from './hot/store.js';
import type { JournalPort } from './cache/ports.js';
import { openStores } from './stores.js';
import type { Stores } from './stores.js';
import type { StrataMetrics } from './metrics.js';
import { ArchiveRetrieval } from './retrieval/archive-retrieval.js';
import { createEmbedder } from './retrieval/create-embedder.js';
import type { Embedder } from './retrieval/embedder.js';
import type { RetrieverOptions } from './retrieval/retriever.js';
import type { Clock, SessionLock } from './types.js';
import { systemClock } from './types.js';

/** Logging the core does (start-up recovery); pino loggers fit. */
export interface StrataLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error?(obj: object, msg?: string): void;
}

export interface CreateStrataExtras {
  clock?: Clock;
  metrics?: StrataMetrics;
  logger?: StrataLogger;
  /** Replaces the configured embedder (e.g. a custom model). */
  embedderInstance?: Embedder;
  /** Replaces the configured hot store (the caller closes nothing: `close()` closes it). */
  hotStore?: HotStore;
  /** Tuning of the hybrid search (fusion weights, smoothing, …). Default: the tuned defaults of `RetrieverOptions`. */
  retriever?: RetrieverOptions;
  /**
   * Opens the data directory for reading while another process (a running `strata serve`)
   * owns it: no journal of its own, no lock, no maintenance, no compaction; unarchived turns
   * are read from every instance's journal. Writes answer STRATA_ERR_NOT_AVAILABLE. Default false.
   */
  readOnly?: boolean;
}

export type CreateStrataOptions = DeepPartial<CoreConfig> & CreateStrataExtras;

/** A running Strata core: the cache plus the parts it is made of. */
export type Strata = HybridConversationCache;

/**
 * Builds and starts Strata: opens (and locks) this instance's journal, replays what it holds
 * into the archive, connects the hot tier and starts background maintenance.
 *
 * Library defaults (embedded): memory hot tier, archive and journal in `./data`, the offline
 * `glove` embedder. Options are validated like the service's configuration (no file, no
 * environment: pass what you want).
 */
export async function createStrata(options: CreateStrataOptions = {}): Promise<Strata> {
  const { clock, metrics, logger, embedderInstance, hotStore, retriever, readOnly, ...configInput } = options as CreateStrataOptions & Record<string, unknown>;
  const config = loadConfig({ file: null, env: {}, flags: configInput as DeepPartial<CoreConfig> });
  const time = clock ?? systemClock;

  const hot: HotStore = hotStore ?? (config.hot.driver === 'redis' ? new RedisHotStore(redisOptions(config)) : new MemoryHotStore());
  const lock: SessionLock =
    config.hot.driver === 'redis' || hotStore ? new LeaseSessionLock(hot, { ttlMs: config.compaction.leaseTtlMs, owner: config.instanceId, clock: time }) : new InProcessSessionLock();
  const embedder = embedderInstance ?? createEmbedder(embedderConfig(config));
  const tokenizer = getTokenizer(config.tokenizer);
  // Loading the BPE ranks takes a few hundred ms: do it at start, not on the first addMessage.
  tokenizer.count('warm-up');
  // Two locks on purpose: the archive serialises commits of one session (fs: a lock per file,
  // postgres: the session's row lock), and the cache holds the session's lease (shared by every
  // instance on one Redis) around each read-hot → write-archive → mark-archived sequence, so no
  // two instances compact, delete or import one session at once.
  let stores: Stores | null = null;
  let cache: HybridConversationCache | null = null;
  try {
    stores = await openStores(config, { clock: time, readOnly: readOnly === true, defaultedId: configInput.instanceId === undefined, ...(metrics ? { metrics } : {}) });
    const { archive, replayed } = stores;
    const journalPort: JournalPort = stores.journal;
    if (readOnly !== true) {
      metrics?.instance?.({ instanceId: journalPort.instanceId, hotDriver: config.hot.driver, durability: config.durability });
      const recovery = stores.recovery;
      if (recovery?.tornTail) logger?.warn({ tornTail: recovery.tornTail }, 'journal: cut a torn tail (a write that was never acknowledged)');
      for (const damage of recovery?.corrupt ?? []) logger?.error?.({ journalDamage: damage }, 'journal: damaged records found; every intact record was replayed, run `strata verify` (and `--repair`)');
      if (replayed.length > 0) logger?.info({ records: replayed.length }, 'journal: replaying records of the previous run');
    }
    const retrieval = new ArchiveRetrieval({
      archive,
      embedder,
      tokenizer,
      summarizer: summarizer(config, tokenizer),
      summaryEveryTurns: config.summaries.everyTurns,
      clock: time,
      ...(retriever ? { retriever } : {}),
      // User indexes are persisted beside the archive (fs store, writable core only).
      ...(stores.dataDir !== undefined && archive.userStamp && readOnly !== true ? { indexDir: join(stores.dataDir, 'index') } : {}),
    });
    cache = new HybridConversationCache({
      hot,
      archive,
      journal: journalPort,
      lock,
      readOnly: readOnly === true,
      clock: time,
      embedder,
      tokenizer,
      retrieval,
      ...(metrics ? { metrics } : {}),
      leaseOwner: config.instanceId,
      hotDriver: config.hot.driver,
      ...(stores.dataDir !== undefined ? { dataDir: stores.dataDir } : {}),
      recentTurns: config.recentTurns,
      maxUnarchivedTurns: config.compaction.maxUnarchivedTurns,
      maxUnarchivedAgeMs: config.compaction.maxUnarchivedAgeMs,
      maintenanceIntervalMs: config.compaction.intervalMs,
      sessionIdleTtlMs: config.sessionIdleTtlMs,
      hotBudgetBytes: config.hotBudgetBytes,
      maxMessageBytes: config.maxMessageBytes,
      maxMetadataBytes: config.maxMetadataBytes,
      maxInlineDataBytes: config.maxInlineDataBytes,
      maxPendingTurns: config.maxPendingTurns,
      idempotencyWindowMs: config.idempotencyWindowMs,
      retentionDays: config.retentionDays,
      summaryEveryTurns: config.summaries.everyTurns,
      embedBatchSize: config.embedder.batchSize,
      // The pool rebuilds this embedder and tokenizer in each thread (hash and glove; openai stays here).
      ...(config.workers !== null ? { workers: config.workers } : {}),
    });
    await cache.start();
    return cache;
  } catch (err) {
    await cache?.discard().catch(() => undefined);
    await stores?.journal.close().catch(() => undefined);
    await hot.close().catch(() => undefined);
    await stores?.archive.close().catch(() => undefined);
    throw err;
  }
}

/** PostgreSQL errors that end by themselves (a failover, a restart, pg_terminate_backend, a slow moment). */
const TRANSIENT_OPEN_ERRORS: ReadonlySet<string> = new Set(['STRATA_ERR_DB_UNAVAILABLE', 'STRATA_ERR_DB_TIMEOUT']);
/** Backoffs of 0.1, 0.2, … 2 s between attempts: about 30 s in all. */
const OPEN_RETRIES = 20;

/**
 * createStrata, opened again when PostgreSQL cut a connection or timed a statement out while it
 * opened (its journal replay, the read of every journal at recovery): each failed attempt
 * closed what it had opened and acknowledged nothing. Other errors, and the last attempt's
 * after about 30 s, are thrown. `strata serve` and the CLI open the core this way.
 */
export async function createStrataRetrying(options: CreateStrataOptions = {}, onRetry?: (err: StrataError, attempt: number) => void): Promise<Strata> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createStrata(options);
    } catch (err) {
      if (!(err instanceof StrataError) || !TRANSIENT_OPEN_ERRORS.has(err.code) || attempt > OPEN_RETRIES) throw err;
      onRetry?.(err, attempt);
      await sleep(Math.min(100 * 2 ** (attempt - 1), 2000));
    }
  }
}

function redisOptions(config: CoreConfig): { url: string; keyPrefix: string; clientName: string } {
  if (!config.hot.redisUrl) throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'option hot.redisUrl: expected a redis:// URL when hot.driver is redis, received nothing');
  return { url: config.hot.redisUrl, keyPrefix: config.hot.keyPrefix, clientName: `strata:${config.instanceId}` };
}

function embedderConfig(config: CoreConfig): Parameters<typeof createEmbedder>[0] {
  const e = config.embedder;
  if (e.provider === 'hash') return { provider: 'hash', ...(e.dimensions ? { dimensions: e.dimensions } : {}) };
  if (e.provider === 'glove') return { provider: 'glove' };
  if (!e.url || !e.model || !e.dimensions) {
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'option embedder: the openai provider needs url, model and dimensions');
  }
  return { provider: 'openai', baseUrl: e.url, model: e.model, dimensions: e.dimensions, batchSize: e.batchSize, ...(e.apiKey ? { apiKey: e.apiKey } : {}) };
}

function summarizer(config: CoreConfig, tokenizer: Tokenizer): Summarizer {
  const s = config.summaries;
  if (s.provider === 'extractive') return new ExtractiveSummarizer({ tokenizer });
  if (!s.url || !s.model) throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'option summaries: the openai provider needs url and model');
  return new ChatSummarizer({ baseUrl: s.url, model: s.model, ...(s.apiKey ? { apiKey: s.apiKey } : {}) });
}
