import { readFile } from 'node:fs/promises';
import { packContext } from '../context/packer.js';
import { getTokenizer } from '../context/gpt-tokenizer.js';
import { StrataError } from '../errors.js';
import type { Embedder } from '../retrieval/embedder.js';
import { HybridRetriever, type RetrieverOptions } from '../retrieval/retriever.js';
import type { RetrievalTurn } from '../retrieval/source.js';
import { averageRecall, embedAsArchived, MemoryTurnSource, percentile, recallAt, type RecallTable } from './common.js';

interface LocomoTurn { speaker: string; dia_id: string; text: string; blip_caption?: string }
interface LocomoQa { question: string; evidence?: string[]; category: number }
interface LocomoConversation { sample_id: string; conversation: Record<string, unknown>; qa: LocomoQa[] }

export interface LocomoResult {
  granularity: string;
  embedder: string;
  questions: number;
  recall: RecallTable;
  medianContextTokens: number;
  searchP50Ms: number;
  searchP95Ms: number;
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

/**
 * Loads LoCoMo conversations as Strata sessions: one session per LoCoMo session
 * (`<sample_id>-s<k>`), all owned by one user per conversation (`<sample_id>`), so each question
 * is searched in user scope over the whole conversation. A turn's text is the utterance plus
 * its shared image's caption (`[image: …]`), the speaker is recorded as the turn's name, and
 * turns are timestamped from the session date one second apart.
 */
export function loadLocomo(data: unknown): { turns: Map<string, RetrievalTurn[]>; users: Map<string, string>; conversations: LocomoConversation[] } {
  if (!Array.isArray(data)) throw new StrataError('STRATA_ERR_INPUT_FORMAT', 'LoCoMo input must be a JSON array of conversations');
  const turns = new Map<string, RetrievalTurn[]>();
  const users = new Map<string, string>();
  for (const conv of data as LocomoConversation[]) {
    if (typeof conv?.sample_id !== 'string' || typeof conv.conversation !== 'object' || !Array.isArray(conv.qa)) {
      throw new StrataError('STRATA_ERR_INPUT_FORMAT', 'LoCoMo conversation needs sample_id, conversation and qa');
    }
    const speakerA = conv.conversation.speaker_a;
    const sessionKeys = Object.keys(conv.conversation).filter((k) => /^session_\d+$/.test(k)).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
    for (const sk of sessionKeys) {
      const sessionId = `${conv.sample_id}-s${sk.slice(8)}`;
      const base = parseLocomoDate(conv.conversation[`${sk}_date_time`]) ?? 0;
      const list = (conv.conversation[sk] as LocomoTurn[]).map((t, i) => ({
        sessionId,
        turnId: i + 1,
        role: t.speaker === speakerA ? ('user' as const) : ('assistant' as const),
        content: t.blip_caption ? `${t.text} [image: ${t.blip_caption}]` : t.text,
        createdAt: base + i * 1000,
        speaker: t.speaker,
        diaId: t.dia_id,
      }));
      turns.set(sessionId, list);
      users.set(sessionId, conv.sample_id);
    }
  }
  return { turns, users, conversations: data as LocomoConversation[] };
}

export async function evalLocomo(input: string, embedder: Embedder, ks: readonly number[], retriever: RetrieverOptions = {}): Promise<LocomoResult> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(input, 'utf8'));
  } catch (err) {
    throw new StrataError('STRATA_ERR_INPUT_FORMAT', `cannot read LoCoMo file ${input}: ${(err as Error).message}`, { cause: err });
  }
  const { turns, users, conversations } = loadLocomo(data);
  const source = new MemoryTurnSource();
  const keyOf = new Map<string, string>(); // `${sample}\0${dia_id}` → `${sessionId}\0${turnId}`
  for (const [sessionId, list] of turns) {
    await embedAsArchived(embedder, list);
    source.add('eval', sessionId, users.get(sessionId)!, list);
    for (const t of list) keyOf.set(`${users.get(sessionId)}\u0000${(t as RetrievalTurn & { diaId: string }).diaId}`, `${sessionId}\u0000${t.turnId}`);
  }
  const search = new HybridRetriever(source, embedder, retriever);
  const tokenizer = getTokenizer();
  const maxK = Math.max(...ks, 30);
  const rows: Array<{ groups: string[]; recall: Record<number, number> }> = [];
  const latencies: number[] = [];
  const contextTokens: number[] = [];
  for (const conv of conversations) {
    for (const qa of conv.qa) {
      if (![1, 2, 3, 4].includes(qa.category)) continue;
      const evidence = new Set<string>();
      for (const raw of qa.evidence ?? []) {
        for (const id of String(raw).split(/[;\s,]+/)) {
          const k = keyOf.get(`${conv.sample_id}\u0000${id}`);
          if (k) evidence.add(k);
        }
      }
      if (evidence.size === 0) continue;
      const started = performance.now();
      const hits = await search.search(qa.question, maxK, { tenant: 'eval', userId: conv.sample_id });
      latencies.push(performance.now() - started);
      const retrieved = hits.map((h) => `${h.sessionId}\u0000${h.turnId}`);
      rows.push({ groups: ['all', String(qa.category)], recall: Object.fromEntries(ks.map((k) => [k, recallAt(retrieved, evidence, k)])) });
      contextTokens.push(packContext({ recent: [], relevant: hits, summaries: [], maxTokens: 2000, tokenizer }).tokens);
    }
  }
  return {
    granularity: 'one Strata session per LoCoMo session; user scope = one conversation',
    embedder: embedder.id,
    questions: rows.length,
    recall: averageRecall(rows, ks),
    medianContextTokens: percentile(contextTokens, 0.5),
    searchP50Ms: percentile(latencies, 0.5),
    searchP95Ms: percentile(latencies, 0.95),
  };
}
