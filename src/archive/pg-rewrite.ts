import { StrataError } from '../errors.js';
import { searchText } from '../message.js';
import type { Sql } from '../postgres/db.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import type { SessionRow, SessionRows } from './pg-rows.js';
import { assertWritable, bodyOf } from './pg-rows.js';
import type { StoredTurn } from './rewrite.js';
import { dropTurns, storedTurns } from './rewrite.js';
import type { DeleteReceipt } from './store.js';
import { EMPTY_RECEIPT, validateTurnIds } from './validate.js';

/*
 * The PostgreSQL driver's rewrites of a session's segment rows — compaction, deletion of turns,
 * re-embedding — each in one transaction holding the session's row lock. `ref` is validated by
 * the caller.
 */

export async function compact(pg: SessionRows, s: SessionRef): Promise<void> {
  await pg.db.tx('compacting a session', async (sql) => {
    const row = await pg.lockSession(sql, s);
    if (row.live) await compactLocked(pg, sql, s, row);
  });
}

export async function reembed(pg: SessionRows, s: SessionRef, embedderId: string, embed: (texts: string[]) => Promise<Float32Array[]>): Promise<{ turns: number }> {
  return pg.db.tx('re-embedding a session', async (sql) => {
    const row = await pg.lockSession(sql, s);
    if (!row.live) throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${s.sessionId} has no archive`);
    const { index, bytes } = await pg.load(sql, s);
    assertWritable(index);
    const all = await storedTurns(index, bodyOf(bytes), pg.options.maxDecodedBytes);
    const stale = all.filter((t) => t.embedderId !== embedderId || !t.turn.embedding);
    if (stale.length === 0) return { turns: 0 };
    const vectors = await embed(stale.map((t) => searchText(t.turn)));
    if (vectors.length !== stale.length) throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedder returned ${vectors.length} vectors for ${stale.length} texts`);
    stale.forEach((t, i) => {
      t.turn.embedding = vectors[i]!;
      t.embedderId = embedderId;
    });
    await rewrite(pg, sql, s, row, all);
    return { turns: stale.length };
  });
}

export async function deleteTurns(pg: SessionRows, s: SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt> {
  validateTurnIds(turnIds);
  if (turnIds.length === 0) return { ...EMPTY_RECEIPT };
  return pg.db.tx('deleting turns', async (sql) => {
    const row = await pg.lockSession(sql, s);
    if (!row.live) return { ...EMPTY_RECEIPT };
    const r = await compactLocked(pg, sql, s, row, new Set(turnIds));
    if (!r || r.removed.length === 0) return { ...EMPTY_RECEIPT };
    const after = (await pg.sessionRow(sql, s))!.bytes;
    return { sessions: 0, turns: r.removed.length, bytes: Math.max(0, r.bytesBefore - after), vectors: r.removed.filter((t) => t.embedding).length, summaries: r.summaries };
  });
}

/** Rewrites the session as merged segments (one embedder per segment), without `drop`; summaries covering a dropped turn go too. */
export async function compactLocked(pg: SessionRows, sql: Sql, ref: SessionRef, row: SessionRow, drop?: ReadonlySet<number>): Promise<{ removed: ArchivedTurn[]; summaries: number; bytesBefore: number } | null> {
  const { index, bytes } = await pg.load(sql, ref);
  assertWritable(index);
  if (!drop && index.segments.length <= 1) return null;
  const { keep, removed } = dropTurns(await storedTurns(index, bodyOf(bytes), pg.options.maxDecodedBytes), drop);
  let summaries = 0;
  if (removed.length > 0) {
    const { rowCount } = await sql.query(
      'DELETE FROM archive_summaries s USING unnest($3::bigint[]) AS d(id) WHERE s.tenant = $1 AND s.session_id = $2 AND d.id BETWEEN s.from_turn AND s.to_turn',
      [ref.tenant, ref.sessionId, removed.map((t) => t.turnId)],
    );
    summaries = rowCount ?? 0;
  }
  await rewrite(pg, sql, ref, row, keep);
  return { removed, summaries, bytesBefore: index.size };
}

/** Replaces every segment row of the session by `keep` and recomputes the session's statistics. */
async function rewrite(pg: SessionRows, sql: Sql, ref: SessionRef, row: SessionRow, keep: readonly StoredTurn[]): Promise<void> {
  const segments = await pg.encodeRewrite(keep);
  await sql.query('DELETE FROM archive_segments WHERE tenant = $1 AND session_id = $2', [ref.tenant, ref.sessionId]);
  await pg.insertSegments(sql, ref, row.nextSeq, segments);
  await pg.updateStats(sql, ref, row.nextSeq + segments.length, segments);
}
