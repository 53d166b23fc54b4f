import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { StrataError } from '../errors.js';
import { DEFAULT_TENANT } from '../types.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant of the request's API key (or `default` when auth is off). Every core call gets it. */
    tenant: string;
  }
}

const digest = (key: string): Buffer => createHash('sha256').update(key).digest();

/**
 * Resolves `Authorization: Bearer <key>` to a tenant. Keys are compared by their SHA-256 in
 * constant time, so the lookup does not reveal how much of a guessed key matched.
 * `apiKeys === null` turns auth off: every request acts for the `default` tenant.
 */
export function createAuthenticator(apiKeys: Readonly<Record<string, string>> | null): (request: FastifyRequest) => string {
  if (apiKeys === null) return () => DEFAULT_TENANT;
  const entries = Object.entries(apiKeys).map(([key, tenant]) => ({ hash: digest(key), tenant }));
  return (request) => {
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new StrataError('STRATA_ERR_UNAUTHORIZED', 'missing API key: send "Authorization: Bearer <key>"');
    const hash = digest(match[1]!);
    let tenant: string | null = null;
    for (const entry of entries) if (timingSafeEqual(entry.hash, hash)) tenant = entry.tenant;
    if (tenant === null) throw new StrataError('STRATA_ERR_UNAUTHORIZED', 'unknown API key');
    return tenant;
  };
}
