import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** CPU time of this process so far, in µs: every thread's (`process.cpuUsage`, user + system). */
export function processCpuUs(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/**
 * CPU time of the calling thread so far, in µs, or null where the kernel does not say (Linux
 * only: `/proc/thread-self/schedstat`, whose first field is the time on a CPU in ns). Called from
 * the main thread, it is the request thread's own share of `processCpuUs`.
 */
export function threadCpuUs(): number | null {
  try {
    const ns = Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
    return Number.isFinite(ns) ? ns / 1000 : null;
  } catch {
    return null;
  }
}

/** Where the CPU time per message of a measured phase went, and what the machine could sustain at that cost. */
export interface CpuBudget {
  /** µs of CPU per message in this process, all threads (request thread, workers, GC, I/O). */
  process: number;
  /** µs of the request thread alone (null off Linux). */
  requestThread: number | null;
  /** µs of the Redis server (INFO cpu). */
  redis: number;
  /** CPUs of this machine (`os.availableParallelism`). */
  cores: number;
  /**
   * Messages/s at which this process and the Redis server, at the CPU cost per message measured,
   * would keep every core busy: `cores × 10^6 / (process + redis)`. An upper bound for a
   * single-machine run (Redis on the same host), whatever the concurrency.
   */
  ceilingPerSec: number;
}

/** A running measurement: `stop(messages, redisUs)` answers the budget per message. */
export function watchCpu(): { stop(messages: number, redisUs: number): CpuBudget } {
  const process0 = processCpuUs();
  const thread0 = threadCpuUs();
  return {
    stop(messages, redisUs) {
      const n = Math.max(1, messages);
      const thread1 = threadCpuUs();
      const perProcess = (processCpuUs() - process0) / n;
      const perRedis = redisUs / n;
      const cores = availableParallelism();
      return {
        process: perProcess,
        requestThread: thread0 === null || thread1 === null ? null : (thread1 - thread0) / n,
        redis: perRedis,
        cores,
        ceilingPerSec: (cores * 1e6) / (perProcess + perRedis),
      };
    },
  };
}
