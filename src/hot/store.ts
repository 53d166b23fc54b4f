import type { Metadata, Role, SessionRef, Turn } from '../types.js';

/**
 * The hot-tier contract: per session, the turns not yet archived plus the last `recentTurns`
 * archived ones, session metadata, and a global last-access index for LRU. Drivers: `redis`
 * (shared by many app instances) and `memory` (embedded default). Every multi-step update is
 * atomic. Nothing here ever drops an unarchived turn except `deleteSession`/`deleteTurns`.
 * Both drivers pass `test/conformance/hot-store.ts`.
 */
export interface HotStore {
  /**
   * Assigns the next turn id and stores the turn, atomically. Returns `{ needsSeed: true }`
   * without changing anything when the store has no metadata for the session (new session, or
   * the store lost it, e.g. Redis was flushed): the caller computes the next id from the
   * archive and journal and calls `seed`, then retries.
   */
  append(ref: SessionRef, turn: NewHotTurn, now: number): Promise<{ turnId: number } | { needsSeed: true }>;
  /** Creates session state if absent (returns false and changes nothing if present). */
  seed(ref: SessionRef, seed: HotSeed, now: number): Promise<boolean>;
  /** The last `count` turns in ascending order (archived or not); touches last access. */
  recent(ref: SessionRef, count: number, now: number): Promise<Turn[]>;
  /** Turns with id > archivedUpTo, ascending, at most `limit`. */
  unarchived(ref: SessionRef, limit: number): Promise<Turn[]>;
  /** Turns with ids in [fromTurn, toTurn] that the hot tier holds, ascending. */
  range(ref: SessionRef, fromTurn: number, toTurn: number): Promise<Turn[]>;
  /**
   * Records that every turn ≤ upTo is archived and trims archived turns beyond the last
   * `keepRecent`. Monotonic: a lower `upTo` than the current one changes nothing.
   */
  markArchived(ref: SessionRef, upTo: number, keepRecent: number): Promise<void>;
  meta(ref: SessionRef): Promise<HotSessionMeta | null>;
  /** Drops the session from the hot tier only if every turn is archived; returns whether it did. */
  dropIfArchived(ref: SessionRef): Promise<boolean>;
  /** Removes the session's hot state entirely (deletion path). Returns the number of turns removed. */
  deleteSession(ref: SessionRef): Promise<number>;
  /** Removes these turns if held; metadata (next id) is kept. Returns how many were removed. */
  deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<number>;
  /** Sessions by ascending last access (least recently used first). */
  lruSessions(limit: number): Promise<Array<{ ref: SessionRef; lastAccess: number }>>;
  /** Sessions last accessed before `before` (idle), oldest first. */
  idleSessions(before: number, limit: number): Promise<SessionRef[]>;
  /** Sessions that hold at least `minUnarchived` unarchived turns, or whose oldest unarchived turn was created before `oldestBefore`. */
  sessionsToCompact(minUnarchived: number, oldestBefore: number, limit: number): Promise<SessionRef[]>;
  /** Sum of the approximate bytes of every session held. */
  totalBytes(): Promise<number>;
  /** Lease for compaction of one session: a token when acquired, null when someone else holds it. */
  acquireLease(ref: SessionRef, owner: string, ttlMs: number, now: number): Promise<string | null>;
  /** Extends a held lease; false when it was lost (expired and taken, or released). */
  renewLease(ref: SessionRef, token: string, ttlMs: number, now: number): Promise<boolean>;
  releaseLease(ref: SessionRef, token: string): Promise<void>;
  /**
   * Deletes the session's lease if it was issued to `owner`, whatever its token. For start-up
   * only: an instance's previous run, killed while holding leases, must not block its restart
   * for a lease lifetime (the journal lock proves that run is dead). Returns whether it deleted.
   */
  releaseOwnerLease(ref: SessionRef, owner: string): Promise<boolean>;
  /**
   * A value that changes when the store loses its state (Redis restart or flush): instances
   * compare it with the one they saw to know they must re-seed from journal and archive.
   */
  epoch(): Promise<string>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface NewHotTurn {
  role: Role;
  content: string;
  createdAt: number;
  tokens?: number;
  metadata?: Metadata;
  /** Remembered in session metadata on first sight. */
  userId?: string;
}

export interface HotSeed {
  /** The id the next append receives. */
  nextTurnId: number;
  archivedUpTo: number;
  /** Turns to hold: the recent archived ones and every unarchived one, ascending. */
  turns: readonly Turn[];
  userId?: string;
}

export interface HotSessionMeta {
  nextTurnId: number;
  archivedUpTo: number;
  turnCount: number;
  unarchivedCount: number;
  oldestUnarchivedAt: number | null;
  bytes: number;
  lastAccess: number;
  createdAt: number;
  userId: string | null;
}
