/** Types shared by every layer. */
import type { MessageContent, ToolCall } from './message.js';

export const ROLES = ['system', 'user', 'assistant', 'tool'] as const;
export type Role = (typeof ROLES)[number];

export type Metadata = Record<string, unknown>;

/** Names one session. Every session belongs to exactly one tenant. */
export interface SessionRef {
  readonly tenant: string;
  readonly sessionId: string;
}

/** One message of a session, as stored in every tier (message fields: src/message.ts). */
export interface Turn {
  /** Dense, strictly increasing per session, starting at 1. */
  turnId: number;
  role: Role;
  /** A string, an array of content parts, or null (an assistant turn that only calls tools). */
  content: MessageContent;
  /** Optional participant name; on a tool turn, the tool's name. */
  name?: string;
  /** Assistant turns: the tools the model called. */
  tool_calls?: ToolCall[];
  /** Tool turns: the id of the call this turn answers. */
  tool_call_id?: string;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  /** Tokens the model sees for this message (text, parts, tool calls) with the configured tokenizer, when known. */
  tokens?: number;
  metadata?: Metadata;
}

/** A turn as the archive keeps it: with its embedding when one was computed. */
export interface ArchivedTurn extends Turn {
  embedding?: Float32Array;
}

/**
 * Mutual exclusion per session for writers of its archive file. Single-process mode uses an
 * in-process lock; the Redis hot tier provides a lease with token and expiry shared by all
 * instances. The archive never assumes it owns the directory: it writes under this lock.
 */
export interface SessionLock {
  withLock<T>(ref: SessionRef, fn: (held: HeldLock) => Promise<T>): Promise<T>;
}

/**
 * What a holder of a session lock carries to the commits it makes: the lease token (checked by
 * the hot tier when compaction marks turns archived) and the fencing number (checked by the
 * archive at the point of commit). Both null under a single-process lock, where no other
 * holder can exist.
 */
export interface HeldLock {
  readonly token: string | null;
  readonly fence: number | null;
  /** Checks with the lease's store now; throws STRATA_ERR_LEASE_LOST when it is no longer held. */
  assertHeld?(): Promise<void>;
}

export const UNFENCED: HeldLock = Object.freeze({ token: null, fence: null });

/** Injected time source (milliseconds since epoch) so TTL and intervals are testable without sleeping. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

export const DEFAULT_TENANT = 'default';
