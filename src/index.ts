// The public API of the `strata` package. Named exports only, grouped by layer.

// Core
export { createStrata, createStrataRetrying } from './strata.js';
export type { CreateStrataOptions, CreateStrataExtras, Strata, StrataLogger } from './strata.js';
export { HybridConversationCache } from './cache/hybrid-cache.js';
export type { HybridCacheOptions } from './cache/hybrid-cache.js';
export type { CacheTuning } from './cache/options.js';
export type {
  AddMessageOptions,
  ContextRequest,
  ContextResult,
  ContextType,
  ConversationMemory,
  DeletionReceipt,
  ExplainItem,
  HealthReport,
  NewMessage,
  SearchHit,
  SearchScopeInput,
  SessionInfo,
  TenantOption,
} from './cache/api.js';
export { loadConfig, coreConfig } from './config.js';
export type { StrataConfig, CoreConfig, LoadConfigOptions } from './config.js';
export type { StrataMetrics, WorkerPoolSnapshot } from './metrics.js';

// Shared types and errors
export { StrataError, ERROR_CATALOG, isStrataError } from './errors.js';
export type { ErrorCode } from './errors.js';
export { ROLES, DEFAULT_TENANT, systemClock } from './types.js';
export type { Role, Metadata, SessionRef, Turn, ArchivedTurn, SessionLock, Clock } from './types.js';
export { validateId, toSessionRef } from './ids.js';

// Codec
export { CODEC_IDS, encodeFrame, decodeFrame, getCodec, listCodecs, registerCodec } from './codec/codec.js';
export type { Codec, DecodeOptions } from './codec/codec.js';
export { rawCodec, deflateCodec, gzipCodec, brotliCodec } from './codec/zlib.js';
export { HuffmanConversationCodec, HuffmanStreamEncoder, HuffmanStreamDecoder } from './codec/huffman-codec.js';
export type { HuffmanCodecOptions } from './codec/huffman-codec.js';
export { huffmanBytesCodec } from './codec/huffman-bytes.js';
export { huffmanTokensCodec } from './codec/huffman-tokens.js';

// Cold tier
export { ConversationArchive } from './archive/archive.js';
export type { ConversationArchiveOptions, ArchiveSearchScope } from './archive/archive.js';
export { FsArchiveStore } from './archive/fs-store.js';
export type { VerifyReport, VerifyFileReport } from './archive/fs-store.js';
export { InProcessSessionLock } from './archive/lock.js';
export type { ArchiveOptions } from './archive/options.js';
export type {
  ArchiveStore,
  AppendOptions,
  AppendResult,
  TurnRange,
  ListOptions,
  SearchScope,
  EmbeddingHit,
  Summary,
  ArchiveSessionInfo,
  DeleteReceipt,
  ArchiveStats,
} from './archive/store.js';

// Journal
export { Journal } from './journal/journal.js';
export type { ReplayEntry, JournalRecovery } from './journal/journal.js';
export { replayInto } from './journal/replay.js';
export type { ReplaySink, ReplayOptions, ReplaySummary } from './journal/replay.js';
export type { JournalOptions } from './journal/options.js';
export type { TurnRecord, DeleteRecord, JournalRecord, Lsn, Durability } from './journal/types.js';

// Hot tier
export type { HotStore, NewHotTurn, HotSeed, HotSessionMeta } from './hot/store.js';
export { MemoryHotStore } from './hot/memory/memory-store.js';
export { RedisHotStore } from './hot/redis/redis-store.js';
export type { RedisHotStoreOptions } from './hot/redis/redis-store.js';
export { LeaseSessionLock } from './hot/lease-lock.js';
export type { LeaseLockOptions } from './hot/lease-lock.js';

// Retrieval and context
export type { Embedder, EmbedderConfig, OpenAIEmbedderOptions } from './retrieval/embedder.js';
export { createEmbedder } from './retrieval/create-embedder.js';
export { GloveEmbedder } from './retrieval/embedders/glove.js';
export { OpenAIEmbedder } from './retrieval/embedders/openai.js';
export { HashEmbedder } from './retrieval/embedders/hash.js';
export { HybridRetriever } from './retrieval/retriever.js';
export type { RetrieverOptions } from './retrieval/retriever.js';
export { ArchiveRetrieval } from './retrieval/archive-retrieval.js';
export type { TurnSource, RetrievalScope, RetrievalTurn } from './retrieval/source.js';
export type { Tokenizer, TokenizerEncoding } from './context/tokenizer.js';
export { getTokenizer } from './context/gpt-tokenizer.js';
export { packContext, latestUserMessage } from './context/packer.js';
export type { ContextShares } from './context/packer.js';
export { ExtractiveSummarizer, ChatSummarizer, planMilestones } from './context/summarizer.js';
export type { Summarizer } from './context/summarizer.js';
