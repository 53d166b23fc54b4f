import { createHash } from 'node:crypto';
import type { Summary } from '../archive/store.js';
import type { ArchivedTurn } from '../types.js';

/** What a copy must carry of one session, as the library reads it back from either side. */
export interface SessionContent {
  /** Every message, ascending by turn id, with its embedding when the archive holds one. */
  turns: readonly ArchivedTurn[];
  userId: string | null;
  /** Highest turn id ever given in the session (ids of deleted turns are never reused). */
  highWater: number;
  summaries: readonly Summary[];
}

export interface SessionDigest {
  messages: number;
  /** SHA-256 (hex) of the canonical session: see `digestSession`. */
  checksum: string;
}

/**
 * The canonical form of a message: JSON with keys sorted at every depth and absent fields left
 * out, so two drivers that decode the same message into objects built in another key order
 * still agree; an embedding is its little-endian float32 bytes in base64 (bit-exact, NaN
 * payloads included).
 */
export function canonicalTurn(turn: ArchivedTurn): string {
  const { embedding, ...fields } = turn;
  const value: Record<string, unknown> = { ...fields };
  if (embedding !== undefined) value.embedding = Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength).toString('base64');
  return canonicalJson(value);
}

export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = sortKeys(v);
  }
  return out;
}

/**
 * One checksum over everything a copy carries of a session: each message in canonical form (in
 * turn order), then the owner, the high-water turn id and the summaries (sorted by range). Equal
 * checksums mean the two sides answer every read of the session alike.
 */
export function digestSession(content: SessionContent): SessionDigest {
  const hash = createHash('sha256');
  for (const turn of content.turns) hash.update(canonicalTurn(turn)).update('\n');
  const summaries = [...content.summaries].sort((a, b) => a.fromTurn - b.fromTurn || a.toTurn - b.toTurn);
  hash.update(canonicalJson({ userId: content.userId, highWater: content.highWater, summaries }));
  return { messages: content.turns.length, checksum: hash.digest('hex') };
}
