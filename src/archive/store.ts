import type { ArchivedTurn, SessionRef } from '../types.js';

/**
 * The cold-tier contract. The filesystem driver (`FsArchiveStore`) is the default; every driver
 * passes `test/conformance/archive-store.ts`.
 *
 * Writers of one session's file must hold that session's `SessionLock` (given to the driver at
 * construction); readers never need it. Reads merge segments by turn id and drop duplicates.
 */
export interface ArchiveStore {
  /**
   * Appends turns (ascending turn ids) as one new segment. Idempotent: turns whose id is at or
   * below the session's high-water turn id (the highest id ever archived, kept even after that
   * turn is deleted) are skipped, so journal replay and retried compactions never duplicate
   * and never resurrect deleted turns.
   */
  append(ref: SessionRef, turns: readonly ArchivedTurn[], options?: AppendOptions): Promise<AppendResult>;
  /** Turns in ascending id order, merged over all segments, inclusive range. */
  read(ref: SessionRef, range?: TurnRange): Promise<ArchivedTurn[]>;
  /** Null when the session has no archive file. */
  info(ref: SessionRef): Promise<ArchiveSessionInfo | null>;
  listSessions(tenant: string, options?: ListOptions): Promise<{ sessions: ArchiveSessionInfo[]; nextCursor: string | null }>;
  /** Session ids of one user within one tenant, from the per-tenant user index (no scan). */
  listUserSessions(tenant: string, userId: string): Promise<string[]>;
  /**
   * Optional: a string that changes whenever the archived turns of any session of the user
   * change, on any instance (append, rewrite, deletion, import). Lets user-scope search check
   * that its index is current in one look-up instead of one per session.
   */
  userStamp?(tenant: string, userId: string): Promise<string>;
  /** Optional: per session, a string that changes whenever its archived turns may have changed (null: no archive). */
  sessionStamps?(tenant: string, sessionIds: readonly string[]): Promise<Map<string, string | null>>;
  /** Brute-force cosine similarity over stored vectors of the sessions in scope. */
  searchByEmbedding(query: Float32Array, topK: number, scope: SearchScope): Promise<EmbeddingHit[]>;
  saveSummary(ref: SessionRef, summary: Summary): Promise<void>;
  /** The current summaries of a session, ascending by `fromTurn`; later records for the same range replace earlier ones. */
  loadSummaries(ref: SessionRef): Promise<Summary[]>;
  /** Rewrites the file without these turns (atomic: temp + fsync + rename + dir fsync); also drops summaries covering them. */
  deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt>;
  /**
   * Deletes the session's archive. The deletion floor (`upTo`, at least the highest archived id)
   * is made durable first: turns at or below it are never read or archived again, whoever
   * still holds them. Refused with STRATA_ERR_FENCED for a `fence` below one already committed.
   */
  deleteSession(ref: SessionRef, options?: DeleteSessionOptions): Promise<DeleteReceipt>;
  /** Highest turn id deleted with the session (its deletion floor); 0 when never deleted. */
  deletedUpTo(ref: SessionRef): Promise<number>;
  /**
   * The archived turn at `turnId`, read under the session's commit lock (so no commit is half
   * way), or null.
   */
  committedTurn(ref: SessionRef, turnId: number): Promise<ArchivedTurn | null>;
  /** Client idempotency keys of archived turns kept with the session (see `AppendOptions.idempotency`). */
  idempotencyKeys(ref: SessionRef): Promise<IdempotencyEntry[]>;
  deleteUser(tenant: string, userId: string): Promise<DeleteReceipt>;
  /** Deletes sessions whose last turn is older than `maxAgeDays` (by the store's clock); returns how many. */
  cleanupExpiredSessions(maxAgeDays: number): Promise<number>;
  /** Rewrites a session's many small segments into one. */
  compact(ref: SessionRef): Promise<void>;
  /**
   * Computes new vectors with `embed` for every turn not embedded by `embedderId` and rewrites
   * the file atomically (after a model change). Returns how many turns were re-embedded.
   */
  reembed(ref: SessionRef, embedderId: string, embed: (texts: string[]) => Promise<Float32Array[]>): Promise<{ turns: number }>;
  /**
   * The session's archive file, byte for byte; with `extra` (turns above the archive's
   * high-water mark that are not archived yet), followed by one more segment holding them.
   */
  exportSession(ref: SessionRef, extra?: readonly ArchivedTurn[]): Promise<Uint8Array>;
  /** Writes an exported file as this session's archive; fails with STRATA_ERR_CONFLICT if it exists. Verifies every block first. */
  importSession(ref: SessionRef, file: Uint8Array, options?: { userId?: string }): Promise<ArchiveSessionInfo>;
  stats(tenant?: string): Promise<ArchiveStats>;
  close(): Promise<void>;
}

export interface DeleteSessionOptions {
  /** Every turn id ≤ upTo is deleted, also ids not archived yet (they sit in journals). */
  upTo?: number;
  /** The deleting lease's fencing number (null or absent: unfenced, single process). */
  fence?: number | null;
}

export interface IdempotencyEntry {
  /** `k:<client key>#<index in batch>`. */
  key: string;
  turnId: number;
  /** Hash of the message the key was first used for (a retry with another message is a mismatch). */
  hash: string;
  createdAt: number;
}

export interface AppendOptions {
  /**
   * Called under the session's commit lock right before the segment is written: a compaction
   * checks there that its lease is still held (a lease lost to a loss of the hot tier must not
   * commit turns whose writers are being told they were not stored).
   */
  precommit?: () => Promise<void>;
  /** Client idempotency keys of the appended turns, kept with the session until `keysSince`. */
  idempotency?: readonly IdempotencyEntry[];
  /** Keys created before this time (ms) are forgotten at this commit. */
  keysSince?: number;
  /**
   * Fencing number of the lease under which the turns were read from the hot tier. A commit
   * below the highest one already committed for the session is refused (STRATA_ERR_FENCED).
   */
  fence?: number | null;
  /** Recorded in the per-tenant user index on first sight. */
  userId?: string;
  /** Id of the embedder that produced the turns' embeddings (stored in the segment header). */
  embedderId?: string;
}

export interface AppendResult {
  appended: number;
  skipped: number;
  /** High-water turn id after the append. */
  highWater: number;
}

export interface TurnRange {
  fromTurn?: number;
  toTurn?: number;
}

export interface ListOptions {
  cursor?: string | null;
  /** Default 100, at most 1000. */
  limit?: number;
}

export type SearchScope =
  | { tenant: string; sessionIds: readonly string[] }
  | { tenant: string; userId: string };

export interface EmbeddingHit {
  sessionId: string;
  turnId: number;
  score: number;
}

export interface Summary {
  fromTurn: number;
  toTurn: number;
  text: string;
  createdAt: number;
}

export interface ArchiveSessionInfo {
  tenant: string;
  sessionId: string;
  userId: string | null;
  turnCount: number;
  /** Highest turn id ever archived, also after deletions. 0 when none. */
  highWater: number;
  firstTurnAt: number | null;
  lastTurnAt: number | null;
  bytes: number;
  segments: number;
  embedderId: string | null;
}

export interface DeleteReceipt {
  sessions: number;
  turns: number;
  bytes: number;
  vectors: number;
  summaries: number;
}

export interface ArchiveStats {
  sessions: number;
  turns: number;
  bytes: number;
  segments: number;
}
