import { readFile } from 'node:fs/promises';
import type { NewMessage } from '../cache/api.js';
import { StrataError } from '../errors.js';
import type { RetrieverOptions } from '../retrieval/retriever.js';
import { averageRecall, percentile, recallAt, type RecallTable } from './common.js';
import { addSession, EVAL_TENANT, openEvalStrata, type EvalEmbedder } from './product.js';

interface LocomoTurn { speaker: string; dia_id: string; text: string; blip_caption?: string }
interface LocomoQa { question: string; evidence?: string[]; category: number }
interface LocomoConversation { sample_id: string; conversation: Record<string, unknown>; qa: LocomoQa[] }

export const LOCOMO_GRANULARITY = 'one Strata session per LoCoMo session, all sessions of a conversation owned by one user (its sample_id); questions searched in user scope';
export const LOCOMO_CONTEXT_SESSION = "the session holding the question's first evidence turn";

export interface LocomoResult {
  granularity: string;
  embedder: EvalEmbedder;
  questions: number;
  turns: number;
  recall: RecallTable;
  /** Median `tokens` of smart context (budget 2,000) for the session of each question's first evidence; null when not measured. */
  medianContextTokens: number | null;
  contextSession: string;
  searchP50Ms: number;
  searchP95Ms: number;
  /** Loading through addMessages, then flush (compaction: tokens, embeddings, archive). */
  loadMs: number;
  flushMs: number;
  /** Recall of the same questions over the same archive with each baseline configuration. */
  baselines?: Record<string, RecallTable>;
}

const MONTHS = ['january', 'february', 'march', 'april', 'may', 'june', 'july', 'august', 'september', 'october', 'november', 'december'];

/** `1:56 pm on 8 May, 2023` → epoch ms (UTC); null when it does not parse. */
export function parseLocomoDate(s: unknown): number | null {
  if (typeof s !== 'string') return null;
  const m = /(\d{1,2}):(\d{2})\s*(am|pm)\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})/i.exec(s);
  if (!m) return null;
  const month = MONTHS.indexOf(m[5]!.toLowerCase());
  if (month < 0) return null;
  const hour = (Number(m[1]) % 12) + (m[3]!.toLowerCase() === 'pm' ? 12 : 0);
  return Date.UTC(Number(m[6]), month, Number(m[4]), hour, Number(m[2]));
}

export interface LocomoLoadOptions {
  /** Append a shared image's caption to the utterance (`[image: …]`). Default true. */
  captions?: boolean;
}

export interface LocomoSession {
  sampleId: string;
  sessionId: string;
  date: string | null;
  createdAt: number | null;
  messages: NewMessage[];
  diaIds: string[];
}

/**
 * LoCoMo conversations as Strata sessions: one session per LoCoMo session
 * (`<sample_id>-s<kk>`, zero-padded so session order is chronological), owned by user
 * `<sample_id>`. A message's content is the utterance plus its shared image's caption
 * (`[image: …]`); metadata carries `speaker` (what search matches names in questions against),
 * `dia_id`, the session `date` and `blip_caption`.
 */
export function parseLocomo(data: unknown, o: LocomoLoadOptions = {}): { sessions: LocomoSession[]; conversations: LocomoConversation[] } {
  if (!Array.isArray(data)) throw new StrataError('STRATA_ERR_INPUT_FORMAT', 'LoCoMo input must be a JSON array of conversations');
  const sessions: LocomoSession[] = [];
  for (const conv of data as LocomoConversation[]) {
    if (typeof conv?.sample_id !== 'string' || typeof conv.conversation !== 'object' || conv.conversation === null || !Array.isArray(conv.qa)) {
      throw new StrataError('STRATA_ERR_INPUT_FORMAT', 'LoCoMo conversation needs sample_id, conversation and qa');
    }
    const speakerA = conv.conversation.speaker_a;
    const sessionKeys = Object.keys(conv.conversation).filter((k) => /^session_\d+$/.test(k)).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
    for (const sk of sessionKeys) {
      const raw = conv.conversation[sk];
      if (!Array.isArray(raw)) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${conv.sample_id} ${sk}: expected an array of turns`);
      const date = conv.conversation[`${sk}_date_time`];
      const turns = (raw as LocomoTurn[]).filter((t) => typeof t?.text === 'string' && typeof t.dia_id === 'string');
      if (turns.length === 0) continue;
      sessions.push({
        sampleId: conv.sample_id,
        sessionId: `${conv.sample_id}-s${sk.slice(8).padStart(2, '0')}`,
        date: typeof date === 'string' ? date : null,
        createdAt: parseLocomoDate(date),
        diaIds: turns.map((t) => t.dia_id),
        messages: turns.map((t) => ({
          role: t.speaker === speakerA ? 'user' : 'assistant',
          content: t.blip_caption && o.captions !== false ? `${t.text} [image: ${t.blip_caption}]` : t.text,
          metadata: { speaker: t.speaker, dia_id: t.dia_id, ...(typeof date === 'string' ? { date } : {}), ...(t.blip_caption ? { blip_caption: t.blip_caption } : {}) },
        })),
      });
    }
  }
  return { sessions, conversations: data as LocomoConversation[] };
}

async function readJson(input: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(input, 'utf8')) as unknown;
  } catch (err) {
    throw new StrataError('STRATA_ERR_INPUT_FORMAT', `cannot read LoCoMo file ${input}: ${(err as Error).message}`, { cause: err });
  }
}

/** A LoCoMo file loaded into a Strata data dir, ready to be searched by any number of runs. */
export interface LoadedLocomo {
  dataDir: string;
  embedder: EvalEmbedder;
  conversations: LocomoConversation[];
  /** `${sample_id}\0${dia_id}` → `${sessionId}\0${turnId}` as the product numbered it. */
  keyOf: Map<string, string>;
  turns: number;
  loadMs: number;
  flushMs: number;
  dispose(): Promise<void>;
}

/** Loads every conversation through `addMessages`, archives it with `flush()`, closes the core. */
export async function loadLocomo(input: string, embedder: EvalEmbedder, o: LocomoLoadOptions = {}): Promise<LoadedLocomo> {
  const { sessions, conversations } = parseLocomo(await readJson(input), o);
  const ev = await openEvalStrata({ embedder });
  try {
    const keyOf = new Map<string, string>();
    let turns = 0;
    const started = performance.now();
    let fallback = 1_600_000_000_000;
    for (const s of sessions) {
      // Turns are stamped with their session's date (the clock the core reads at addMessages).
      ev.clock.time = s.createdAt ?? (fallback += 86_400_000);
      const ids = await addSession(ev.strata, s.sessionId, s.messages, s.sampleId);
      ids.forEach((turnId, i) => keyOf.set(`${s.sampleId}\u0000${s.diaIds[i]}`, `${s.sessionId}\u0000${turnId}`));
      turns += ids.length;
    }
    const loadMs = performance.now() - started;
    const flushStarted = performance.now();
    await ev.strata.flush();
    const flushMs = performance.now() - flushStarted;
    await ev.close();
    return { dataDir: ev.dataDir, embedder, conversations, keyOf, turns, loadMs, flushMs, dispose: ev.dispose };
  } catch (err) {
    await ev.dispose().catch(() => undefined);
    throw err;
  }
}

export interface LocomoRunOptions {
  ks: readonly number[];
  retriever?: RetrieverOptions;
  /** Measure smart-context tokens too. Default true. */
  smartContext?: boolean;
}

/**
 * Opens the loaded data dir with `createStrata` and asks each question of categories 1–4 with
 * `searchDiskHistory(question, k, {userId: sample_id})`; hits map back to dia_ids by
 * (session, turn id). Smart context is measured in a second pass, so session-scope indexes do
 * not push the user-scope ones out of the retriever's cache between searches.
 */
export async function runLocomo(loaded: LoadedLocomo, o: LocomoRunOptions): Promise<LocomoResult> {
  const maxK = Math.max(...o.ks);
  if (maxK > 100) throw new StrataError('STRATA_ERR_VALIDATION', `--k: searchDiskHistory returns at most 100 hits; got ${maxK}`);
  const ev = await openEvalStrata({ embedder: loaded.embedder, dataDir: loaded.dataDir, ...(o.retriever ? { retriever: o.retriever } : {}) });
  try {
    const questions: Array<{ sampleId: string; question: string; category: number; evidence: Set<string>; firstSession: string }> = [];
    for (const conv of loaded.conversations) {
      for (const qa of conv.qa) {
        if (![1, 2, 3, 4].includes(qa.category) || typeof qa.question !== 'string') continue;
        const evidence = new Set<string>();
        for (const raw of qa.evidence ?? []) {
          for (const id of String(raw).split(/[;\s,]+/)) {
            const k = loaded.keyOf.get(`${conv.sample_id}\u0000${id}`);
            if (k) evidence.add(k);
          }
        }
        const first = evidence.values().next();
        if (first.done) continue;
        questions.push({ sampleId: conv.sample_id, question: qa.question, category: qa.category, evidence, firstSession: first.value.split('\u0000')[0]! });
      }
    }
    const rows: Array<{ groups: string[]; recall: Record<number, number> }> = [];
    const latencies: number[] = [];
    for (const q of questions) {
      const started = performance.now();
      const hits = await ev.strata.searchDiskHistory(q.question, maxK, { tenant: EVAL_TENANT, userId: q.sampleId });
      latencies.push(performance.now() - started);
      const retrieved = hits.map((h) => `${h.sessionId}\u0000${h.turnId}`);
      rows.push({ groups: ['all', String(q.category)], recall: Object.fromEntries(o.ks.map((k) => [k, recallAt(retrieved, q.evidence, k)])) });
    }
    const contextTokens: number[] = [];
    if (o.smartContext !== false) {
      for (const q of questions) {
        const ctx = await ev.strata.getContext(q.firstSession, { tenant: EVAL_TENANT, type: 'smart', query: q.question, maxTokens: 2000 });
        contextTokens.push(ctx.tokens);
      }
    }
    return {
      granularity: LOCOMO_GRANULARITY,
      embedder: loaded.embedder,
      questions: rows.length,
      turns: loaded.turns,
      recall: averageRecall(rows, o.ks),
      medianContextTokens: o.smartContext === false ? null : percentile(contextTokens, 0.5),
      contextSession: LOCOMO_CONTEXT_SESSION,
      searchP50Ms: percentile(latencies, 0.5),
      searchP95Ms: percentile(latencies, 0.95),
      loadMs: loaded.loadMs,
      flushMs: loaded.flushMs,
    };
  } finally {
    await ev.close();
  }
}

/** Load, evaluate, clean up: `strata eval locomo`. */
export async function evalLocomo(input: string, embedder: EvalEmbedder, o: LocomoRunOptions & { baselines?: Readonly<Record<string, RetrieverOptions>> }): Promise<LocomoResult> {
  const loaded = await loadLocomo(input, embedder);
  try {
    const baselines: Record<string, RecallTable> = {};
    for (const [name, options] of Object.entries(o.baselines ?? {})) baselines[name] = (await runLocomo(loaded, { ks: o.ks, retriever: { ...options, ...o.retriever }, smartContext: false })).recall;
    const result = await runLocomo(loaded, o);
    return o.baselines ? { ...result, baselines } : result;
  } finally {
    await loaded.dispose();
  }
}
