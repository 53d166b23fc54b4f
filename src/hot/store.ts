import type { MessageFields } from '../message.js';
import type { Metadata, SessionRef, Turn } from '../types.js';

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
  append(ref: SessionRef, turn: NewHotTurn, now: number, options?: HotAppendOptions): Promise<HotAppendResult>;
  /**
   * Creates session state if absent: `true`. `false` and no change when present. With
   * `options.epoch`: 'epochChanged' (no change) when the store's epoch is another one; and
   * 'conflict' (no change) when a seeded turn was voided (`confirm`) or lies at or below the
   * session's deletion floor, or `nextTurnId` does not clear the floor: the caller re-reads
   * `floor` and recomputes the seed.
   */
  seed(ref: SessionRef, seed: HotSeed, now: number, options?: HotSeedOptions): Promise<boolean | 'epochChanged' | 'conflict'>;
  /**
   * After journaling turns it was given ids for, the writer asks whether each id still holds
   * its turn (docs/consistency.md, "Acknowledging a turn"): true when the epoch is unchanged,
   * or the turn held at that id carries the writer's key, or the client idempotency key maps
   * to it. Otherwise false, and the pair is recorded as void (atomically), so that no later
   * seed brings the journaled record back: the writer journals a void record and retries.
   */
  confirm(ref: SessionRef, epoch: number, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]>;
  /**
   * Records token counts of turns appended without one (the count runs after the append was
   * acknowledged): a turn changes only while it is held with that append key and has no count,
   * so a turn deleted, replaced or counted meanwhile is left alone. Returns how many changed.
   */
  setTokens(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string; tokens: number }>): Promise<number>;
  /** Whether the turn held at each id carries that append key (read only). */
  holds(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]>;
  /** Ids at or below this number were deleted with the session (0 when never deleted). */
  floor(ref: SessionRef): Promise<number>;
  /** The session's void markers, `<key>#<turnId>` (see `confirm`): a seed leaves those records out. */
  voided(ref: SessionRef): Promise<string[]>;
  /** The last `count` turns in ascending order (archived or not); touches last access. */
  recent(ref: SessionRef, count: number, now: number): Promise<Turn[]>;
  /** Turns with id > archivedUpTo, ascending, at most `limit`, with their append keys. */
  unarchived(ref: SessionRef, limit: number): Promise<Array<Turn & { key?: string }>>;
  /** The idempotency entries (`k:<key>#<index>`) of the session: turn id and message hash, null when unknown. */
  idempotencyEntries(ref: SessionRef, keys: readonly string[]): Promise<Array<{ turnId: number; hash: string } | null>>;
  /** Turns with ids in [fromTurn, toTurn] that the hot tier holds, ascending. */
  range(ref: SessionRef, fromTurn: number, toTurn: number): Promise<Turn[]>;
  /**
   * Records that every turn ≤ upTo is archived and trims archived turns beyond the last
   * `keepRecent`. Monotonic: a lower `upTo` than the current one changes nothing.
   */
  markArchived(ref: SessionRef, upTo: number, keepRecent: number, leaseToken?: string): Promise<void>;
  meta(ref: SessionRef): Promise<HotSessionMeta | null>;
  /** Drops the session from the hot tier only if every turn is archived; returns whether it did. */
  dropIfArchived(ref: SessionRef): Promise<boolean>;
  /**
   * Removes the session's hot state entirely (deletion path) and raises its deletion floor to
   * the last id ever given, so those ids are never handed out again. Returns the number of
   * turns removed and that last id (the floor; 0 for a session never seen here). With
   * `options.epoch`: 'epochChanged' and no change under another epoch.
   */
  deleteSession(ref: SessionRef, options?: { epoch?: number; minFloor?: number }): Promise<{ turns: number; lastTurnId: number } | 'epochChanged'>;
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
  /**
   * Lease for compaction of one session: a token and its fencing number when acquired, null when
   * someone else holds it. Fencing numbers grow with every lease, also across a loss of the
   * store's data (epoch × 2^32 + a per-session counter; epoch 0 while the store has none).
   */
  acquireLease(ref: SessionRef, owner: string, ttlMs: number, now: number): Promise<{ token: string; fence: number } | null>;
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
   * The number naming the store's current dataset, null when it has none (first start, Redis
   * restart or flush). Instances compare it with the one they recovered in to know they must
   * re-seed from the journals and the archive.
   */
  epoch(): Promise<number | null>;
  /** Stores `candidate` as the epoch if there is none; returns the epoch in force. */
  initEpoch(candidate: number): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface NewHotTurn extends MessageFields {
  createdAt: number;
  tokens?: number;
  metadata?: Metadata;
  /** Remembered in session metadata on first sight. */
  userId?: string;
  /** The append key (the journal record's `key`), stored with the turn for `confirm`. Printable ASCII. */
  key?: string;
}

export interface HotAppendOptions {
  /** Refuse (`epochChanged`) unless the store's epoch is this one. */
  epoch?: number;
  /** A client idempotency key: a known key answers its turn id instead of appending. */
  idempotency?: { key: string; hash: string; windowMs: number };
}

export type HotAppendResult =
  | { turnId: number; known?: true }
  | { needsSeed: true }
  | { epochChanged: true }
  | { mismatch: true; knownTurnId: number };

export interface HotSeedOptions {
  epoch?: number;
  /** Client idempotency keys of the seeded turns, registered with the session. */
  idempotency?: ReadonlyArray<{ key: string; turnId: number; hash: string; createdAt: number }>;
  windowMs?: number;
}

export interface HotSeed {
  /** The id the next append receives. */
  nextTurnId: number;
  archivedUpTo: number;
  /** Turns to hold: the recent archived ones and every unarchived one, ascending (unarchived ones with their append key). */
  turns: ReadonlyArray<Turn & { key?: string; epoch?: number }>;
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
