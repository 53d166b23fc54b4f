/**
 * The Redis hot store when Redis loses its data or goes away: FLUSHALL, SCRIPT FLUSH, restart
 * (without persistence), a server that is down, and turns evicted from under their metadata.
 * Always on private redis-servers: these tests flush, restart and stop them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { isStrataError } from '../../src/errors.js';
import { RedisHotStore } from '../../src/hot/redis/redis-store.js';
import { loadScripts } from '../../src/hot/redis/scripts.js';
import type { SessionRef } from '../../src/types.js';
import { startRedis } from '../helpers/redis.js';
import type { TestRedis } from '../helpers/redis.js';

const REF: SessionRef = { tenant: 'acme', sessionId: 'chat-1' };
const T0 = 1_700_000_000_000;
const turn = (i: number) => ({ role: 'user' as const, content: `turn ${i}`, createdAt: T0 + i });

async function seeded(store: RedisHotStore, n: number): Promise<void> {
  assert.equal(await store.seed(REF, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0), true);
  for (let i = 1; i <= n; i++) assert.deepEqual(await store.append(REF, turn(i), T0 + i), { turnId: i });
}

/** Retries until the store answers again (the client reconnects with backoff), bounded. */
async function untilUp(store: RedisHotStore): Promise<void> {
  const deadline = Date.now() + 5000;
  while (true) {
    try {
      await store.ping();
      return;
    } catch (err) {
      assert.ok(isStrataError(err, 'STRATA_ERR_HOT_UNAVAILABLE'), `unexpected ${String(err)}`);
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('Redis hot store under data loss and outages', () => {
  let redis: TestRedis;
  const stores: RedisHotStore[] = [];
  const open = (name: string): RedisHotStore => {
    const s = new RedisHotStore({ url: redis.url, keyPrefix: redis.prefix(name) });
    stores.push(s);
    return s;
  };
  before(async () => {
    redis = await startRedis({ private: true });
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await redis.stop();
  });

  test('FLUSHALL: the epoch changes and append asks for a seed instead of restarting ids at 1', async () => {
    const store = open('flush');
    await seeded(store, 5);
    assert.equal(await store.initEpoch(4), 4);
    await redis.flushall();
    assert.equal(await store.epoch(), null, 'a flushed store has no epoch: the cache allocates a new, larger one and recovers');
    assert.deepEqual(await store.append(REF, turn(6), T0 + 6), { needsSeed: true });
    assert.equal(await store.meta(REF), null);
    // The cache re-seeds from journal + archive; ids continue where they were.
    assert.equal(await store.seed(REF, { nextTurnId: 6, archivedUpTo: 0, turns: [1, 2, 3, 4, 5].map((i) => ({ turnId: i, ...turn(i) })) }, T0), true);
    assert.deepEqual(await store.append(REF, turn(6), T0 + 6), { turnId: 6 });
    assert.equal((await store.recent(REF, 10, T0 + 7)).length, 6);
  });

  test('SCRIPT FLUSH: scripts are reloaded on NOSCRIPT and calls keep working', async () => {
    const store = open('scriptflush');
    await seeded(store, 2);
    const sha = loadScripts().get('append-n')!.sha;
    assert.deepEqual(await redis.command(['SCRIPT', 'EXISTS', sha]), [1]);
    await redis.command(['SCRIPT', 'FLUSH']);
    assert.deepEqual(await redis.command(['SCRIPT', 'EXISTS', sha]), [0]);
    assert.deepEqual(await store.append(REF, turn(3), T0 + 3), { turnId: 3 });
    assert.deepEqual(await redis.command(['SCRIPT', 'EXISTS', sha]), [1], 'the fallback put the script back');
    assert.deepEqual((await store.recent(REF, 3, T0)).map((t) => t.turnId), [1, 2, 3]);
  });

  test('restart without persistence: the client reconnects, append needs a seed, the epoch changed', async () => {
    const store = open('restart');
    await seeded(store, 3);
    await store.initEpoch(4);
    await redis.restart();
    await untilUp(store);
    assert.deepEqual(await store.append(REF, turn(4), T0 + 4, { epoch: 4 }), { epochChanged: true }, 'an append under the lost epoch is refused');
    assert.deepEqual(await store.append(REF, turn(4), T0 + 4), { needsSeed: true });
    assert.equal(await store.epoch(), null);
  });

  test('turns evicted from under their metadata: append drops the stale state and asks for a seed', async () => {
    const store = open('evicted');
    await seeded(store, 4);
    await redis.command(['DEL', store.keys.session(REF).turns]);
    assert.deepEqual(await store.append(REF, turn(5), T0 + 5), { needsSeed: true });
    assert.equal(await store.meta(REF), null);
    assert.equal(await store.totalBytes(), 0);
    assert.deepEqual(await store.lruSessions(10), []);
  });
});

describe('Redis hot store when Redis is down', () => {
  test('calls fail fast with STRATA_ERR_HOT_UNAVAILABLE, before and after a connection existed', async () => {
    const redis = await startRedis({ private: true });
    const connected = new RedisHotStore({ url: redis.url, keyPrefix: 'down:' });
    await connected.ping();
    const url = redis.url;
    await redis.stop();
    const started = Date.now();
    await assert.rejects(connected.append(REF, turn(1), T0), (e: unknown) => isStrataError(e, 'STRATA_ERR_HOT_UNAVAILABLE'));
    const never = new RedisHotStore({ url, keyPrefix: 'down:' });
    await assert.rejects(never.ping(), (e: unknown) => isStrataError(e, 'STRATA_ERR_HOT_UNAVAILABLE'));
    assert.ok(Date.now() - started < 5000, 'no hang while Redis is down');
    await connected.close();
    await never.close();
  });
});

describe('Redis hot store reads outside Lua, and command deadlines', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis({ private: true });
  });
  after(async () => {
    await redis.stop();
  });

  test('a turn deleted between the read script and its HMGET: the read runs again inside the script', async () => {
    const raw = createClient({ url: redis.url, RESP: 2 });
    await raw.connect();
    let hmgets = 0;
    let beforeHmget: (() => Promise<void>) | null = null;
    const client = {
      async sendCommand(args: ReadonlyArray<string>): Promise<unknown> {
        if (args[0] === 'HMGET' && args[1]!.endsWith(':t')) {
          hmgets++;
          const hook = beforeHmget;
          beforeHmget = null;
          if (hook !== null) await hook();
        }
        return raw.sendCommand([...args]);
      },
    };
    const store = new RedisHotStore({ client, keyPrefix: redis.prefix('outside') });
    try {
      await seeded(store, 10);
      assert.deepEqual((await store.recent(REF, 5, T0 + 100)).map((t) => t.turnId), [6, 7, 8, 9, 10]);
      assert.equal(hmgets, 1, 'a session without holes is read by one plain HMGET');
      beforeHmget = async () => {
        assert.equal(await store.deleteTurns(REF, [8]), 1);
      };
      const got = await store.recent(REF, 5, T0 + 101);
      assert.equal(beforeHmget, null, 'the deletion ran between the script and the HMGET');
      assert.deepEqual(got.map((t) => t.turnId), [5, 6, 7, 9, 10], 'the hole is skipped, the read reaches further down');
      assert.deepEqual(got.map((t) => t.content), ['turn 5', 'turn 6', 'turn 7', 'turn 9', 'turn 10']);
      const before = hmgets;
      assert.deepEqual((await store.range(REF, 1, 10)).map((t) => t.turnId), [1, 2, 3, 4, 5, 6, 7, 9, 10]);
      assert.equal(hmgets, before, 'a session with a hole is read inside the script');
    } finally {
      await store.close();
      await raw.close();
    }
  });

  test('recent guesses its ids from the newest turn the store saw; a guess another writer outdated costs one more HMGET, never a wrong answer', async () => {
    const raw = createClient({ url: redis.url, RESP: 2 });
    await raw.connect();
    const sent: string[] = [];
    const client = {
      sendCommand(args: ReadonlyArray<string>): Promise<unknown> {
        sent.push(args[0] === 'HMGET' ? `HMGET ${args.slice(2).join(',')}` : args[0]!);
        return raw.sendCommand([...args]);
      },
    };
    const prefix = redis.prefix('guess');
    const a = new RedisHotStore({ client, keyPrefix: prefix });
    const b = new RedisHotStore({ url: redis.url, keyPrefix: prefix });
    try {
      await seeded(a, 10);
      sent.length = 0;
      assert.deepEqual((await a.recent(REF, 3, T0 + 100)).map((t) => t.turnId), [8, 9, 10]);
      assert.deepEqual(sent, ['EVALSHA', 'HMGET 8,9,10'], 'the guessed HMGET goes right behind the script');
      assert.deepEqual(await b.append(REF, turn(11), T0 + 11), { turnId: 11 });
      sent.length = 0;
      const got = await a.recent(REF, 3, T0 + 101);
      assert.deepEqual(got.map((t) => [t.turnId, t.content]), [[9, 'turn 9'], [10, 'turn 10'], [11, 'turn 11']]);
      assert.deepEqual(sent, ['EVALSHA', 'HMGET 8,9,10', 'HMGET 9,10,11'], 'the outdated guess is dropped and the ids the script chose are read');
      sent.length = 0;
      await a.recent(REF, 3, T0 + 102);
      assert.deepEqual(sent, ['EVALSHA', 'HMGET 9,10,11'], 'the read taught the store the newest id');
    } finally {
      await a.close();
      await b.close();
      await raw.close();
    }
  });

  test('a server that stops answering: commands fail with STRATA_ERR_HOT_UNAVAILABLE after commandTimeoutMs, then work again', async () => {
    assert.throws(() => new RedisHotStore({ url: redis.url, commandTimeoutMs: 0 }), (e: unknown) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID'));
    const store = new RedisHotStore({ url: redis.url, keyPrefix: redis.prefix('deadline'), commandTimeoutMs: 300 });
    try {
      await seeded(store, 2);
      await redis.command(['CLIENT', 'PAUSE', '2000', 'ALL']);
      const started = performance.now();
      await assert.rejects(store.meta(REF), (e: unknown) => isStrataError(e, 'STRATA_ERR_HOT_UNAVAILABLE'));
      const waited = performance.now() - started;
      assert.ok(waited >= 290 && waited < 1900, `failed after ${waited.toFixed(0)} ms, not at the deadline`);
      await redis.command(['CLIENT', 'UNPAUSE']);
      assert.equal((await store.meta(REF))?.turnCount, 2);
    } finally {
      await store.close();
    }
  });
});
