/**
 * User-scope search at scale, through the product: one user with `sessions` sessions of
 * `turnsPerSession` real ShareGPT turns each (added with `addMessages`, archived by `flush()`),
 * then the core is reopened (a restart: nothing in memory) and measured:
 *  - the first user-scope `searchDiskHistory` (listing the user's sessions, reading every
 *    archived turn, building the index);
 *  - `queries` further user-scope searches with distinct queries (index current: one stamp
 *    look-up per search, no per-session look-up);
 *  - smart context of sessions of that user (session scope);
 *  - the heap the first search left behind (the index).
 * Baseline in the same run: the same queries with the index rebuilt for every search (the
 * user's stamp changed before each), which is what every search cost before indexes were kept
 * current per user.
 */
import { readFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { NewMessage } from '../src/cache/api.js';
import { percentile } from '../src/eval/common.js';
import { addSession, EVAL_TENANT, openEvalStrata } from '../src/eval/product.js';
import { SHAREGPT } from './retrieval.js';

export interface UserScopeBenchOptions {
  sessions?: number;
  turnsPerSession?: number;
  queries?: number;
  input?: string;
  embedder?: 'glove' | 'hash';
}

export interface UserScopeBenchResult {
  sessions: number;
  turns: number;
  queries: number;
  loadMs: number;
  flushMs: number;
  firstQueryMs: number;
  searchP50Ms: number;
  searchP95Ms: number;
  smartP95Ms: number;
  indexBytes: number;
  /** The same searches, each after the user's sessions changed (index rebuilt every time). */
  rebuildP50Ms: number;
}

const USER = 'bench-user';

/** A full garbage collection, so heap sizes before and after the first search compare. */
function collect(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

export async function runUserScopeBench(o: UserScopeBenchOptions = {}): Promise<UserScopeBenchResult> {
  const sessionCount = o.sessions ?? 1000;
  const perSession = o.turnsPerSession ?? 50;
  const queries = o.queries ?? 200;
  const source = JSON.parse(await readFile(o.input ?? SHAREGPT, 'utf8')) as Array<{ turns: Array<{ role: string; content: string }> }>;
  const texts: Array<NewMessage & { content: string }> = [];
  for (const s of source) for (const t of s.turns) if (typeof t.content === 'string' && t.content.trim() !== '') texts.push({ role: t.role === 'user' ? 'user' : 'assistant', content: t.content });
  const userTexts = texts.filter((t) => t.role === 'user');
  const ev = await openEvalStrata({ embedder: o.embedder ?? 'glove' });
  try {
    const started = performance.now();
    let next = 0;
    for (let s = 0; s < sessionCount; s++) {
      const messages = Array.from({ length: perSession }, () => texts[next++ % texts.length]!);
      await addSession(ev.strata, `s-${s}`, messages, USER);
    }
    const loadMs = performance.now() - started;
    const flushStarted = performance.now();
    await ev.strata.flush();
    const flushMs = performance.now() - flushStarted;
    await ev.close();

    // A restart: a new core over the same archive.
    const run = await openEvalStrata({ embedder: o.embedder ?? 'glove', dataDir: ev.dataDir });
    try {
      const scope = { tenant: EVAL_TENANT, userId: USER };
      const query = (i: number): string => (userTexts[(i * 7919) % userTexts.length]!.content as string).slice(0, 200);
      collect();
      const heapBefore = process.memoryUsage().heapUsed;
      const t0 = performance.now();
      await run.strata.searchDiskHistory('what did we decide about the schedule', 10, scope);
      const firstQueryMs = performance.now() - t0;
      collect();
      const indexBytes = Math.max(0, process.memoryUsage().heapUsed - heapBefore);
      const times: number[] = [];
      for (let i = 0; i < queries; i++) {
        const t = performance.now();
        await run.strata.searchDiskHistory(query(i), 10, scope);
        times.push(performance.now() - t);
      }
      const smart: number[] = [];
      for (let i = 0; i < Math.min(queries, 100); i++) {
        const t = performance.now();
        await run.strata.getContext(`s-${i % 10}`, { tenant: EVAL_TENANT, type: 'smart', query: query(i), maxTokens: 2000 });
        smart.push(performance.now() - t);
      }
      // Baseline: every search after a change of the user's sessions (an append to one of them).
      const rebuild: number[] = [];
      for (let i = 0; i < Math.min(queries, 10); i++) {
        await run.strata.addMessage(`s-${i}`, 'user', `a new message ${i}`, { tenant: EVAL_TENANT });
        await run.strata.flush(`s-${i}`, { tenant: EVAL_TENANT });
        const t = performance.now();
        await run.strata.searchDiskHistory(query(i + queries), 10, scope);
        rebuild.push(performance.now() - t);
      }
      return {
        sessions: sessionCount,
        turns: sessionCount * perSession,
        queries,
        loadMs,
        flushMs,
        firstQueryMs,
        searchP50Ms: percentile(times, 0.5),
        searchP95Ms: percentile(times, 0.95),
        smartP95Ms: percentile(smart, 0.95),
        indexBytes,
        rebuildP50Ms: percentile(rebuild, 0.5),
      };
    } finally {
      await run.close();
    }
  } finally {
    await ev.dispose();
  }
}
