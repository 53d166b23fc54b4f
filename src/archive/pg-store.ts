import { concat } from '../codec/codec.js';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import { searchText } from '../message.js';
import type { Db, Sql } from '../postgres/db.js';
import type { ArchivedTurn, Clock, SessionRef } from '../types.js';
import { systemClock } from '../types.js';
import type { FileIndex, SegmentEntry } from './file.js';
import { checkedImport, encodeMetaRecord, encodeSummaryRecord, indexFile, readTurns, segmentsFor } from './file.js';
import { RECORD_TYPES, encodeRecord } from './format.js';
import type { ArchiveOptions } from './options.js';
import { resolveArchiveOptions } from './options.js';
import type { TextLayout } from './segment.js';
import { decodeSegment, embeddingDims, encodeSegment, scoreEmbeddings } from './segment.js';
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
import { addReceipt, expiryCutoff, validateQuery, validateRange, validateSummary, validateTurns } from './validate.js';
import { norm } from './vectors.js';

export type PgArchiveOptions = Omit<ArchiveOptions, 'dataDir' | 'lock' | 'indexCacheSize' | 'commitWaitMs' | 'writeHook'> & { db: Db; clock?: Clock };

/** A row of `archive_sessions`, numbers parsed. */
interface SessionRow {
  live: boolean;
  userId: string | null;
  createdAt: number;
  highWater: number;
  deletedUpTo: number;
  fence: number;
  turnCount: number;
  firstTurnAt: number | null;
  lastTurnAt: number | null;
  bytes: number;
  segments: number;
  nextSeq: number;
  embedderId: string | null;
  dims: number;
}

const SESSION_COLUMNS = `live, user_id, created_at::float8 AS created_at, high_water::float8 AS high_water, deleted_up_to::float8 AS deleted_up_to, fence::float8 AS fence,
  turn_count::float8 AS turn_count, first_turn_at::float8 AS first_turn_at, last_turn_at::float8 AS last_turn_at, bytes::float8 AS bytes, segments, next_seq, embedder_id, dims`;

function toRow(r: Record<string, unknown>): SessionRow {
  return {
    live: r.live as boolean,
    userId: (r.user_id as string | null) ?? null,
    createdAt: r.created_at as number,
    highWater: r.high_water as number,
    deletedUpTo: r.deleted_up_to as number,
    fence: r.fence as number,
    turnCount: r.turn_count as number,
    firstTurnAt: (r.first_turn_at as number | null) ?? null,
    lastTurnAt: (r.last_turn_at as number | null) ?? null,
    bytes: r.bytes as number,
    segments: r.segments as number,
    nextSeq: r.next_seq as number,
    embedderId: (r.embedder_id as string | null) ?? null,
    dims: r.dims as number,
  };
}

/** One segment record (docs/format.md bytes) with the columns the queries filter on. */
interface NewSegment {
  record: Uint8Array;
  firstTurn: number;
  lastTurn: number;
  count: number;
  vectors: number;
  embedderId: string | null;
  firstAt: number;
  lastAt: number;
  dims: number;
}

const EMPTY_RECEIPT: DeleteReceipt = Object.freeze({ sessions: 0, turns: 0, bytes: 0, vectors: 0, summaries: 0 });

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
 */
export class PgArchiveStore implements ArchiveStore {
  private readonly db: Db;
  private readonly clock: Clock;
  private readonly options: ReturnType<typeof resolveArchiveOptions>;
  private closed = false;

  constructor(options: PgArchiveOptions) {
    const { db, ...rest } = options;
    // The segment options are the fs driver's (codec, layout, encoding, sizes), validated alike.
    this.options = resolveArchiveOptions({ ...rest, dataDir: '(postgres)' });
    this.clock = options.clock ?? systemClock;
    this.db = db.acquire();
  }

  private check(): void {
    if (this.closed) throw new StrataError('STRATA_ERR_CLOSED', 'the archive store is closed');
  }

  private ref(ref: SessionRef): SessionRef {
    return { tenant: validateId('tenant', ref?.tenant), sessionId: validateId('session', ref?.sessionId) };
  }

  private label(ref: SessionRef): string {
    return `postgres:${ref.tenant}/${ref.sessionId}`;
  }

  // ---------------------------------------------------------------- rows

  private async sessionRow(sql: Sql, ref: SessionRef, lock: '' | 'FOR UPDATE' | 'FOR SHARE' = ''): Promise<SessionRow | null> {
    const { rows } = await sql.query(`SELECT ${SESSION_COLUMNS} FROM archive_sessions WHERE tenant = $1 AND session_id = $2 ${lock}`, [ref.tenant, ref.sessionId]);
    return rows[0] ? toRow(rows[0] as Record<string, unknown>) : null;
  }

  /** The session's row, created when missing, locked for this transaction (the commit lock). */
  private async lockSession(sql: Sql, ref: SessionRef): Promise<SessionRow> {
    await sql.query('INSERT INTO archive_sessions (tenant, session_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [ref.tenant, ref.sessionId, this.clock.now()]);
    return (await this.sessionRow(sql, ref, 'FOR UPDATE'))!;
  }

  private checkFence(ref: SessionRef, row: SessionRow, fence: number | null | undefined): void {
    if (fence !== null && fence !== undefined && fence < row.fence) {
      throw new StrataError('STRATA_ERR_FENCED', `a commit to ${this.label(ref)} carries fencing number ${fence}, below ${row.fence} already committed: its lease expired and another holder took over`, { details: { fence, committed: row.fence } });
    }
  }

  /** The session's segments (those overlapping `range`), as one file's bytes and its index. */
  private async load(sql: Sql, ref: SessionRef, range: TurnRange = {}, embedderId?: string): Promise<{ index: FileIndex; bytes: Uint8Array }> {
    const params: unknown[] = [ref.tenant, ref.sessionId, range.fromTurn ?? 0, range.toTurn ?? Number.MAX_SAFE_INTEGER];
    if (embedderId !== undefined) params.push(embedderId);
    const { rows } = await sql.query<{ record: Buffer }>(
      `SELECT record FROM archive_segments WHERE tenant = $1 AND session_id = $2 AND last_turn >= $3 AND first_turn <= $4 ${embedderId !== undefined ? 'AND embedder_id = $5' : ''} ORDER BY seq`,
      params,
    );
    const bytes = rows.length === 1 ? new Uint8Array(rows[0]!.record.buffer, rows[0]!.record.byteOffset, rows[0]!.record.byteLength) : concat(rows.map((r) => r.record));
    return { index: indexFile(this.label(ref), bytes), bytes };
  }

  private body(bytes: Uint8Array): (s: SegmentEntry) => Promise<Uint8Array> {
    return async (s) => bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength);
  }

  private encode(turns: readonly ArchivedTurn[], embedderId: string | null): NewSegment[] {
    const codec = this.options.textCodec;
    let layout: TextLayout;
    if (this.options.textLayout === 'auto') layout = codec.id >= 0x10 && codec.id <= 0x11 ? 'turn' : 'block';
    else layout = this.options.textLayout;
    const out: NewSegment[] = [];
    for (let i = 0; i < turns.length; i += this.options.maxSegmentTurns) {
      const chunk = turns.slice(i, i + this.options.maxSegmentTurns);
      const record = encodeRecord(RECORD_TYPES.segment, encodeSegment(chunk, { codec, layout, encoding: this.options.embeddingEncoding, embedderId }));
      out.push(segmentOf(record, 'postgres: new segment'));
    }
    return out;
  }

  private async insertSegments(sql: Sql, ref: SessionRef, firstSeq: number, segments: readonly NewSegment[]): Promise<void> {
    if (segments.length === 0) return;
    await sql.query(
      `INSERT INTO archive_segments (tenant, session_id, seq, first_turn, last_turn, turn_count, vectors, embedder_id, record)
        SELECT $1, $2, $3 + ord - 1, f, l, c, v, e, r FROM unnest($4::bigint[], $5::bigint[], $6::int[], $7::int[], $8::text[], $9::bytea[]) WITH ORDINALITY AS u(f, l, c, v, e, r, ord)`,
      [ref.tenant, ref.sessionId, firstSeq, segments.map((s) => s.firstTurn), segments.map((s) => s.lastTurn), segments.map((s) => s.count), segments.map((s) => s.vectors), segments.map((s) => s.embedderId), segments.map((s) => Buffer.from(s.record.buffer, s.record.byteOffset, s.record.byteLength))],
    );
  }

  /** Journal rows of the session that the archive now covers: archived, or below the deletion floor. */
  private async dropJournaled(sql: Sql, ref: SessionRef, upTo: number): Promise<void> {
    if (upTo <= 0) return;
    await sql.query('DELETE FROM journal WHERE tenant = $1 AND session_id = $2 AND turn_id <= $3', [ref.tenant, ref.sessionId, upTo]);
  }

  // ---------------------------------------------------------------- reading

  async read(ref: SessionRef, range?: TurnRange): Promise<ArchivedTurn[]> {
    this.check();
    const r = validateRange(range);
    const s = this.ref(ref);
    const { index, bytes } = await this.load(this.db, s, r);
    return readTurns(index, r, this.body(bytes), { maxDecodedBytes: this.options.maxDecodedBytes });
  }

  async info(ref: SessionRef): Promise<ArchiveSessionInfo | null> {
    this.check();
    const s = this.ref(ref);
    const row = await this.sessionRow(this.db, s);
    return row && row.live ? toInfo(s, row) : null;
  }

  async listSessions(tenant: string, options: ListOptions = {}): Promise<{ sessions: ArchiveSessionInfo[]; nextCursor: string | null }> {
    this.check();
    validateId('tenant', tenant);
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new StrataError('STRATA_ERR_VALIDATION', `limit: expected an integer from 1 to 1000, received ${String(limit)}`);
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
    validateQuery(query, topK);
    if (typeof scope !== 'object' || scope === null) throw new StrataError('STRATA_ERR_VALIDATION', 'scope: expected {tenant, sessionIds} or {tenant, userId}');
    const tenant = validateId('tenant', scope.tenant);
    let sessionIds: readonly string[];
    if ('userId' in scope) sessionIds = await this.listUserSessions(tenant, scope.userId);
    else if (Array.isArray(scope.sessionIds)) sessionIds = scope.sessionIds.map((id) => validateId('session', id));
    else throw new StrataError('STRATA_ERR_VALIDATION', 'scope: expected {tenant, sessionIds} or {tenant, userId}');
    const qn = norm(query);
    let hits: EmbeddingHit[] = [];
    for (const sessionId of new Set(sessionIds)) {
      const ref = { tenant, sessionId };
      const row = await this.sessionRow(this.db, ref);
      // Only the session's current embedder: vectors of an older model are not comparable.
      if (!row?.live || row.embedderId === null) continue;
      const { index, bytes } = await this.load(this.db, ref, {}, row.embedderId);
      if (index.versionError) throw index.versionError;
      const seen = new Set<number>();
      for (const s of segmentsFor(index)) {
        const h = s.header!;
        if (h.encoding === 'none' || h.embedderId !== row.embedderId) continue;
        if (h.dims !== query.length) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `query has ${query.length} dimensions, session ${sessionId} stores ${h.dims}-dimension vectors`, { details: { sessionId, expected: h.dims, received: query.length } });
        const scores = scoreEmbeddings(bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength), h, { file: index.file, segment: s.ordinal }, query, qn);
        for (let i = 0; i < scores.length; i++) {
          const id = s.ids![i]!;
          if (Number.isNaN(scores[i]!) || seen.has(id)) continue;
          seen.add(id);
          hits.push({ sessionId, turnId: id, score: scores[i]! });
        }
        if (hits.length > 4 * topK + 1024) hits = topHits(hits, topK);
      }
    }
    return topHits(hits, topK);
  }

  async loadSummaries(ref: SessionRef): Promise<Summary[]> {
    this.check();
    const s = this.ref(ref);
    const { rows } = await this.db.query(
      'SELECT from_turn::float8 AS f, to_turn::float8 AS t, text, created_at::float8 AS c FROM archive_summaries WHERE tenant = $1 AND session_id = $2 ORDER BY from_turn, to_turn',
      [s.tenant, s.sessionId],
    );
    return rows.map((r) => ({ fromTurn: r.f as number, toTurn: r.t as number, text: r.text as string, createdAt: r.c as number }));
  }

  async deletedUpTo(ref: SessionRef): Promise<number> {
    this.check();
    return (await this.sessionRow(this.db, this.ref(ref)))?.deletedUpTo ?? 0;
  }

  async committedTurn(ref: SessionRef, turnId: number): Promise<ArchivedTurn | null> {
    this.check();
    const s = this.ref(ref);
    // FOR SHARE waits for a commit holding the row lock: no commit is half way for this read.
    return this.db.tx('reading a committed turn', async (sql) => {
      const row = await this.sessionRow(sql, s, 'FOR SHARE');
      if (!row?.live) return null;
      const { index, bytes } = await this.load(sql, s, { fromTurn: turnId, toTurn: turnId });
      return (await readTurns(index, { fromTurn: turnId, toTurn: turnId }, this.body(bytes), { maxDecodedBytes: this.options.maxDecodedBytes }))[0] ?? null;
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
      const row = await this.sessionRow(sql, s, 'FOR SHARE');
      if (!row?.live) throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${s.tenant}/${s.sessionId} has no archive`);
      const { bytes } = await this.load(sql, s);
      const summaries = await this.summariesOf(sql, s);
      const parts: Uint8Array[] = [encodeMetaRecord({ userId: row.userId, highWater: row.highWater, createdAt: row.createdAt }), bytes];
      for (const summary of summaries) parts.push(encodeSummaryRecord(summary));
      const fresh = extra.filter((t) => t.turnId > row.highWater);
      for (const seg of this.encode(fresh, null)) parts.push(seg.record);
      return concat(parts);
    });
  }

  private async summariesOf(sql: Sql, ref: SessionRef): Promise<Summary[]> {
    const { rows } = await sql.query('SELECT from_turn::float8 AS f, to_turn::float8 AS t, text, created_at::float8 AS c FROM archive_summaries WHERE tenant = $1 AND session_id = $2 ORDER BY from_turn, to_turn', [ref.tenant, ref.sessionId]);
    return rows.map((r) => ({ fromTurn: r.f as number, toTurn: r.t as number, text: r.text as string, createdAt: r.c as number }));
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
    const s = this.ref(ref);
    validateTurns(turns);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const embedderId = options.embedderId ?? null;
    if (embedderId !== null && (typeof embedderId !== 'string' || embedderId.length === 0 || embedderId.length > 255)) throw new StrataError('STRATA_ERR_VALIDATION', 'embedderId: expected a string of 1-255 characters');
    const dims = embeddingDims(turns);
    if (turns.length === 0 && userId === undefined) {
      const row = await this.sessionRow(this.db, s);
      if (row?.live) return { appended: 0, skipped: 0, highWater: row.highWater };
    }
    return this.db.tx('an archive commit', async (sql) => {
      const row = await this.lockSession(sql, s);
      this.checkFence(s, row, options.fence);
      // Under the row lock: a compaction re-checks its lease here, so nothing commits after a
      // writer read this session's archive to decide whether to void its turn.
      await options.precommit?.();
      if (userId !== undefined && row.userId && row.userId !== userId) throw new StrataError('STRATA_ERR_CONFLICT', `session ${s.sessionId} belongs to user ${row.userId}, not ${userId}`);
      if (dims > 0 && row.dims > 0 && row.dims !== dims && row.embedderId === embedderId) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `embeddings have ${dims} dimensions, session ${s.sessionId} stores ${row.dims} for embedder ${embedderId ?? '(none)'}`, { details: { expected: row.dims, received: dims } });
      const floor = Math.max(row.highWater, row.deletedUpTo);
      const fresh = turns.filter((t) => t.turnId > floor);
      const segments = this.encode(fresh, embedderId);
      await this.insertSegments(sql, s, row.nextSeq, segments);
      const highWater = Math.max(floor, fresh.at(-1)?.turnId ?? 0);
      const withVectors = segments.filter((x) => x.dims > 0).at(-1);
      await sql.query(
        `UPDATE archive_sessions SET live = true, user_id = coalesce(user_id, $3), high_water = $4, fence = greatest(fence, $5),
            turn_count = turn_count + $6, first_turn_at = coalesce(first_turn_at, $7), last_turn_at = coalesce($8, last_turn_at),
            bytes = bytes + $9, segments = segments + $10, next_seq = next_seq + $10, embedder_id = coalesce($11, embedder_id), dims = coalesce($12, dims)
          WHERE tenant = $1 AND session_id = $2`,
        [s.tenant, s.sessionId, userId ?? null, highWater, options.fence ?? 0, fresh.length, segments[0]?.firstAt ?? null, segments.at(-1)?.lastAt ?? null, segments.reduce((n, x) => n + x.record.length, 0), segments.length, withVectors?.embedderId ?? null, withVectors?.dims ?? null],
      );
      if (options.keysSince !== undefined) await sql.query('DELETE FROM archive_idempotency WHERE tenant = $1 AND session_id = $2 AND created_at < $3', [s.tenant, s.sessionId, options.keysSince]);
      const keys = (options.idempotency ?? []).filter((e) => e.createdAt >= (options.keysSince ?? 0));
      if (keys.length > 0) {
        await sql.query(
          `INSERT INTO archive_idempotency (tenant, session_id, key, turn_id, hash, created_at)
            SELECT $1, $2, k, n, h, c FROM unnest($3::text[], $4::bigint[], $5::text[], $6::bigint[]) AS u(k, n, h, c) ON CONFLICT DO NOTHING`,
          [s.tenant, s.sessionId, keys.map((k) => k.key), keys.map((k) => k.turnId), keys.map((k) => k.hash), keys.map((k) => k.createdAt)],
        );
      }
      // Archived and no longer pending in any instance's journal: one commit.
      await this.dropJournaled(sql, s, highWater);
      if (row.segments + segments.length > this.options.compactAfterSegments) await this.compactLocked(sql, s, { ...row, highWater, userId: row.userId ?? userId ?? null });
      return { appended: fresh.length, skipped: turns.length - fresh.length, highWater };
    });
  }

  async saveSummary(ref: SessionRef, summary: Summary): Promise<void> {
    this.check();
    const s = this.ref(ref);
    const v = validateSummary(summary);
    await this.db.tx('saving a summary', async (sql) => {
      await this.lockSession(sql, s);
      await sql.query('UPDATE archive_sessions SET live = true WHERE tenant = $1 AND session_id = $2', [s.tenant, s.sessionId]);
      await sql.query(
        `INSERT INTO archive_summaries (tenant, session_id, from_turn, to_turn, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)
          ON CONFLICT (tenant, session_id, from_turn, to_turn) DO UPDATE SET text = excluded.text, created_at = excluded.created_at`,
        [s.tenant, s.sessionId, v.fromTurn, v.toTurn, v.text, v.createdAt],
      );
    });
  }

  async compact(ref: SessionRef): Promise<void> {
    this.check();
    const s = this.ref(ref);
    await this.db.tx('compacting a session', async (sql) => {
      const row = await this.lockSession(sql, s);
      if (row.live) await this.compactLocked(sql, s, row);
    });
  }

  /** Rewrites the session as merged segments (one embedder per segment), without `drop`; summaries covering a dropped turn go too. */
  private async compactLocked(sql: Sql, ref: SessionRef, row: SessionRow, drop?: ReadonlySet<number>): Promise<{ removed: ArchivedTurn[]; summaries: number; bytesBefore: number } | null> {
    const { index, bytes } = await this.load(sql, ref);
    assertWritable(index);
    if (!drop && index.segments.length <= 1) return null;
    const all = await allTurnsWithEmbedder(index, bytes, this.options.maxDecodedBytes);
    const removed = drop ? all.filter((t) => drop.has(t.turn.turnId)).map((t) => t.turn) : [];
    const keep = drop ? all.filter((t) => !drop.has(t.turn.turnId)) : all;
    let summaries = 0;
    if (removed.length > 0) {
      const { rowCount } = await sql.query(
        'DELETE FROM archive_summaries s USING unnest($3::bigint[]) AS d(id) WHERE s.tenant = $1 AND s.session_id = $2 AND d.id BETWEEN s.from_turn AND s.to_turn',
        [ref.tenant, ref.sessionId, removed.map((t) => t.turnId)],
      );
      summaries = rowCount ?? 0;
    }
    await this.rewrite(sql, ref, row, keep);
    return { removed, summaries, bytesBefore: index.size };
  }

  /** Replaces every segment row of the session by `keep` and recomputes the session's statistics. */
  private async rewrite(sql: Sql, ref: SessionRef, row: SessionRow, keep: ReadonlyArray<{ turn: ArchivedTurn; embedderId: string | null }>): Promise<void> {
    const segments: NewSegment[] = [];
    let run: ArchivedTurn[] = [];
    let runEmbedder: string | null = null;
    const flush = (): void => {
      segments.push(...this.encode(run, runEmbedder));
      run = [];
    };
    for (const { turn, embedderId } of keep) {
      if (run.length > 0 && embedderId !== runEmbedder) flush();
      runEmbedder = embedderId;
      run.push(turn);
    }
    if (run.length > 0) flush();
    await sql.query('DELETE FROM archive_segments WHERE tenant = $1 AND session_id = $2', [ref.tenant, ref.sessionId]);
    await this.insertSegments(sql, ref, row.nextSeq, segments);
    await this.updateStats(sql, ref, row.nextSeq + segments.length, segments);
  }

  private async updateStats(sql: Sql, ref: SessionRef, nextSeq: number, segments: readonly NewSegment[]): Promise<void> {
    const index = indexFile(this.label(ref), concat(segments.map((x) => x.record)));
    await sql.query(
      `UPDATE archive_sessions SET turn_count = $3, first_turn_at = $4, last_turn_at = $5, bytes = $6, segments = $7, next_seq = $8, embedder_id = $9, dims = $10,
          high_water = greatest(high_water, $11) WHERE tenant = $1 AND session_id = $2`,
      [ref.tenant, ref.sessionId, index.turnCount, index.firstTurnAt, index.lastTurnAt, index.size, index.segments.length, nextSeq, index.embedderId, index.dims, index.highWater],
    );
  }

  async reembed(ref: SessionRef, embedderId: string, embed: (texts: string[]) => Promise<Float32Array[]>): Promise<{ turns: number }> {
    this.check();
    const s = this.ref(ref);
    return this.db.tx('re-embedding a session', async (sql) => {
      const row = await this.lockSession(sql, s);
      if (!row.live) throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${s.sessionId} has no archive`);
      const { index, bytes } = await this.load(sql, s);
      assertWritable(index);
      const all = await allTurnsWithEmbedder(index, bytes, this.options.maxDecodedBytes);
      const stale = all.filter((t) => t.embedderId !== embedderId || !t.turn.embedding);
      if (stale.length === 0) return { turns: 0 };
      const vectors = await embed(stale.map((t) => searchText(t.turn)));
      if (vectors.length !== stale.length) throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedder returned ${vectors.length} vectors for ${stale.length} texts`);
      stale.forEach((t, i) => {
        t.turn.embedding = vectors[i]!;
        t.embedderId = embedderId;
      });
      await this.rewrite(sql, s, row, all);
      return { turns: stale.length };
    });
  }

  async deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt> {
    this.check();
    const s = this.ref(ref);
    if (!Array.isArray(turnIds) || !turnIds.every((id) => Number.isInteger(id) && id >= 1)) throw new StrataError('STRATA_ERR_VALIDATION', 'turnIds: expected an array of positive integers');
    if (turnIds.length === 0) return { ...EMPTY_RECEIPT };
    return this.db.tx('deleting turns', async (sql) => {
      const row = await this.lockSession(sql, s);
      if (!row.live) return { ...EMPTY_RECEIPT };
      const r = await this.compactLocked(sql, s, row, new Set(turnIds));
      if (!r || r.removed.length === 0) return { ...EMPTY_RECEIPT };
      const after = (await this.sessionRow(sql, s))!.bytes;
      return { sessions: 0, turns: r.removed.length, bytes: Math.max(0, r.bytesBefore - after), vectors: r.removed.filter((t) => t.embedding).length, summaries: r.summaries };
    });
  }

  async deleteSession(ref: SessionRef, options: DeleteSessionOptions = {}): Promise<DeleteReceipt> {
    this.check();
    const s = this.ref(ref);
    return this.db.tx('deleting a session', async (sql) => {
      const row = await this.lockSession(sql, s);
      this.checkFence(s, row, options.fence);
      return this.deleteLocked(sql, s, row, options.upTo ?? 0, options.fence ?? 0);
    });
  }

  /**
   * The floor, the rows and the journal rows it covers go in one transaction: from its commit no
   * reader, replay or instance's journal brings these turns back. Idempotency keys stay (a late
   * retry of a deleted message answers its old id and stores nothing).
   */
  private async deleteLocked(sql: Sql, ref: SessionRef, row: SessionRow, upTo: number, fence: number): Promise<DeleteReceipt> {
    const floor = Math.max(row.deletedUpTo, upTo, row.highWater);
    let receipt = { ...EMPTY_RECEIPT };
    if (row.live) {
      const { rows } = await sql.query<{ vectors: number }>('SELECT coalesce(sum(vectors), 0)::float8 AS vectors FROM archive_segments WHERE tenant = $1 AND session_id = $2', [ref.tenant, ref.sessionId]);
      const summaries = await sql.query('DELETE FROM archive_summaries WHERE tenant = $1 AND session_id = $2', [ref.tenant, ref.sessionId]);
      await sql.query('DELETE FROM archive_segments WHERE tenant = $1 AND session_id = $2', [ref.tenant, ref.sessionId]);
      receipt = { sessions: 1, turns: row.turnCount, bytes: row.bytes, vectors: rows[0]!.vectors, summaries: summaries.rowCount ?? 0 };
    }
    await sql.query(
      `UPDATE archive_sessions SET live = false, user_id = NULL, deleted_up_to = $3, high_water = greatest(high_water, $3), fence = greatest(fence, $4),
          turn_count = 0, first_turn_at = NULL, last_turn_at = NULL, bytes = 0, segments = 0, embedder_id = NULL, dims = 0
        WHERE tenant = $1 AND session_id = $2`,
      [ref.tenant, ref.sessionId, floor, fence],
    );
    await this.dropJournaled(sql, ref, floor);
    return receipt;
  }

  async deleteUser(tenant: string, userId: string): Promise<DeleteReceipt> {
    this.check();
    const total = { ...EMPTY_RECEIPT };
    for (const sessionId of await this.listUserSessions(tenant, userId)) {
      addReceipt(total, await this.deleteSession({ tenant, sessionId }));
    }
    return total;
  }

  async cleanupExpiredSessions(maxAgeDays: number): Promise<number> {
    this.check();
    const cutoff = expiryCutoff(maxAgeDays, this.clock.now());
    const { rows } = await this.db.query<{ tenant: string; session_id: string }>('SELECT tenant, session_id FROM archive_sessions WHERE live AND coalesce(last_turn_at, created_at) < $1', [cutoff]);
    let deleted = 0;
    for (const r of rows) {
      const ref = { tenant: r.tenant, sessionId: r.session_id };
      const gone = await this.db.tx('deleting an expired session', async (sql) => {
        const row = await this.lockSession(sql, ref);
        // Re-checked under the lock: a turn may have arrived since the scan.
        if (!row.live || (row.lastTurnAt ?? row.createdAt) >= cutoff) return false;
        return (await this.deleteLocked(sql, ref, row, 0, 0)).sessions > 0;
      });
      if (gone) deleted++;
    }
    return deleted;
  }

  async importSession(ref: SessionRef, file: Uint8Array, options: { userId?: string } = {}): Promise<ArchiveSessionInfo> {
    this.check();
    const s = this.ref(ref);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const index = await checkedImport(`import of ${s.tenant}/${s.sessionId}`, file, this.options.maxDecodedBytes);
    const segments = index.segments.map((e) => segmentOf(file.subarray(e.recordOffset, e.bodyOffset + e.bodyLength), index.file));
    const owner = userId ?? index.meta.userId ?? null;
    return this.db.tx('importing a session', async (sql) => {
      const row = await this.lockSession(sql, s);
      if (row.live) throw new StrataError('STRATA_ERR_CONFLICT', `session ${s.tenant}/${s.sessionId} already has an archive`);
      await sql.query('DELETE FROM archive_segments WHERE tenant = $1 AND session_id = $2', [s.tenant, s.sessionId]);
      await sql.query('DELETE FROM archive_summaries WHERE tenant = $1 AND session_id = $2', [s.tenant, s.sessionId]);
      await this.insertSegments(sql, s, row.nextSeq, segments);
      for (const summary of index.summaries) {
        await sql.query('INSERT INTO archive_summaries (tenant, session_id, from_turn, to_turn, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)', [s.tenant, s.sessionId, summary.fromTurn, summary.toTurn, summary.text, summary.createdAt]);
      }
      await sql.query('UPDATE archive_sessions SET live = true, user_id = $3, high_water = greatest(high_water, $4), created_at = coalesce($5, created_at) WHERE tenant = $1 AND session_id = $2', [
        s.tenant,
        s.sessionId,
        owner,
        index.highWater,
        index.meta.createdAt ?? null,
      ]);
      await this.updateStats(sql, s, row.nextSeq + segments.length, segments);
      await this.dropJournaled(sql, s, index.highWater);
      return toInfo(s, (await this.sessionRow(sql, s))!);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.release();
  }
}

/** Columns of one segment record, from its own header (verified as any file's). */
function segmentOf(record: Uint8Array, label: string): NewSegment {
  const index = indexFile(label, record);
  const e = index.segments[0];
  if (!e?.header || e.error) throw e?.error ?? new StrataError('STRATA_ERR_INTERNAL', 'a segment record did not index');
  const h = e.header;
  let vectors = 0;
  if (h.encoding !== 'none') {
    const body = record.subarray(e.bodyOffset, e.bodyOffset + e.bodyLength);
    const block = h.blocks.find((x) => x.kind === 7)!;
    for (let i = 0; i < h.count; i++) if (body[block.offset + (i >> 3)]! & (1 << (i & 7))) vectors++;
  }
  return { record, firstTurn: h.firstTurn, lastTurn: h.lastTurn, count: h.count, vectors, embedderId: h.encoding === 'none' ? null : h.embedderId, firstAt: e.firstAt!, lastAt: e.lastAt!, dims: h.encoding === 'none' ? 0 : h.dims };
}

function assertWritable(index: FileIndex): void {
  if (index.versionError) throw index.versionError;
  const d = index.damage[0];
  if (d) throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${d.message}; the session is read-only until repaired or re-imported`, { details: { file: index.file, offset: d.offset, segment: d.segment, block: d.block } });
}

async function allTurnsWithEmbedder(index: FileIndex, bytes: Uint8Array, maxDecodedBytes: number): Promise<Array<{ turn: ArchivedTurn; embedderId: string | null }>> {
  const out = new Map<number, { turn: ArchivedTurn; embedderId: string | null }>();
  for (const s of segmentsFor(index)) {
    const turns = decodeSegment(bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength), s.header!, { file: index.file, segment: s.ordinal }, { maxDecodedBytes });
    for (const t of turns) if (!out.has(t.turnId)) out.set(t.turnId, { turn: t, embedderId: s.header!.encoding === 'none' ? null : s.header!.embedderId });
  }
  return [...out.values()].sort((a, b) => a.turn.turnId - b.turn.turnId);
}

function toInfo(ref: SessionRef, row: SessionRow): ArchiveSessionInfo {
  return {
    tenant: ref.tenant,
    sessionId: ref.sessionId,
    userId: row.userId,
    turnCount: row.turnCount,
    highWater: row.highWater,
    firstTurnAt: row.firstTurnAt,
    lastTurnAt: row.lastTurnAt,
    bytes: row.bytes,
    segments: row.segments,
    embedderId: row.embedderId,
  };
}

function topHits(hits: EmbeddingHit[], k: number): EmbeddingHit[] {
  return hits.sort((a, b) => b.score - a.score || a.sessionId.localeCompare(b.sessionId) || a.turnId - b.turnId).slice(0, k);
}
