import type { Command } from 'commander';
import { formatTable, printJson, type CliIo } from '../io.js';
import { parsePositiveInt } from './common.js';

export function registerBenchRetrieval(parent: Command, io: CliIo): void {
  parent
    .command('retrieval')
    .description("smart-context latency through the product (createStrata, addMessages, flush, getContext type 'smart') on one session of real turns")
    .option('--turns <n>', 'turns in the session', parsePositiveInt('--turns'), 10_000)
    .option('--queries <n>', 'queries measured', parsePositiveInt('--queries'), 200)
    .option('--max-tokens <n>', 'smart-context budget', parsePositiveInt('--max-tokens'), 4000)
    .option('--embedder <provider>', 'glove or hash', 'glove')
    .option('--json', 'print one JSON object')
    .action(async (flags: { turns: number; queries: number; maxTokens: number; embedder: string; json?: boolean }) => {
      const { runRetrievalBench } = await import('../../../bench/retrieval.js');
      const { parseEvalEmbedder } = await import('../../eval/product.js');
      const r = await runRetrievalBench({ turns: flags.turns, queries: flags.queries, maxTokens: flags.maxTokens, embedder: parseEvalEmbedder(flags.embedder) });
      if (flags.json) return printJson(io, r);
      io.stdout.write(`${r.setup}\n${r.turns} turns added in ${r.loadMs.toFixed(0)} ms, flushed (tokens, embeddings, summaries, archive) in ${r.flushMs.toFixed(0)} ms; ${r.queries} queries, budget ${r.maxTokens} tokens\n`);
      const row = (x: typeof r.hybrid) => [x.name, x.p50Ms.toFixed(2), x.p95Ms.toFixed(2), x.firstCallMs.toFixed(0), String(x.medianTokens)];
      io.stdout.write(formatTable(["getContext type 'smart'", 'p50 ms', 'p95 ms', 'first call ms', 'median tokens'], [row(r.baseline), row(r.hybrid)]));
    });
}
