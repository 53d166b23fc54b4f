import { StrataError } from '../errors.js';
import type { Metadata, Role } from '../types.js';
import { ROLES } from '../types.js';

export interface MessageLimits {
  maxMessageBytes: number;
  maxMetadataBytes: number;
}

const encoder = new TextEncoder();
const ROLE_SET: ReadonlySet<string> = new Set(ROLES);

/**
 * Validates one message before anything is written. Returns the byte length of the content.
 * Every failure is a coded error and happens before any state changes.
 */
export function validateMessage(role: unknown, content: unknown, metadata: unknown, limits: MessageLimits): { role: Role; content: string; metadata: Metadata | undefined } {
  if (typeof role !== 'string' || !ROLE_SET.has(role)) {
    throw new StrataError('STRATA_ERR_INVALID_ROLE', `role must be one of ${ROLES.join(', ')}; received ${JSON.stringify(role) ?? typeof role}`);
  }
  if (typeof content !== 'string') throw new StrataError('STRATA_ERR_VALIDATION', `content must be a string; received ${content === null ? 'null' : typeof content}`);
  if (content.length === 0) throw new StrataError('STRATA_ERR_CONTENT_EMPTY', 'content must not be empty');
  // Cheap upper bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
  if (content.length * 3 > limits.maxMessageBytes) {
    const bytes = encoder.encode(content).length;
    if (bytes > limits.maxMessageBytes) throw new StrataError('STRATA_ERR_CONTENT_TOO_LARGE', `content is ${bytes} bytes; the limit (maxMessageBytes) is ${limits.maxMessageBytes}`, { details: { bytes, limit: limits.maxMessageBytes } });
  }
  if (metadata === undefined) return { role: role as Role, content, metadata: undefined };
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata) || Object.getPrototypeOf(metadata) !== Object.prototype) {
    throw new StrataError('STRATA_ERR_METADATA_INVALID', `metadata must be a plain JSON object; received ${Array.isArray(metadata) ? 'array' : metadata === null ? 'null' : typeof metadata}`);
  }
  let json: string;
  try {
    json = JSON.stringify(metadata);
  } catch (err) {
    throw new StrataError('STRATA_ERR_METADATA_INVALID', `metadata is not JSON-serialisable: ${(err as Error).message}`);
  }
  const bytes = encoder.encode(json).length;
  if (bytes > limits.maxMetadataBytes) throw new StrataError('STRATA_ERR_METADATA_TOO_LARGE', `metadata is ${bytes} bytes as JSON; the limit (maxMetadataBytes) is ${limits.maxMetadataBytes}`, { details: { bytes, limit: limits.maxMetadataBytes } });
  // A JSON round trip drops undefined values and functions so every tier stores the same thing.
  return { role: role as Role, content, metadata: JSON.parse(json) as Metadata };
}
