import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import type { EmbedderConfig } from '../../retrieval/embedder.js';
import { formatTable, printJson, type CliIo } from '../io.js';

const pct = (x: number | undefined) => (x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

/** Ablation rows: what each part of the search adds (README table). */
export const LOCOMO_ABLATION: Array<{ name: string; embedder: EmbedderConfig['provider']; options: Record<string, number> }> = [
  { name: 'BM25 only', embedder: 'glove', options: { denseWeight: 0, speakerBoost: 1, smoothing: 0 } },
  { name: 'hash dense only', embedder: 'hash', options: { lexicalWeight: 0, speakerBoost: 1, smoothing: 0 } },
  { name: 'GloVe-SIF dense only', embedder: 'glove', options: { lexicalWeight: 0, speakerBoost: 1, smoothing: 0 } },
  { name: 'hybrid RRF (hash)', embedder: 'hash', options: {} },
  { name: 'hybrid RRF', embedder: 'glove', options: { speakerBoost: 1, smoothing: 0 } },
  { name: '+ speaker names', embedder: 'glove', options: { smoothing: 0 } },
  { name: '+ neighbour smoothing (default)', embedder: 'glove', options: {} },
  { name: '+ neighbour expansion of top 3', embedder: 'glove', options: { neighbourHits: 3 } },
];

export function registerEvalLocomo(parent: Command, io: CliIo): void {
  parent
    .command('locomo')
    .description('evidence recall@k on a LoCoMo-format file through the production search path')
    .requiredOption('--input <file>', 'LoCoMo JSON file')
    .option('--k <list>', 'cut-offs, comma-separated', '5,10,25')
    .option('--embedder <provider>', 'glove or hash', 'glove')
    .option('--ablation', 'print what each part of the search adds')
    .option('--json', 'print one JSON object')
    .action(async (flags: { input: string; k: string; embedder: string; ablation?: boolean; json?: boolean }) => {
      const { evalLocomo } = await import('../../eval/locomo.js');
      const { createEmbedder } = await import('../../retrieval/create-embedder.js');
      const { parseKs } = await import('../../eval/common.js');
      const ks = parseKs(flags.k);
      if (flags.embedder !== 'glove' && flags.embedder !== 'hash') throw new StrataError('STRATA_ERR_VALIDATION', `--embedder: expected glove or hash, got ${flags.embedder}`);
      if (flags.ablation) {
        const rows = [];
        const out: Record<string, unknown> = {};
        for (const a of LOCOMO_ABLATION) {
          const r = await evalLocomo(flags.input, createEmbedder({ provider: a.embedder } as EmbedderConfig), ks, a.options);
          out[a.name] = r.recall.all;
          rows.push([a.name, ...ks.map((k) => pct(r.recall.all?.[String(k)]))]);
        }
        if (flags.json) return printJson(io, { ablation: out });
        io.stdout.write(formatTable(['search (categories 1–4)', ...ks.map((k) => `recall@${k}`)], rows));
        return;
      }
      const r = await evalLocomo(flags.input, createEmbedder({ provider: flags.embedder } as EmbedderConfig), ks);
      if (flags.json) {
        return printJson(io, { recall: r.recall, medianContextTokens: r.medianContextTokens, searchP50Ms: r.searchP50Ms, searchP95Ms: r.searchP95Ms, questions: r.questions, embedder: r.embedder, granularity: r.granularity });
      }
      io.stdout.write(`granularity: ${r.granularity}\nembedder: ${r.embedder}, questions (categories 1–4): ${r.questions}\n`);
      const groups = ['all', '1', '2', '3', '4'].filter((g) => r.recall[g]);
      io.stdout.write(formatTable(['category', ...ks.map((k) => `recall@${k}`)], groups.map((g) => [g === 'all' ? '1–4' : g, ...ks.map((k) => pct(r.recall[g]?.[String(k)]))])));
      io.stdout.write(`median smart-context tokens (budget 2000): ${r.medianContextTokens}\nsearch latency p50 ${r.searchP50Ms.toFixed(2)} ms, p95 ${r.searchP95Ms.toFixed(2)} ms\n`);
    });
}
