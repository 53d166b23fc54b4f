import { StrataError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { validateId } from '../ids.js';
import type { ArchivedTurn } from '../types.js';
import { ROLES } from '../types.js';
import { embeddingDims } from './segment-encode.js';
import type { AppendOptions, ArchiveStore, DeleteReceipt, ListOptions, Summary, TurnRange } from './store.js';

/** Turn ids are stored as u32 in segment headers. */
export const MAX_TURN_ID = 0xffffffff;

function bad(message: string, details?: Record<string, unknown>): StrataError {
  return new StrataError('STRATA_ERR_VALIDATION', message, details ? { details } : {});
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Checks a batch of turns for `append`: everything is checked before anything is written. */
export function validateTurns(turns: unknown): readonly ArchivedTurn[] {
  if (!Array.isArray(turns)) throw bad(`turns: expected an array, received ${typeof turns}`);
  let prev = 0;
  for (const [i, t] of (turns as unknown[]).entries()) {
    if (typeof t !== 'object' || t === null) throw bad(`turns[${i}]: expected an object`);
    const turn = t as ArchivedTurn;
    if (!Number.isInteger(turn.turnId) || turn.turnId < 1 || turn.turnId > MAX_TURN_ID) throw bad(`turns[${i}].turnId: expected an integer from 1 to ${MAX_TURN_ID}, received ${String(turn.turnId)}`);
    if (turn.turnId <= prev) throw bad(`turns[${i}].turnId: expected ascending turn ids, ${turn.turnId} follows ${prev}`);
    prev = turn.turnId;
    if (!(ROLES as readonly string[]).includes(turn.role)) throw new StrataError('STRATA_ERR_INVALID_ROLE', `turns[${i}].role: expected one of ${ROLES.join(', ')}, received ${JSON.stringify(turn.role)}`);
    if (typeof turn.content !== 'string' && turn.content !== null && !Array.isArray(turn.content)) throw bad(`turns[${i}].content: expected a string, an array of parts or null`);
    if (!Number.isSafeInteger(turn.createdAt) || turn.createdAt < 0) throw bad(`turns[${i}].createdAt: expected milliseconds since the epoch, received ${String(turn.createdAt)}`);
    if (turn.tokens !== undefined && (!Number.isSafeInteger(turn.tokens) || turn.tokens < 0)) throw bad(`turns[${i}].tokens: expected a non-negative integer`);
    if (turn.metadata !== undefined) {
      if (!isPlainObject(turn.metadata)) throw new StrataError('STRATA_ERR_METADATA_INVALID', `turns[${i}].metadata: expected a plain JSON object`);
      try {
        JSON.stringify(turn.metadata);
      } catch (err) {
        throw new StrataError('STRATA_ERR_METADATA_INVALID', `turns[${i}].metadata is not serialisable as JSON`, { cause: err });
      }
    }
    if (turn.embedding !== undefined) {
      if (!(turn.embedding instanceof Float32Array) || turn.embedding.length === 0) throw bad(`turns[${i}].embedding: expected a non-empty Float32Array`);
      for (const x of turn.embedding) if (!Number.isFinite(x)) throw bad(`turns[${i}].embedding: contains a non-finite value`);
    }
  }
  return turns as ArchivedTurn[];
}

/** The checks `append` makes before it takes any lock: the turns, the owner, the embedder id, the vectors' dimension. */
export function validateAppend(turns: unknown, options: AppendOptions): { userId: string | undefined; embedderId: string | null; dims: number } {
  const valid = validateTurns(turns);
  const userId = optionalUserId(options.userId);
  const embedderId = options.embedderId ?? null;
  if (embedderId !== null && (typeof embedderId !== 'string' || embedderId.length === 0 || embedderId.length > 255)) throw bad('embedderId: expected a string of 1-255 characters');
  return { userId, embedderId, dims: embeddingDims(valid) };
}

/**
 * The checks an append makes under the commit lock against what the session stores: a session
 * has one owner, and one vector dimension per embedder.
 */
export function checkAppendable(sessionId: string, stored: { userId?: string | null | undefined; dims: number; embedderId: string | null }, userId: string | undefined, embedderId: string | null, dims: number): void {
  if (userId !== undefined && stored.userId && stored.userId !== userId) throw new StrataError('STRATA_ERR_CONFLICT', `session ${sessionId} belongs to user ${stored.userId}, not ${userId}`);
  if (dims > 0 && stored.dims > 0 && stored.dims !== dims && stored.embedderId === embedderId) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `embeddings have ${dims} dimensions, session ${sessionId} stores ${stored.dims} for embedder ${embedderId ?? '(none)'}`, { details: { expected: stored.dims, received: dims } });
}

/** The owner given to `append` or `importSession`, checked when given. */
export function optionalUserId(userId: unknown): string | undefined {
  return userId === undefined ? undefined : validateId('user', userId);
}

export function validateRange(range: unknown): TurnRange {
  if (range === undefined) return {};
  if (typeof range !== 'object' || range === null) throw bad('range: expected {fromTurn?, toTurn?}');
  const r = range as TurnRange;
  for (const key of ['fromTurn', 'toTurn'] as const) {
    const v = r[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw bad(`range.${key}: expected a non-negative integer, received ${String(v)}`);
  }
  return { ...(r.fromTurn === undefined ? {} : { fromTurn: r.fromTurn }), ...(r.toTurn === undefined ? {} : { toTurn: r.toTurn }) };
}

/** The page size of `listSessions`: default 100, at most 1000. */
export function listLimit(options: ListOptions): number {
  const limit = options.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw bad(`limit: expected an integer from 1 to 1000, received ${String(limit)}`);
  return limit;
}

/** The turn ids of `deleteTurns`: positive integers. */
export function validateTurnIds(turnIds: unknown): readonly number[] {
  if (!Array.isArray(turnIds) || !turnIds.every((id) => Number.isInteger(id) && id >= 1)) throw bad('turnIds: expected an array of positive integers');
  return turnIds as number[];
}

export function validateSummary(s: unknown): Summary {
  const v = s as Summary;
  if (typeof v !== 'object' || v === null) throw bad('summary: expected an object');
  if (!Number.isInteger(v.fromTurn) || v.fromTurn < 1 || !Number.isInteger(v.toTurn) || v.toTurn < v.fromTurn || v.toTurn > MAX_TURN_ID) throw bad(`summary: expected 1 <= fromTurn <= toTurn, received ${String(v.fromTurn)}..${String(v.toTurn)}`);
  if (typeof v.text !== 'string') throw bad('summary.text: expected a string');
  if (!Number.isSafeInteger(v.createdAt) || v.createdAt < 0) throw bad('summary.createdAt: expected milliseconds since the epoch');
  return { fromTurn: v.fromTurn, toTurn: v.toTurn, text: v.text, createdAt: v.createdAt };
}

export function validateQuery(query: unknown, topK: unknown): Float32Array {
  if (!(query instanceof Float32Array) || query.length === 0) throw bad('query: expected a non-empty Float32Array');
  for (const x of query) if (!Number.isFinite(x)) throw bad('query: contains a non-finite value');
  if (!Number.isInteger(topK) || (topK as number) < 1 || (topK as number) > 10_000) throw bad(`topK: expected an integer from 1 to 10000, received ${String(topK)}`);
  return query;
}

/** Codes that, raised while reading an imported file, mean "this is not a valid archive". */
const IMPORT_FORMAT_CODES: ReadonlySet<ErrorCode> = new Set(['STRATA_ERR_ARCHIVE_CORRUPT', 'STRATA_ERR_ARCHIVE_VERSION', 'STRATA_ERR_CODEC_UNKNOWN', 'STRATA_ERR_CODEC_TRUNCATED', 'STRATA_ERR_CODEC_CORRUPT', 'STRATA_ERR_CODEC_CHECKSUM', 'STRATA_ERR_CODEC_TOO_LARGE']);

/**
 * For the import boundary (`POST /v1/import`, `strata import`): a corrupt archive already on disk
 * is a server fault (500 in the catalog), but the same error raised by a file a client hands in
 * is bad input. It is wrapped as STRATA_ERR_INPUT_FORMAT (400) with the original code in
 * `details.cause`; the catalog statuses stay as they are for every other path.
 */
export function asImportError(err: unknown): unknown {
  if (!(err instanceof StrataError) || !IMPORT_FORMAT_CODES.has(err.code)) return err;
  const prefix = `${err.code}: `;
  const reason = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
  return new StrataError('STRATA_ERR_INPUT_FORMAT', `the file is not a valid Strata archive: ${reason}`, { cause: err, details: { cause: err.code } });
}

/** The cut-off time of a retention pass: sessions whose last activity is older are expired. */
export function expiryCutoff(maxAgeDays: unknown, now: number): number {
  if (typeof maxAgeDays !== 'number' || !Number.isFinite(maxAgeDays) || maxAgeDays < 0) throw new StrataError('STRATA_ERR_VALIDATION', `maxAgeDays: expected a non-negative number, received ${String(maxAgeDays)}`);
  return now - maxAgeDays * 86_400_000;
}

export const EMPTY_RECEIPT: DeleteReceipt = Object.freeze({ sessions: 0, turns: 0, bytes: 0, vectors: 0, summaries: 0 });

/** `deleteUser` of every driver: each of the user's sessions deleted as `deleteSession` does, the receipts summed. */
export async function deleteUserSessions(store: Pick<ArchiveStore, 'listUserSessions' | 'deleteSession'>, tenant: string, userId: string): Promise<DeleteReceipt> {
  const total = { ...EMPTY_RECEIPT };
  for (const sessionId of await store.listUserSessions(tenant, userId)) {
    addReceipt(total, await store.deleteSession({ tenant, sessionId }));
  }
  return total;
}

/** Adds `r` to `total`, field by field (the receipt of a deletion of several sessions). */
export function addReceipt(total: DeleteReceipt, r: DeleteReceipt): DeleteReceipt {
  for (const k of Object.keys(total) as Array<keyof DeleteReceipt>) total[k] += r[k];
  return total;
}
