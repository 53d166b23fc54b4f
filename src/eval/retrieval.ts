import { readFile } from 'node:fs/promises';
import type { NewMessage, SearchScopeInput } from '../cache/api.js';
import { StrataError } from '../errors.js';
import type { RetrieverOptions } from '../retrieval/retriever.js';
import { ROLES, type Role } from '../types.js';
import { averageRecall, percentile, recallAt, type RecallTable } from './common.js';
import { addSession, EVAL_TENANT, openEvalStrata, type EvalEmbedder } from './product.js';

interface GenericInput {
  sessions: Array<{ session_id: string; user_id?: string; turns: Array<{ turn_id: number; role: string; content: string; created_at?: number | string; metadata?: Record<string, unknown> }> }>;
  queries: Array<{ query: string; user_id?: string; session_ids?: string[]; evidence: Array<{ session_id: string; turn_id: number }>; category?: string | number; question_date?: string }>;
}

export interface RetrievalEvalRun {
  recall: RecallTable;
  sessionRecallAny: RecallTable;
  searchP50Ms: number;
  searchP95Ms: number;
}

export interface RetrievalEvalResult extends RetrievalEvalRun {
  queries: number;
  turns: number;
  loadMs: number;
  flushMs: number;
  /** The same queries over the same archive with the baseline configurations (EVAL_BASELINES). */
  baselines: Record<string, RetrievalEvalRun>;
}

/**
 * Configurations every evaluation prints beside the default, from the same load: plain BM25
 * over single turns, and the default before session evidence, the first-person prior, stronger
 * smoothing, idf-weighted query words and the sharper fusion (docs/retrieval.md).
 */
export const EVAL_BASELINES: Readonly<Record<string, RetrieverOptions>> = Object.freeze({
  bm25: { denseWeight: 0, speakerBoost: 1, smoothing: 0, sessionWeight: 0, selfBoost: 1 },
  previousDefault: { rrfK: 20, smoothing: 0.2, sessionWeight: 0, selfBoost: 1, queryIdfPower: 0 },
});

/** User that sessions without `user_id` belong to. */
export const DEFAULT_EVAL_USER = '_';

const ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

function bad(message: string): never {
  throw new StrataError('STRATA_ERR_INPUT_FORMAT', message);
}

function timeOf(v: number | string | undefined): number | null {
  const t = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : NaN;
  return Number.isSafeInteger(Math.round(t)) && t >= 0 ? Math.round(t) : null;
}

/**
 * Turn recall@k and session recall_any@k on the generic format, through the product: every
 * session is added with `addMessages` (owner `user_id`, default `_`), archived by `flush()`, and
 * each query searched with `searchDiskHistory`. A query's scope is its `user_id`; or its
 * `session_ids` when they are one session or exactly one user's sessions; or, without either,
 * all sessions when they belong to one user — the scopes the product searches; any other
 * `session_ids` list is imported again under a private user of that query. After loading,
 * every session is evicted to disk (`evictToDiskLru`), so no turn sits in a recent window and
 * session scope searches the whole history. Ids that are not valid Strata
 * ids (`[A-Za-z0-9_.-]`, ≤ 128) are renamed internally; turn ids are the product's own
 * (1, 2, … in `turn_id` order) and mapped back. A turn may carry `metadata` (stored with it; a
 * `speaker` or `name` there is matched against names in queries).
 */
export async function evalRetrieval(input: string, embedder: EvalEmbedder, ks: readonly number[], retriever: RetrieverOptions = {}): Promise<RetrievalEvalResult> {
  const maxK = Math.max(...ks);
  if (maxK > 100) throw new StrataError('STRATA_ERR_VALIDATION', `--k: searchDiskHistory returns at most 100 hits; got ${maxK}`);
  let data: GenericInput;
  try {
    data = JSON.parse(await readFile(input, 'utf8')) as GenericInput;
  } catch (err) {
    throw new StrataError('STRATA_ERR_INPUT_FORMAT', `cannot read ${input}: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(data?.sessions) || !Array.isArray(data.queries)) bad('input needs "sessions" and "queries" arrays');

  // Validate everything before loading anything.
  const sessionIdOf = new Map<string, string>(); // input id → product id
  const userIdOf = new Map<string, string>();
  const ownerOf = new Map<string, string>(); // input session id → input user id
  const sessionsOfUser = new Map<string, Set<string>>(); // input user id → input session ids
  const planned: Array<{ id: string; user: string; messages: NewMessage[]; inputTurnIds: number[]; createdAt: number | null }> = [];
  for (const [si, s] of data.sessions.entries()) {
    if (typeof s?.session_id !== 'string' || !Array.isArray(s.turns)) bad(`sessions[${si}]: needs session_id and turns`);
    if (sessionIdOf.has(s.session_id)) bad(`session ${s.session_id} appears twice`);
    const user = typeof s.user_id === 'string' ? s.user_id : DEFAULT_EVAL_USER;
    sessionIdOf.set(s.session_id, ID_RE.test(s.session_id) ? s.session_id : `s-${si}`);
    if (!userIdOf.has(user)) userIdOf.set(user, ID_RE.test(user) ? user : `u-${userIdOf.size}`);
    ownerOf.set(s.session_id, user);
    (sessionsOfUser.get(user) ?? sessionsOfUser.set(user, new Set()).get(user)!).add(s.session_id);
    const turns = [...s.turns].sort((a, b) => a.turn_id - b.turn_id);
    for (const [i, t] of turns.entries()) {
      if (!Number.isInteger(t?.turn_id) || typeof t.content !== 'string' || t.content.trim() === '') bad(`session ${s.session_id} turn ${i}: needs integer turn_id and non-empty string content`);
      if (i > 0 && turns[i - 1]!.turn_id === t.turn_id) bad(`session ${s.session_id}: turn_id ${t.turn_id} appears twice`);
    }
    planned.push({
      id: s.session_id,
      user,
      inputTurnIds: turns.map((t) => t.turn_id),
      createdAt: timeOf(turns[0]?.created_at),
      messages: turns.map((t) => ({
        role: (ROLES as readonly string[]).includes(t.role) ? (t.role as Role) : 'user',
        content: t.content,
        ...(t.metadata !== null && typeof t.metadata === 'object' && !Array.isArray(t.metadata) ? { metadata: t.metadata } : {}),
      })),
    });
  }
  /** Queries over sessions that are not one user's: their sessions, copied under a private user. */
  const privateScopes: Array<{ query: number; user: string; sessions: string[] }> = [];
  const scopes: SearchScopeInput[] = data.queries.map((q, qi) => {
    if (typeof q?.query !== 'string' || q.query.trim() === '' || !Array.isArray(q.evidence)) bad(`queries[${qi}]: needs query and evidence`);
    if (q.user_id !== undefined) {
      if (!userIdOf.has(q.user_id)) bad(`queries[${qi}]: user ${q.user_id} owns no session`);
      return { tenant: EVAL_TENANT, userId: userIdOf.get(q.user_id)! };
    }
    const listed = q.session_ids ?? [...sessionIdOf.keys()];
    for (const id of listed) if (!sessionIdOf.has(id)) bad(`queries[${qi}]: unknown session ${id}`);
    if (q.session_ids?.length === 1) return { tenant: EVAL_TENANT, sessionId: sessionIdOf.get(listed[0]!)! };
    const owners = new Set(listed.map((id) => ownerOf.get(id)!));
    const owner = owners.size === 1 ? [...owners][0]! : null;
    if (owner !== null && sessionsOfUser.get(owner)!.size === new Set(listed).size) return { tenant: EVAL_TENANT, userId: userIdOf.get(owner)! };
    // Any other set of sessions: Strata searches one session or every session of one user, so
    // the query's sessions are imported again under a private user of their own.
    // Not a name any input user gets (those are of [A-Za-z0-9_.-] or `u-<n>`).
    const privateUser = `~query ${qi}`;
    privateScopes.push({ query: qi, user: privateUser, sessions: [...new Set(listed)] });
    return { tenant: EVAL_TENANT, userId: privateUser };
  });

  const ev = await openEvalStrata({ embedder, retriever });
  try {
    const keyOf = new Map<string, string>(); // `${input session}\0${input turn}` → `${product session}\0${product turn}`
    const inputSessionOf = new Map<string, string>([...sessionIdOf].map(([a, b]) => [b, a]));
    let turns = 0;
    let fallback = 1_600_000_000_000;
    const started = performance.now();
    for (const s of planned) {
      if (s.messages.length === 0) continue;
      ev.clock.time = s.createdAt ?? (fallback += 3_600_000);
      const ids = await addSession(ev.strata, sessionIdOf.get(s.id)!, s.messages, userIdOf.get(s.user)!);
      ids.forEach((turnId, i) => keyOf.set(`${s.id}\u0000${s.inputTurnIds[i]}`, `${sessionIdOf.get(s.id)}\u0000${turnId}`));
      turns += ids.length;
    }
    // Private copies: session `<copy>` of query qi maps evidence of the original session too.
    const copyOf = new Map<number, Map<string, string>>(); // query index → input session id → product session id of the copy
    for (const p of privateScopes) {
      const copies = new Map<string, string>();
      for (const inputId of p.sessions) {
        const s = planned.find((x) => x.id === inputId)!;
        if (s.messages.length === 0) continue;
        const copyId = `${sessionIdOf.get(inputId)}~q${p.query}`;
        ev.clock.time = s.createdAt ?? (fallback += 3_600_000);
        const ids = await addSession(ev.strata, copyId, s.messages, p.user);
        ids.forEach((turnId, i) => keyOf.set(`q${p.query}\u0000${inputId}\u0000${s.inputTurnIds[i]}`, `${copyId}\u0000${turnId}`));
        copies.set(inputId, copyId);
        inputSessionOf.set(copyId, inputId);
      }
      copyOf.set(p.query, copies);
    }
    const loadMs = performance.now() - started;
    const flushStarted = performance.now();
    await ev.strata.flush();
    // Evicted to disk, no session has a recent window: session-scope search covers every turn.
    for (const id of sessionIdOf.values()) await ev.strata.evictToDiskLru(id, { tenant: EVAL_TENANT });
    for (const copies of copyOf.values()) for (const id of copies.values()) await ev.strata.evictToDiskLru(id, { tenant: EVAL_TENANT });
    const flushMs = performance.now() - flushStarted;
    await ev.close();

    const runQueries = async (options: RetrieverOptions): Promise<RetrievalEvalRun> => {
      const run = await openEvalStrata({ embedder, dataDir: ev.dataDir, retriever: options });
      try {
        return await queryAll(run);
      } finally {
        await run.close();
      }
    };
    const queryAll = async (run: Awaited<ReturnType<typeof openEvalStrata>>): Promise<RetrievalEvalRun> => {

    const rows: Array<{ groups: string[]; recall: Record<number, number> }> = [];
    const sessionRows: Array<{ groups: string[]; recall: Record<number, number> }> = [];
    const latencies: number[] = [];
    for (const [qi, q] of data.queries.entries()) {
      const prefix = copyOf.has(qi) ? `q${qi}\u0000` : '';
      const evidence = new Set(q.evidence.map((e) => keyOf.get(`${prefix}${e.session_id}\u0000${e.turn_id}`) ?? `missing\u0000${e.session_id}\u0000${e.turn_id}`));
      if (evidence.size === 0) continue;
      const evidenceSessions = new Set(q.evidence.map((e) => e.session_id));
      const t0 = performance.now();
      const hits = await run.strata.searchDiskHistory(q.query, maxK, scopes[qi]!);
      latencies.push(performance.now() - t0);
      const retrieved = hits.map((h) => `${h.sessionId}\u0000${h.turnId}`);
      const groups = ['all', ...(q.category !== undefined ? [String(q.category)] : [])];
      rows.push({ groups, recall: Object.fromEntries(ks.map((k) => [k, recallAt(retrieved, evidence, k)])) });
      sessionRows.push({ groups, recall: Object.fromEntries(ks.map((k) => [k, hits.slice(0, k).some((h) => evidenceSessions.has(inputSessionOf.get(h.sessionId)!)) ? 1 : 0])) });
    }
      return { recall: averageRecall(rows, ks), sessionRecallAny: averageRecall(sessionRows, ks), searchP50Ms: percentile(latencies, 0.5), searchP95Ms: percentile(latencies, 0.95) };
    };
    const baselines: Record<string, RetrievalEvalRun> = {};
    for (const [name, options] of Object.entries(EVAL_BASELINES)) baselines[name] = await runQueries({ ...options, ...retriever });
    const main = await runQueries(retriever);
    return { queries: data.queries.length, turns, ...main, loadMs, flushMs, baselines };
  } finally {
    await ev.dispose();
  }
}
