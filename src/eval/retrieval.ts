import { readFile } from 'node:fs/promises';
import { StrataError } from '../errors.js';
import type { Embedder } from '../retrieval/embedder.js';
import { HybridRetriever, type RetrieverOptions } from '../retrieval/retriever.js';
import type { RetrievalScope, RetrievalTurn } from '../retrieval/source.js';
import { ROLES, type Role } from '../types.js';
import { averageRecall, embedAsArchived, MemoryTurnSource, percentile, recallAt, type RecallTable } from './common.js';

interface GenericInput {
  sessions: Array<{ session_id: string; user_id?: string; turns: Array<{ turn_id: number; role: string; content: string; created_at?: number | string }> }>;
  queries: Array<{ query: string; user_id?: string; session_ids?: string[]; evidence: Array<{ session_id: string; turn_id: number }>; category?: string | number }>;
}

export interface RetrievalEvalResult {
  queries: number;
  recall: RecallTable;
  sessionRecallAny: RecallTable;
  searchP50Ms: number;
  searchP95Ms: number;
}

function bad(message: string): never {
  throw new StrataError('STRATA_ERR_INPUT_FORMAT', message);
}

/**
 * Turn recall@k and session recall_any@k on the generic format. Sessions without `user_id`
 * belong to user `_`; a query names its scope by `user_id` or `session_ids` (default: all sessions).
 */
export async function evalRetrieval(input: string, embedder: Embedder, ks: readonly number[], retriever: RetrieverOptions = {}): Promise<RetrievalEvalResult> {
  let data: GenericInput;
  try {
    data = JSON.parse(await readFile(input, 'utf8')) as GenericInput;
  } catch (err) {
    throw new StrataError('STRATA_ERR_INPUT_FORMAT', `cannot read ${input}: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(data?.sessions) || !Array.isArray(data.queries)) bad('input needs "sessions" and "queries" arrays');
  const source = new MemoryTurnSource();
  const allSessions: string[] = [];
  for (const s of data.sessions) {
    if (typeof s.session_id !== 'string' || !Array.isArray(s.turns)) bad('each session needs session_id and turns');
    const turns: RetrievalTurn[] = s.turns.map((t, i) => {
      if (!Number.isInteger(t.turn_id) || typeof t.content !== 'string') bad(`session ${s.session_id} turn ${i}: needs integer turn_id and string content`);
      const role: Role = (ROLES as readonly string[]).includes(t.role) ? (t.role as Role) : 'user';
      const created = typeof t.created_at === 'number' ? t.created_at : typeof t.created_at === 'string' ? Date.parse(t.created_at) : NaN;
      return { sessionId: s.session_id, turnId: t.turn_id, role, content: t.content, createdAt: Number.isFinite(created) ? created : i };
    });
    await embedAsArchived(embedder, turns);
    source.add('eval', s.session_id, s.user_id ?? '_', turns);
    allSessions.push(s.session_id);
  }
  const search = new HybridRetriever(source, embedder, retriever);
  const maxK = Math.max(...ks);
  const rows: Array<{ groups: string[]; recall: Record<number, number> }> = [];
  const sessionRows: Array<{ groups: string[]; recall: Record<number, number> }> = [];
  const latencies: number[] = [];
  for (const q of data.queries) {
    if (typeof q.query !== 'string' || !Array.isArray(q.evidence)) bad('each query needs query and evidence');
    if (q.evidence.length === 0) continue;
    const scope: RetrievalScope = q.user_id !== undefined ? { tenant: 'eval', userId: q.user_id } : { tenant: 'eval', sessionIds: q.session_ids ?? allSessions };
    const started = performance.now();
    const hits = await search.search(q.query, maxK, scope);
    latencies.push(performance.now() - started);
    const evidence = new Set(q.evidence.map((e) => `${e.session_id}\u0000${e.turn_id}`));
    const evidenceSessions = new Set(q.evidence.map((e) => e.session_id));
    const retrieved = hits.map((h) => `${h.sessionId}\u0000${h.turnId}`);
    const groups = ['all', ...(q.category !== undefined ? [String(q.category)] : [])];
    rows.push({ groups, recall: Object.fromEntries(ks.map((k) => [k, recallAt(retrieved, evidence, k)])) });
    sessionRows.push({ groups, recall: Object.fromEntries(ks.map((k) => [k, hits.slice(0, k).some((h) => evidenceSessions.has(h.sessionId)) ? 1 : 0])) });
  }
  return { queries: rows.length, recall: averageRecall(rows, ks), sessionRecallAny: averageRecall(sessionRows, ks), searchP50Ms: percentile(latencies, 0.5), searchP95Ms: percentile(latencies, 0.95) };
}
