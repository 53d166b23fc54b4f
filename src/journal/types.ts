import type { MessageContent, ToolCall } from '../message.js';
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
  content: MessageContent;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  createdAt: number;
  metadata?: Metadata;
  userId?: string;
  /**
   * The append's identity: the client's idempotency key (`<key>#<index in batch>`) or a random
   * nonce. The hot tier maps it to the turn id, so a retry finds its turn and the writer can
   * confirm that the turn it journaled is the one the hot tier holds at that id.
   */
  key?: string;
  /** The hot tier's epoch when the id was assigned (docs/consistency.md: a higher epoch wins an id). */
  epoch?: number;
}

/** Deletion marker so replay never resurrects deleted turns or sessions. `turnIds` absent = the whole session. */
export interface DeleteRecord {
  type: 'delete';
  tenant: string;
  sessionId: string;
  turnIds?: number[];
  at: number;
  /** Whole-session deletion: every turn id ≤ upTo is deleted (later ids belong to new turns). */
  upTo?: number;
}

/**
 * Cancels turn records this instance journaled but never acknowledged: the hot tier lost the
 * id assignment before the writer could confirm it, so the id may have been given to another
 * message. Replay and recovery ignore a turn record whose (session, turnId, key) is voided.
 */
export interface VoidRecord {
  type: 'void';
  tenant: string;
  sessionId: string;
  turnId: number;
  key: string;
  /** Epoch of the voided record: a retry may journal the same id and key under a later epoch. */
  epoch?: number;
}

export type JournalRecord = TurnRecord | DeleteRecord | VoidRecord;

/** Position of a record: file sequence number and byte offset, ordered. */
export interface Lsn {
  file: number;
  offset: number;
}
