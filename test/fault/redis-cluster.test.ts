/**
 * The hot tier on a real Redis Cluster (6 nodes: 3 masters, 3 replicas) losing data under a real
 * Strata core: a master SIGKILLed while its replica lags (the promoted replica misses writes that
 * were acknowledged), and a FLUSHALL of every master. docs/consistency.md, "Shards".
 * Acknowledged messages are checked with the chaos suite's checker: each exactly once, at its id.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCluster } from 'redis';
import { check } from '../../src/chaos/checker.js';
import type { StoredTurn } from '../../src/chaos/readback.js';
import type { LogicalWrite, SessionRef } from '../../src/chaos/workload.js';
import { sessionKey } from '../../src/chaos/workload.js';
import { StrataError } from '../../src/errors.js';
import { rediscoverTopology, sendOnceRouted, sendToSlotPrimary } from '../../src/hot/redis/cluster-routing.js';
import type { ClusterClient } from '../../src/hot/redis/cluster-routing.js';
import { RedisHotStore } from '../../src/hot/redis/redis-store.js';
import type { Strata } from '../../src/strata.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import type { TestRedisCluster } from '../helpers/redis-cluster.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';

let cluster: TestRedisCluster;
before(async () => {
  cluster = await startRedisCluster({ debug: true });
});
after(() => cluster.stop());

const SESSIONS = Array.from({ length: 12 }, (_, i) => `chat-${i}`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Ack {
  session: string;
  turnId: number;
  content: string;
  at: number;
}

/** The checker's session names: `default/<session>` (the core's default tenant, no API key). */
const ref = (session: string): SessionRef => ({ tenant: { name: 'default', key: '' }, id: session });

/**
 * One writer per session, each message sent with its content as idempotency key and retried
 * until acknowledged (a failover makes calls fail for a while: that is not a loss).
 */
function startWriters(strata: Strata): { acks: Ack[]; writes: LogicalWrite[]; errors: string[]; ackCount(n: number): Promise<void>; stop(): Promise<void> } {
  const acks: Ack[] = [];
  const writes: LogicalWrite[] = [];
  const errors: string[] = [];
  let stopping = false;
  const loops = SESSIONS.map(async (session) => {
    for (let i = 0; !stopping; i++) {
      const content = `${session}/m${i}`;
      const write: LogicalWrite = { key: content.replace('/', '.'), session: ref(session), messages: [{ role: 'user', content }], firstStartMs: Date.now(), lastEndMs: 0, attempts: 0, ackMs: null, turnIds: null, finalError: null };
      writes.push(write);
      for (;;) {
        write.attempts++;
        try {
          const { turnId } = await strata.addMessage(session, 'user', content, { idempotencyKey: write.key });
          write.lastEndMs = write.ackMs = Date.now();
          write.turnIds = [turnId];
          acks.push({ session, turnId, content, at: Date.now() });
          break;
        } catch (err) {
          write.lastEndMs = Date.now();
          const code = err instanceof StrataError ? err.code : 'not a StrataError';
          if (!['STRATA_ERR_HOT_UNAVAILABLE', 'STRATA_ERR_RECOVERING'].includes(code)) errors.push(`${code}: ${(err as Error).message}`);
          if (stopping) return;
          await sleep(20);
        }
      }
    }
  });
  return {
    acks,
    writes,
    errors,
    async ackCount(n) {
      const deadline = Date.now() + 40_000;
      while (acks.length < n) {
        if (Date.now() > deadline) throw new Error(`only ${acks.length} of ${n} acknowledgements; errors: ${errors.slice(0, 3).join('; ')}`);
        await sleep(20);
      }
    },
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

/**
 * A page of messages; while the cluster client has not yet learnt the new topology after a
 * failover, the slot's old primary is unreachable and reads fail with STRATA_ERR_HOT_UNAVAILABLE
 * (the documented answer during a failover): retried for up to 10 s.
 */
async function messagesPage(s: Strata, sessionId: string, after: number): Promise<{ messages: Array<{ turnId: number; content: unknown }>; nextAfter: number | null }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await s.getMessages(sessionId, { after, limit: 1000 });
    } catch (err) {
      if (!(err instanceof StrataError) || err.code !== 'STRATA_ERR_HOT_UNAVAILABLE' || Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

async function readAll(s: Strata, sessionId: string): Promise<Array<{ turnId: number; content: string }>> {
  const out: Array<{ turnId: number; content: string }> = [];
  let afterId = 0;
  for (;;) {
    const page = await messagesPage(s, sessionId, afterId);
    out.push(...page.messages.map((m) => ({ turnId: m.turnId, content: m.content as string })));
    if (page.nextAfter === null) return out;
    afterId = page.nextAfter;
  }
}

/**
 * The chaos checker on what a core reads back: every acknowledged message exactly once at its
 * id, nothing duplicated or foreign, no gap beyond the writes left unanswered across a loss.
 */
async function assertAcknowledgedOnce(reader: Strata, writes: LogicalWrite[], losses: number[]): Promise<void> {
  const stored = new Map<string, { ok: true; turns: StoredTurn[] }>();
  for (const session of SESSIONS) stored.set(sessionKey(ref(session)), { ok: true, turns: (await readAll(reader, session)).map((t) => ({ ...t, role: 'user' })) });
  const violations = check({ phase: 'end', writes, deletes: [], losses, stored });
  assert.deepEqual(violations.slice(0, 5), [], `${violations.length} violations`);
  assert.ok(writes.filter((w) => w.ackMs !== null).length >= 500, 'enough acknowledged writes were checked');
}

async function openCore(t: { after(fn: () => Promise<void>): void }, dir: string, prefix: string, instanceId: string): Promise<Strata> {
  const strata = await openStrata(dir, { instanceId, hot: { driver: 'redis', redisUrl: cluster.url, keyPrefix: prefix }, compaction: { maxUnarchivedTurns: 40, leaseTtlMs: 3000 } });
  closeAfter(t, () => strata.close());
  return strata;
}

test('a master killed while its replica lags, the replica promoted: acknowledged writes the replica missed are re-seeded from the journal, every acknowledged message exactly once', async (t) => {
  const dir = await tempDir(t);
  const prefix = 'kill:';
  const probe = new RedisHotStore({ url: cluster.url, keyPrefix: prefix });
  closeAfter(t, () => probe.close());
  const strata = await openCore(t, dir, prefix, 'inst-a');
  const epochBefore = await probe.epoch();
  assert.ok(epochBefore !== null);
  const writers = startWriters(strata);
  await writers.ackCount(300);

  // The sessions whose shard the victim serves: a command for a key elsewhere answers MOVED.
  const [victim] = await cluster.masters();
  const replica = await cluster.replicaOf(victim!);
  const onVictim = new Set<string>();
  for (const session of SESSIONS) {
    const key = probe.keys.session({ tenant: 'default', sessionId: session }).meta;
    if (await cluster.command(victim!, ['EXISTS', key]).then(() => true, () => false)) onVictim.add(session);
  }
  assert.ok(onVictim.size > 0, 'some sessions live on the victim');

  // The replica sleeps and the victim drops its replication link: what the victim acknowledges
  // from now on never reaches the replica (the asleep replica cannot reconnect before the kill).
  const asleep = cluster.command(replica, ['DEBUG', 'SLEEP', '0.8']);
  await sleep(50);
  await cluster.command(victim!, ['CLIENT', 'KILL', 'TYPE', 'replica']);
  const windowStart = Date.now();
  await sleep(400);
  await cluster.kill(victim!);
  const windowEnd = Date.now();
  await asleep;
  await cluster.promote(replica);
  const missed = writers.acks.filter((a) => onVictim.has(a.session) && a.at >= windowStart && a.at <= windowEnd);
  assert.ok(missed.length > 0, 'the victim acknowledged writes its replica never received');

  await writers.ackCount(writers.acks.length + 300);
  await writers.stop();
  assert.deepEqual(writers.errors, []);
  await assertAcknowledgedOnce(strata, writers.writes, [windowEnd]);
  const epochAfter = await probe.epoch();
  assert.ok(epochAfter !== null && epochAfter > epochBefore, `the failover was detected: epoch ${epochBefore} → ${String(epochAfter)}`);
  await strata.flush();
  // A second instance sees the same, from the hot tier, the archive and the journals.
  const other = await openCore(t, dir, prefix, 'inst-b');
  await assertAcknowledgedOnce(other, writers.writes, [windowEnd]);
  await cluster.restart(victim!);
});

test('FLUSHALL of every master while writing: every acknowledged message exactly once', async (t) => {
  const dir = await tempDir(t);
  const prefix = 'flush:';
  const strata = await openCore(t, dir, prefix, 'inst-a');
  const writers = startWriters(strata);
  const losses: number[] = [];
  await writers.ackCount(200);
  losses.push(Date.now());
  await cluster.flushall();
  await writers.ackCount(writers.acks.length + 250);
  losses.push(Date.now());
  await cluster.flushall();
  await writers.ackCount(writers.acks.length + 200);
  await writers.stop();
  assert.deepEqual(writers.errors, []);
  await assertAcknowledgedOnce(strata, writers.writes, losses);
  const other = await openCore(t, dir, prefix, 'inst-b');
  await assertAcknowledgedOnce(other, writers.writes, losses);
});

test('a slot moved to another master: a command sent to the old owner gets MOVED and goes through the cluster client, which follows it', async () => {
  const REF = { tenant: 'acme', sessionId: 'moving' };
  const T0 = 1_700_000_000_000;
  const store = new RedisHotStore({ url: cluster.url, keyPrefix: 'moved:' });
  try {
    assert.equal(await store.seed(REF, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0), true);
    for (let i = 1; i <= 3; i++) assert.deepEqual(await store.append(REF, { role: 'user', content: `turn ${i}`, createdAt: T0 + i }, T0 + i), { turnId: i });
    assert.deepEqual((await store.recent(REF, 5, T0 + 10)).map((t) => t.turnId), [1, 2, 3], 'the store has learnt the slot map');
    // Move the session's slot (with its shard's indexes) to another master, as a reshard does.
    const masters = await cluster.masters();
    const meta = store.keys.session(REF).meta;
    const slot = Number(await cluster.command(masters[0]!, ['CLUSTER', 'KEYSLOT', meta]));
    let source = -1;
    for (const port of masters) if (Number(await cluster.command(port, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)])) > 0) source = port;
    assert.notEqual(source, -1, 'the slot holds the session');
    const target = masters.find((p) => p !== source)!;
    const idOf = async (port: number): Promise<string> => String(await cluster.command(port, ['CLUSTER', 'MYID']));
    const [sourceId, targetId] = [await idOf(source), await idOf(target)];
    await cluster.command(target, ['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', sourceId]);
    await cluster.command(source, ['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', targetId]);
    const keys = (await cluster.command(source, ['CLUSTER', 'GETKEYSINSLOT', String(slot), '1000'])) as string[];
    await cluster.command(source, ['MIGRATE', '127.0.0.1', String(target), '', '0', '5000', 'KEYS', ...keys]);
    for (const port of masters) await cluster.command(port, ['CLUSTER', 'SETSLOT', String(slot), 'NODE', targetId]);
    await cluster.waitOk();
    assert.deepEqual((await store.recent(REF, 5, T0 + 20)).map((t) => [t.turnId, t.content]), [[1, 'turn 1'], [2, 'turn 2'], [3, 'turn 3']]);
    assert.deepEqual(await store.append(REF, { role: 'user', content: 'turn 4', createdAt: T0 + 21 }, T0 + 21), { turnId: 4 });
    assert.equal(Number(await cluster.command(target, ['CLUSTER', 'COUNTKEYSINSLOT', String(slot)])) > 0, true, 'the session lives on the new owner');
    assert.equal((await store.meta(REF))?.turnCount, 4);
  } finally {
    await store.close();
  }
});

test('a slot the cluster client lost from its map (a refresh during a failover; redis/node-redis#2187) is looked up again: the command goes through', async () => {
  const client = createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: n.url })), RESP: 2 });
  client.on('error', () => {});
  await client.connect();
  try {
    const key = 'unmapped:{probe}k';
    await client.set(key, 'v');
    const slot = Number(await cluster.command((await cluster.masters())[0]!, ['CLUSTER', 'KEYSLOT', key]));
    // Fault injection: the client's slot map loses the key's slot, as a refresh that ran while the
    // slot had no master leaves it; no command then reaches a node that could answer MOVED.
    const slots = (): unknown[] => (client as unknown as { _slots: { slots: unknown[] } })._slots.slots;
    const routed = client as unknown as ClusterClient;
    const get = (refresh: () => Promise<void>): Promise<unknown> => sendOnceRouted(() => sendToSlotPrimary(routed, key, ['GET', key]), () => false, refresh);
    slots()[slot] = undefined;
    await assert.rejects(get(() => Promise.resolve()), TypeError, 'retrying alone never finds a node for the slot');
    assert.equal(slots()[slot], undefined);
    assert.equal(await get(() => rediscoverTopology(client)), 'v');
    assert.notEqual(slots()[slot], undefined, 'the slot is mapped again');
  } finally {
    await client.del('unmapped:{probe}k');
    client.destroy();
  }
});
