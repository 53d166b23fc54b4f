import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { createClient, ErrorReply } from 'redis';
import { isStrataError } from '../../src/errors.js';
import { HotKeys, SHARD_COUNT, shardOf, tagSlot } from '../../src/hot/redis/keys.js';
import { RedisHotStore } from '../../src/hot/redis/redis-store.js';
import { SCRIPT_NAMES, loadScripts, mapRedisError } from '../../src/hot/redis/scripts.js';
import type { SessionRef } from '../../src/types.js';
import { startRedis } from '../helpers/redis.js';
import type { TestRedis } from '../helpers/redis.js';

const REF: SessionRef = { tenant: 'acme', sessionId: 'chat-1' };
const T0 = 1_700_000_000_000;
const configError = (e: unknown): boolean => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID');

describe('RedisHotStore options', () => {
  test('are validated eagerly', () => {
    assert.throws(() => new RedisHotStore({}), configError);
    assert.throws(() => new RedisHotStore({ url: 'redis://127.0.0.1:1', client: { sendCommand: async () => null } }), configError);
    assert.throws(() => new RedisHotStore({ url: 'http://127.0.0.1:6379' }), configError);
    assert.throws(() => new RedisHotStore({ url: 'redis://127.0.0.1:1', keyPrefix: 'a{b}:' }), configError);
    assert.throws(() => new RedisHotStore({ url: 'redis://127.0.0.1:1', keyPrefix: '' }), configError);
    assert.throws(() => new RedisHotStore({ url: 'redis://127.0.0.1:1', clientName: 'has space' }), configError);
    assert.throws(() => new RedisHotStore({ client: {} as never }), configError);
  });
});

describe('key layout', () => {
  test("a session's keys and its shard's indexes share one hash tag (one Cluster slot); shards spread over the slot range", () => {
    const keys = new HotKeys('p:');
    const tagOf = (k: string): string => k.slice(k.indexOf('{') + 1, k.indexOf('}'));
    for (const ref of [REF, { tenant: 'acme', sessionId: 'a}b{c:d' }, { tenant: 't', sessionId: 'ünï 🙂' }]) {
      const s = keys.session(ref);
      const g = keys.shardOf(ref);
      const tags = new Set([s.meta, s.turns, s.lease, s.fence, s.idem, s.idemAge, s.voids, s.floor, ...Object.values(g)].map(tagOf));
      assert.equal(tags.size, 1, `one tag for ${ref.sessionId}`);
      assert.equal(s.shard, shardOf(ref));
      assert.ok(s.meta.startsWith('p:{'));
    }
    assert.equal(keys.shards.length, SHARD_COUNT);
    // Shard n's slot lies in the n-th of SHARD_COUNT equal slot ranges.
    keys.shards.forEach((g, n) => {
      const slot = tagSlot(tagOf(g.lru));
      assert.ok(slot >= (n * 16384) / SHARD_COUNT - 1 && slot < ((n + 1) * 16384) / SHARD_COUNT, `shard ${n} slot ${slot}`);
    });
    assert.equal(tagSlot('123456789'), 0x31c3, 'CRC16 XMODEM, as Redis Cluster');
    assert.ok(keys.isLegacyKey('p:{acme:chat-1}:m') && keys.isLegacyKey('p:lru') && !keys.isLegacyKey(keys.session(REF).meta) && !keys.isLegacyKey(keys.shards[0]!.lru));
  });

  test('docs/redis-keys.md names every script and every key', () => {
    const doc = readFileSync(new URL('../../docs/redis-keys.md', import.meta.url), 'utf8');
    const files = readdirSync(new URL('../../src/hot/redis/scripts/', import.meta.url)).map((f) => f.replace(/\.lua$/, '')).sort();
    assert.deepEqual(files, [...SCRIPT_NAMES].sort(), 'every script file is registered');
    for (const name of files) assert.ok(doc.includes(`\`${name}\``), `docs lists ${name}`);
    for (const name of ['lru', 'backlog', 'age', 'bytes', 'epoch']) assert.ok(doc.includes(`\`<p>{<g>}${name}\``), `docs lists ${name}`);
    for (const suffix of [':m', ':t', ':lease']) assert.ok(doc.includes(`\`<p>{<g>}<t>:<s>${suffix}\``), `docs lists ${suffix}`);
  });
});

describe('mapRedisError', () => {
  test('maps script reasons, unknown replies and connection failures to codes', () => {
    assert.equal(mapRedisError(new ErrorReply('STRATA_UPTO_BEYOND_LAST upTo 9'), 'markArchived').code, 'STRATA_ERR_VALIDATION');
    assert.equal(mapRedisError(new ErrorReply('STRATA_SOMETHING_NEW x'), 'x').code, 'STRATA_ERR_INTERNAL');
    assert.equal(mapRedisError(new ErrorReply('WRONGTYPE Operation against a key'), 'x').code, 'STRATA_ERR_INTERNAL');
    assert.equal(mapRedisError(new Error('connect ECONNREFUSED'), 'x').code, 'STRATA_ERR_HOT_UNAVAILABLE');
  });
});

describe('RedisHotStore on a real Redis', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.stop());

  test('no key holding turns or metadata has a TTL; only the lease expires', async () => {
    const store = new RedisHotStore({ url: redis.url, keyPrefix: redis.prefix('ttl') });
    try {
      await store.seed(REF, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0);
      await store.append(REF, { role: 'user', content: 'hi', createdAt: T0 }, T0);
      await store.initEpoch(1);
      assert.ok(await store.acquireLease(REF, 'me', 10_000, T0));
      const s = store.keys.session(REF);
      for (const key of [s.meta, s.turns, ...Object.values(store.keys.shardOf(REF))]) {
        assert.equal(await redis.command(['PTTL', key]), -1, `${key} exists without TTL`);
      }
      const leaseTtl = Number(await redis.command(['PTTL', s.lease]));
      assert.ok(leaseTtl > 0 && leaseTtl <= 10_000);
    } finally {
      await store.close();
    }
  });

  test('the unsharded layout of the previous version is dropped when the first epoch is set; its writers then fail', async () => {
    const prefix = redis.prefix('legacy');
    // What the previous version left: untagged indexes, session keys tagged by session.
    const old = [`${prefix}{acme:chat-1}:m`, `${prefix}{acme:chat-1}:t`, `${prefix}{acme:a}b}:f`, `${prefix}lru`, `${prefix}backlog`, `${prefix}age`, `${prefix}epoch`];
    await redis.command(['HSET', old[0]!, 'nextTurnId', '3']);
    await redis.command(['HSET', old[1]!, '1', 'x', '2', 'y']);
    await redis.command(['SET', old[2]!, '9']);
    for (const k of old.slice(3, 6)) await redis.command(['ZADD', k, '1', 'acme:chat-1']);
    await redis.command(['SET', old[6]!, '4']);
    await redis.command(['SET', `${prefix}bytes`, '42']);
    const store = new RedisHotStore({ url: redis.url, keyPrefix: prefix });
    try {
      await store.seed(REF, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0);
      assert.equal(await store.epoch(), null, 'the new layout starts without an epoch: the cache recovers from the journals');
      assert.equal(await store.initEpoch(5), 5);
      for (const k of old) assert.equal(await redis.command(['EXISTS', k]), 0, `${k} deleted`);
      assert.equal(await redis.command(['GET', `${prefix}bytes`]), 'migrated');
      assert.ok((await store.meta(REF)) !== null, 'keys of the new layout are kept');
      assert.equal(await store.epoch(), 5);
      // A writer of the previous version increments the old byte counter: it now fails.
      await assert.rejects(redis.command(['INCRBY', `${prefix}bytes`, '10']));
    } finally {
      await store.close();
    }
  });

  test('a shard stored by another primary (failover, restart) is broken: refused, unread, wiped by initEpoch; other shards keep their sessions', async () => {
    const store = new RedisHotStore({ url: redis.url, keyPrefix: redis.prefix('broken') });
    try {
      const other: SessionRef = Array.from({ length: 100 }, (_, i) => ({ tenant: 'acme', sessionId: `o${i}` })).find((r) => shardOf(r) !== shardOf(REF))!;
      assert.equal(await store.initEpoch(3), 3);
      for (const ref of [REF, other]) {
        await store.seed(ref, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0, { epoch: 3 });
        assert.deepEqual(await store.append(ref, { role: 'user', content: 'hi', createdAt: T0 }, T0, { epoch: 3 }), { turnId: 1 });
      }
      // The shard's state now looks written by another primary, as on a promoted replica.
      await redis.command(['HSET', store.keys.shardOf(REF).epoch, 'node', 'f'.repeat(40)]);
      assert.deepEqual(await store.recent(REF, 5, T0), [], 'nothing is read from a broken shard');
      assert.equal(await store.meta(REF), null, 'a broken shard holds no session: a read seeds it, and the seed makes the caller recover');
      assert.equal((await store.meta(other))?.nextTurnId, 2, 'other shards answer');
      assert.deepEqual(await store.append(REF, { role: 'user', content: 'x', createdAt: T0 }, T0, { epoch: 3 }), { epochChanged: true });
      assert.equal(await store.epoch(), null);
      assert.deepEqual(await store.append(other, { role: 'user', content: 'y', createdAt: T0 }, T0, { epoch: 3 }), { turnId: 2 }, 'other shards go on');
      assert.equal(await store.initEpoch(4), 4);
      assert.equal(await store.meta(REF), null, 'the broken shard was wiped: its sessions are seeded again');
      assert.equal((await store.meta(other))?.nextTurnId, 3, 'an intact shard keeps its sessions');
      assert.equal(await store.epoch(), 4);
      assert.deepEqual(await store.append(REF, { role: 'user', content: 'z', createdAt: T0 }, T0, { epoch: 4 }), { needsSeed: true });
      assert.deepEqual(await store.confirm(other, 3, [{ turnId: 2, key: 'nokey' }]), [false], 'a turn without that key is not confirmed under a newer epoch');
      assert.equal(await store.totalBytes(), (await store.meta(other))!.bytes, 'the wiped bytes left the total');
    } finally {
      await store.close();
    }
  });

  test('concurrent confirms of one shard share one epoch read; a changed epoch still runs the confirm script per session', async () => {
    const client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
    const scripts = loadScripts();
    const shaName = new Map([...scripts.values()].map((s) => [s.sha, s.name]));
    const calls: string[] = [];
    let failEpochRead = false;
    const counting = {
      sendCommand: (args: ReadonlyArray<string>): Promise<unknown> => {
        const name = args[0] === 'EVALSHA' ? (shaName.get(args[1]!) ?? args[1]!) : args[0]!;
        calls.push(name);
        if (failEpochRead && name === 'epoch-1') return Promise.reject(new Error('connection reset (injected)'));
        return client.sendCommand([...args]);
      },
    };
    const store = new RedisHotStore({ client: counting, keyPrefix: redis.prefix('confirmbatch') });
    try {
      assert.equal(await store.initEpoch(7), 7);
      // Sessions of one shard (a shard holds every session whose tag hashes to it).
      const refs: SessionRef[] = [];
      for (let i = 0; refs.length < 12; i++) {
        const ref = { tenant: 'acme', sessionId: `s-${i}` };
        if (store.keys.session(ref).shard === store.keys.session(REF).shard) refs.push(ref);
      }
      const ids = await Promise.all(refs.map(async (ref) => {
        await store.seed(ref, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0, { epoch: 7 });
        const r = await store.append(ref, { role: 'user', content: 'hi', createdAt: T0, key: 'n:k1' }, T0, { epoch: 7 });
        assert.ok('turnId' in r);
        return r.turnId;
      }));
      calls.length = 0;
      const confirmed = await Promise.all(refs.map((ref, i) => store.confirm(ref, 7, [{ turnId: ids[i]!, key: 'n:k1' }])));
      assert.deepEqual(confirmed, refs.map(() => [true]));
      assert.deepEqual(calls, ['epoch-1'], 'twelve confirms, one epoch read, no confirm script');

      calls.length = 0;
      const stale = await Promise.all(refs.slice(0, 3).map((ref, i) => store.confirm(ref, 6, [{ turnId: ids[i]!, key: 'n:other' }])));
      assert.deepEqual(stale, [[false], [false], [false]], 'under another epoch, a turn without the writer key is voided');
      assert.deepEqual(calls.sort(), ['confirm-4', 'confirm-4', 'confirm-4', 'epoch-1']);
      assert.equal((await store.voided(refs[0]!)).length, 1, 'the void marker was written');

      // Confirms of sessions in different shards: one read of all their shards, one INFO.
      const spread: SessionRef[] = [];
      const shards = new Set<number>();
      for (let i = 0; spread.length < 10; i++) {
        const ref = { tenant: 'acme', sessionId: `spread-${i}` };
        const shard = store.keys.session(ref).shard;
        if (shards.has(shard) || shard === store.keys.session(REF).shard) continue;
        shards.add(shard);
        spread.push(ref);
      }
      const spreadIds = await Promise.all(spread.map(async (ref) => {
        await store.seed(ref, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0, { epoch: 7 });
        const r = await store.append(ref, { role: 'user', content: 'hi', createdAt: T0, key: 'n:k1' }, T0, { epoch: 7 });
        assert.ok('turnId' in r);
        return r.turnId;
      }));
      // One shard of them goes broken (its primary looks replaced): its confirm alone is refused.
      await client.sendCommand(['HSET', store.keys.shardOf(spread[3]!).epoch, 'node', 'f'.repeat(40)]);
      calls.length = 0;
      const infoBefore = Number(/cmdstat_info:calls=(\d+)/.exec(String(await client.sendCommand(['INFO', 'commandstats'])))?.[1] ?? 0);
      const spreadConfirmed = await Promise.all(spread.map((ref, i) => store.confirm(ref, 7, [{ turnId: spreadIds[i]!, key: 'n:other' }])));
      const infoAfter = Number(/cmdstat_info:calls=(\d+)/.exec(String(await client.sendCommand(['INFO', 'commandstats'])))?.[1] ?? 0);
      assert.deepEqual(spreadConfirmed, spread.map((_, i) => [i !== 3]), 'the intact shards confirm; the broken one voids the turn without the writer key');
      assert.deepEqual(calls.sort(), ['confirm-4', 'epochs-n'], 'ten shards, one epoch read; the confirm script for the broken shard only');
      // The first INFO commandstats counts in the second; the read of ten shards asks INFO once
      // (confirm-4 finds the shard already marked broken and asks none).
      assert.equal(infoAfter - infoBefore - 1, 1, 'one INFO replication for the ten shards');
      calls.length = 0;
      assert.equal(await store.epoch(), null, 'a broken shard: no common epoch');
      assert.deepEqual(calls, ['epochs-n'], 'every shard read in one call');

      failEpochRead = true;
      const failed = await Promise.allSettled(refs.slice(0, 4).map((ref, i) => store.confirm(ref, 7, [{ turnId: ids[i]!, key: 'n:k1' }])));
      assert.ok(failed.every((r) => r.status === 'rejected' && isStrataError(r.reason, 'STRATA_ERR_HOT_UNAVAILABLE')), 'every waiter of a failed read gets the coded error');
      failEpochRead = false;
      assert.deepEqual(await store.confirm(refs[0]!, 7, [{ turnId: ids[0]!, key: 'n:k1' }]), [true], 'the next read goes out again');
    } finally {
      await store.close();
      await client.close();
    }
  });

  test('concurrent appends go out in one append-n call, each answered as if alone; a failed call fails only its own turns', async () => {
    const client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
    const shaName = new Map([...loadScripts().values()].map((s) => [s.sha, s.name]));
    const calls: Array<{ name: string; turns: number }> = [];
    let failAppend = false;
    const counting = {
      sendCommand: (args: ReadonlyArray<string>): Promise<unknown> => {
        const name = args[0] === 'EVALSHA' ? (shaName.get(args[1]!) ?? args[1]!) : args[0]!;
        if (name === 'append-n') {
          calls.push({ name, turns: Number(args[2]) / 9 });
          if (failAppend) return Promise.reject(new Error('connection reset (injected)'));
        }
        return client.sendCommand([...args]);
      },
    };
    const store = new RedisHotStore({ client: counting, keyPrefix: redis.prefix('appendbatch') });
    try {
      assert.equal(await store.initEpoch(3), 3);
      const refs = Array.from({ length: 8 }, (_, i) => ({ tenant: 'acme', sessionId: `b-${i}` }));
      for (const ref of refs.slice(0, 7)) await store.seed(ref, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0, { epoch: 3 });
      const turn = (content: string, key: string): { role: 'user'; content: string; createdAt: number; key: string } => ({ role: 'user', content, createdAt: T0, key });
      calls.length = 0;
      const answers = await Promise.all([
        store.append(refs[0]!, turn('a1', 'n:a1'), T0 + 1, { epoch: 3 }),
        store.append(refs[1]!, turn('b1', 'n:b1'), T0 + 1, { epoch: 3 }),
        store.append(refs[0]!, turn('a2', 'n:a2'), T0 + 2, { epoch: 3 }),
        store.append(refs[2]!, turn('c1', 'n:c1'), T0 + 1, { epoch: 2 }),
        store.append(refs[7]!, turn('h1', 'n:h1'), T0 + 1, { epoch: 3 }),
        store.append(refs[3]!, turn('d1', 'n:d1'), T0 + 1, { epoch: 3, idempotency: { key: 'k:x#0', hash: 'h1', windowMs: 60_000 } }),
        store.append(refs[0]!, turn('a3', 'n:a3'), T0 + 3, { epoch: 3 }),
      ]);
      assert.deepEqual(calls, [{ name: 'append-n', turns: 7 }], 'seven appends, one script call');
      assert.deepEqual(answers, [{ turnId: 1 }, { turnId: 1 }, { turnId: 2 }, { epochChanged: true }, { needsSeed: true }, { turnId: 1 }, { turnId: 3 }], 'each turn answered as if alone, in the order asked');
      assert.deepEqual((await store.recent(refs[0]!, 10, T0 + 4)).map((t) => t.content), ['a1', 'a2', 'a3']);
      const meta = await store.meta(refs[0]!);
      assert.equal(meta?.nextTurnId, 4);
      assert.equal(meta?.turnCount, 3);
      assert.equal(meta?.unarchivedCount, 3);
      assert.equal(meta?.oldestUnarchivedAt, T0);
      assert.equal(meta?.lastAccess, T0 + 4);
      assert.equal(await store.meta(refs[2]!).then((m) => m?.nextTurnId), 1, 'the refused append changed nothing');
      assert.deepEqual(await store.append(refs[3]!, turn('d1', 'n:d9'), T0 + 5, { epoch: 3, idempotency: { key: 'k:x#0', hash: 'h1', windowMs: 60_000 } }), { turnId: 1, known: true });
      assert.equal(await store.totalBytes(), (await Promise.all(refs.map((r) => store.meta(r)))).reduce((sum, m) => sum + (m?.bytes ?? 0), 0), 'shard byte counters match the sessions');

      // A turn of about 1 MiB or more goes in a call of its own.
      calls.length = 0;
      const big = 'x'.repeat(1 << 20);
      const [small1, large, small2] = await Promise.all([
        store.append(refs[4]!, turn('e1', 'n:e1'), T0 + 6, { epoch: 3 }),
        store.append(refs[5]!, turn(big, 'n:f1'), T0 + 6, { epoch: 3 }),
        store.append(refs[6]!, turn('g1', 'n:g1'), T0 + 6, { epoch: 3 }),
      ]);
      assert.deepEqual([small1, large, small2], [{ turnId: 1 }, { turnId: 1 }, { turnId: 1 }]);
      assert.deepEqual(calls.map((c) => c.turns), [1, 1, 1], 'the large turn splits the batch');

      // A call that fails fails the turns it carried, with the coded error; the next call goes out.
      calls.length = 0;
      failAppend = true;
      const failed = await Promise.allSettled(refs.slice(4, 7).map((ref, i) => store.append(ref, turn(`z${i}`, `n:z${i}`), T0 + 7, { epoch: 3 })));
      failAppend = false;
      assert.ok(failed.every((r) => r.status === 'rejected' && isStrataError(r.reason, 'STRATA_ERR_HOT_UNAVAILABLE')));
      assert.deepEqual(calls, [{ name: 'append-n', turns: 3 }]);
      assert.deepEqual(await store.append(refs[4]!, turn('e2', 'n:e2'), T0 + 8, { epoch: 3 }), { turnId: 2 });
      await assert.rejects(store.append(refs[4]!, { role: 'user', content: 'x', createdAt: -1 }, T0), (err: unknown) => isStrataError(err, 'STRATA_ERR_VALIDATION'), 'bad input is refused before it joins a batch');
    } finally {
      await store.close();
      await client.close();
    }
  });

  test('clientName names the connection; a caller-owned client stays open after close()', async () => {
    const named = new RedisHotStore({ url: redis.url, keyPrefix: redis.prefix('named'), clientName: 'strata-hot-test' });
    await named.ping();
    assert.match(String(await redis.command(['CLIENT', 'LIST'])), /name=strata-hot-test/);
    await named.close();

    const client = createClient({ url: redis.url });
    client.on('error', () => {});
    await client.connect();
    const store = new RedisHotStore({ client, keyPrefix: redis.prefix('owned') });
    assert.equal(await store.seed(REF, { nextTurnId: 3, archivedUpTo: 2, turns: [] }, T0), true);
    assert.deepEqual(await store.append(REF, { role: 'user', content: 'x', createdAt: T0 }, T0), { turnId: 3 });
    assert.equal((await store.lruSessions(5))[0]?.lastAccess, T0, 'RESP3 replies are understood too');
    await store.close();
    assert.equal(await client.ping(), 'PONG');
    await client.close();
  });
});
