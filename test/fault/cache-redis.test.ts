import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Strata } from '../../src/strata.js';
import { startRedis } from '../helpers/redis.js';
import type { TestRedis } from '../helpers/redis.js';
import { closeAfter, openStrata, prng, tempDir } from '../helpers/strata.js';

const CHILD = fileURLToPath(new URL('../fixtures/cache-child.ts', import.meta.url));

interface Ack {
  session: string;
  turnId: number;
  content: string;
}

/** Starts the child; resolves acks as they are printed. `stop` kills it with the given signal. */
function startChild(env: Record<string, string>): { acks: Ack[]; ready: Promise<void>; firstAck: Promise<void>; exited: Promise<number | null>; kill(): void } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const acks: Ack[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  let markFirstAck!: () => void;
  const firstAck = new Promise<void>((resolve) => (markFirstAck = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') markReady();
    const m = /^ack (\S+) (\d+) (\S+)$/.exec(line);
    if (m) {
      acks.push({ session: m[1]!, turnId: Number(m[2]), content: m[3]! });
      markFirstAck();
    }
  });
  const exited = once(child, 'exit').then(([code]) => {
    markReady();
    markFirstAck();
    if (code !== 0 && code !== null) throw new Error(`child exited with ${code}: ${stderr}`);
    return code as number | null;
  });
  return { acks, ready, firstAck, exited, kill: () => child.kill('SIGKILL') };
}

async function readAll(s: Strata, sessionId: string): Promise<Array<{ turnId: number; content: string }>> {
  const out: Array<{ turnId: number; content: string }> = [];
  let after = 0;
  for (;;) {
    const page = await s.getMessages(sessionId, { after, limit: 1000 });
    out.push(...page.messages.map((m) => ({ turnId: m.turnId, content: m.content as string })));
    if (page.nextAfter === null) return out;
    after = page.nextAfter;
  }
}

/** Every acknowledged message is present exactly once, at its turn id; ids are dense and ordered. */
function verify(session: string, turns: Array<{ turnId: number; content: string }>, acks: Ack[]): void {
  assert.deepEqual(
    turns.map((t) => t.turnId),
    Array.from({ length: turns.length }, (_, i) => i + 1),
    `${session}: dense, ordered turn ids`,
  );
  const byContent = new Map<string, number>();
  for (const t of turns) {
    assert.ok(!byContent.has(t.content), `${session}: ${t.content} stored twice`);
    byContent.set(t.content, t.turnId);
  }
  for (const a of acks.filter((x) => x.session === session)) assert.equal(byContent.get(a.content), a.turnId, `${session}: acknowledged ${a.content} at turn ${a.turnId}`);
}

async function privateRedis(t: { after(fn: () => Promise<void>): void }): Promise<TestRedis> {
  const redis = await startRedis({ private: true });
  closeAfter(t, () => redis.stop());
  return redis;
}

test('FLUSHALL of Redis mid-run: every acknowledged turn stays readable and ids stay dense', async (t) => {
  const redis = await privateRedis(t);
  const dir = await tempDir(t);
  const options = { hot: { driver: 'redis' as const, redisUrl: redis.url, keyPrefix: redis.prefix('flush') }, compaction: { maxUnarchivedTurns: 15 } };
  let s = await openStrata(dir, options);
  const expected = new Map<string, string[]>([['a', []], ['b', []]]);
  const add = async (session: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const content = `${session}-${expected.get(session)!.length + 1}`;
      const { turnId } = await s.addMessage(session, 'user', content);
      expected.get(session)!.push(content);
      assert.equal(turnId, expected.get(session)!.length);
    }
  };
  await add('a', 40);
  await add('b', 7);
  await new Promise((r) => setTimeout(r, 50));
  await redis.flushall();
  // Reads rehydrate from the archive and this instance's journal.
  assert.deepEqual((await readAll(s, 'a')).map((x) => x.content), expected.get('a'));
  await add('a', 20);
  await add('b', 3);
  await s.runMaintenance();
  await redis.flushall();
  await s.runMaintenance(); // detects the new epoch and archives what the journal holds
  await add('b', 2);
  for (const [session, contents] of expected) assert.deepEqual((await readAll(s, session)).map((x) => x.content), contents, session);
  await s.close();
  await redis.restart();
  s = await openStrata(dir, options);
  closeAfter(t, () => s.close());
  for (const [session, contents] of expected) {
    const turns = await readAll(s, session);
    assert.deepEqual(turns.map((x) => x.content), contents, session);
    assert.deepEqual(turns.map((x) => x.turnId), contents.map((_, i) => i + 1));
  }
});

test('two processes writing the same session through one Redis get dense, ordered ids and lose nothing', async (t) => {
  const redis = await privateRedis(t);
  const dir = await tempDir(t);
  const common = { DATA_DIR: dir, REDIS_URL: redis.url, KEY_PREFIX: redis.prefix('two'), SESSIONS: 'shared,side', COUNT: '60', WRITERS: '3' };
  const a = startChild({ ...common, INSTANCE_ID: 'inst-a', TAG: 'A' });
  const b = startChild({ ...common, INSTANCE_ID: 'inst-b', TAG: 'B' });
  await Promise.all([a.exited, b.exited]);
  const acks = [...a.acks, ...b.acks];
  assert.equal(acks.length, 360);
  const s = await openStrata(dir, { hot: { driver: 'redis', redisUrl: redis.url, keyPrefix: redis.prefix('two') }, instanceId: 'inst-check' });
  closeAfter(t, () => s.close());
  for (const session of ['shared', 'side']) {
    const turns = await readAll(s, session);
    assert.equal(turns.length, acks.filter((x) => x.session === session).length, `${session}: no loss, no duplicate`);
    verify(session, turns, acks);
    const info = await s.getSession(session);
    assert.equal(info.unarchivedTurns, 0, 'both instances flushed on close');
  }
});

test('kill -9 during compaction, 20 seeded rounds: every acknowledged turn present exactly once, in order', async (t) => {
  const redis = await privateRedis(t);
  const dir = await tempDir(t);
  const env = { DATA_DIR: dir, REDIS_URL: redis.url, KEY_PREFIX: redis.prefix('k9'), SESSIONS: 'k0,k1,k2', INSTANCE_ID: 'k9', WRITERS: '6', COUNT: '0' };
  const random = prng(20261124);
  const acks: Ack[] = [];
  for (let round = 0; round < 20; round++) {
    const child = startChild({ ...env, TAG: `r${round}` });
    // Kill at a random moment once writes flow (start-up time varies with machine load).
    await child.firstAck;
    await new Promise((r) => setTimeout(r, Math.floor(random() * 300)));
    child.kill();
    await child.exited;
    acks.push(...child.acks);
  }
  assert.ok(acks.length > 100, `the children acknowledged ${acks.length} messages`);
  const s = await openStrata(dir, { hot: { driver: 'redis', redisUrl: redis.url, keyPrefix: redis.prefix('k9') }, instanceId: 'k9' });
  closeAfter(t, () => s.close());
  await s.flush();
  for (const session of ['k0', 'k1', 'k2']) {
    const turns = await readAll(s, session);
    verify(session, turns, acks);
    assert.equal((await s.getSession(session)).unarchivedTurns, 0);
  }
});
