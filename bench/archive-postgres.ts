import { PgArchiveStore } from '../src/archive/pg-store.js';
import { PgJournal } from '../src/journal/pg-journal.js';
import { Db, parsePostgresUrl } from '../src/postgres/db.js';
import { migrate } from '../src/postgres/schema.js';
import type { ArchivedTurn } from '../src/types.js';
import { loadInChild, pseudoEmbedding, readSessions, sessionStart, toRole } from './archive.js';
import { benchRecord, drive } from './journal.js';

/*
 * The PostgreSQL side of `strata bench archive --store postgres`: the same sessions archived
 * into a fresh schema (dropped afterwards): bytes per turn counting every relation of the
 * archive — heap, indexes and TOAST (pg_total_relation_size) —, the time to load a 1,000-turn
 * session, and durable journal appends (committed with synchronous_commit=on) with 1 and 64
 * writers.
 */
export interface PostgresArchiveBenchResult {
  schema: string;
  turns: number;
  bytes: { total: number; heap: number; toast: number; indexes: number };
  bytesPerTurn: number;
  loadTurns: number;
  loadP50Ms: number;
  loadP99Ms: number;
  loadFirstMs: number;
  appendsPerSec: { '1': number; '64': number };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runPostgresArchiveBench(options: { input: string; postgresUrl: string; dims: number; embeddings: 'int8' | 'f16' | 'none'; codec?: string; batch?: number; loads: number; appendCount?: number }): Promise<PostgresArchiveBenchResult> {
  const schema = `strata_bench_${process.pid}_${Date.now().toString(36)}`;
  const base = new URL(options.postgresUrl);
  base.searchParams.set('schema', schema);
  if (!base.searchParams.has('pool_size')) base.searchParams.set('pool_size', '16');
  const settings = parsePostgresUrl(base.toString());
  const db = new Db(settings).acquire();
  const batch = options.batch ?? 100;
  const withVectors = options.dims > 0 && options.embeddings !== 'none';
  const embedderId = withVectors ? { embedderId: `pseudo-${options.dims}` } : {};
  try {
    await migrate(db);
    const store = new PgArchiveStore({ db, embeddingEncoding: options.embeddings, ...(options.codec ? { textCodec: options.codec } : {}) });
    const sessions = await readSessions(options.input);
    let turnsTotal = 0;
    for (const [si, s] of sessions.entries()) {
      const start = sessionStart(s, si);
      const turns: ArchivedTurn[] = s.turns.map((t, i) => ({ turnId: i + 1, role: toRole(t.role), content: t.content, createdAt: start + i * 45_000, ...(withVectors ? { embedding: pseudoEmbedding(options.dims, si, i) } : {}) }));
      if (turns.length === 0) continue;
      for (let i = 0; i < turns.length; i += batch) await store.append({ tenant: 'bench', sessionId: `s${si}` }, turns.slice(i, i + batch), embedderId);
      turnsTotal += turns.length;
    }
    await db.query('VACUUM ANALYZE archive_segments').catch(() => undefined);
    const rels = ['archive_sessions', 'archive_segments', 'archive_summaries', 'archive_idempotency'];
    const { rows } = await db.query<{ total: number; heap: number; toast: number; indexes: number }>(
      `SELECT sum(pg_total_relation_size(c.oid))::float8 AS total, sum(pg_relation_size(c.oid))::float8 AS heap,
              sum(coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0))::float8 AS toast, sum(pg_indexes_size(c.oid))::float8 AS indexes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = ANY($2)`,
      [schema, rels],
    );
    const bytes = rows[0]!;

    // 1,000-turn sessions of consecutive real turns, archived in compaction-sized batches, then compacted.
    const longs: ArchivedTurn[][] = [];
    let cur: ArchivedTurn[] = [];
    for (const [si, s] of sessions.entries()) {
      for (const t of s.turns) {
        cur.push({ turnId: cur.length + 1, role: toRole(t.role), content: t.content, createdAt: Date.UTC(2024, 0, 1) + cur.length * 30_000, ...(withVectors ? { embedding: pseudoEmbedding(options.dims, 100_000 + si, cur.length) } : {}) });
        if (cur.length === 1000) {
          longs.push(cur);
          cur = [];
        }
      }
      if (longs.length === 5) break;
    }
    if (longs.length === 0 && cur.length > 0) longs.push(cur);
    for (const [i, turns] of longs.entries()) {
      const ref = { tenant: 'bench', sessionId: `long-${i}` };
      for (let k = 0; k < turns.length; k += batch) await store.append(ref, turns.slice(k, k + batch), embedderId);
      await store.compact(ref);
    }
    // Timed in a process of its own, as the file store's loads: this one holds the whole corpus.
    // The write burst is settled first (dead rows of the compaction vacuumed, dirty pages
    // checkpointed when the role may), so the loads do not time the server's own clean-up.
    await db.query('VACUUM ANALYZE archive_segments').catch(() => undefined);
    await db.query('CHECKPOINT').catch(() => undefined);
    const { times, firstMs, turns: loadTurns } = await loadInChild(base.toString(), options.loads, longs.length);
    times.sort((a, b) => a - b);

    const count = options.appendCount ?? 2000;
    const appends = async (concurrency: number, n: number): Promise<number> => {
      const journal = await PgJournal.open({ db, instanceId: `bench-${concurrency}`, lock: false });
      const records = Array.from({ length: n }, (_, i) => benchRecord(i));
      try {
        const { seconds } = await drive(concurrency, n, (i) => journal.append(records[i]!));
        return n / seconds;
      } finally {
        await journal.close();
      }
    };
    const a1 = await appends(1, Math.min(count, 1000));
    const a64 = await appends(64, count * 10);
    await store.close();
    return { schema, turns: turnsTotal, bytes, bytesPerTurn: bytes.total / turnsTotal, loadTurns, loadP50Ms: percentile(times, 50), loadP99Ms: percentile(times, 99), loadFirstMs: firstMs, appendsPerSec: { '1': a1, '64': a64 } };
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await db.release();
  }
}

