/**
 * The hot tier on a real Redis Cluster (6 nodes: 3 masters, 3 replicas) losing data under a real
 * Strata core: a master SIGKILLed while its replica lags (the promoted replica misses writes that
 * were acknowledged), and a FLUSHALL of every master. docs/consistency.md, "Shards".
 * Acknowledged messages are checked with the chaos suite's checker: each exactly once, at its id.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { check } from '../../src/chaos/checker.js';
import type { StoredTurn } from '../../src/chaos/readback.js';
import type { LogicalWrite, SessionRef } from '../../src/chaos/workload.js';
import { sessionKey } from '../../src/chaos/workload.js';
import { StrataError } from '../../src/errors.js';
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

async function readAll(s: Strata, sessionId: string): Promise<Array<{ turnId: number; content: string }>> {
  const out: Array<{ turnId: number; content: string }> = [];
  let afterId = 0;
  for (;;) {
    const page = await s.getMessages(sessionId, { after: afterId, limit: 1000 });
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
