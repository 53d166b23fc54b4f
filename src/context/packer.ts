import type { ContextResult, ExplainItem, SearchHit } from '../cache/api.js';
import type { Summary } from '../archive/store.js';
import type { Turn } from '../types.js';
import { StrataError } from '../errors.js';
import type { Tokenizer } from './tokenizer.js';

/** Shares of the budget once the history does not fit. Leftovers flow to the next part. */
export interface ContextShares {
  /** Default 0.15. */
  summary: number;
  /** Default 0.35. */
  relevant: number;
  /** Default 0.5. */
  recent: number;
}

export const DEFAULT_SHARES: Readonly<ContextShares> = Object.freeze({ summary: 0.15, relevant: 0.35, recent: 0.5 });

/** Appended to a turn cut to fit; its tokens are counted inside the budget. */
export const TRUNCATION_MARKER = ' […truncated]';

export interface PackInput {
  /** The recent window (hot tier), chronological. Newest turns are kept first. */
  recent: readonly Turn[];
  /** Search hits over older turns, best first. Hits that are also in `recent` are ignored. */
  relevant: readonly SearchHit[];
  summaries: readonly Summary[];
  /** The whole history, chronological, when known: returned as it is when it fits the budget. */
  history?: readonly Turn[] | null;
  maxTokens: number;
  tokenizer: Tokenizer;
  shares?: Partial<ContextShares>;
  /** Stored token count of a relevant hit's turn, when known (saves re-tokenising it). */
  tokensOf?: (hit: SearchHit) => number | undefined;
}


/**
 * Packs one token budget (pure, linear in the number of candidates apart from the final sort):
 * the full history when it fits; otherwise the newest recent turns (their share), the milestone
 * summaries older than those (their share), the most relevant older turns (the rest), and any
 * budget left goes to further recent turns. Whole turns only; only the newest turn may be cut
 * (with TRUNCATION_MARKER) when it alone exceeds the budget. No turn appears twice; messages
 * come out in chronological order; `explain` has one item per included turn or summary.
 */
export function packContext(input: PackInput): ContextResult {
  const { tokenizer, maxTokens } = input;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new StrataError('STRATA_ERR_VALIDATION', `maxTokens: expected a positive integer, got ${String(maxTokens)}`);
  }
  const shares = { ...DEFAULT_SHARES, ...input.shares };
  const count = (t: Turn) => t.tokens ?? tokenizer.count(t.content);
  const recentIds = new Set(input.recent.map((t) => t.turnId));

  if (input.history) {
    let total = 0;
    for (const t of input.history) total += count(t);
    if (total <= maxTokens) {
      const messages = [...input.history];
      const explain: ExplainItem[] = messages.map((t) => ({ source: recentIds.has(t.turnId) ? 'hot' : 'archive', turnId: t.turnId, reason: 'full', tokens: count(t) }));
      return { type: 'smart', messages, summary: null, tokens: total, explain, nextAfter: null };
    }
  }

  const picked: Array<{ turn: Turn; item: ExplainItem }> = [];
  const used = new Set<number>();
  let spent = 0;

  // Recent turns, newest first, within their share (the newest always gets in, cut if needed).
  const recentBudget = Math.floor(maxTokens * shares.recent);
  let ri = input.recent.length - 1;
  const takeRecent = (budget: number) => {
    for (; ri >= 0; ri--) {
      const t = input.recent[ri]!;
      if (used.has(t.turnId)) continue;
      const n = count(t);
      if (spent + n > budget) break;
      spent += n;
      used.add(t.turnId);
      picked.push({ turn: t, item: { source: 'hot', turnId: t.turnId, reason: 'recent', tokens: n } });
    }
  };
  const newest = input.recent[ri];
  if (newest && count(newest) > maxTokens) {
    const markerTokens = tokenizer.count(TRUNCATION_MARKER);
    let keep = maxTokens - markerTokens;
    let content = '';
    let n = 0;
    // Re-encoding a decoded prefix can merge differently; shrink until the count really fits.
    for (; keep > 0; keep -= Math.max(1, Math.ceil((n - maxTokens) / 2))) {
      content = tokenizer.truncate(newest.content, keep) + TRUNCATION_MARKER;
      n = tokenizer.count(content);
      if (n <= maxTokens) break;
    }
    if (n <= maxTokens && keep > 0) {
      spent += n;
      used.add(newest.turnId);
      picked.push({ turn: { ...newest, content, tokens: n }, item: { source: 'hot', turnId: newest.turnId, reason: 'recent', tokens: n, truncated: true } });
    }
    ri--;
  } else {
    takeRecent(Math.max(recentBudget, newest ? count(newest) : 0));
  }
  const oldestRecent = picked.length > 0 ? picked[picked.length - 1]!.turn.turnId : Infinity;

  // Summaries of turns older than the recent turns kept, newest first, within their share.
  const summaryBudget = Math.floor(maxTokens * shares.summary);
  const chosenSummaries: Array<{ s: Summary; text: string; n: number }> = [];
  let summaryTokens = 0;
  for (let i = input.summaries.length - 1; i >= 0; i--) {
    const s = input.summaries[i]!;
    if (s.fromTurn >= oldestRecent) continue;
    const text = `Turns ${s.fromTurn}–${s.toTurn}: ${s.text}`;
    const n = tokenizer.count(text) + (chosenSummaries.length > 0 ? 1 : 0);
    // Newest first and contiguous: stop at the first that does not fit (an older one skipped
    // past would leave a gap, and counting every summary of a long session costs milliseconds).
    if (summaryTokens + n > summaryBudget || spent + summaryTokens + n > maxTokens) break;
    summaryTokens += n;
    chosenSummaries.push({ s, text, n });
  }
  chosenSummaries.reverse();
  spent += summaryTokens;

  // Relevant older turns, best first, in whatever budget is left.
  for (const h of input.relevant) {
    if (used.has(h.turnId) || recentIds.has(h.turnId)) continue;
    const stored = input.tokensOf?.(h);
    const t: Turn = { turnId: h.turnId, role: h.role, content: h.content, createdAt: h.createdAt, ...(stored !== undefined ? { tokens: stored } : {}) };
    const n = count(t);
    if (spent + n > maxTokens) continue;
    spent += n;
    used.add(h.turnId);
    picked.push({ turn: t, item: { source: 'archive', turnId: h.turnId, reason: h.neighbour ? 'neighbour' : 'relevant', score: h.score, tokens: n } });
  }

  // Leftover budget extends the recent window further back.
  takeRecent(maxTokens);

  picked.sort((a, b) => a.turn.turnId - b.turn.turnId);
  const explain: ExplainItem[] = chosenSummaries.map(({ s, n }) => ({ source: 'summary', fromTurn: s.fromTurn, toTurn: s.toTurn, reason: 'summary', tokens: n }));
  for (const p of picked) explain.push(p.item);
  return {
    type: 'smart',
    messages: picked.map((p) => p.turn),
    summary: chosenSummaries.length > 0 ? chosenSummaries.map((c) => c.text).join('\n') : null,
    tokens: spent,
    explain,
    nextAfter: null,
  };
}

/** The default query of a smart context: the latest user message, or null. */
export function latestUserMessage(turns: readonly Turn[]): string | null {
  for (let i = turns.length - 1; i >= 0; i--) if (turns[i]!.role === 'user') return turns[i]!.content;
  return null;
}
