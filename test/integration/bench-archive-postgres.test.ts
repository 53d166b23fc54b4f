import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runPostgresArchiveBench } from '../../bench/archive-postgres.js';
import { SHARED_URL, sql } from '../helpers/postgres.js';
import { tempDir } from '../helpers/strata.js';

test('bench archive --store postgres on a tiny file: sizes from every relation, a whole-session load, durable appends; its schema is dropped', async (t) => {
  const dir = await tempDir(t);
  const input = join(dir, 'sessions.json');
  const sessions = Array.from({ length: 3 }, (_, s) => ({
    session_id: `s${s}`,
    turns: Array.from({ length: 40 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `session ${s} turn ${i}: ${'the quick brown fox jumps over the lazy dog '.repeat(1 + (i % 5))}` })),
  }));
  await writeFile(input, JSON.stringify(sessions));
  const r = await runPostgresArchiveBench({ input, postgresUrl: SHARED_URL, dims: 16, embeddings: 'int8', loads: 3, appendCount: 50 });
  assert.equal(r.turns, 120);
  assert.ok(r.bytes.total >= r.bytes.heap + r.bytes.indexes && r.bytes.total > 0);
  assert.equal(r.bytesPerTurn, r.bytes.total / 120);
  assert.equal(r.loadTurns, 120, 'the timed load read the whole long session back');
  for (const v of [r.loadP50Ms, r.loadP99Ms, r.loadFirstMs, r.appendsPerSec['1'], r.appendsPerSec['64']]) assert.ok(Number.isFinite(v) && v > 0);
  const left = await sql<{ n: string }>(SHARED_URL, 'SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1', [r.schema]);
  assert.equal(Number(left[0]!.n), 0);
});
