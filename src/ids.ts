import { randomFillSync } from 'node:crypto';
import { isWellFormed } from './codec/text.js';
import { StrataError } from './errors.js';
import type { SessionRef } from './types.js';
import { DEFAULT_TENANT } from './types.js';

/**
 * Ids. Session and user ids are any text of 1-256 characters without control characters (an
 * email address, `user:42`, a UUID, a title in any script): every place that stores one encodes
 * it (the archive's file names: `archiveFileName`; Redis keys and journal records hold it
 * verbatim inside a structure that delimits it). Tenant ids name directories and configuration
 * entries, so they keep a safe alphabet: 1-128 characters of [A-Za-z0-9_.-], not starting
 * with '.'.
 */
const TENANT_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
export const MAX_TENANT_ID_LENGTH = 128;
export const MAX_ID_LENGTH = 256;
// C0 controls, DEL and C1 controls (Unicode category Cc).
const CONTROL = /\p{Cc}/u;

export type IdKind = 'tenant' | 'session' | 'user';

function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : value === null ? 'null' : typeof value;
}

export function validateId(kind: IdKind, value: unknown): string {
  // Named apart from INVALID_ID: the caller sent text that is not Unicode at all, not a bad id.
  if (typeof value === 'string' && !isWellFormed(value)) throw new StrataError('STRATA_ERR_TEXT_INVALID', `${kind} id has a lone UTF-16 surrogate; send valid Unicode`, { details: { kind, field: `${kind}Id` } });
  if (kind === 'tenant') {
    if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TENANT_ID_LENGTH || !TENANT_PATTERN.test(value)) {
      throw new StrataError('STRATA_ERR_INVALID_ID', `invalid tenant id ${shown(value)}: expected 1-${MAX_TENANT_ID_LENGTH} characters of [A-Za-z0-9_.-], not starting with '.'`, { details: { kind, field: 'tenant' } });
    }
    return value;
  }
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH || CONTROL.test(value)) {
    const why = typeof value !== 'string' ? 'expected a string' : value.length === 0 ? 'must not be empty' : value.length > MAX_ID_LENGTH ? `is ${value.length} characters` : 'contains a control character';
    throw new StrataError('STRATA_ERR_INVALID_ID', `invalid ${kind} id ${shown(value)}: ${why}; expected 1-${MAX_ID_LENGTH} characters without control characters`, { details: { kind, field: `${kind}Id` } });
  }
  return value;
}

/** The id alphabet of instance ids and other names used verbatim as file names. */
export function validateFileSafeName(what: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TENANT_ID_LENGTH || !TENANT_PATTERN.test(value)) {
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', `invalid ${what} ${shown(value)}: expected 1-${MAX_TENANT_ID_LENGTH} characters of [A-Za-z0-9_.-], not starting with '.'`, { details: { field: what } });
  }
  return value;
}

/** Accepts a bare session id (default tenant) or a {tenant, sessionId} pair, validated. */
export function toSessionRef(session: string | SessionRef, tenant?: string): SessionRef {
  if (typeof session === 'string') return { tenant: validateId('tenant', tenant ?? DEFAULT_TENANT), sessionId: validateId('session', session) };
  return { tenant: validateId('tenant', session.tenant), sessionId: validateId('session', session.sessionId) };
}

/**
 * The one in-memory key of a session (maps, sets): tenant ids cannot contain NUL or '/', so the
 * pair is unambiguous. Redis keys are built in hot/redis/keys.ts, file names in archive/layout.ts.
 */
export function sessionKey(ref: { tenant: string; sessionId: string }): string {
  return `${ref.tenant}\u0000${ref.sessionId}`;
}

/** Random bytes for `randomToken`, drawn from the system in blocks of this many tokens. */
const TOKENS_PER_DRAW = 1024;
let entropy = Buffer.alloc(0);
let entropyOffset = 0;

/**
 * `bytes` random bytes (at most 48) in base64url: what `randomBytes(bytes)` gives, with one call
 * into the system's generator per ~1024 tokens instead of one per token (a turn's key on the
 * write path).
 */
export function randomToken(bytes: number): string {
  if (entropyOffset + bytes > entropy.length) {
    entropy = randomFillSync(Buffer.allocUnsafe(48 * TOKENS_PER_DRAW));
    entropyOffset = 0;
  }
  const token = entropy.toString('base64url', entropyOffset, entropyOffset + bytes);
  entropyOffset += bytes;
  return token;
}
