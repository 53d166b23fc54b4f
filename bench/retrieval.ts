/**
 * Smart-context latency through the product: one session of N real ShareGPT turns added with
 * `addMessages` to a `createStrata` core, archived by `flush()`, then
 * `getContext(session, {type: 'smart', query, maxTokens})` with varied queries (query embedding
 * + hybrid search + summaries + packing). Baseline in the same run: the same core reopened with
 * BM25-only search (`denseWeight: 0`).
 */
import { readFile } from 'node:fs/promises';
import type { NewMessage } from '../src/cache/api.js';
import { percentile } from '../src/eval/common.js';
import { addSession, EVAL_TENANT, openEvalStrata, PRODUCT_SETUP } from '../src/eval/product.js';
import type { RetrieverOptions } from '../src/retrieval/retriever.js';
import { sharedDataFile } from './data.js';

export const SHAREGPT = sharedDataFile('sharegpt-sessions.json');

export interface RetrievalBenchRow {
  name: string;
  p50Ms: number;
  p95Ms: number;
  /** First smart-context call of the reopened core: hot-tier seeding and the session's index build. */
  firstCallMs: number;
  medianTokens: number;
}

export interface RetrievalBenchResult {
  turns: number;
  queries: number;
  maxTokens: number;
  setup: string;
  loadMs: number;
  flushMs: number;
  p50Ms: number;
  p95Ms: number;
  hybrid: RetrievalBenchRow;
  baseline: RetrievalBenchRow;
}

export interface RetrievalBenchOptions {
  turns?: number;
  queries?: number;
  maxTokens?: number;
  input?: string;
  embedder?: 'glove' | 'hash';
}

export async function runRetrievalBench(o: RetrievalBenchOptions = {}): Promise<RetrievalBenchResult> {
  const turnCount = o.turns ?? 10_000;
  const queries = o.queries ?? 200;
  const maxTokens = o.maxTokens ?? 4000;
  const embedder = o.embedder ?? 'glove';
  const sessions = JSON.parse(await readFile(o.input ?? SHAREGPT, 'utf8')) as Array<{ turns: Array<{ role: string; content: string }> }>;
  const messages: Array<NewMessage & { content: string }> = [];
  outer: for (const s of sessions) {
    for (const t of s.turns) {
      if (messages.length >= turnCount) break outer;
      if (typeof t.content !== 'string' || t.content.trim() === '') continue;
      messages.push({ role: t.role === 'user' ? 'user' : 'assistant', content: t.content });
    }
  }
  const userTurns = messages.filter((m) => m.role === 'user');
  const queryTexts = Array.from({ length: queries }, (_, i) => (userTurns[(i * 7919) % userTurns.length]!.content as string).slice(0, 300));

  const loader = await openEvalStrata({ embedder });
  try {
    const started = performance.now();
    await addSession(loader.strata, 'bench', messages, 'bench-user');
    const loadMs = performance.now() - started;
    const flushStarted = performance.now();
    await loader.strata.flush();
    const flushMs = performance.now() - flushStarted;
    await loader.close();

    const measure = async (name: string, retriever: RetrieverOptions): Promise<RetrievalBenchRow> => {
      const ev = await openEvalStrata({ embedder, dataDir: loader.dataDir, retriever });
      try {
        const context = (query: string) => ev.strata.getContext('bench', { tenant: EVAL_TENANT, type: 'smart', query, maxTokens });
        const first = performance.now();
        await context('warm-up query about the first call');
        const firstCallMs = performance.now() - first;
        const times: number[] = [];
        const tokens: number[] = [];
        for (const q of queryTexts) {
          const t0 = performance.now();
          const r = await context(q);
          times.push(performance.now() - t0);
          tokens.push(r.tokens);
        }
        return { name, p50Ms: percentile(times, 0.5), p95Ms: percentile(times, 0.95), firstCallMs, medianTokens: percentile(tokens, 0.5) };
      } finally {
        await ev.close();
      }
    };
    const baseline = await measure('BM25 only', { denseWeight: 0 });
    const hybrid = await measure(`hybrid (${embedder} + BM25)`, {});
    return { turns: messages.length, queries, maxTokens, setup: PRODUCT_SETUP, loadMs, flushMs, p50Ms: hybrid.p50Ms, p95Ms: hybrid.p95Ms, hybrid, baseline };
  } finally {
    await loader.dispose();
  }
}
