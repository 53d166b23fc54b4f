import { StrataError } from '../../errors.js';
import type { SessionRef } from '../../types.js';

/**
 * Every Redis key name the hot tier uses is built here (docs/redis-keys.md lists them).
 *
 * Per-session keys carry the hash tag `{<tenant>:<session>}`, so all keys of one session live in
 * one Cluster slot and a script touching them is legal there. Tenant and session ids cannot
 * contain `{`, `}` or `:` (see ids.ts), and the prefix may not contain braces, so the tag is
 * always the session's and `tenant:session` splits back unambiguously.
 * Global keys (LRU index, compaction indexes, byte total, epoch) carry no session tag.
 */
export const DEFAULT_KEY_PREFIX = 'strata:';

export function checkKeyPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 64 || /[{}\s]/.test(prefix)) {
    const shown = typeof prefix === 'string' ? JSON.stringify(prefix) : typeof prefix;
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', `RedisHotStore option \`keyPrefix\`: expected 1-64 characters without braces or whitespace, got ${shown}`, { details: { option: 'keyPrefix' } });
  }
  return prefix;
}

/** The member naming a session in the global sorted sets. */
export function sessionMember(ref: SessionRef): string {
  return `${ref.tenant}:${ref.sessionId}`;
}

export function parseSessionMember(member: string): SessionRef {
  const colon = member.indexOf(':');
  return { tenant: member.slice(0, colon), sessionId: member.slice(colon + 1) };
}

export interface SessionKeys {
  /** Hash: session metadata. */
  meta: string;
  /** Hash: turn id → encoded turn. */
  turns: string;
  /** String: compaction lease token, with PX expiry. */
  lease: string;
  /** String (integer): fencing counter, incremented by every lease taken. */
  fence: string;
  /** Hash: client idempotency key → "turnId:hash"; expires a window after its last write. */
  idem: string;
  /** Sorted set: client idempotency key → createdAt, to expire keys older than the window. */
  idemAge: string;
  /** Set: "key#turnId" of journaled turns whose writer could not confirm them (docs/consistency.md). */
  voids: string;
  /** String (integer): ids at or below it were deleted with the session and are never reused. */
  floor: string;
}

export interface GlobalKeys {
  /** Sorted set: session member → last access (ms). */
  lru: string;
  /** Sorted set: session member → unarchived turn count, only sessions with unarchived turns. */
  backlog: string;
  /** Sorted set: session member → createdAt of its oldest unarchived turn, same sessions. */
  age: string;
  /** String (integer): sum of every session's `bytes`. */
  bytes: string;
  /** String: random value written when absent; a new value means the data was lost. */
  epoch: string;
}

export class HotKeys {
  readonly global: GlobalKeys;

  constructor(readonly prefix: string) {
    checkKeyPrefix(prefix);
    this.global = Object.freeze({
      lru: `${prefix}lru`,
      backlog: `${prefix}backlog`,
      age: `${prefix}age`,
      bytes: `${prefix}bytes`,
      epoch: `${prefix}epoch`,
    });
  }

  session(ref: SessionRef): SessionKeys {
    const tag = `${this.prefix}{${ref.tenant}:${ref.sessionId}}`;
    return { meta: `${tag}:m`, turns: `${tag}:t`, lease: `${tag}:lease`, fence: `${tag}:fc`, idem: `${tag}:i`, idemAge: `${tag}:ia`, voids: `${tag}:v`, floor: `${tag}:f` };
  }
}
