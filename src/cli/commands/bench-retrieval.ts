import type { Command } from 'commander';
import { formatTable, printJson, type CliIo } from '../io.js';
import { parsePositiveInt } from './common.js';

export function registerBenchRetrieval(parent: Command, io: CliIo): void {
  parent
    .command('retrieval')
    .description('smart-context latency (query embedding + search + pack) on one session of real turns')
    .option('--turns <n>', 'turns in the session', parsePositiveInt('--turns'), 10_000)
    .option('--queries <n>', 'queries measured', parsePositiveInt('--queries'), 200)
    .option('--json', 'print one JSON object')
    .action(async (flags: { turns: number; queries: number; json?: boolean }) => {
      const { runRetrievalBench } = await import('../../../bench/retrieval.js');
      const r = await runRetrievalBench(flags.turns, flags.queries);
      if (flags.json) return printJson(io, { turns: r.turns, p50Ms: r.p50Ms, p95Ms: r.p95Ms, baseline: r.baseline, indexBuildMs: r.indexBuildMs });
      io.stdout.write(`${r.turns} turns, index built in ${r.indexBuildMs.toFixed(0)} ms (once per session version)\n`);
      io.stdout.write(formatTable(['smart context', 'p50 ms', 'p95 ms'], [[r.baseline.name, r.baseline.p50Ms.toFixed(2), r.baseline.p95Ms.toFixed(2)], ['hybrid (GloVe + BM25) + pack', r.p50Ms.toFixed(2), r.p95Ms.toFixed(2)]]));
    });
}
