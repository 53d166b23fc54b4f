import { after, before } from 'node:test';
import { MemoryHotStore } from '../../src/hot/memory/memory-store.js';
import { RedisHotStore } from '../../src/hot/redis/redis-store.js';
import type { HotStore } from '../../src/hot/store.js';
import { startRedis } from '../helpers/redis.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import type { TestRedisCluster } from '../helpers/redis-cluster.js';
import type { TestRedis } from '../helpers/redis.js';
import { hotStoreSuite } from './hot-store.js';

hotStoreSuite('memory', async () => {
  const store = new MemoryHotStore();
  return { store, twin: async () => store, elapse: async () => {}, cleanup: () => store.close() };
});

let redis: TestRedis;
let cluster: TestRedisCluster;
before(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
});
after(() => Promise.all([redis.stop(), cluster.stop()]));

let counter = 0;

/** A harness over Redis stores at `url` sharing one key prefix (a store and its twins). */
function redisHarness(url: string, keyPrefix: string) {
  const opened: HotStore[] = [];
  const open = (): RedisHotStore => {
    const s = new RedisHotStore({ url, keyPrefix });
    opened.push(s);
    return s;
  };
  return {
    store: open(),
    twin: async () => open(),
    elapse: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
    cleanup: async () => {
      await Promise.all(opened.map((s) => s.close()));
    },
  };
}

// A unique prefix per test: tests share one server but never each other's keys.
hotStoreSuite('redis', async () => redisHarness(redis.url, redis.prefix(`conf${++counter}`)));

// The same suite on a real 6-node Redis Cluster (3 masters, 3 replicas), one per file.
hotStoreSuite('redis cluster', async () => redisHarness(cluster.url, `cluster${++counter}:`));
