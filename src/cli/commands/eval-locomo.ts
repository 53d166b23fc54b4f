import type { Command } from 'commander';
import { formatTable, printJson, type CliIo } from '../io.js';

const pct = (x: number | undefined) => (x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

/** Ablation rows: what each part of the search adds (README table). Each row is a `createStrata` run with these retriever options. */
export const LOCOMO_ABLATION: Array<{ name: string; embedder: 'glove' | 'hash'; options: Record<string, number>; captions?: false }> = [
  { name: 'BM25 only', embedder: 'glove', options: { denseWeight: 0, speakerBoost: 1, smoothing: 0, sessionWeight: 0, selfBoost: 1 } },
  { name: 'hash dense only', embedder: 'hash', options: { lexicalWeight: 0, speakerBoost: 1, smoothing: 0, sessionWeight: 0, selfBoost: 1 } },
  { name: 'GloVe-SIF dense only', embedder: 'glove', options: { lexicalWeight: 0, speakerBoost: 1, smoothing: 0, sessionWeight: 0, selfBoost: 1, queryIdfPower: 0 } },
  { name: 'GloVe dense only, query words weighted by idf²', embedder: 'glove', options: { lexicalWeight: 0, speakerBoost: 1, smoothing: 0, sessionWeight: 0, selfBoost: 1 } },
  { name: 'hybrid RRF (GloVe)', embedder: 'glove', options: { rrfK: 20, speakerBoost: 1, smoothing: 0, sessionWeight: 0, selfBoost: 1, queryIdfPower: 0 } },
  { name: '+ speaker names', embedder: 'glove', options: { rrfK: 20, smoothing: 0, sessionWeight: 0, selfBoost: 1, queryIdfPower: 0 } },
  { name: '+ neighbour smoothing 0.2 (previous default)', embedder: 'glove', options: { rrfK: 20, smoothing: 0.2, sessionWeight: 0, selfBoost: 1, queryIdfPower: 0 } },
  { name: '+ session evidence', embedder: 'glove', options: { rrfK: 20, smoothing: 0.2, selfBoost: 1, queryIdfPower: 0 } },
  { name: '+ first-person prior', embedder: 'glove', options: { rrfK: 20, smoothing: 0.2, queryIdfPower: 0 } },
  { name: '+ smoothing 0.3', embedder: 'glove', options: { rrfK: 20, queryIdfPower: 0 } },
  { name: '+ query words weighted by idf²', embedder: 'glove', options: { rrfK: 20 } },
  { name: '+ fusion constant 10 (default)', embedder: 'glove', options: {} },
  { name: 'default without image captions in the text', embedder: 'glove', options: {}, captions: false },
  { name: 'same pipeline with hash instead of GloVe', embedder: 'hash', options: {} },
  { name: '+ neighbour expansion of top 3', embedder: 'glove', options: { neighbourHits: 3 } },
];

export function registerEvalLocomo(parent: Command, io: CliIo): void {
  parent
    .command('locomo')
    .description('evidence recall@k on a LoCoMo-format file through the product (createStrata, addMessages, flush, searchDiskHistory)')
    .requiredOption('--input <file>', 'LoCoMo JSON file')
    .option('--k <list>', 'cut-offs, comma-separated (at most 100)', '5,10,25')
    .option('--embedder <provider>', 'glove or hash', 'glove')
    .option('--ablation', 'print what each part of the search adds')
    .option('--json', 'print one JSON object')
    .action(async (flags: { input: string; k: string; embedder: string; ablation?: boolean; json?: boolean }) => {
      const { evalLocomo, loadLocomo, runLocomo } = await import('../../eval/locomo.js');
      const { EVAL_BASELINES } = await import('../../eval/retrieval.js');
      const { parseEvalEmbedder, PRODUCT_SETUP } = await import('../../eval/product.js');
      const { parseKs } = await import('../../eval/common.js');
      const ks = parseKs(flags.k);
      const embedder = parseEvalEmbedder(flags.embedder);
      if (flags.ablation) {
        // One load per embedder; each row reopens the same archive with other retriever options.
        const loaded = new Map<string, Awaited<ReturnType<typeof loadLocomo>>>();
        try {
          const rows = [];
          const out: Record<string, unknown> = {};
          for (const a of LOCOMO_ABLATION) {
            const key = `${a.embedder}:${a.captions ?? true}`;
            let data = loaded.get(key);
            if (!data) loaded.set(key, (data = await loadLocomo(flags.input, a.embedder, a.captions === false ? { captions: false } : {})));
            const r = await runLocomo(data, { ks, retriever: a.options, smartContext: false });
            out[a.name] = r.recall.all;
            rows.push([a.name, ...ks.map((k) => pct(r.recall.all?.[String(k)]))]);
          }
          if (flags.json) return printJson(io, { ablation: out });
          io.stdout.write(`${PRODUCT_SETUP}\n`);
          io.stdout.write(formatTable(['search (categories 1–4)', ...ks.map((k) => `recall@${k}`)], rows));
          return;
        } finally {
          for (const d of loaded.values()) await d.dispose();
        }
      }
      const r = await evalLocomo(flags.input, embedder, { ks, baselines: EVAL_BASELINES });
      if (flags.json) {
        const { recall, medianContextTokens, searchP50Ms, searchP95Ms, ...rest } = r;
        return printJson(io, { recall, medianContextTokens, searchP50Ms, searchP95Ms, ...rest });
      }
      io.stdout.write(`${PRODUCT_SETUP}\ngranularity: ${r.granularity}\n`);
      io.stdout.write(`embedder: ${r.embedder}; ${r.turns} turns loaded in ${r.loadMs.toFixed(0)} ms, flushed (embedded, archived) in ${r.flushMs.toFixed(0)} ms; questions (categories 1–4): ${r.questions}\n`);
      const groups = ['all', '1', '2', '3', '4'].filter((g) => r.recall[g]);
      io.stdout.write(formatTable(['search (categories 1–4)', ...ks.map((k) => `recall@${k}`)], Object.entries({ default: r.recall, ...r.baselines }).map(([name, t]) => [name, ...ks.map((k) => pct(t.all?.[String(k)]))])));
      io.stdout.write('\ndefault, by category:\n');
      io.stdout.write(formatTable(['category', ...ks.map((k) => `recall@${k}`)], groups.map((g) => [g === 'all' ? '1–4' : g, ...ks.map((k) => pct(r.recall[g]?.[String(k)]))])));
      io.stdout.write(`median smart-context tokens (budget 2000, ${r.contextSession}): ${r.medianContextTokens ?? '-'}\n`);
      io.stdout.write(`searchDiskHistory latency p50 ${r.searchP50Ms.toFixed(2)} ms, p95 ${r.searchP95Ms.toFixed(2)} ms\n`);
    });
}
