import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { watchEventLoop } from '../../bench/loop-delay.js';

function blockFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // a request handler that does not yield
  }
}

test('bench loop delay: a free loop measures no delay, a stall is measured with the timers it held up', async () => {
  const watch = watchEventLoop(10);
  await sleep(200);
  const free = watchEventLoop(10);
  await sleep(200);
  const idle = free.stop();
  // monitorEventLoopDelay({ resolution: 10 }) reports about 10 ms here: the timer's own interval.
  assert.ok(idle.p50Ms < 10, `a free loop measured a median delay of ${idle.p50Ms} ms`);
  assert.ok(idle.samples >= 5, `${idle.samples} samples in 200 ms at a 10 ms interval`);

  blockFor(150);
  await sleep(50);
  const result = watch.stop();
  assert.ok(result.maxMs >= 130, `a 150 ms stall measured as ${result.maxMs} ms`);
  assert.equal(result.resolutionMs, 10);
  // The stall also counts the ~14 timers that could not run during it (coordinated omission),
  // so it weighs in p99 however few free samples surround it.
  assert.ok(result.p99Ms >= 100, `p99 ${result.p99Ms} ms over ${result.samples} samples`);
});
