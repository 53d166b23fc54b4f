import { countMessageTokens, messageFields, type MessageFields } from '../message.js';
import type { ArchiveStore } from '../archive/store.js';
import type { ContextRequest, ContextResult, SearchHit } from '../cache/api.js';
import type { RetrievalPort } from '../cache/retrieval-port.js';
import { latestUserMessage, packContext, type ContextShares } from '../context/packer.js';
import { planMilestones, type Summarizer } from '../context/summarizer.js';
import type { Tokenizer } from '../context/tokenizer.js';
import { StrataError } from '../errors.js';
import { systemClock, type Clock, type SessionRef, type Turn } from '../types.js';
import type { Embedder } from './embedder.js';
import { HybridRetriever, type RetrieverOptions } from './retriever.js';
import { scopeKey, type RetrievalScope, type RetrievalTurn, type TurnSource } from './source.js';

export interface ArchiveRetrievalOptions {
  archive: ArchiveStore;
  embedder: Embedder;
  tokenizer: Tokenizer;
  /** Milestone summaries; none are written without one. */
  summarizer?: Summarizer | null;
  /** Milestone every this many archived turns. Default 50; 0 disables. */
  summaryEveryTurns?: number;
  /** Smart-context budget when the request has none. Default 4000. */
  defaultMaxTokens?: number;
  /** Search hits considered for the relevant share. Default 30. */
  relevantCandidates?: number;
  shares?: Partial<ContextShares>;
  retriever?: RetrieverOptions;
  /** Time source for summary timestamps. Default the system clock. */
  clock?: Clock;
}

/** Archive look-ups in flight at once when versioning a scope. */
const INFO_CONCURRENCY = 32;

function speakerOf(metadata: Turn['metadata']): string | undefined {
  const v = metadata?.name ?? metadata?.speaker;
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * The cache's retrieval port over an `ArchiveStore`: hybrid search, smart context and
 * milestone summaries. Indexes are per scope and keyed by a version made of each session's
 * high-water mark, turn count and embedder id plus a local generation bumped by `invalidate`.
 */
export class ArchiveRetrieval implements RetrievalPort, TurnSource {
  readonly retriever: HybridRetriever;
  private readonly generations = new Map<string, number>();
  private readonly totals = new Map<string, { version: string; tokens: number; tokensById: Map<number, number | undefined> }>();

  constructor(private readonly o: ArchiveRetrievalOptions) {
    this.retriever = new HybridRetriever(this, o.embedder, o.retriever);
  }

  private async sessionsOf(scope: RetrievalScope): Promise<readonly string[]> {
    return 'userId' in scope ? this.o.archive.listUserSessions(scope.tenant, scope.userId) : scope.sessionIds;
  }

  async loadTurns(scope: RetrievalScope): Promise<RetrievalTurn[]> {
    return this.loadSessions(scope.tenant, await this.sessionsOf(scope));
  }

  async sessionVersions(scope: RetrievalScope & { userId: string }): Promise<Map<string, string>> {
    const sessionIds = await this.sessionsOf(scope);
    const out = new Map<string, string>();
    const gen = (sessionId: string) => this.generations.get(`${scope.tenant}\u0000${sessionId}`) ?? 0;
    if (this.o.archive.sessionStamps) {
      for (const [sessionId, stamp] of await this.o.archive.sessionStamps(scope.tenant, sessionIds)) if (stamp !== null) out.set(sessionId, `${stamp}:${gen(sessionId)}`);
      return out;
    }
    for (let i = 0; i < sessionIds.length; i += INFO_CONCURRENCY) {
      const batch = sessionIds.slice(i, i + INFO_CONCURRENCY);
      const infos = await Promise.all(batch.map((sessionId) => this.o.archive.info({ tenant: scope.tenant, sessionId })));
      batch.forEach((sessionId, j) => {
        const info = infos[j];
        // Deleted meanwhile: not in scope any more.
        if (info) out.set(sessionId, `${info.highWater}:${info.turnCount}:${info.embedderId ?? ''}:${info.bytes}:${this.generations.get(`${scope.tenant}\u0000${sessionId}`) ?? 0}`);
      });
    }
    return out;
  }

  async loadSessions(tenant: string, sessionIds: readonly string[]): Promise<RetrievalTurn[]> {
    const out: RetrievalTurn[] = [];
    for (const sessionId of sessionIds) {
      for (const t of await this.o.archive.read({ tenant, sessionId })) {
        const speaker = speakerOf(t.metadata);
        out.push({ sessionId, turnId: t.turnId, ...messageFields(t), createdAt: t.createdAt, ...(speaker ? { speaker } : {}), ...(t.embedding ? { embedding: t.embedding } : {}), ...(t.tokens !== undefined ? { tokens: t.tokens } : {}) });
      }
    }
    return out;
  }

  async version(scope: RetrievalScope): Promise<string> {
    // One look-up for a user's whole history when the archive keeps a per-user stamp.
    if ('userId' in scope && this.o.archive.userStamp) return `user:${await this.o.archive.userStamp(scope.tenant, scope.userId)}`;
    // One archive look-up per session on every search: issued in groups, they overlap their
    // file opens instead of queueing them (about half the time for a 30-session user), while
    // a user with thousands of sessions does not open thousands of files at once.
    const sessionIds = await this.sessionsOf(scope);
    const infos: Array<Awaited<ReturnType<ArchiveStore['info']>>> = [];
    for (let i = 0; i < sessionIds.length; i += INFO_CONCURRENCY) {
      infos.push(...(await Promise.all(sessionIds.slice(i, i + INFO_CONCURRENCY).map((sessionId) => this.o.archive.info({ tenant: scope.tenant, sessionId })))));
    }
    return sessionIds
      .map((sessionId, i) => {
        const info = infos[i];
        const gen = this.generations.get(`${scope.tenant}\u0000${sessionId}`) ?? 0;
        return `${sessionId}:${info?.highWater ?? 0}:${info?.turnCount ?? 0}:${info?.embedderId ?? ''}:${gen}`;
      })
      .join('|');
  }

  invalidate(ref: SessionRef): void {
    const k = `${ref.tenant}\u0000${ref.sessionId}`;
    this.generations.set(k, (this.generations.get(k) ?? 0) + 1);
  }

  async search(query: string, topK: number, scope: RetrievalScope, exclude: ReadonlyMap<string, ReadonlySet<number>>): Promise<SearchHit[]> {
    const excluded: Array<{ sessionId: string; turnId: number }> = [];
    for (const [sessionId, ids] of exclude) for (const turnId of ids) excluded.push({ sessionId, turnId });
    return this.retriever.search(query, topK, scope, { exclude: excluded });
  }

  async smartContext(ref: SessionRef, request: ContextRequest, recent: readonly Turn[]): Promise<ContextResult> {
    const maxTokens = request.maxTokens ?? this.o.defaultMaxTokens ?? 4000;
    if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new StrataError('STRATA_ERR_VALIDATION', `maxTokens: expected a positive integer, got ${JSON.stringify(request.maxTokens)}`);
    const scope = { tenant: ref.tenant, sessionIds: [ref.sessionId] };
    const { version, turns } = await this.retriever.turns(scope);
    const recentIds = new Set(recent.map((t) => t.turnId));
    const count = (t: { tokens?: number } & MessageFields) => t.tokens ?? countMessageTokens(t, (text) => this.o.tokenizer.count(text));

    // The history fits when archived-but-not-recent plus recent turns fit; the total of the
    // archived part and the stored token counts by turn id are computed once per version.
    const sk = scopeKey(scope);
    let total = this.totals.get(sk);
    if (!total || total.version !== version) {
      let tokens = 0;
      for (const t of turns) tokens += count(t);
      total = { version, tokens, tokensById: new Map(turns.map((t) => [t.turnId, t.tokens])) };
      this.totals.set(sk, total);
    }
    let overlap = 0;
    for (const t of turns) if (recentIds.has(t.turnId)) overlap += count(t);
    let recentTokens = 0;
    for (const t of recent) recentTokens += count(t);
    const fits = total.tokens - overlap + recentTokens <= maxTokens;

    const history: Turn[] | null = fits
      ? [...turns.filter((t) => !recentIds.has(t.turnId)).map((t) => ({ turnId: t.turnId, ...messageFields(t), createdAt: t.createdAt, ...(t.tokens !== undefined ? { tokens: t.tokens } : {}) })), ...recent].sort((a, b) => a.turnId - b.turnId)
      : null;
    const query = request.query ?? latestUserMessage(recent);
    const relevant = !fits && query ? await this.search(query, this.o.relevantCandidates ?? 30, scope, new Map([[ref.sessionId, recentIds]])) : [];
    const summaries = fits ? [] : await this.o.archive.loadSummaries(ref);
    const tokensById = total.tokensById;
    return packContext({ recent, relevant, summaries, history, known: fits ? [] : turns, maxTokens, tokenizer: this.o.tokenizer, tokensOf: (h) => tokensById.get(h.turnId), ...(this.o.shares ? { shares: this.o.shares } : {}) });
  }

  async afterCompaction(ref: SessionRef): Promise<void> {
    await this.writeMilestones(ref, false);
  }

  /** Writes the milestones still missing; with `sessionEnded` also the open tail range. Returns how many. */
  async writeMilestones(ref: SessionRef, sessionEnded: boolean): Promise<number> {
    const every = this.o.summaryEveryTurns ?? 50;
    if (!this.o.summarizer || every === 0) return 0;
    const info = await this.o.archive.info(ref);
    if (!info) return 0;
    const plan = planMilestones(info.highWater, await this.o.archive.loadSummaries(ref), every, { sessionEnded });
    let written = 0;
    for (const range of plan) {
      const turns = await this.o.archive.read(ref, range);
      if (turns.length === 0) continue;
      const text = await this.o.summarizer.summarize(turns);
      await this.o.archive.saveSummary(ref, { ...range, text, createdAt: (this.o.clock ?? systemClock).now() });
      written++;
    }
    return written;
  }
}
