import { test } from 'node:test';
import assert from 'node:assert/strict';
import { processCpuUs, threadCpuUs, watchCpu } from '../../bench/cpu.js';

/** Keeps this thread on a CPU until it has used `ms` of CPU time (by its own clock where there is one). */
function spin(ms: number): void {
  const clock = (): number => threadCpuUs() ?? processCpuUs();
  const end = clock() + ms * 1000;
  let x = 0;
  while (clock() < end) for (let i = 0; i < 1000; i++) x += Math.sqrt(x + 1);
  assert.ok(x > 0);
}

test('watchCpu charges a busy request thread to the process and to the thread, per message', () => {
  const watch = watchCpu();
  spin(200);
  const budget = watch.stop(100, 50_000);
  // 200 ms of this thread's CPU over 100 messages: at least 2,000 µs each, and the thread's share
  // cannot exceed the process's (which also holds whatever other threads did meanwhile).
  assert.ok(budget.process >= 2000, JSON.stringify(budget));
  if (process.platform === 'linux') {
    assert.ok(budget.requestThread !== null && budget.requestThread >= 2000 && budget.requestThread <= budget.process + 20, JSON.stringify(budget));
  }
  assert.equal(budget.redis, 500);
  assert.ok(Math.abs(budget.ceilingPerSec - (budget.cores * 1e6) / (budget.process + 500)) < 1e-9 * budget.ceilingPerSec);
});

test('an idle wait costs the thread almost no CPU: the thread clock is CPU time, not wall time', async () => {
  const t0 = threadCpuUs();
  const p0 = processCpuUs();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const t1 = threadCpuUs();
  assert.ok(processCpuUs() >= p0);
  if (process.platform !== 'linux') return assert.equal(t1, null);
  assert.ok(t0 !== null && t1 !== null);
  assert.ok(t1 - t0 < 100_000, `the thread was charged ${t1 - t0} µs for a 200 ms sleep`);
});
