import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '../../src/errors.js';
import { LeaseSessionLock } from '../../src/hot/lease-lock.js';
import { MemoryHotStore } from '../../src/hot/memory/memory-store.js';
import { RedisHotStore } from '../../src/hot/redis/redis-store.js';
import { RedisSessionLock } from '../../src/hot/redis/session-lock.js';
import type { SessionRef } from '../../src/types.js';
import { startRedis } from '../helpers/redis.js';
import type { TestRedis } from '../helpers/redis.js';

const REF: SessionRef = { tenant: 't', sessionId: 's' };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('LeaseSessionLock on the memory store (injected clock)', () => {
  test('runs the work, then releases the lease', async () => {
    const store = new MemoryHotStore();
    const lock = new LeaseSessionLock(store, { clock: { now: () => 1000 } });
    assert.equal(await lock.withLock(REF, async () => 42), 42);
    assert.ok(await store.acquireLease(REF, 'other', 100, 1000), 'released after the work');
  });

  test('a failing work still releases, and its error propagates', async () => {
    const store = new MemoryHotStore();
    const lock = new LeaseSessionLock(store, { clock: { now: () => 1000 } });
    await assert.rejects(lock.withLock(REF, async () => { throw new Error('boom'); }), /boom/);
    assert.ok(await store.acquireLease(REF, 'other', 100, 1000));
  });

  test('a busy lease gives STRATA_ERR_LEASE_BUSY after waitMs', async () => {
    const store = new MemoryHotStore();
    await store.acquireLease(REF, 'holder', 60_000, 1000);
    const lock = new LeaseSessionLock(store, { clock: { now: () => 1000 }, waitMs: 40, retryMs: 5 });
    let ran = false;
    const started = performance.now();
    await assert.rejects(lock.withLock(REF, async () => { ran = true; }), (e: unknown) => isStrataError(e, 'STRATA_ERR_LEASE_BUSY'));
    assert.ok(performance.now() - started >= 35, 'it retried for about waitMs');
    assert.equal(ran, false);
  });

  test('waits for a lease released by its holder', async () => {
    const store = new MemoryHotStore();
    const token = (await store.acquireLease(REF, 'holder', 60_000, 1000))!.token;
    const lock = new LeaseSessionLock(store, { clock: { now: () => 1000 }, waitMs: 2000, retryMs: 5 });
    setTimeout(() => void store.releaseLease(REF, token), 30);
    assert.equal(await lock.withLock(REF, async () => 'got it'), 'got it');
  });

  test('a lease lost during the work is detectable and makes withLock reject', async () => {
    const store = new MemoryHotStore();
    let now = 1000;
    const lock = new LeaseSessionLock(store, { clock: { now: () => now }, ttlMs: 300 });
    let sawAbort = false;
    let assertError: unknown = null;
    const run = lock.withLease(REF, async (lease) => {
      await lease.assertHeld();
      now += 1000; // the lease expires by the clock, and another instance takes it
      assert.ok(await store.acquireLease(REF, 'thief', 10_000, now));
      try {
        await lease.assertHeld();
      } catch (err) {
        assertError = err;
      }
      sawAbort = lease.signal.aborted;
      return 'done';
    });
    await assert.rejects(run, (e: unknown) => isStrataError(e, 'STRATA_ERR_LEASE_LOST'));
    assert.ok(isStrataError(assertError, 'STRATA_ERR_LEASE_LOST'));
    assert.equal(sawAbort, true);
    assert.equal(await store.acquireLease(REF, 'third', 100, now), null, "the loser did not release the thief's lease");
  });

  test('options are validated eagerly', () => {
    const store = new MemoryHotStore();
    assert.throws(() => new LeaseSessionLock(store, { ttlMs: 0 }), (e: unknown) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID'));
    assert.throws(() => new LeaseSessionLock(store, { waitMs: -1 }), (e: unknown) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID'));
    assert.throws(() => new LeaseSessionLock(store, { owner: '' }), (e: unknown) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID'));
  });
});

describe('RedisSessionLock', () => {
  let redis: TestRedis;
  const stores: RedisHotStore[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await redis.stop();
  });
  const open = (prefix: string): RedisHotStore => {
    const s = new RedisHotStore({ url: redis.url, keyPrefix: prefix });
    stores.push(s);
    return s;
  };

  test('two instances never run the guarded work at the same time', async () => {
    const prefix = redis.prefix('excl');
    const locks = [new RedisSessionLock(open(prefix), { retryMs: 2 }), new RedisSessionLock(open(prefix), { retryMs: 2 })];
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        locks[i % 2]!.withLock(REF, async () => {
          active += 1;
          maxActive = Math.max(maxActive, active);
          await sleep(3);
          runs += 1;
          active -= 1;
        }),
      ),
    );
    assert.equal(runs, 12);
    assert.equal(maxActive, 1);
  });

  test('the lease is renewed while long work runs', async () => {
    const prefix = redis.prefix('renew');
    const store = open(prefix);
    // Renewed every 80 ms: a TTL this long survives event-loop stalls on a loaded machine.
    const lock = new RedisSessionLock(store, { ttlMs: 240 });
    const other = open(prefix);
    await lock.withLock(REF, async () => {
      await sleep(600); // two and a half TTLs
      assert.equal(await other.acquireLease(REF, 'other', 1000, Date.now()), null);
    });
    assert.ok(await other.acquireLease(REF, 'other', 1000, Date.now()));
  });

  test('a lease taken over after expiry is reported as lost', async () => {
    const prefix = redis.prefix('lost');
    const store = open(prefix);
    const lock = new RedisSessionLock(store, { ttlMs: 3000 });
    const run = lock.withLease(REF, async (lease) => {
      // Simulate a stall longer than the TTL: the key expires and another instance takes it.
      await redis.command(['DEL', store.keys.session(REF).lease]);
      assert.ok(await store.acquireLease(REF, 'thief', 10_000, Date.now()));
      await assert.rejects(lease.assertHeld(), (e: unknown) => isStrataError(e, 'STRATA_ERR_LEASE_LOST'));
    });
    await assert.rejects(run, (e: unknown) => isStrataError(e, 'STRATA_ERR_LEASE_LOST'));
    assert.match(String(await redis.command(['GET', store.keys.session(REF).lease])), /^thief:/);
  });
});
