/**
 * Smart-context latency (query embedding + hybrid search + packing) on one session of N real
 * turns from ShareGPT, against a BM25-only baseline measured in the same run.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getTokenizer } from '../src/context/gpt-tokenizer.js';
import { packContext } from '../src/context/packer.js';
import { embedAsArchived, MemoryTurnSource, percentile } from '../src/eval/common.js';
import { createEmbedder } from '../src/retrieval/create-embedder.js';
import { HybridRetriever, type RetrieverOptions } from '../src/retrieval/retriever.js';
import type { RetrievalTurn } from '../src/retrieval/source.js';
import type { Turn } from '../src/types.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', ...(import.meta.url.includes('/dist/') ? ['..'] : []));
export const SHAREGPT = join(ROOT, '..', 'shared', 'data', 'sharegpt-sessions.json');

export interface RetrievalBenchResult {
  turns: number;
  p50Ms: number;
  p95Ms: number;
  baseline: { name: string; p50Ms: number; p95Ms: number };
  indexBuildMs: number;
}

export async function runRetrievalBench(turnCount = 10_000, queries = 200, input = SHAREGPT): Promise<RetrievalBenchResult> {
  const sessions = JSON.parse(await readFile(input, 'utf8')) as Array<{ turns: Array<{ role: string; content: string }> }>;
  const turns: RetrievalTurn[] = [];
  outer: for (const s of sessions) {
    for (const t of s.turns) {
      if (turns.length >= turnCount) break outer;
      turns.push({ sessionId: 'bench', turnId: turns.length + 1, role: t.role === 'user' ? 'user' : 'assistant', content: t.content, createdAt: 1_700_000_000_000 + turns.length * 1000 });
    }
  }
  const tokenizer = getTokenizer();
  for (const t of turns) t.tokens = tokenizer.count(t.content);
  const embedder = createEmbedder({ provider: 'glove' });
  await embedAsArchived(embedder, turns);
  const source = new MemoryTurnSource();
  source.add('bench', 'bench', null, turns);
  const userTurns = turns.filter((t) => t.role === 'user');
  const recent: Turn[] = turns.slice(-20).map((t) => ({ turnId: t.turnId, role: t.role, content: t.content, createdAt: t.createdAt, tokens: t.tokens! }));
  const scope = { tenant: 'bench', sessionIds: ['bench'] };

  const measure = async (options: RetrieverOptions) => {
    const retriever = new HybridRetriever(source, embedder, { ...options, resultCacheSize: 1, queryCacheSize: 1 });
    const built = performance.now();
    await retriever.turns(scope);
    const indexBuildMs = performance.now() - built;
    const times: number[] = [];
    for (let i = 0; i < queries; i++) {
      const query = userTurns[(i * 7919) % userTurns.length]!.content.slice(0, 300);
      const started = performance.now();
      const relevant = await retriever.search(query, 30, scope, { exclude: recent.map((t) => ({ sessionId: 'bench', turnId: t.turnId })) });
      packContext({ recent, relevant, summaries: [], maxTokens: 4000, tokenizer, tokensOf: (h) => turns[h.turnId - 1]?.tokens });
      times.push(performance.now() - started);
    }
    return { p50Ms: percentile(times, 0.5), p95Ms: percentile(times, 0.95), indexBuildMs };
  };
  const baseline = await measure({ denseWeight: 0 });
  const hybrid = await measure({});
  return { turns: turns.length, p50Ms: hybrid.p50Ms, p95Ms: hybrid.p95Ms, baseline: { name: 'BM25 only + pack', p50Ms: baseline.p50Ms, p95Ms: baseline.p95Ms }, indexBuildMs: hybrid.indexBuildMs };
}
