import { isWellFormed } from '../codec/text.js';
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
    throw new StrataError('STRATA_ERR_INVALID_ROLE', `role must be one of ${ROLES.join(', ')}; received ${typeof role === 'string' ? JSON.stringify(role.length > 40 ? `${role.slice(0, 40)}…` : role) : describeType(role)}`, { details: { field: 'role' } });
  }
  // No coercion: 123, true or ["hi"] are refused, never stored as "123", "true" or "hi".
  if (typeof content !== 'string') throw new StrataError('STRATA_ERR_VALIDATION', `content must be a string; received ${describeType(content)}`, { details: { field: 'content' } });
  if (content.length === 0) throw new StrataError('STRATA_ERR_CONTENT_EMPTY', 'content must not be empty');
  // Cheap upper bound first: a UTF-16 unit is at most 3 UTF-8 bytes.
  if (content.length * 3 > limits.maxMessageBytes) {
    const bytes = encoder.encode(content).length;
    if (bytes > limits.maxMessageBytes) throw new StrataError('STRATA_ERR_CONTENT_TOO_LARGE', `content is ${bytes} bytes; the limit (maxMessageBytes) is ${limits.maxMessageBytes}`, { details: { bytes, limit: limits.maxMessageBytes } });
  }
  checkText('content', content);
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
  const parsed = JSON.parse(json) as Metadata;
  checkMetadataText(parsed);
  return { role: role as Role, content, metadata: parsed };
}

function describeType(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

/**
 * Refuses text with a lone UTF-16 surrogate (STRATA_ERR_TEXT_INVALID, naming `field`). Such text
 * has no UTF-8 form: JSON responses, the archive's UTF-8 column and every client would change it,
 * so accepting it would acknowledge text Strata cannot give back as it was sent.
 */
export function checkText(field: string, text: string): void {
  if (isWellFormed(text)) return;
  const at = firstLoneSurrogate(text);
  throw new StrataError('STRATA_ERR_TEXT_INVALID', `${field} has a lone UTF-16 surrogate at index ${at}; send valid Unicode`, { details: { field, index: at } });
}

function firstLoneSurrogate(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return i;
    } else if (c >= 0xdc00 && c <= 0xdfff) return i;
  }
  return -1;
}

/** Every key and string value of parsed metadata, walked with an explicit stack (no recursion limit). */
function checkMetadataText(metadata: Metadata): void {
  const stack: Array<{ path: string; value: unknown }> = [{ path: 'metadata', value: metadata }];
  while (stack.length > 0) {
    const { path, value } = stack.pop()!;
    if (typeof value === 'string') checkText(path, value);
    else if (Array.isArray(value)) value.forEach((v, i) => stack.push({ path: `${path}[${i}]`, value: v }));
    else if (value !== null && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        checkText(`${path} key ${JSON.stringify(key)}`, key);
        stack.push({ path: `${path}.${key}`, value: v });
      }
    }
  }
}
