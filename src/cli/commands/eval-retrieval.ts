import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import type { EmbedderConfig } from '../../retrieval/embedder.js';
import { formatTable, printJson, type CliIo } from '../io.js';

const pct = (x: number | undefined) => (x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

export function registerEvalRetrieval(parent: Command, io: CliIo): void {
  parent
    .command('retrieval')
    .description('turn recall@k and session recall_any@k on the generic {sessions, queries} format')
    .requiredOption('--input <file>', 'JSON file {sessions, queries}')
    .option('--k <list>', 'cut-offs, comma-separated', '5,10,25')
    .option('--embedder <provider>', 'glove or hash', 'glove')
    .option('--json', 'print one JSON object')
    .action(async (flags: { input: string; k: string; embedder: string; json?: boolean }) => {
      const { evalRetrieval } = await import('../../eval/retrieval.js');
      const { createEmbedder } = await import('../../retrieval/create-embedder.js');
      const { parseKs } = await import('../../eval/common.js');
      const ks = parseKs(flags.k);
      if (flags.embedder !== 'glove' && flags.embedder !== 'hash') throw new StrataError('STRATA_ERR_VALIDATION', `--embedder: expected glove or hash, got ${flags.embedder}`);
      const r = await evalRetrieval(flags.input, createEmbedder({ provider: flags.embedder } as EmbedderConfig), ks);
      if (flags.json) return printJson(io, { recall: r.recall, sessionRecallAny: r.sessionRecallAny, searchP50Ms: r.searchP50Ms, searchP95Ms: r.searchP95Ms, queries: r.queries });
      io.stdout.write(`queries: ${r.queries}\n`);
      const groups = Object.keys(r.recall);
      io.stdout.write(formatTable(['category', ...ks.map((k) => `recall@${k}`), ...ks.map((k) => `session any@${k}`)], groups.map((g) => [g, ...ks.map((k) => pct(r.recall[g]?.[String(k)])), ...ks.map((k) => pct(r.sessionRecallAny[g]?.[String(k)]))])));
      io.stdout.write(`search latency p50 ${r.searchP50Ms.toFixed(2)} ms, p95 ${r.searchP95Ms.toFixed(2)} ms\n`);
    });
}
