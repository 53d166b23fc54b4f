import { concat } from '../codec/codec.js';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import type { Db } from '../postgres/db.js';
import type { ArchivedTurn, Clock, SessionRef } from '../types.js';
import { systemClock } from '../types.js';
import { encodeMetaRecord, encodeSummaryRecord, readTurns } from './file.js';
import type { ArchiveOptions, ResolvedArchiveOptions } from './options.js';
import { resolveArchiveOptions } from './options.js';
import { cleanupExpiredSessions, deleteSession } from './pg-delete.js';
import { compact, deleteTurns, reembed } from './pg-rewrite.js';
import { SESSION_COLUMNS, SessionRows, bodyOf, toInfo, toRow } from './pg-rows.js';
import { append, importSession, saveSummary } from './pg-write.js';
import type {
  AppendOptions,
  AppendResult,
  ArchiveSessionInfo,
  ArchiveStats,
  ArchiveStore,
  DeleteReceipt,
  DeleteSessionOptions,
  EmbeddingHit,
  IdempotencyEntry,
  ListOptions,
  SearchScope,
  Summary,
  TurnRange,
} from './store.js';
import { deleteUserSessions, listLimit, validateRange, validateTurns } from './validate.js';
import { EmbeddingScan, searchScope } from './vector-scan.js';

export type PgArchiveOptions = Omit<ArchiveOptions, 'dataDir' | 'lock' | 'indexCacheSize' | 'commitWaitMs' | 'writeHook'> & { db: Db; clock?: Clock };

/**
 * The `postgres` driver of `ArchiveStore` (schema: src/postgres/schema.ts, docs/postgres.md).
 *
 * A session's segments are rows holding the same segment records a session file holds (record
 * header, columnar body, CRCs; STORAGE EXTERNAL, so PostgreSQL never recompresses compressed
 * text); reads concatenate the rows they need and use the file reader, so damage detection,
 * merging and decoding are the fs driver's. Sessions, summaries, idempotency keys and the owner
 * (the user index) are rows.
 *
 * Every change of a session runs in one transaction holding its `archive_sessions` row lock
 * (`SELECT … FOR UPDATE`): that row is the commit lock, the fencing number and the deletion
 * floor. A commit carrying a lower fencing number than one committed is refused
 * (STRATA_ERR_FENCED) and changes nothing. The same transaction deletes the session's journal
 * rows its new high-water mark (or deletion floor) covers, so "archived" and "no longer
 * pending" commit together, whichever instance journaled them.
 *
 * This class reads; the writes are in pg-write.ts (appends, summaries, imports), pg-rewrite.ts
 * (compaction, deletion of turns, re-embedding) and pg-delete.ts (sessions, retention), all
 * through the queries of `SessionRows` (pg-rows.ts).
 */
export class PgArchiveStore implements ArchiveStore {
  private readonly db: Db;
  private readonly options: ResolvedArchiveOptions;
  private readonly rows: SessionRows;
  private closed = false;

  constructor(options: PgArchiveOptions) {
    const { db, ...rest } = options;
    // The segment options are the fs driver's (codec, layout, encoding, sizes), validated alike.
    this.options = resolveArchiveOptions({ ...rest, dataDir: '(postgres)' });
    this.db = db.acquire();
    this.rows = new SessionRows(this.db, options.clock ?? systemClock, this.options);
  }

  private check(): void {
    if (this.closed) throw new StrataError('STRATA_ERR_CLOSED', 'the archive store is closed');
  }

  private ref(ref: SessionRef): SessionRef {
    return { tenant: validateId('tenant', ref?.tenant), sessionId: validateId('session', ref?.sessionId) };
  }

  // ---------------------------------------------------------------- reading

  async read(ref: SessionRef, range?: TurnRange): Promise<ArchivedTurn[]> {
    this.check();
    const r = validateRange(range);
    const s = this.ref(ref);
    const { index, bytes } = await this.rows.load(this.db, s, r);
    return readTurns(index, r, bodyOf(bytes), { maxDecodedBytes: this.options.maxDecodedBytes });
  }

  async info(ref: SessionRef): Promise<ArchiveSessionInfo | null> {
    this.check();
    const s = this.ref(ref);
    const row = await this.rows.sessionRow(this.db, s);
    return row && row.live ? toInfo(s, row) : null;
  }

  async listSessions(tenant: string, options: ListOptions = {}): Promise<{ sessions: ArchiveSessionInfo[]; nextCursor: string | null }> {
    this.check();
    validateId('tenant', tenant);
    const limit = listLimit(options);
    const cursor = options.cursor ?? null;
    if (cursor !== null && (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]+$/.test(cursor))) throw new StrataError('STRATA_ERR_VALIDATION', 'cursor: expected a cursor returned by listSessions');
    const after = cursor === null ? '' : Buffer.from(cursor, 'base64url').toString('utf8');
    const { rows } = await this.db.query(`SELECT session_id, ${SESSION_COLUMNS} FROM archive_sessions WHERE tenant = $1 AND live AND session_id > $2 ORDER BY session_id LIMIT $3`, [tenant, after, limit + 1]);
    const page = rows.slice(0, limit);
    const sessions = page.map((r) => toInfo({ tenant, sessionId: r.session_id as string }, toRow(r)));
    return { sessions, nextCursor: rows.length > limit ? Buffer.from(page.at(-1)!.session_id as string).toString('base64url') : null };
  }

  async listUserSessions(tenant: string, userId: string): Promise<string[]> {
    this.check();
    validateId('tenant', tenant);
    validateId('user', userId);
    const { rows } = await this.db.query<{ session_id: string }>('SELECT session_id FROM archive_sessions WHERE tenant = $1 AND user_id = $2 AND live ORDER BY session_id', [tenant, userId]);
    return rows.map((r) => r.session_id);
  }

  async searchByEmbedding(query: Float32Array, topK: number, scope: SearchScope): Promise<EmbeddingHit[]> {
    this.check();
    const { tenant, sessionIds } = await searchScope(query, topK, scope, (t, userId) => this.listUserSessions(t, userId));
    const scan = new EmbeddingScan(query, topK);
    for (const sessionId of sessionIds) {
      const ref = { tenant, sessionId };
      const row = await this.rows.sessionRow(this.db, ref);
      // Only the session's current embedder: vectors of an older model are not comparable.
      if (!row?.live || row.embedderId === null) continue;
      const { index, bytes } = await this.rows.load(this.db, ref, {}, row.embedderId);
      await scan.add(sessionId, index, row.embedderId, bodyOf(bytes));
    }
    return scan.top();
  }

  async loadSummaries(ref: SessionRef): Promise<Summary[]> {
    this.check();
    return this.rows.summariesOf(this.db, this.ref(ref));
  }

  async deletedUpTo(ref: SessionRef): Promise<number> {
    this.check();
    return (await this.rows.sessionRow(this.db, this.ref(ref)))?.deletedUpTo ?? 0;
  }

  async committedTurn(ref: SessionRef, turnId: number): Promise<ArchivedTurn | null> {
    this.check();
    const s = this.ref(ref);
    // FOR SHARE waits for a commit holding the row lock: no commit is half way for this read.
    return this.db.tx('reading a committed turn', async (sql) => {
      const row = await this.rows.sessionRow(sql, s, 'FOR SHARE');
      if (!row?.live) return null;
      const { index, bytes } = await this.rows.load(sql, s, { fromTurn: turnId, toTurn: turnId });
      return (await readTurns(index, { fromTurn: turnId, toTurn: turnId }, bodyOf(bytes), { maxDecodedBytes: this.options.maxDecodedBytes }))[0] ?? null;
    });
  }

  async idempotencyKeys(ref: SessionRef): Promise<IdempotencyEntry[]> {
    this.check();
    const s = this.ref(ref);
    const { rows } = await this.db.query('SELECT key, turn_id::float8 AS turn_id, hash, created_at::float8 AS created_at FROM archive_idempotency WHERE tenant = $1 AND session_id = $2', [s.tenant, s.sessionId]);
    return rows.map((r) => ({ key: r.key as string, turnId: r.turn_id as number, hash: r.hash as string, createdAt: r.created_at as number }));
  }

  async exportSession(ref: SessionRef, extra: readonly ArchivedTurn[] = []): Promise<Uint8Array> {
    this.check();
    const s = this.ref(ref);
    if (extra.length > 0) validateTurns(extra);
    return this.db.tx('exporting a session', async (sql) => {
      const row = await this.rows.sessionRow(sql, s, 'FOR SHARE');
      if (!row?.live) throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${s.tenant}/${s.sessionId} has no archive`);
      const { bytes } = await this.rows.load(sql, s);
      const summaries = await this.rows.summariesOf(sql, s);
      const parts: Uint8Array[] = [encodeMetaRecord({ userId: row.userId, highWater: row.highWater, createdAt: row.createdAt }), bytes];
      for (const summary of summaries) parts.push(encodeSummaryRecord(summary));
      const fresh = extra.filter((t) => t.turnId > row.highWater);
      for (const seg of await this.rows.encode(fresh, null)) parts.push(seg.record);
      return concat(parts);
    });
  }

  async stats(tenant?: string): Promise<ArchiveStats> {
    this.check();
    if (tenant !== undefined) validateId('tenant', tenant);
    const { rows } = await this.db.query(
      `SELECT count(*)::float8 AS sessions, coalesce(sum(turn_count), 0)::float8 AS turns, coalesce(sum(bytes), 0)::float8 AS bytes, coalesce(sum(segments), 0)::float8 AS segments
         FROM archive_sessions WHERE live AND ($1::text IS NULL OR tenant = $1)`,
      [tenant ?? null],
    );
    const r = rows[0]!;
    return { sessions: r.sessions as number, turns: r.turns as number, bytes: r.bytes as number, segments: r.segments as number };
  }

  // ---------------------------------------------------------------- writing

  async append(ref: SessionRef, turns: readonly ArchivedTurn[], options: AppendOptions = {}): Promise<AppendResult> {
    this.check();
    return append(this.rows, this.ref(ref), turns, options);
  }

  async saveSummary(ref: SessionRef, summary: Summary): Promise<void> {
    this.check();
    return saveSummary(this.rows, this.ref(ref), summary);
  }

  async importSession(ref: SessionRef, file: Uint8Array, options: { userId?: string } = {}): Promise<ArchiveSessionInfo> {
    this.check();
    return importSession(this.rows, this.ref(ref), file, options);
  }

  async compact(ref: SessionRef): Promise<void> {
    this.check();
    return compact(this.rows, this.ref(ref));
  }

  async reembed(ref: SessionRef, embedderId: string, embed: (texts: string[]) => Promise<Float32Array[]>): Promise<{ turns: number }> {
    this.check();
    return reembed(this.rows, this.ref(ref), embedderId, embed);
  }

  async deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt> {
    this.check();
    return deleteTurns(this.rows, this.ref(ref), turnIds);
  }

  async deleteSession(ref: SessionRef, options: DeleteSessionOptions = {}): Promise<DeleteReceipt> {
    this.check();
    return deleteSession(this.rows, this.ref(ref), options);
  }

  async deleteUser(tenant: string, userId: string): Promise<DeleteReceipt> {
    this.check();
    return deleteUserSessions(this, tenant, userId);
  }

  async cleanupExpiredSessions(maxAgeDays: number): Promise<number> {
    this.check();
    return cleanupExpiredSessions(this.rows, maxAgeDays);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.release();
  }
}
