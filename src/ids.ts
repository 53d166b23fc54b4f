import { isWellFormed } from './codec/text.js';
import { StrataError } from './errors.js';
import type { SessionRef } from './types.js';
import { DEFAULT_TENANT } from './types.js';

/**
 * Tenant, session and user ids. The alphabet keeps ids safe as file names (no separators, no
 * NUL, no leading dot so never `.` or `..`) and as Redis key parts (no `{`, `}` or `:`).
 */
const ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
export const MAX_ID_LENGTH = 128;

export function validateId(kind: 'tenant' | 'session' | 'user', value: unknown): string {
  // Named apart from INVALID_ID: the caller sent text that is not Unicode at all, not a bad id.
  if (typeof value === 'string' && !isWellFormed(value)) throw new StrataError('STRATA_ERR_TEXT_INVALID', `${kind} id has a lone UTF-16 surrogate; send valid Unicode`, { details: { kind, field: `${kind}Id` } });
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH || !ID_PATTERN.test(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : typeof value;
    throw new StrataError('STRATA_ERR_INVALID_ID', `invalid ${kind} id ${shown}: expected 1-${MAX_ID_LENGTH} characters of [A-Za-z0-9_.-], not starting with '.'`, { details: { kind } });
  }
  return value;
}

/** Accepts a bare session id (default tenant) or a {tenant, sessionId} pair, validated. */
export function toSessionRef(session: string | SessionRef, tenant?: string): SessionRef {
  if (typeof session === 'string') return { tenant: validateId('tenant', tenant ?? DEFAULT_TENANT), sessionId: validateId('session', session) };
  return { tenant: validateId('tenant', session.tenant), sessionId: validateId('session', session.sessionId) };
}
