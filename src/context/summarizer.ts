import { searchText } from '../message.js';
import type { Summary } from '../archive/store.js';
import { StrataError } from '../errors.js';
import { terms } from '../retrieval/text.js';
import type { Turn } from '../types.js';
import { getTokenizer } from './gpt-tokenizer.js';
import type { Tokenizer } from './tokenizer.js';

/** Turns in, one summary text out (the caller records the range it covers). */
export interface Summarizer {
  readonly id: string;
  summarize(turns: readonly Turn[]): Promise<string>;
}

export interface ExtractiveSummarizerOptions {
  tokenizer: Tokenizer;
  /** Token cap of a summary, the range label included. Default 200. */
  maxTokens?: number;
}

const SENTENCE = /[^.!?\n]+(?:[.!?]+|$)/g;

/**
 * Offline extractive summary: sentences are scored by cosine to the range's centroid
 * (TF-IDF over the range's sentences, a TextRank-lite), the best are kept within the token cap
 * and printed in their original order. The text starts with the turn range it covers.
 */
export class ExtractiveSummarizer implements Summarizer {
  readonly id = 'extractive-v1';
  readonly tokenizer: Tokenizer;
  /** Token cap of a summary (the worker pool rebuilds an identical summarizer from it). */
  readonly maxTokens: number;

  constructor(options: ExtractiveSummarizerOptions) {
    this.tokenizer = options.tokenizer;
    this.maxTokens = options.maxTokens ?? 200;
    if (!Number.isInteger(this.maxTokens) || this.maxTokens < 16) {
      throw new StrataError('STRATA_ERR_CONFIG_INVALID', `summary.maxTokens: expected an integer ≥ 16, got ${String(options.maxTokens)}`);
    }
  }

  summarize(turns: readonly Turn[]): Promise<string> {
    if (turns.length === 0) return Promise.resolve('');
    const label = `Turns ${turns[0]!.turnId}–${turns[turns.length - 1]!.turnId}:`;
    const sentences: Array<{ text: string; tf: Map<string, number>; pos: number }> = [];
    for (const t of turns) {
      for (const m of searchText(t).matchAll(SENTENCE)) {
        const text = m[0].trim();
        const ts = terms(text);
        if (ts.length < 3) continue;
        const tf = new Map<string, number>();
        for (const w of ts) tf.set(w, (tf.get(w) ?? 0) + 1);
        sentences.push({ text: `${t.role}: ${text}`, tf, pos: sentences.length });
      }
    }
    const df = new Map<string, number>();
    for (const s of sentences) for (const w of s.tf.keys()) df.set(w, (df.get(w) ?? 0) + 1);
    const idf = (w: string) => Math.log(1 + sentences.length / (df.get(w) ?? 1));
    const centroid = new Map<string, number>();
    for (const s of sentences) for (const [w, n] of s.tf) centroid.set(w, (centroid.get(w) ?? 0) + n * idf(w));
    const scored = sentences.map((s) => {
      let dotp = 0;
      let norm = 0;
      for (const [w, n] of s.tf) {
        const x = n * idf(w);
        dotp += x * (centroid.get(w) ?? 0);
        norm += x * x;
      }
      return { s, score: norm > 0 ? dotp / Math.sqrt(norm) : 0 };
    });
    scored.sort((a, b) => b.score - a.score || a.s.pos - b.s.pos);
    let budget = this.maxTokens - this.tokenizer.count(label);
    const kept: typeof sentences = [];
    const bounded = wordsBoundTokens(this.tokenizer);
    for (const { s } of scored) {
      // Most sentences no longer fit once the budget runs low: a word count rules them out
      // without byte-pair encoding them (the same sentences are kept either way).
      if (bounded && nonSpaceRuns(s.text) + 1 > budget) continue;
      const n = this.tokenizer.count(s.text) + 1;
      if (n > budget) continue;
      budget -= n;
      kept.push(s);
    }
    kept.sort((a, b) => a.pos - b.pos);
    return Promise.resolve([label, ...kept.map((s) => s.text)].join(' '));
  }
}

/**
 * Whether a text's token count is at least its number of whitespace-separated words: true of the
 * GPT encodings, whose pre-tokenizer (o200k and cl100k alike) never puts two words into one piece
 * and whose every piece is at least one token. Unknown for a custom tokenizer.
 */
function wordsBoundTokens(tokenizer: Tokenizer): boolean {
  return (tokenizer.id === 'o200k_base' || tokenizer.id === 'cl100k_base') && getTokenizer(tokenizer.id) === tokenizer;
}

/** Maximal runs of non-whitespace characters (\s as the pre-tokenizers read it). */
function nonSpaceRuns(text: string): number {
  let runs = 0;
  let inRun = false;
  for (let i = 0; i < text.length; i++) {
    const space = isSpace(text.charCodeAt(i));
    if (!space && !inRun) runs++;
    inRun = !space;
  }
  return runs;
}

function isSpace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0xa0) return false;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

export interface ChatSummarizerOptions {
  /** Base URL up to and including `/v1`. */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Default 60000. */
  timeoutMs?: number;
  /** Default 2. */
  retries?: number;
  /** Default 256. */
  maxTokens?: number;
  fetch?: typeof fetch;
}

/** Abstractive summaries from any OpenAI-compatible `/v1/chat/completions` endpoint. */
export class ChatSummarizer implements Summarizer {
  readonly id: string;
  constructor(private readonly options: ChatSummarizerOptions) {
    if (!/^https?:\/\//.test(options.baseUrl ?? '')) {
      throw new StrataError('STRATA_ERR_CONFIG_INVALID', `summary.baseUrl: expected an http(s) URL, got ${JSON.stringify(options.baseUrl)}`);
    }
    this.id = `chat:${options.model}`;
  }

  async summarize(turns: readonly Turn[]): Promise<string> {
    if (turns.length === 0) return '';
    const o = this.options;
    const url = `${o.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    const transcript = turns.map((t) => `[${t.turnId}] ${t.role}: ${searchText(t)}`).join('\n');
    const body = JSON.stringify({
      model: o.model,
      max_tokens: o.maxTokens ?? 256,
      temperature: 0,
      messages: [
        { role: 'system', content: 'Summarise this part of a conversation in a few sentences: facts, decisions, names, dates. No preamble.' },
        { role: 'user', content: transcript },
      ],
    });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (o.apiKey) headers.authorization = `Bearer ${o.apiKey}`;
    let last = '';
    const retries = o.retries ?? 2;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      try {
        const res = await (o.fetch ?? fetch)(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(o.timeoutMs ?? 60_000) });
        if (!res.ok) {
          last = `HTTP ${res.status}`;
          if (res.status === 429 || res.status >= 500) continue;
          break;
        }
        const json = (await res.json()) as { choices?: Array<{ message?: { content?: unknown } }> };
        const text = json.choices?.[0]?.message?.content;
        if (typeof text !== 'string') throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `chat response from ${url} has no message content`);
        return `Turns ${turns[0]!.turnId}–${turns[turns.length - 1]!.turnId}: ${text.trim()}`;
      } catch (err) {
        if (err instanceof StrataError) throw err;
        last = String((err as Error).message ?? err);
      }
    }
    throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `summary request to ${url} failed: ${last}`);
  }
}

/**
 * Which milestone ranges need a (re)built summary: every complete window of `every` turns up
 * to `archivedThrough` (the session's highest archived turn id), plus the open tail window when
 * the session has ended. A window is done when a summary with exactly its range exists; the
 * archive drops summaries whose turns were deleted, so those windows come back here.
 */
export function planMilestones(
  archivedThrough: number,
  existing: readonly Pick<Summary, 'fromTurn' | 'toTurn'>[],
  every = 50,
  options: { sessionEnded?: boolean } = {},
): Array<{ fromTurn: number; toTurn: number }> {
  if (!Number.isInteger(every) || every < 1) throw new StrataError('STRATA_ERR_CONFIG_INVALID', `summaryEveryTurns: expected a positive integer, got ${String(every)}`);
  const done = new Set(existing.map((s) => `${s.fromTurn}-${s.toTurn}`));
  const out: Array<{ fromTurn: number; toTurn: number }> = [];
  for (let from = 1; from <= archivedThrough; from += every) {
    const to = Math.min(from + every - 1, archivedThrough);
    if (to - from + 1 < every && !options.sessionEnded) break;
    if (!done.has(`${from}-${to}`)) out.push({ fromTurn: from, toTurn: to });
  }
  return out;
}
