import { StrataError } from '../errors.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import { checkedImport } from './file.js';
import type { SessionRows } from './pg-rows.js';
import { segmentOf, toInfo } from './pg-rows.js';
import { compactLocked } from './pg-rewrite.js';
import type { AppendOptions, AppendResult, ArchiveSessionInfo, Summary } from './store.js';
import { checkAppendable, optionalUserId, validateAppend, validateSummary } from './validate.js';

/*
 * The PostgreSQL driver's appends: turns as new segment rows, summaries, imports of a whole
 * file. `ref` is validated by the caller. Each runs in one transaction holding the session's row
 * lock, and drops the journal rows its commit covers in the same transaction.
 */

export async function append(pg: SessionRows, s: SessionRef, turns: readonly ArchivedTurn[], options: AppendOptions): Promise<AppendResult> {
  const { userId, embedderId, dims } = validateAppend(turns, options);
  if (turns.length === 0 && userId === undefined) {
    const row = await pg.sessionRow(pg.db, s);
    if (row?.live) return { appended: 0, skipped: 0, highWater: row.highWater };
  }
  return pg.db.tx('an archive commit', async (sql) => {
    const row = await pg.lockSession(sql, s);
    pg.checkFence(s, row, options.fence);
    // Under the row lock: a compaction re-checks its lease here, so nothing commits after a
    // writer read this session's archive to decide whether to void its turn.
    await options.precommit?.();
    checkAppendable(s.sessionId, row, userId, embedderId, dims);
    const floor = Math.max(row.highWater, row.deletedUpTo);
    const fresh = turns.filter((t) => t.turnId > floor);
    const segments = await pg.encode(fresh, embedderId);
    await pg.insertSegments(sql, s, row.nextSeq, segments);
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
    await pg.dropJournaled(sql, s, highWater);
    if (row.segments + segments.length > pg.options.compactAfterSegments) await compactLocked(pg, sql, s, { ...row, highWater, userId: row.userId ?? userId ?? null });
    return { appended: fresh.length, skipped: turns.length - fresh.length, highWater };
  });
}

export async function saveSummary(pg: SessionRows, s: SessionRef, summary: Summary): Promise<void> {
  const v = validateSummary(summary);
  await pg.db.tx('saving a summary', async (sql) => {
    await pg.lockSession(sql, s);
    await sql.query('UPDATE archive_sessions SET live = true WHERE tenant = $1 AND session_id = $2', [s.tenant, s.sessionId]);
    await sql.query(
      `INSERT INTO archive_summaries (tenant, session_id, from_turn, to_turn, text, created_at) VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (tenant, session_id, from_turn, to_turn) DO UPDATE SET text = excluded.text, created_at = excluded.created_at`,
      [s.tenant, s.sessionId, v.fromTurn, v.toTurn, v.text, v.createdAt],
    );
  });
}

export async function importSession(pg: SessionRows, s: SessionRef, file: Uint8Array, options: { userId?: string }): Promise<ArchiveSessionInfo> {
  const userId = optionalUserId(options.userId);
  const index = await checkedImport(`import of ${s.tenant}/${s.sessionId}`, file, pg.options.maxDecodedBytes);
  const segments = index.segments.map((e) => segmentOf(file.subarray(e.recordOffset, e.bodyOffset + e.bodyLength), index.file));
  const owner = userId ?? index.meta.userId ?? null;
  return pg.db.tx('importing a session', async (sql) => {
    const row = await pg.lockSession(sql, s);
    if (row.live) throw new StrataError('STRATA_ERR_CONFLICT', `session ${s.tenant}/${s.sessionId} already has an archive`);
    await sql.query('DELETE FROM archive_segments WHERE tenant = $1 AND session_id = $2', [s.tenant, s.sessionId]);
    await sql.query('DELETE FROM archive_summaries WHERE tenant = $1 AND session_id = $2', [s.tenant, s.sessionId]);
    await pg.insertSegments(sql, s, row.nextSeq, segments);
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
    await pg.updateStats(sql, s, row.nextSeq + segments.length, segments);
    await pg.dropJournaled(sql, s, index.highWater);
    return toInfo(s, (await pg.sessionRow(sql, s))!);
  });
}
