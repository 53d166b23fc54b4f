import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HotBenchResult, HotClusterBenchResult } from '../../bench/hot.js';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers/io.js';

/*
 * `strata bench hot` on a tiny configuration (a private redis-server, real ShareGPT text). The
 * benchmark itself compares every session's `recent` answer (Strata, LangChain, and after
 * eviction) with the messages it wrote and throws on any difference; here we check that it
 * ran to the end, the one JSON object it prints, and that the numbers are consistent.
 */

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

test('strata bench hot --json prints one object with the documented keys and verified round trips', async () => {
  const io = captureIo();
  const code = await main(['bench', 'hot', '--sessions', '4', '--turns', '25', '--reads', '40', '--cold', '3', '--embedder', 'hash', '--workers', '0', '--json'], io);
  assert.equal(code, 0, io.err());
  const lines = io.out().trim().split('\n');
  assert.equal(lines.length, 1, 'exactly one line of JSON on stdout');
  const r = JSON.parse(lines[0]!) as HotBenchResult;

  assert.ok(finite(r.redisBytes.strata) && r.redisBytes.strata > 0);
  assert.ok(finite(r.redisBytes.baseline) && finite(r.redisBytes.langchain));
  // Redis cannot hold the current design's lists in fewer bytes than the JSON it was sent.
  assert.ok(r.redisBytes.baseline >= r.baselineMessageBytes * r.messages, `${r.redisBytes.baseline} < ${r.baselineMessageBytes} × ${r.messages}`);
  // 384 floats printed by JSON.stringify take at least "0,"-sized slots.
  assert.ok(r.baselineMessageBytes > 384 * 2);
  assert.equal(r.memoryReduction, 1 - r.redisBytes.strata / r.redisBytes.baseline);
  // Every message costs the server some CPU on both sides (INFO cpu moves in µs steps).
  assert.ok(finite(r.redisCpuUsPerMessage.strata) && r.redisCpuUsPerMessage.strata > 0, JSON.stringify(r.redisCpuUsPerMessage));
  assert.ok(finite(r.redisCpuUsPerMessage.langchain) && r.redisCpuUsPerMessage.langchain > 0, JSON.stringify(r.redisCpuUsPerMessage));
  for (const side of ['strata', 'langchain'] as const) {
    const m = r.recent[side];
    assert.ok(finite(m.p50Ms) && finite(m.p99Ms) && m.p99Ms >= m.p50Ms && m.p50Ms > 0, `${side}: ${JSON.stringify(m)}`);
    assert.ok(finite(m.opsPerSec) && m.opsPerSec > 0);
  }
  assert.equal(r.recent.langchain.listLength, 25, "LangChain's getMessages returns the whole list");
  assert.ok(finite(r.addPerSec) && r.addPerSec > 0);
  // The CPU budget: every message costs this process and the server something; the ceiling is
  // what the cores allow at that cost, so the run cannot have archived faster than it.
  const cpu = r.cpuUsPerMessage;
  assert.ok(finite(cpu.process) && cpu.process > 0 && finite(cpu.redis) && cpu.redis > 0 && finite(cpu.tokenCount) && cpu.tokenCount > 0, JSON.stringify(cpu));
  if (process.platform === 'linux') assert.ok(finite(cpu.requestThread) && cpu.requestThread > 0 && cpu.requestThread <= cpu.process, JSON.stringify(cpu));
  assert.ok(Number.isInteger(cpu.cores) && cpu.cores >= 1);
  assert.ok(Math.abs(cpu.ceilingPerSec - (cpu.cores * 1e6) / (cpu.process + cpu.redis)) < 1e-6 * cpu.ceilingPerSec, JSON.stringify(cpu));
  assert.ok(r.add.archivedPerSec <= cpu.ceilingPerSec, `${r.add.archivedPerSec} archived/s above the CPU ceiling ${cpu.ceilingPerSec}`);
  assert.equal(r.add.sequentialMessages + r.add.concurrentMessages, 4 * 25);
  assert.ok(finite(r.coldRecent.p50Ms) && r.coldRecent.p99Ms >= r.coldRecent.p50Ms);
  assert.deepEqual(r.verified, { strata: 4, langchain: 4, cold: 3 });
  assert.deepEqual([r.sessions, r.turns, r.messages, r.recentTurns, r.redis, r.workers], [4, 25, 100, 20, 'private', 0]);
});

test('strata bench hot rejects bad flags with coded errors before starting anything', async () => {
  for (const [flag, value] of [
    ['--embedder', 'word2vec'],
    ['--redis', 'http://127.0.0.1:6379'],
    ['--sessions', '0'],
    ['--workers', '-1'],
  ] as const) {
    const io = captureIo();
    const code = await main(['bench', 'hot', flag, value, '--json'], io);
    assert.equal(code, 1, `${flag} ${value}`);
    assert.match(io.err(), /^STRATA_ERR_VALIDATION: /m);
    assert.equal(io.out(), '');
  }
});

test('strata bench hot --redis-cluster --json compares a single primary and a real 6-node cluster, both verified', async () => {
  const { startRedisCluster } = await import('../helpers/redis-cluster.js');
  const cluster = await startRedisCluster();
  try {
    const io = captureIo();
    const code = await main(['bench', 'hot', '--redis-cluster', cluster.nodeList, '--sessions', '4', '--turns', '25', '--reads', '40', '--json'], io);
    assert.equal(code, 0, io.err());
    const r = JSON.parse(io.out().trim()) as HotClusterBenchResult;
    assert.deepEqual([r.sessions, r.turns, r.messages, r.verified], [4, 25, 100, 4]);
    assert.deepEqual([r.single.masters, r.cluster.masters], [1, 3]);
    for (const side of [r.single, r.cluster]) {
      assert.ok(side.redisBytes > 0 && finite(side.addPerSec) && side.addPerSec > 0, JSON.stringify(side));
      const m = side.recent;
      assert.ok(finite(m.p50Ms) && m.p50Ms > 0 && m.p99Ms >= m.p50Ms && m.concurrentP99Ms >= m.concurrentP50Ms && m.opsPerSec > 0, JSON.stringify(m));
    }
    assert.equal(r.latencyRatio.p50, r.cluster.recent.p50Ms / r.single.recent.p50Ms);
  } finally {
    await cluster.stop();
  }
});
