import type { IndexData } from './retriever.js';
import type { MessageFields } from '../message.js';
import type { Role } from '../types.js';

/**
 * What the retriever searches: one session, or every session of one user within a tenant.
 * The cache resolves a user to its sessions through the archive's per-tenant user index.
 */
export type RetrievalScope =
  | { tenant: string; sessionIds: readonly string[] }
  | { tenant: string; userId: string };

/**
 * A searchable turn: its message fields (indexed as `searchText`: text, text parts, tool calls)
 * and `embedding`, the stored vector; turns without one are embedded on indexing.
 */
export interface RetrievalTurn extends MessageFields {
  sessionId: string;
  turnId: number;
  role: Role;
  createdAt: number;
  /** Who spoke, when the application records it (e.g. `metadata.name`); matched against names in queries. */
  speaker?: string;
  embedding?: Float32Array;
  /** Token count when known (stored per turn). */
  tokens?: number;
  /**
   * Present on turns of a persisted index whose message fields are read on demand: resolves
   * once they can be read (the retriever calls it for its hits); rejects with
   * STRATA_ERR_INDEX_DAMAGED when they fail their checksum.
   */
  load?(): Promise<void>;
}

/**
 * Where the retriever's turns come from. The cache implements it over archive + hot tier; the
 * evaluations implement it over an archive directly.
 */
export interface TurnSource {
  /** Every turn in scope (any order; the retriever sorts by session and turn id). */
  loadTurns(scope: RetrievalScope): Promise<RetrievalTurn[]>;
  /**
   * A string that changes whenever the turns in scope change (append, delete, reindex), e.g.
   * the session high-water marks and deletion counters joined. Indexes and cached results of a
   * scope are reused while it is unchanged.
   */
  version(scope: RetrievalScope): Promise<string>;
  /**
   * Optional, for user scopes: each session in scope → a string that changes whenever that
   * session's turns change. With `loadSessions`, an index is updated by re-reading only the
   * sessions whose string changed.
   */
  sessionVersions?(scope: RetrievalScope & { userId: string }): Promise<Map<string, string>>;
  /** The turns of the given sessions of a tenant. */
  loadSessions?(tenant: string, sessionIds: readonly string[]): Promise<RetrievalTurn[]>;
  /**
   * Optional, for user scopes: a persisted index of the scope (checked intact), used instead of
   * building one when none is in memory; its version and session versions say what it reflects,
   * and the retriever brings it up to date from there like an index kept in memory.
   */
  loadIndex?(scope: RetrievalScope & { userId: string }): Promise<IndexData | null>;
  /** Optional: the user scope's index was built or updated (e.g. to persist it later). */
  indexChanged?(scope: RetrievalScope & { userId: string }): void;
  /**
   * Optional: the persisted index `loadIndex` gave turned out damaged (STRATA_ERR_INDEX_DAMAGED):
   * drop it, so the next build reads the scope's turns instead.
   */
  indexDamaged?(scope: RetrievalScope & { userId: string }): Promise<void>;
}

export function scopeKey(scope: RetrievalScope): string {
  return 'userId' in scope ? `${scope.tenant}\u0000u\u0000${scope.userId}` : `${scope.tenant}\u0000s\u0000${[...scope.sessionIds].sort().join('\u0000')}`;
}
