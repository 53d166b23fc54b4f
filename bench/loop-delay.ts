import { createHistogram, performance } from 'node:perf_hooks';

/** How late the event loop ran a timer: what a request arriving meanwhile would have waited. */
export interface LoopDelay {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The timer's interval: a delay is measured every `resolutionMs` while the loop is free. */
  resolutionMs: number;
  samples: number;
}

/**
 * Measures event-loop delay as the lateness of a timer armed every `resolutionMs`.
 *
 * Node's `monitorEventLoopDelay` records the time between two timer runs, so its values include
 * the interval itself: an idle loop reports p99 ≈ 10.4 ms with `resolution: 10`. This records
 * the lateness beyond the interval instead, and corrects for coordinated omission: a stall of
 * 60 ms at a 10 ms interval also records the 50, 40, 30, 20 and 10 ms that the timers which
 * could not run meanwhile would have measured, so long stalls weigh in the percentiles as the
 * requests they held up do.
 */
export function watchEventLoop(resolutionMs = 10): { stop(): LoopDelay } {
  const histogram = createHistogram();
  const record = (ms: number) => histogram.record(Math.max(1, Math.round(ms * 1e6)));
  let expected = performance.now() + resolutionMs;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const now = performance.now();
    // libuv runs timers against a loop time cached at the start of the iteration, so a timer
    // may fire a little before its due time: that is no delay.
    const late = Math.max(0, now - expected);
    record(late);
    for (let missed = late - resolutionMs; missed > 0; missed -= resolutionMs) record(missed);
    expected = now + resolutionMs;
    timer = setTimeout(tick, resolutionMs);
    timer.unref();
  };
  timer = setTimeout(tick, resolutionMs);
  timer.unref();
  return {
    stop(): LoopDelay {
      clearTimeout(timer);
      const ms = (ns: number) => (histogram.count === 0 ? 0 : ns / 1e6);
      return { p50Ms: ms(histogram.percentile(50)), p99Ms: ms(histogram.percentile(99)), maxMs: ms(histogram.max), resolutionMs, samples: histogram.count };
    },
  };
}
