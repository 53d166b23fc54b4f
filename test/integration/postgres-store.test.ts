/**
 * Strata on the PostgreSQL store (STRATA_STORE=postgres) through `createStrata`: no data
 * directory; the journal and the archive are tables every instance shares, so recovery after a
 * Redis loss reads the pending rows of instances that are gone for good (docs/postgres.md).
 * Real PostgreSQL (a schema of its own on the machine's server), real Redis, real child processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isStrataError } from '../../src/errors.js';
import type { Strata } from '../../src/strata.js';
import { createStrata } from '../../src/strata.js';
import { sql, tempSchema } from '../helpers/postgres.js';
import { startRedis } from '../helpers/redis.js';
import { closeAfter, tempDir } from '../helpers/strata.js';

const CHILD = fileURLToPath(new URL('../fixtures/cache-child.ts', import.meta.url));

function pgSchema(t: { after(fn: () => Promise<void>): void }): { url: string } {
  const s = tempSchema('strata_it');
  closeAfter(t, s.drop);
  return s;
}

function open(url: string, options: Parameters<typeof createStrata>[0] = {}): Promise<Strata> {
  return createStrata({ ...options, store: { driver: 'postgres', postgresUrl: url }, embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000, ...options.compaction }, instanceId: options.instanceId ?? 'pg-test' });
}

async function readAll(s: Strata, sessionId: string): Promise<Array<{ turnId: number; content: string }>> {
  const out: Array<{ turnId: number; content: string }> = [];
  for (let after = 0; ; ) {
    const page = await s.getMessages(sessionId, { after, limit: 1000 });
    out.push(...page.messages.map((m) => ({ turnId: m.turnId, content: m.content as string })));
    if (page.nextAfter === null) return out;
    after = page.nextAfter;
  }
}

test('on postgres: no data directory; acknowledged turns survive a crash (journal rows) and a restart archives them once', async (t) => {
  const { url } = pgSchema(t);
  const dir = await tempDir(t);
  const dataDir = join(dir, 'never-created');
  const a = await open(url, { dataDir, compaction: { maxUnarchivedTurns: 1000 } });
  for (let i = 1; i <= 30; i++) assert.equal((await a.addMessage('chat', i % 2 ? 'user' : 'assistant', `m${i}`, { userId: 'ana' })).turnId, i);
  const retry = await a.addMessages('chat', [{ role: 'user', content: 'keyed' }], { idempotencyKey: 'req-1', userId: 'ana' });
  assert.deepEqual((await a.addMessages('chat', [{ role: 'user', content: 'keyed' }], { idempotencyKey: 'req-1', userId: 'ana' })).turnIds, retry.turnIds, 'a retry answers the first ids');
  await assert.rejects(a.addMessages('chat', [{ role: 'user', content: 'other' }], { idempotencyKey: 'req-1', userId: 'ana' }), (e) => isStrataError(e, 'STRATA_ERR_IDEMPOTENCY_MISMATCH'));
  // Every acknowledged turn is a committed journal row; nothing is archived yet.
  const { n } = (await sql<{ n: string }>(url, "SELECT count(DISTINCT turn_id) AS n FROM journal WHERE instance_id = 'pg-test' AND kind = 1"))[0]!;
  assert.equal(Number(n), 31);
  assert.equal(existsSync(dataDir), false, 'the postgres store uses no data directory');
  // A crash: the instance's pool ends without a flush (its memory hot tier is gone with it).
  // A new instance with the same id replays its rows into the archive.
  const crashed = (a as unknown as { core: { journal: { close(): Promise<void> }; archive: { close(): Promise<void> } } }).core;
  await crashed.journal.close();
  await crashed.archive.close();
  const b = await open(url, { dataDir });
  closeAfter(t, () => b.close());
  const turns = await readAll(b, 'chat');
  assert.deepEqual(turns.map((x) => x.turnId), Array.from({ length: 31 }, (_, i) => i + 1));
  assert.deepEqual(turns.slice(0, 3).map((x) => x.content), ['m1', 'm2', 'm3']);
  const { n: left } = (await sql<{ n: string }>(url, 'SELECT count(*) AS n FROM journal'))[0]!;
  assert.equal(Number(left), 0, 'archived turns left the journal in the archive commit');
  const info = await b.getSession('chat');
  assert.equal(info.turns, 31);
  assert.equal((await b.addMessage('chat', 'user', 'after restart')).turnId, 32);
  // Deletion: gone, the floor is durable, ids are not reused.
  const receipt = await b.deleteSession('chat');
  assert.equal(receipt.sessions, 1);
  assert.deepEqual(await readAll(b, 'chat'), []);
  const { floor } = (await sql<{ floor: string }>(url, "SELECT deleted_up_to AS floor FROM archive_sessions WHERE session_id = 'chat'"))[0]!;
  assert.equal(Number(floor), 32);
  assert.equal((await b.addMessage('chat', 'user', 'new life')).turnId, 33);
  assert.equal(existsSync(dataDir), false);
});

interface Ack {
  session: string;
  turnId: number;
  content: string;
}

function startChild(env: Record<string, string>): { acks: Ack[]; ackCount(n: number): Promise<void>; exited: Promise<unknown>; kill(): void } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const acks: Ack[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = /^ack (\S+) (\d+) (\S+)$/.exec(line);
    if (!m) return;
    acks.push({ session: m[1]!, turnId: Number(m[2]), content: m[3]! });
    for (const w of waiters.filter((x) => acks.length >= x.n)) w.resolve();
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    for (const w of waiters) w.resolve();
    if (code !== 0 && signal !== 'SIGKILL') throw new Error(`child exited with ${String(code)}: ${stderr}`);
  });
  return {
    acks,
    ackCount: (n) => (acks.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

test('on postgres: two instances write one session, one is SIGKILLed for good, Redis is flushed: a third instance finds every acknowledged turn exactly once', async (t) => {
  const { url } = pgSchema(t);
  const redis = await startRedis({ private: true });
  t.after(() => redis.stop());
  const prefix = redis.prefix('pg');
  const common = { POSTGRES_URL: url, REDIS_URL: redis.url, KEY_PREFIX: prefix, SESSIONS: 'chat,other', WRITERS: '2', COUNT: '0', MAX_UNARCHIVED: '1000000' };
  const dead = startChild({ ...common, INSTANCE_ID: 'inst-dead', TAG: 'D' });
  const live = startChild({ ...common, INSTANCE_ID: 'inst-live', TAG: 'L' });
  await Promise.all([dead.ackCount(40), live.ackCount(40)]);
  dead.kill();
  await dead.exited;
  live.kill();
  await live.exited;
  await redis.flushall();
  const acks = [...dead.acks, ...live.acks];
  const { n } = (await sql<{ n: string }>(url, "SELECT count(*) AS n FROM journal WHERE instance_id = 'inst-dead'"))[0]!;
  assert.ok(Number(n) >= dead.acks.length, 'the dead instance left its acknowledged turns as rows');
  const check = await open(url, { instanceId: 'inst-check', hot: { driver: 'redis', redisUrl: redis.url, keyPrefix: prefix } });
  closeAfter(t, () => check.close());
  for (const session of ['chat', 'other']) {
    const turns = await readAll(check, session);
    const byContent = new Map<string, number[]>();
    for (const x of turns) byContent.set(x.content, [...(byContent.get(x.content) ?? []), x.turnId]);
    for (const a of acks.filter((x) => x.session === session)) assert.deepEqual(byContent.get(a.content), [a.turnId], `${a.content} acknowledged at ${a.turnId}`);
    for (const [content, ids] of byContent) assert.equal(ids.length, 1, `${content} stored once`);
    for (let i = 1; i < turns.length; i++) assert.ok(turns[i]!.turnId > turns[i - 1]!.turnId);
    const next = (await check.addMessage(session, 'user', 'after')).turnId;
    assert.ok(next > Math.max(...acks.filter((x) => x.session === session).map((x) => x.turnId)), 'no acknowledged id is reused');
  }
  // Archiving by the survivor removes the dead instance's rows: nothing waits for it to return.
  await check.flush();
  const { n: left } = (await sql<{ n: string }>(url, "SELECT count(*) AS n FROM journal WHERE instance_id = 'inst-dead' AND kind = 1"))[0]!;
  assert.equal(Number(left), 0);
});
