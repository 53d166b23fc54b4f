import type { ContextResult, ExplainItem, SearchHit } from '../cache/api.js';
import type { Summary } from '../archive/store.js';
import type { Turn } from '../types.js';
import { StrataError } from '../errors.js';
import type { Tokenizer } from './tokenizer.js';
import { countMessageTokens, isPlainText, messageFields, searchText, toolGroups } from '../message.js';

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
  /**
   * Every other turn of the session the caller knows (e.g. the archived ones), so a tool call
   * and its results can be packed together even when only one of them is recent or relevant.
   */
  known?: readonly Turn[];
}


/**
 * Packs one token budget (pure, linear in the number of candidates apart from the final sort):
 * the full history when it fits; otherwise the newest recent turns (their share), the milestone
 * summaries older than those (their share), the most relevant older turns (the rest), and any
 * budget left goes to further recent turns. Whole turns only; only the newest turn may be cut
 * (with TRUNCATION_MARKER) when it alone exceeds the budget. No turn appears twice; messages
 * come out in chronological order; `explain` has one item per included turn or summary.
 *
 * Tool calls: an assistant turn with tool calls and the tool turns answering them are one unit,
 * packed whole or not at all (a model API refuses a tool result without its call, and a call
 * without its result); their explain items carry `toolGroup`. A unit is never truncated.
 */
export function packContext(input: PackInput): ContextResult {
  const { tokenizer, maxTokens } = input;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new StrataError('STRATA_ERR_VALIDATION', `maxTokens: expected a positive integer, got ${String(maxTokens)}`);
  }
  const shares = { ...DEFAULT_SHARES, ...input.shares };
  const count = (t: Turn) => t.tokens ?? countMessageTokens(t, (text) => tokenizer.count(text));
  const recentIds = new Set(input.recent.map((t) => t.turnId));
  const byId = new Map<number, Turn>();
  // Known turns are copied down to the message fields (the caller's may carry vectors).
  for (const t of input.known ?? []) byId.set(t.turnId, { turnId: t.turnId, ...messageFields(t), createdAt: t.createdAt, ...(t.tokens !== undefined ? { tokens: t.tokens } : {}) });
  for (const t of input.history ?? []) byId.set(t.turnId, t);
  for (const t of input.recent) byId.set(t.turnId, t);
  const groups = toolGroups([...byId.values()]);
  /** The turns packed with `t` (itself included, ascending), or null when one of them is not known. */
  const unitOf = (t: Turn): Turn[] | null => {
    const ids = groups.get(t.turnId);
    if (!ids) return [t];
    const members: Turn[] = [];
    for (const id of ids) {
      const m = id === t.turnId ? t : byId.get(id);
      if (!m) return null;
      members.push(m);
    }
    return members;
  };

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
  /** Adds a unit whole when it fits `budget`; false (nothing added) otherwise. */
  const takeUnit = (unit: Turn[], budget: number, item: (t: Turn, n: number) => ExplainItem): boolean => {
    const fresh = unit.filter((m) => !used.has(m.turnId));
    let n = 0;
    for (const m of fresh) n += count(m);
    if (spent + n > budget) return false;
    spent += n;
    const group = unit.length > 1 ? unit.map((m) => m.turnId) : null;
    for (const m of fresh) {
      used.add(m.turnId);
      const it = item(m, count(m));
      if (group) it.toolGroup = group;
      picked.push({ turn: m, item: it });
    }
    return true;
  };
  const recentItem = (t: Turn, n: number): ExplainItem => ({ source: recentIds.has(t.turnId) ? 'hot' : 'archive', turnId: t.turnId, reason: 'recent', tokens: n });
  const takeRecent = (budget: number) => {
    for (; ri >= 0; ri--) {
      const t = input.recent[ri]!;
      if (used.has(t.turnId)) continue;
      const unit = unitOf(t);
      // A unit with a member nobody can load cannot be packed whole: skipped, the window goes on.
      if (unit === null) continue;
      if (!takeUnit(unit, budget, recentItem)) break;
    }
  };
  const newest = input.recent[ri];
  const newestUnit = newest ? unitOf(newest) : null;
  if (newest && newestUnit && (newestUnit.length > 1 || !isPlainText(newest)) && newestUnit.reduce((n, m) => n + count(m), 0) > maxTokens) {
    // A tool call with its results, or a message with parts, that alone exceeds the budget: it
    // cannot be cut, so it is left out and the window starts before it.
    ri--;
    while (ri >= 0 && newestUnit.some((m) => m.turnId === input.recent[ri]!.turnId)) ri--;
    takeRecent(recentBudget);
  } else if (newest && count(newest) > maxTokens) {
    const markerTokens = tokenizer.count(TRUNCATION_MARKER);
    let keep = maxTokens - markerTokens;
    let content = '';
    let n = 0;
    // Re-encoding a decoded prefix can merge differently; shrink until the count really fits.
    for (; keep > 0; keep -= Math.max(1, Math.ceil((n - maxTokens) / 2))) {
      content = tokenizer.truncate(newest.content as string, keep) + TRUNCATION_MARKER;
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
    takeRecent(Math.max(recentBudget, newestUnit ? newestUnit.reduce((n, m) => n + count(m), 0) : 0));
  }
  let oldestRecent = Infinity;
  for (const p of picked) oldestRecent = Math.min(oldestRecent, p.turn.turnId);

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
    const t: Turn = byId.get(h.turnId) ?? { turnId: h.turnId, ...messageFields(h), createdAt: h.createdAt, ...(stored !== undefined ? { tokens: stored } : {}) };
    const unit = unitOf(t);
    if (unit === null) continue;
    takeUnit(unit, maxTokens, (m, n) =>
      m.turnId === h.turnId
        ? { source: 'archive', turnId: h.turnId, reason: h.neighbour ? 'neighbour' : 'relevant', score: h.score, tokens: n }
        : { source: recentIds.has(m.turnId) ? 'hot' : 'archive', turnId: m.turnId, reason: 'neighbour', tokens: n },
    );
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
  for (let i = turns.length - 1; i >= 0; i--) {
    if (turns[i]!.role !== 'user') continue;
    const text = searchText(turns[i]!);
    if (text.length > 0) return text;
  }
  return null;
}
