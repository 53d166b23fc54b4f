import type { PendingLedger } from './ledger.js';
import type { JournalRecord } from './types.js';

/** What the cache reads of a journal's pending ledger (`PendingLedger`). */
export type PendingTurns = Pick<PendingLedger<unknown>, 'records' | 'turns' | 'userId' | 'maxTurnId' | 'has' | 'refs' | 'refsOfUser' | 'size'>;

/** `health()`: not ok while the last write failed and none has succeeded since. */
export interface JournalHealth {
  ok: boolean;
  error?: string;
  code?: string;
}

/**
 * The write-ahead journal contract: what the cache and recovery need, nothing about where the
 * records live. Drivers: `fs` (`Journal`: files with group-committed fsync, one directory per
 * instance in a shared data directory) and `postgres` (`PgJournal`: rows committed in group
 * transactions). Both pass `test/conformance/journal-store.ts`.
 *
 * One store per instance; its records are tagged with `instanceId`. Recovery after a loss of the
 * hot tier needs every instance's unarchived records (`readPending`), also those of instances
 * that are down for good, and epoch numbers allocated durably (`allocateEpoch`).
 */
export interface JournalStore {
  /** Names this instance's records. */
  readonly instanceId: string;
  /**
   * The one ledger of this instance's records the archive does not hold yet: every record this
   * store wrote or replayed goes in, `markArchived` / `markDeleteApplied` take them out.
   */
  readonly pending: PendingTurns;
  /** Durable before it resolves (as the configured durability promises). */
  append(record: JournalRecord): Promise<unknown>;
  /**
   * Records as one unit: after a crash all of them are there or none. Concurrent calls are
   * group-committed (one fsync / one transaction for many calls). Bad records reject with a
   * coded error and nothing of the call is stored.
   */
  appendMany(records: readonly JournalRecord[]): Promise<unknown>;
  /**
   * This instance's records written before this open and not yet checkpointed away, in write
   * order (a restart archives them). Appends of this run are never part of it.
   */
  replay(): AsyncIterable<{ record: JournalRecord }>;
  /** The archive holds every turn of the session with id ≤ upTo (in memory until `checkpoint`). */
  markArchived(tenant: string, sessionId: string, upTo: number): void;
  /** Every delete record journaled so far for the session was applied to the archive. */
  markDeleteApplied(tenant: string, sessionId: string): void;
  /** Records of previous runs (the replay) are all in the archive or marked as such. */
  markReplayed(): void;
  /**
   * Durably forgets what was marked archived or applied: those records no longer appear in
   * `replay` (after a reopen) or `readPending`. Never forgets an unmarked record; may keep marked
   * records written after the oldest unmarked one (fs checkpoints a position, postgres deletes
   * exactly the marked rows).
   */
  checkpoint(): Promise<void>;
  /**
   * Every instance's records not yet checkpointed away (this one's included), each instance's
   * in write order. Safe while the other instances run.
   */
  readPending(): Promise<JournalRecord[]>;
  /** A number larger than every one allocated before, by any instance sharing the store. */
  allocateEpoch(): Promise<number>;
  health(): JournalHealth;
  /** Waits for queued appends, releases the instance's lock. Idempotent. */
  close(): Promise<void>;
}

/**
 * What a read-only core gets: every instance's records and epochs, no writes (a running
 * `strata serve` owns the journal).
 */
export type JournalReader = Pick<JournalStore, 'readPending' | 'allocateEpoch'>;
