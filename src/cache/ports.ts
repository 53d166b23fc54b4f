import type { JournalStore } from '../journal/store.js';

/** What the cache needs from the write-ahead journal: the `JournalStore` contract (fs or postgres driver). */
export type JournalPort = JournalStore;
