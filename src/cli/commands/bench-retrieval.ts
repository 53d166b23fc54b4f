import type { Command } from 'commander';
import { formatTable, printJson, type CliIo } from '../io.js';
import { StrataError } from '../../errors.js';
import { parsePositiveInt } from './common.js';

export function registerBenchRetrieval(parent: Command, io: CliIo): void {
  parent
    .command('retrieval')
    .description("smart-context latency through the product (createStrata, addMessages, flush, getContext type 'smart') on one session of real turns")
    .option('--turns <n>', 'turns in the session', parsePositiveInt('--turns'), 10_000)
    .option('--queries <n>', 'queries measured', parsePositiveInt('--queries'), 200)
    .option('--max-tokens <n>', 'smart-context budget', parsePositiveInt('--max-tokens'), 4000)
    .option('--embedder <provider>', 'glove or hash', 'glove')
    .option('--users <n>', 'user-scope mode: one user (the only value) with --sessions sessions of --turns-per-session turns', parsePositiveInt('--users'))
    .option('--sessions <n>', 'user-scope mode: sessions of the user', parsePositiveInt('--sessions'))
    .option('--turns-per-session <n>', 'user-scope mode: turns per session', parsePositiveInt('--turns-per-session'))
    .option('--json', 'print one JSON object')
    .action(async (flags: { turns: number; queries: number; maxTokens: number; embedder: string; users?: number; sessions?: number; turnsPerSession?: number; json?: boolean }) => {
      const { runRetrievalBench } = await import('../../../bench/retrieval.js');
      const { parseEvalEmbedder } = await import('../../eval/product.js');
      if (flags.users !== undefined || flags.sessions !== undefined || flags.turnsPerSession !== undefined) {
        if ((flags.users ?? 1) !== 1) throw new StrataError('STRATA_ERR_VALIDATION', '--users: the user-scope benchmark measures one user (searches of one user never read another user\'s sessions)');
        const { runUserScopeBench } = await import('../../../bench/retrieval-user.js');
        const r = await runUserScopeBench({ sessions: flags.sessions ?? 1000, turnsPerSession: flags.turnsPerSession ?? 50, queries: flags.queries, embedder: parseEvalEmbedder(flags.embedder) });
        if (flags.json) return printJson(io, r);
        io.stdout.write(`one user, ${r.sessions} sessions, ${r.turns} turns: added in ${r.loadMs.toFixed(0)} ms, flushed in ${r.flushMs.toFixed(0)} ms; core reopened\n`);
        io.stdout.write(formatTable(['measure', 'ms'], [
          ['first user-scope search after the restart (index build)', r.firstQueryMs.toFixed(1)],
          [`user-scope searchDiskHistory p50 (${r.queries} queries)`, r.searchP50Ms.toFixed(2)],
          ['user-scope searchDiskHistory p95', r.searchP95Ms.toFixed(2)],
          ['smart context p95', r.smartP95Ms.toFixed(2)],
          ['baseline: search after a change of the user (index rebuilt) p50', r.rebuildP50Ms.toFixed(1)],
        ]));
        io.stdout.write(`index: ~${(r.indexBytes / 1048576).toFixed(1)} MiB of heap\n`);
        return;
      }
      const r = await runRetrievalBench({ turns: flags.turns, queries: flags.queries, maxTokens: flags.maxTokens, embedder: parseEvalEmbedder(flags.embedder) });
      if (flags.json) return printJson(io, r);
      io.stdout.write(`${r.setup}\n${r.turns} turns added in ${r.loadMs.toFixed(0)} ms, flushed (tokens, embeddings, summaries, archive) in ${r.flushMs.toFixed(0)} ms; ${r.queries} queries, budget ${r.maxTokens} tokens\n`);
      const row = (x: typeof r.hybrid) => [x.name, x.p50Ms.toFixed(2), x.p95Ms.toFixed(2), x.firstCallMs.toFixed(0), String(x.medianTokens)];
      io.stdout.write(formatTable(["getContext type 'smart'", 'p50 ms', 'p95 ms', 'first call ms', 'median tokens'], [row(r.baseline), row(r.hybrid)]));
    });
}
