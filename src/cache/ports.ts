import type { JournalRecord, Lsn } from '../journal/types.js';

/**
 * What the cache needs from the write-ahead journal. `Journal` (src/journal) implements it;
 * the cache does not depend on its internals.
 */
export interface JournalPort {
  /** Resolves when the records are durable per the journal's durability setting; one LSN per record. */
  appendMany(records: readonly JournalRecord[]): Promise<Lsn[]>;
  /** Declares every record before `lsn` archived, so files below it can be deleted. */
  checkpoint(lsn: Lsn): Promise<void>;
  /** The position right after the last record appended (the checkpoint when nothing is pending). */
  endLsn(): Lsn;
  close(): Promise<void>;
}
