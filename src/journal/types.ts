import type { Metadata, Role } from '../types.js';

/** How long `append` waits before it resolves. */
export type Durability = 'fsync' | 'batch' | 'none';

/** A message as the journal stores it, before it is archived. */
export interface TurnRecord {
  type: 'turn';
  tenant: string;
  sessionId: string;
  turnId: number;
  role: Role;
  content: string;
  createdAt: number;
  metadata?: Metadata;
  userId?: string;
}

/** Deletion marker so replay never resurrects deleted turns or sessions. `turnIds` absent = the whole session. */
export interface DeleteRecord {
  type: 'delete';
  tenant: string;
  sessionId: string;
  turnIds?: number[];
  at: number;
}

export type JournalRecord = TurnRecord | DeleteRecord;

/** Position of a record: file sequence number and byte offset, ordered. */
export interface Lsn {
  file: number;
  offset: number;
}
