/**
 * Worker entry of the prepare pool (src/workers/pool.ts): piscina imports this module in each
 * thread and calls its default export once per task (a prepare or a summarize task). Loaded as `prepare-worker.ts` through tsx
 * when Strata runs from its sources, as `prepare-worker.js` from the build.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { getTokenizer } from '../context/gpt-tokenizer.js';
import type { Embedder } from '../retrieval/embedder.js';
import { embedderFromSpec, runPrepare, runSummarize, type LocalEmbedderSpec, type PrepareResult, type SummarizeResult, type WorkerTask } from './prepare.js';

// One embedder per spec per thread: a GloVe table is loaded once per thread, not per task.
const embedders = new Map<string, Embedder>();

function embedderFor(spec: LocalEmbedderSpec | null): Embedder | null {
  if (!spec) return null;
  const key = JSON.stringify(spec);
  let embedder = embedders.get(key);
  if (!embedder) {
    embedder = embedderFromSpec(spec);
    embedders.set(key, embedder);
  }
  return embedder;
}

export default async function prepare(task: WorkerTask): Promise<PrepareResult | SummarizeResult> {
  if ('kind' in task) return runSummarize(task);
  const result = await runPrepare(task, task.spec.tokenizer ? getTokenizer(task.spec.tokenizer) : null, embedderFor(task.spec.embedder));
  if ('error' in result || !result.vectors) return result;
  // The vectors' buffer moves to the main thread instead of being copied.
  const buffer = result.vectors.buffer;
  return move({
    get [transferableSymbol]() {
      return [buffer];
    },
    get [valueSymbol]() {
      return result;
    },
  }) as unknown as PrepareResult;
}
