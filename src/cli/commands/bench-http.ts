import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatTable, printJson } from '../io.js';
import type { CliIo } from '../io.js';
import { parsePositiveInt } from './common.js';

export function registerBenchHttp(parent: Command, io: CliIo): void {
  parent
    .command('http')
    .description('HTTP req/s and latency of a strata serve process under mixed add/context load, against GET /healthz of the same server (load generated in this process)')
    .option('--connections <n>', 'concurrent connections', parsePositiveInt('--connections'), 64)
    .option('--duration <seconds>', 'seconds per run', parsePositiveInt('--duration'), 10)
    .option('--sessions <n>', 'sessions the load is spread over', parsePositiveInt('--sessions'), 1000)
    .option('--durability <mode>', 'fsync | batch | none (default: fsync)')
    .option('--redis <url>', 'Redis hot tier instead of the in-process store')
    .option('--json', 'print one JSON object')
    .action(async (flags: { connections: number; duration: number; sessions: number; durability?: string; redis?: string; json?: boolean }) => {
      if (flags.durability !== undefined && !['fsync', 'batch', 'none'].includes(flags.durability)) throw new StrataError('STRATA_ERR_VALIDATION', `--durability: expected fsync, batch or none, received ${JSON.stringify(flags.durability)}`);
      const { runHttpBench } = await import('../../../bench/http.js');
      const r = await runHttpBench({
        connections: flags.connections,
        durationSec: flags.duration,
        sessions: flags.sessions,
        ...(flags.redis ? { redisUrl: flags.redis } : {}),
        ...(flags.durability ? { durability: flags.durability as 'fsync' | 'batch' | 'none' } : {}),
      });
      if (flags.json) {
        return printJson(io, { runs: r.runs, reqPerSec: r.mixed.reqPerSec, p50Ms: r.mixed.p50Ms, p99Ms: r.mixed.p99Ms, errors: r.mixed.errors, non2xx: r.mixed.non2xx, baselineReqPerSec: r.baseline.reqPerSec, baselineP50Ms: r.baseline.p50Ms, baselineP99Ms: r.baseline.p99Ms, connections: r.connections, durationSec: r.durationSec, hotDriver: r.hotDriver, durability: r.durability });
      }
      io.stdout.write(`${r.connections} connections, ${r.durationSec} s per run, hot tier ${r.hotDriver}, durability ${r.durability}\n`);
      const row = (name: string, x: typeof r.mixed) => [name, Math.round(x.reqPerSec), x.p50Ms.toFixed(1), x.p99Ms.toFixed(1), x.errors + x.non2xx];
      io.stdout.write(formatTable(['workload', 'req/s', 'p50 ms', 'p99 ms', 'errors'], [row('baseline: GET /healthz', r.baseline), row('mixed: 50% add, 50% recent context', r.mixed)]));
    });
}
