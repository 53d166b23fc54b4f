import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { createClient, ErrorReply } from 'redis';
import { isStrataError } from '../../src/errors.js';
import { HotKeys, SHARD_COUNT, shardOf, tagSlot } from '../../src/hot/redis/keys.js';
import { RedisHotStore } from '../../src/hot/redis/redis-store.js';
import { SCRIPT_NAMES, mapRedisError } from '../../src/hot/redis/scripts.js';
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
