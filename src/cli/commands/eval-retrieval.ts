import type { Command } from 'commander';
import { formatTable, printJson, type CliIo } from '../io.js';

const pct = (x: number | undefined) => (x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

export function registerEvalRetrieval(parent: Command, io: CliIo): void {
  parent
    .command('retrieval')
    .description('turn recall@k and session recall_any@k on the generic {sessions, queries} format, through the product')
    .requiredOption('--input <file>', 'JSON file {sessions, queries}')
    .option('--k <list>', 'cut-offs, comma-separated (at most 100)', '5,10,25')
    .option('--embedder <provider>', 'glove or hash', 'glove')
    .option('--json', 'print one JSON object')
    .action(async (flags: { input: string; k: string; embedder: string; json?: boolean }) => {
      const { evalRetrieval } = await import('../../eval/retrieval.js');
      const { parseEvalEmbedder, PRODUCT_SETUP } = await import('../../eval/product.js');
      const { parseKs } = await import('../../eval/common.js');
      const ks = parseKs(flags.k);
      const r = await evalRetrieval(flags.input, parseEvalEmbedder(flags.embedder), ks);
      const runs = { default: r, ...r.baselines };
      if (flags.json) return printJson(io, { recall: r.recall, sessionRecallAny: r.sessionRecallAny, searchP50Ms: r.searchP50Ms, searchP95Ms: r.searchP95Ms, queries: r.queries, turns: r.turns, loadMs: r.loadMs, flushMs: r.flushMs, baselines: r.baselines });
      io.stdout.write(`${PRODUCT_SETUP}\n${r.turns} turns loaded in ${r.loadMs.toFixed(0)} ms, flushed in ${r.flushMs.toFixed(0)} ms; queries: ${r.queries}\n`);
      io.stdout.write(formatTable(['search', ...ks.map((k) => `recall@${k}`), ...ks.map((k) => `session any@${k}`), 'p50 ms'], Object.entries(runs).map(([name, run]) => [name, ...ks.map((k) => pct(run.recall.all?.[String(k)])), ...ks.map((k) => pct(run.sessionRecallAny.all?.[String(k)])), run.searchP50Ms.toFixed(1)])));
      const groups = Object.keys(r.recall);
      io.stdout.write(`\ndefault, by category:\n`);
      io.stdout.write(formatTable(['category', ...ks.map((k) => `recall@${k}`), ...ks.map((k) => `session any@${k}`)], groups.map((g) => [g, ...ks.map((k) => pct(r.recall[g]?.[String(k)])), ...ks.map((k) => pct(r.sessionRecallAny[g]?.[String(k)]))])));
      io.stdout.write(`searchDiskHistory latency p50 ${r.searchP50Ms.toFixed(2)} ms, p95 ${r.searchP95Ms.toFixed(2)} ms\n`);
    });
}
