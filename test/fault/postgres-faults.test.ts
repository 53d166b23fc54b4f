/**
 * Faults of the PostgreSQL store against a private cluster started for this file (initdb +
 * pg_ctl on a free port; the machine's shared server is never restarted): a restart under load,
 * a statement timeout, a full pool. Appends refused meanwhile answer coded 503s and nothing
 * acknowledged is lost.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { isStrataError } from '../../src/errors.js';
import type { StrataError } from '../../src/errors.js';
import { Db } from '../../src/postgres/db.js';
import type { Strata } from '../../src/strata.js';
import { createStrata, createStrataRetrying } from '../../src/strata.js';
import type { Cluster } from '../helpers/postgres.js';
import { startCluster, withSchema } from '../helpers/postgres.js';

let cluster: Cluster;
before(async () => {
  cluster = await startCluster();
});
after(() => cluster?.destroy());

function open(url: string, instanceId: string): Promise<Strata> {
  return createStrata({ store: { driver: 'postgres', postgresUrl: url }, embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000, maxUnarchivedTurns: 50 }, instanceId });
}

async function readAll(s: Strata, sessionId: string): Promise<Map<string, number[]>> {
  const byContent = new Map<string, number[]>();
  for (let after = 0; ; ) {
    const page = await s.getMessages(sessionId, { after, limit: 1000 });
    for (const m of page.messages) byContent.set(m.content as string, [...(byContent.get(m.content as string) ?? []), m.turnId]);
    if (page.nextAfter === null) return byContent;
    after = page.nextAfter;
  }
}

test('a PostgreSQL restart under load: appends meanwhile answer 503 STRATA_ERR_DB_UNAVAILABLE, then succeed again without a restart of Strata; every acknowledged turn is there once', async () => {
  const url = withSchema(cluster.baseUrl, 'restart', { pool_size: 4, connect_timeout_ms: 2000 });
  const strata = await open(url, 'restart-a');
  const acked: Array<{ session: string; content: string; turnId: number }> = [];
  const refused: StrataError[] = [];
  let stop = false;
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const session = `s${w % 3}`;
      const content = `w${w}-${i}`;
      try {
        const { turnId } = await strata.addMessage(session, 'user', content, { idempotencyKey: content });
        acked.push({ session, content, turnId });
      } catch (err) {
        if (!isStrataError(err)) throw err;
        refused.push(err);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  const writers = Array.from({ length: 6 }, (_, w) => writer(w));
  const until = async (pred: () => boolean): Promise<void> => {
    while (!pred()) await new Promise((r) => setTimeout(r, 10));
  };
  await until(() => acked.length >= 100);
  await cluster.restart();
  const afterRestart = acked.length;
  await until(() => acked.length >= afterRestart + 100);
  stop = true;
  await Promise.all(writers);
  assert.ok(refused.length > 0, 'the restart refused some appends');
  for (const err of refused) {
    assert.ok(['STRATA_ERR_DB_UNAVAILABLE', 'STRATA_ERR_DB_TIMEOUT', 'STRATA_ERR_BACKPRESSURE'].includes(err.code), `coded refusal, got ${err.code}: ${err.message}`);
    assert.ok(err.status === 503 || err.status === 429, `${err.code} answers ${err.status}`);
  }
  assert.ok(refused.some((e) => e.code === 'STRATA_ERR_DB_UNAVAILABLE'));
  assert.deepEqual((await strata.health()).journal, { ok: true }, 'healthy again after the next successful append');
  await strata.close();
  // A fresh instance (its own memory hot tier) rebuilds everything from the journal rows and the archive.
  const check = await open(url, 'restart-check');
  try {
    for (const session of ['s0', 's1', 's2']) {
      const stored = await readAll(check, session);
      for (const a of acked.filter((x) => x.session === session)) assert.deepEqual(stored.get(a.content), [a.turnId], `${a.content} acknowledged at ${a.turnId}`);
      for (const [content, ids] of stored) assert.equal(ids.length, 1, `${content} stored once`);
    }
  } finally {
    await check.close();
  }
});

test('connections cut while an instance opens (its replay, the read of every journal): createStrata fails with 503 and closes what it opened; createStrataRetrying opens again and has every record', async () => {
  const url = withSchema(cluster.baseUrl, 'startcut');
  const a = await open(url, 'startcut-a');
  let b: Strata | null = null;
  const original = pg.Pool.prototype.query;
  let cuts = 0;
  // Fault injection: the next `cuts` journal reads fail the way pg_terminate_backend makes them fail.
  pg.Pool.prototype.query = function (this: pg.Pool, ...args: unknown[]): unknown {
    if (typeof args[0] === 'string' && args[0].startsWith('SELECT id::text AS id, record FROM journal') && cuts > 0) {
      cuts--;
      return Promise.reject(Object.assign(new Error('terminating connection due to administrator command (injected)'), { code: '57P01' }));
    }
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  try {
    for (let i = 1; i <= 3; i++) assert.equal((await a.addMessage('chat', 'user', `m${i}`)).turnId, i);
    cuts = 1;
    const err = await open(url, 'startcut-b').then(
      (s) => s.close().then(() => null),
      (e: unknown) => e,
    );
    assert.ok(isStrataError(err, 'STRATA_ERR_DB_UNAVAILABLE'), `expected STRATA_ERR_DB_UNAVAILABLE, got ${String(err)}`);
    assert.equal(err.status, 503);

    cuts = 3;
    const retries: number[] = [];
    b = await createStrataRetrying({ store: { driver: 'postgres', postgresUrl: url }, embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000 }, instanceId: 'startcut-b' }, (e, attempt) => {
      assert.equal(e.code, 'STRATA_ERR_DB_UNAVAILABLE');
      retries.push(attempt);
    });
    assert.equal(cuts, 0);
    assert.deepEqual(retries, [1, 2, 3], 'three cut attempts, each closed (the journal lock of startcut-b was free again), then opened');
    // B's hot tier is its own (in-process): A's unarchived turns come from A's journal, read at start.
    assert.deepEqual((await b.getMessages('chat')).messages.map((m) => [m.turnId, m.content]), [[1, 'm1'], [2, 'm2'], [3, 'm3']]);
  } finally {
    pg.Pool.prototype.query = original;
    await b?.close();
    await a.close();
  }
});

test('a statement timeout cancels the append (503 STRATA_ERR_DB_TIMEOUT, nothing stored); the next one succeeds', async () => {
  const url = withSchema(cluster.baseUrl, 'timeout', { statement_timeout_ms: 300 });
  const strata = await open(url, 'timeout-a');
  try {
    assert.equal((await strata.addMessage('chat', 'user', 'first')).turnId, 1);
    // Another session holds the journal table: the insert waits past the timeout.
    const blocker = new pg.Client({ connectionString: cluster.baseUrl });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE timeout.journal IN ACCESS EXCLUSIVE MODE');
    const err = await strata.addMessage('chat', 'user', 'blocked').then(
      () => null,
      (e: unknown) => e,
    );
    await blocker.query('ROLLBACK');
    await blocker.end();
    assert.ok(isStrataError(err, 'STRATA_ERR_DB_TIMEOUT'), `expected STRATA_ERR_DB_TIMEOUT, got ${String(err)}`);
    assert.equal(err.status, 503);
    const [row] = (await new Db(url).query<{ n: string }>("SELECT count(*) AS n FROM journal WHERE record IS NOT NULL AND turn_id = 2")).rows;
    assert.equal(Number(row!.n), 0, 'the cancelled append stored no row');
    const next = await strata.addMessage('chat', 'user', 'after');
    assert.ok(next.turnId >= 2);
  } finally {
    await strata.close();
  }
});

test('a full pool is backpressure: callers beyond pool_size + max_waiting are refused at once with STRATA_ERR_BACKPRESSURE, never queued without bound', async () => {
  const db = new Db(withSchema(cluster.baseUrl, 'pool', { pool_size: 2, max_waiting: 3 })).acquire();
  try {
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => db.query('SELECT pg_sleep(0.3)')));
    const refused = results.filter((r) => r.status === 'rejected');
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5, 'two run, three wait');
    assert.equal(refused.length, 5);
    for (const r of refused) assert.ok(isStrataError((r as PromiseRejectedResult).reason, 'STRATA_ERR_BACKPRESSURE'));
    assert.equal(((refused[0] as PromiseRejectedResult).reason as StrataError).status, 429);
    // Once the pool drains, callers are served again.
    await db.query('SELECT 1');
  } finally {
    await db.release();
  }
});
