import type { Sql } from '../postgres/db.js';
import type { SessionRef } from '../types.js';
import type { SessionRow, SessionRows } from './pg-rows.js';
import type { DeleteReceipt, DeleteSessionOptions } from './store.js';
import { EMPTY_RECEIPT, expiryCutoff } from './validate.js';

/*
 * The PostgreSQL driver's deletion of whole sessions: on request (fenced), and by retention.
 * `ref` is validated by the caller.
 */

export async function deleteSession(pg: SessionRows, s: SessionRef, options: DeleteSessionOptions): Promise<DeleteReceipt> {
  return pg.db.tx('deleting a session', async (sql) => {
    const row = await pg.lockSession(sql, s);
    pg.checkFence(s, row, options.fence);
    return deleteLocked(pg, sql, s, row, options.upTo ?? 0, options.fence ?? 0);
  });
}

/**
 * The floor, the rows and the journal rows it covers go in one transaction: from its commit no
 * reader, replay or instance's journal brings these turns back. Idempotency keys stay (a late
 * retry of a deleted message answers its old id and stores nothing).
 */
async function deleteLocked(pg: SessionRows, sql: Sql, ref: SessionRef, row: SessionRow, upTo: number, fence: number): Promise<DeleteReceipt> {
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
  await pg.dropJournaled(sql, ref, floor);
  return receipt;
}

export async function cleanupExpiredSessions(pg: SessionRows, maxAgeDays: number): Promise<number> {
  const cutoff = expiryCutoff(maxAgeDays, pg.clock.now());
  const { rows } = await pg.db.query<{ tenant: string; session_id: string }>('SELECT tenant, session_id FROM archive_sessions WHERE live AND coalesce(last_turn_at, created_at) < $1', [cutoff]);
  let deleted = 0;
  for (const r of rows) {
    const ref = { tenant: r.tenant, sessionId: r.session_id };
    const gone = await pg.db.tx('deleting an expired session', async (sql) => {
      const row = await pg.lockSession(sql, ref);
      // Re-checked under the lock: a turn may have arrived since the scan.
      if (!row.live || (row.lastTurnAt ?? row.createdAt) >= cutoff) return false;
      return (await deleteLocked(pg, sql, ref, row, 0, 0)).sessions > 0;
    });
    if (gone) deleted++;
  }
  return deleted;
}
