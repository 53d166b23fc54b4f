import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { createClient, ErrorReply } from 'redis';
import { isStrataError } from '../../src/errors.js';
import { HotKeys } from '../../src/hot/redis/keys.js';
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
  test('session keys carry the session hash tag; global keys carry none', () => {
    const keys = new HotKeys('p:');
    const s = keys.session(REF);
    for (const k of [s.meta, s.turns, s.lease]) assert.match(k, /^p:\{acme:chat-1\}:/);
    for (const k of Object.values(keys.global)) {
      assert.ok(k.startsWith('p:'));
      assert.doesNotMatch(k, /[{}]/);
    }
  });

  test('docs/redis-keys.md names every script and every key', () => {
    const doc = readFileSync(new URL('../../docs/redis-keys.md', import.meta.url), 'utf8');
    const files = readdirSync(new URL('../../src/hot/redis/scripts/', import.meta.url)).map((f) => f.replace(/\.lua$/, '')).sort();
    assert.deepEqual(files, [...SCRIPT_NAMES].sort(), 'every script file is registered');
    for (const name of files) assert.ok(doc.includes(`\`${name}\``), `docs lists ${name}`);
    const keys = new HotKeys('<p>');
    for (const k of Object.values(keys.global)) assert.ok(doc.includes(`\`${k}\``), `docs lists ${k}`);
    for (const suffix of [':m', ':t', ':lease']) assert.ok(doc.includes(`\`<p>{<t>:<s>}${suffix}\``), `docs lists ${suffix}`);
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
      for (const key of [s.meta, s.turns, ...Object.values(store.keys.global)]) {
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
