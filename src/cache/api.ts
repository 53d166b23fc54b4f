import type { Metadata, Role, Turn } from '../types.js';
import type { MessageContent, MessageFields, ToolCall } from '../message.js';
import type { DeleteReceipt } from '../archive/store.js';

/** Options every session-level call accepts. */
export interface TenantOption {
  /** Defaults to `default`. */
  tenant?: string;
}

export interface AddMessageOptions extends TenantOption {
  metadata?: Metadata;
  /** Owner of the session; recorded on the first message and used for user-scope search and deletion. */
  userId?: string;
  /**
   * Makes the call idempotent (1-255 printable ASCII characters, unique per logical message or
   * batch within the session): a retry with the same key, on any instance, answers the turn ids
   * of the first call and stores nothing twice; reusing a key for other messages is
   * STRATA_ERR_IDEMPOTENCY_MISMATCH. Kept for `idempotencyWindowMs` (default 24 h).
   */
  idempotencyKey?: string;
}

/**
 * A message to append: the OpenAI Chat Completions shape (src/message.ts). `content` may be null
 * or empty only on an assistant message with `tool_calls` (or, empty, on a tool result); a tool
 * message needs `tool_call_id`.
 */
export interface NewMessage extends MessageFields {
  metadata?: Metadata;
}

export type ContextType = 'recent' | 'full' | 'smart';

export interface ContextRequest extends TenantOption {
  type: ContextType;
  /** smart: the query to find relevant older turns; defaults to the latest user message. */
  query?: string;
  /** smart: the token budget. */
  maxTokens?: number;
  /** recent: how many turns (default recentTurns); full: page size (default 1000). */
  limit?: number;
  /** full: return turns after this turn id (pagination cursor). */
  after?: number;
}

export interface ExplainItem {
  source: 'hot' | 'archive' | 'summary';
  turnId?: number;
  fromTurn?: number;
  toTurn?: number;
  reason: 'recent' | 'relevant' | 'neighbour' | 'summary' | 'full';
  score?: number;
  tokens: number;
  truncated?: boolean;
  /**
   * The turn belongs to a tool call and its results, packed as one unit (all or none): the ids
   * of that unit. Present on each of its turns.
   */
  toolGroup?: number[];
}

export interface ContextResult {
  type: ContextType;
  messages: Turn[];
  /** smart: milestone summaries text included, if any. */
  summary: string | null;
  tokens: number;
  explain: ExplainItem[];
  /** full: cursor for the next page, null at the end. */
  nextAfter: number | null;
}

export type SearchScopeInput = (TenantOption & {
  sessionId: string;
  /**
   * Leave out the turns of the recent window (the last `recentTurns`), which an application that
   * also sends recent context already has. Default false: a search covers every turn.
   */
  excludeRecent?: boolean;
}) | (TenantOption & { userId: string });

export interface SearchHit {
  tenant: string;
  sessionId: string;
  turnId: number;
  role: Role;
  content: MessageContent;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  createdAt: number;
  score: number;
  scores: { dense: number | null; lexical: number | null; fused: number };
  /** True when the turn was brought in as a neighbour of a hit. */
  neighbour: boolean;
}

export interface SessionInfo {
  tenant: string;
  sessionId: string;
  userId: string | null;
  turns: number;
  lastTurnId: number;
  hotTurns: number;
  unarchivedTurns: number;
  archivedTurns: number;
  bytes: { hot: number; archive: number };
  createdAt: number | null;
  lastActivityAt: number | null;
}

export interface DeletionReceipt extends DeleteReceipt {
  tenant: string;
  sessionIds: string[];
  hotTurns: number;
  journalTombstones: number;
}

export interface HealthReport {
  ok: boolean;
  hot: { ok: boolean; driver: 'redis' | 'memory'; error?: string };
  dataDir: { ok: boolean; path: string; error?: string };
  journal: { ok: boolean; error?: string; code?: string };
}

/**
 * What the HTTP service and the CLI call. `HybridConversationCache` implements it; the proposal's
 * method names are kept (addMessage, getContext, evictToDiskLru, searchDiskHistory).
 */
export interface ConversationMemory {
  addMessage(sessionId: string, role: Role, content: MessageContent, options?: AddMessageOptions): Promise<{ turnId: number }>;
  /** The same with a whole message (tool calls, tool results, parts); `options.metadata` is not used (the message carries its own). */
  addMessage(sessionId: string, message: NewMessage, options?: Omit<AddMessageOptions, 'metadata'>): Promise<{ turnId: number }>;
  /** All-or-nothing validation, then appended in order. */
  addMessages(sessionId: string, messages: readonly NewMessage[], options?: Omit<AddMessageOptions, 'metadata'>): Promise<{ turnIds: number[] }>;
  getContext(sessionId: string, request: ContextRequest): Promise<ContextResult>;
  /** Turns after `after` (exclusive), ascending, at most `limit` (≤ 1000). */
  getMessages(sessionId: string, options?: TenantOption & { after?: number; limit?: number }): Promise<{ messages: Turn[]; nextAfter: number | null }>;
  searchDiskHistory(query: string, topK: number, scope: SearchScopeInput): Promise<SearchHit[]>;
  getSession(sessionId: string, options?: TenantOption): Promise<SessionInfo>;
  listSessions(options?: TenantOption & { cursor?: string | null; limit?: number; userId?: string }): Promise<{ sessions: SessionInfo[]; nextCursor: string | null }>;
  /** Archives every unarchived turn now (one session, or all). */
  flush(sessionId?: string, options?: TenantOption): Promise<{ sessions: number; turns: number }>;
  /** Compacts and drops from the hot tier: the given session, or LRU sessions until under budget. */
  evictToDiskLru(sessionId?: string, options?: TenantOption): Promise<{ evicted: number }>;
  deleteSession(sessionId: string, options?: TenantOption): Promise<DeletionReceipt>;
  deleteUser(userId: string, options?: TenantOption): Promise<DeletionReceipt>;
  exportSession(sessionId: string, options?: TenantOption): Promise<Uint8Array>;
  importSession(sessionId: string, file: Uint8Array, options?: TenantOption & { userId?: string }): Promise<SessionInfo>;
  cleanupExpiredSessions(maxAgeDays: number): Promise<number>;
  health(): Promise<HealthReport>;
  /** Graceful: stops timers, flushes, closes the journal and connections. */
  close(): Promise<void>;
}
