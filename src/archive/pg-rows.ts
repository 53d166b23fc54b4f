import { concat } from '../codec/codec.js';
import { StrataError } from '../errors.js';
import type pg from 'pg';
import { copyByteaOut, integer, literal } from '../postgres/copy.js';
import { Db } from '../postgres/db.js';
import type { Sql } from '../postgres/db.js';
import type { ArchivedTurn, Clock, SessionRef } from '../types.js';
import type { FileIndex, SegmentEntry } from './file.js';
import { indexFile } from './file.js';
import type { ResolvedArchiveOptions } from './options.js';
import type { StoredTurn } from './rewrite.js';
import { rewriteRecords, segmentRecords } from './rewrite.js';
import { countVectors } from './segment-decode.js';
import type { ArchiveSessionInfo, Summary, TurnRange } from './store.js';

/*
 * The rows of the PostgreSQL driver (schema: src/postgres/schema.ts) and the queries every part
 * of `PgArchiveStore` shares: a session's row (its commit lock, fencing number and deletion
 * floor), its segment rows, its summaries, and the journal rows it covers.
 */

/** A row of `archive_sessions`, numbers parsed. */
export interface SessionRow {
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

export const SESSION_COLUMNS = `live, user_id, created_at::float8 AS created_at, high_water::float8 AS high_water, deleted_up_to::float8 AS deleted_up_to, fence::float8 AS fence,
  turn_count::float8 AS turn_count, first_turn_at::float8 AS first_turn_at, last_turn_at::float8 AS last_turn_at, bytes::float8 AS bytes, segments, next_seq, embedder_id, dims`;

export function toRow(r: Record<string, unknown>): SessionRow {
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
export interface NewSegment {
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

/** The queries on one database's archive tables, with the store's clock and segment options. */
export class SessionRows {
  constructor(
    readonly db: Db,
    readonly clock: Clock,
    readonly options: ResolvedArchiveOptions,
  ) {}

  /** The session's name in error messages and in the file index of its segments. */
  label(ref: SessionRef): string {
    return `postgres:${ref.tenant}/${ref.sessionId}`;
  }

  async sessionRow(sql: Sql, ref: SessionRef, lock: '' | 'FOR UPDATE' | 'FOR SHARE' = ''): Promise<SessionRow | null> {
    const { rows } = await sql.query(`SELECT ${SESSION_COLUMNS} FROM archive_sessions WHERE tenant = $1 AND session_id = $2 ${lock}`, [ref.tenant, ref.sessionId]);
    return rows[0] ? toRow(rows[0] as Record<string, unknown>) : null;
  }

  /** The session's row, created when missing, locked for this transaction (the commit lock). */
  async lockSession(sql: Sql, ref: SessionRef): Promise<SessionRow> {
    await sql.query('INSERT INTO archive_sessions (tenant, session_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [ref.tenant, ref.sessionId, this.clock.now()]);
    return (await this.sessionRow(sql, ref, 'FOR UPDATE'))!;
  }

  checkFence(ref: SessionRef, row: SessionRow, fence: number | null | undefined): void {
    if (fence !== null && fence !== undefined && fence < row.fence) {
      throw new StrataError('STRATA_ERR_FENCED', `a commit to ${this.label(ref)} carries fencing number ${fence}, below ${row.fence} already committed: its lease expired and another holder took over`, { details: { fence, committed: row.fence } });
    }
  }

  /**
   * The session's segments overlapping `range` (of one embedder when given), in order, read in
   * binary COPY format (postgres/copy.ts: no hex round trip); `sql` is the pool or a transaction.
   */
  async load(sql: Sql, ref: SessionRef, range: TurnRange = {}, embedderId?: string): Promise<{ index: FileIndex; bytes: Uint8Array }> {
    const select = `SELECT record FROM archive_segments WHERE tenant = ${literal(ref.tenant)} AND session_id = ${literal(ref.sessionId)}
      AND last_turn >= ${integer(range.fromTurn ?? 0)} AND first_turn <= ${integer(range.toTurn ?? Number.MAX_SAFE_INTEGER)}${embedderId !== undefined ? ` AND embedder_id = ${literal(embedderId)}` : ''} ORDER BY seq`;
    // In a transaction a driver error propagates to Db.tx, which maps it and rolls back.
    const records = sql instanceof Db ? await sql.copyBytea(select, 'loading a session') : await copyByteaOut(sql as unknown as pg.ClientBase, select);
    const bytes = records.length === 1 ? new Uint8Array(records[0]!.buffer, records[0]!.byteOffset, records[0]!.byteLength) : concat(records);
    return { index: indexFile(this.label(ref), bytes), bytes };
  }

  /** New segments of `turns`, at most `maxSegmentTurns` each. */
  async encode(turns: readonly ArchivedTurn[], embedderId: string | null): Promise<NewSegment[]> {
    return (await segmentRecords(this.options, turns, embedderId)).map((record) => segmentOf(record, 'postgres: new segment'));
  }

  /** New segments of a rewrite of `keep` (one embedder per segment). */
  async encodeRewrite(keep: readonly StoredTurn[]): Promise<NewSegment[]> {
    return (await rewriteRecords(this.options, keep)).map((record) => segmentOf(record, 'postgres: new segment'));
  }

  async insertSegments(sql: Sql, ref: SessionRef, firstSeq: number, segments: readonly NewSegment[]): Promise<void> {
    if (segments.length === 0) return;
    await sql.query(
      `INSERT INTO archive_segments (tenant, session_id, seq, first_turn, last_turn, turn_count, vectors, embedder_id, record)
        SELECT $1, $2, $3 + ord - 1, f, l, c, v, e, r FROM unnest($4::bigint[], $5::bigint[], $6::int[], $7::int[], $8::text[], $9::bytea[]) WITH ORDINALITY AS u(f, l, c, v, e, r, ord)`,
      [ref.tenant, ref.sessionId, firstSeq, segments.map((s) => s.firstTurn), segments.map((s) => s.lastTurn), segments.map((s) => s.count), segments.map((s) => s.vectors), segments.map((s) => s.embedderId), segments.map((s) => Buffer.from(s.record.buffer, s.record.byteOffset, s.record.byteLength))],
    );
  }

  /** Journal rows of the session that the archive now covers: archived, or below the deletion floor. */
  async dropJournaled(sql: Sql, ref: SessionRef, upTo: number): Promise<void> {
    if (upTo <= 0) return;
    await sql.query('DELETE FROM journal WHERE tenant = $1 AND session_id = $2 AND turn_id <= $3', [ref.tenant, ref.sessionId, upTo]);
  }

  /** Sets the session's statistics to those of `segments`, now its only segments. */
  async updateStats(sql: Sql, ref: SessionRef, nextSeq: number, segments: readonly NewSegment[]): Promise<void> {
    const index = indexFile(this.label(ref), concat(segments.map((x) => x.record)));
    await sql.query(
      `UPDATE archive_sessions SET turn_count = $3, first_turn_at = $4, last_turn_at = $5, bytes = $6, segments = $7, next_seq = $8, embedder_id = $9, dims = $10,
          high_water = greatest(high_water, $11) WHERE tenant = $1 AND session_id = $2`,
      [ref.tenant, ref.sessionId, index.turnCount, index.firstTurnAt, index.lastTurnAt, index.size, index.segments.length, nextSeq, index.embedderId, index.dims, index.highWater],
    );
  }

  /** The session's summaries, ascending by range. */
  async summariesOf(sql: Sql, ref: SessionRef): Promise<Summary[]> {
    const { rows } = await sql.query('SELECT from_turn::float8 AS f, to_turn::float8 AS t, text, created_at::float8 AS c FROM archive_summaries WHERE tenant = $1 AND session_id = $2 ORDER BY from_turn, to_turn', [ref.tenant, ref.sessionId]);
    return rows.map((r) => ({ fromTurn: r.f as number, toTurn: r.t as number, text: r.text as string, createdAt: r.c as number }));
  }
}


/** Segment bodies of loaded bytes, for the file reader. */
export function bodyOf(bytes: Uint8Array): (s: SegmentEntry) => Promise<Uint8Array> {
  return async (s) => bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength);
}

/** Columns of one segment record, from its own header (verified as any file's). */
export function segmentOf(record: Uint8Array, label: string): NewSegment {
  const index = indexFile(label, record);
  const e = index.segments[0];
  if (!e?.header || e.error) throw e?.error ?? new StrataError('STRATA_ERR_INTERNAL', 'a segment record did not index');
  const h = e.header;
  const vectors = countVectors(record.subarray(e.bodyOffset, e.bodyOffset + e.bodyLength), h);
  return { record, firstTurn: h.firstTurn, lastTurn: h.lastTurn, count: h.count, vectors, embedderId: h.encoding === 'none' ? null : h.embedderId, firstAt: e.firstAt!, lastAt: e.lastAt!, dims: h.encoding === 'none' ? 0 : h.dims };
}

/** Writers refuse a session with any damage: its contents cannot be established. */
export function assertWritable(index: FileIndex): void {
  if (index.versionError) throw index.versionError;
  const d = index.damage[0];
  if (d) throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${d.message}; the session is read-only until repaired or re-imported`, { details: { file: index.file, offset: d.offset, segment: d.segment, block: d.block } });
}

export function toInfo(ref: SessionRef, row: SessionRow): ArchiveSessionInfo {
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
