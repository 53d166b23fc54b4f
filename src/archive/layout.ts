import { createHash } from 'node:crypto';

/*
 * Where a session's archive file lives: `<dataDir>/archive/<tenant>/<shard>/<stem>.strata`.
 *
 * Session ids are any text of 1-256 characters without control characters (src/ids.ts), so the
 * file name encodes them, and no two ids share a name:
 *
 * - an id of the file-safe alphabet ([A-Za-z0-9_.-], not starting with '.', at most 128
 *   characters) is its own stem, as in every earlier version of the layout;
 * - any other id whose UTF-8 bytes in base64url fit in MAX_ENCODED_CHARS is `~` + that base64url
 *   (reversible: the name gives the id back);
 * - a longer one is `~~` + the hex SHA-256 of its UTF-8 bytes, and the file's metadata record
 *   holds the id (listings read it from there).
 *
 * The three forms cannot meet: only encoded stems start with `~`, and base64url never contains
 * `~`. No stem contains a path separator, `..` or NUL, so no id reaches outside its shard
 * directory. Stems stay under 200 bytes, so the temporary files of a rewrite
 * (`.<stem>.strata.ctl.<pid>-<n>.tmp`) fit the 255-byte name limit of common filesystems.
 * File names are compared byte for byte: the layout assumes a case-sensitive filesystem.
 */

const SAFE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const MAX_SAFE_CHARS = 128;
const MAX_ENCODED_CHARS = 160;

export function archiveStem(sessionId: string): string {
  if (sessionId.length <= MAX_SAFE_CHARS && SAFE.test(sessionId)) return sessionId;
  const encoded = Buffer.from(sessionId, 'utf8').toString('base64url');
  if (encoded.length <= MAX_ENCODED_CHARS) return `~${encoded}`;
  return `~~${createHash('sha256').update(sessionId, 'utf8').digest('hex')}`;
}

/** The session id a stem names; null for a hashed stem (the id is in the file's metadata). Undefined when the stem is not one this layout makes. */
export function sessionIdOfStem(stem: string): string | null | undefined {
  if (stem.startsWith('~~')) return /^~~[0-9a-f]{64}$/.test(stem) ? null : undefined;
  if (stem.startsWith('~')) {
    const body = stem.slice(1);
    if (!/^[A-Za-z0-9_-]+$/.test(body)) return undefined;
    const id = Buffer.from(body, 'base64url').toString('utf8');
    // Only the canonical encoding of an id names it (no second spelling of the same id).
    return archiveStem(id) === stem ? id : undefined;
  }
  return stem.length <= MAX_SAFE_CHARS && SAFE.test(stem) ? stem : undefined;
}

/** True when the file's metadata must record the session id (its stem does not give it back). */
export function stemNeedsRecordedId(stem: string): boolean {
  return stem.startsWith('~~');
}

/** Shard directory of a session: the first byte of SHA-256(sessionId) in hex, so 256 shards fill evenly. */
export function shardOf(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('hex').slice(0, 2);
}
