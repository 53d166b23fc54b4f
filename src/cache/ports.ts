import type { Journal } from '../journal/journal.js';

/** What the cache needs from the write-ahead journal. */
export type JournalPort = Pick<Journal, 'appendMany' | 'markArchived' | 'markDeleteApplied' | 'markReplayed' | 'safeCheckpoint' | 'checkpoint' | 'close'> & {
  /** Not ok while the last write failed and none succeeded since (full disk, I/O error). */
  health?(): { ok: boolean; error?: string; code?: string };
};
