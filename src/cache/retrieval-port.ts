import type { RetrievalScope } from '../retrieval/source.js';
import type { ArchivedTurn, SessionRef, Turn } from '../types.js';
import type { Preparer } from '../workers/preparer.js';
import type { ContextRequest, ContextResult, SearchHit } from './api.js';

/** Turns just written to the archive, ascending, and the span of ids they cover whole. */
export interface ArchivedSpan {
  fromTurn: number;
  toTurn: number;
  turns: readonly ArchivedTurn[];
}

/**
 * What the cache needs from retrieval: search over archived turns, smart context assembly and
 * index invalidation. Implemented in src/retrieval over the archive.
 */
export interface RetrievalPort {
  /** `exclude`: per session id, turn ids that must not be returned (the recent window). */
  search(query: string, topK: number, scope: RetrievalScope, exclude: ReadonlyMap<string, ReadonlySet<number>>): Promise<SearchHit[]>;
  /** Packs summaries, relevant older turns and `recent` into the request's token budget. */
  smartContext(ref: SessionRef, request: ContextRequest, recent: readonly Turn[]): Promise<ContextResult>;
  /** The session changed: cached indexes and results of it are stale. */
  invalidate(ref: SessionRef): void;
  /**
   * Called after turns were archived (milestone summaries; CPU work on `workers`). `archived`:
   * turns this compaction wrote, exactly what the archive holds from `fromTurn` to `toTurn`
   * (ids in that span not among them are not in the archive), so they need not be read back.
   */
  afterCompaction?(ref: SessionRef, workers?: Preparer, archived?: ArchivedSpan): Promise<void>;
  /**
   * Optional: the user's sessions as of the archive's user stamp `stamp`, from a persisted index
   * of exactly that stamp whose sessions were checked to hold this embedder's vectors (or none);
   * null when there is none. Saves listing and checking every session on a first search.
   */
  knownUserSessions?(tenant: string, userId: string, stamp: string): Promise<string[] | null>;
  /** Optional: a session of `userId` was deleted; persisted data holding its turns is removed before this resolves. */
  forgetSession?(ref: SessionRef, userId: string | null): Promise<void>;
  /** Optional: a user was deleted; its indexes are dropped from memory and disk. */
  forgetUser?(tenant: string, userId: string): Promise<void>;
  /** Optional: finishes pending writes (persisted indexes) before the archive closes. */
  close?(): Promise<void>;
}
