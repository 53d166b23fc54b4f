import { countMessageTokens, messageFields, type MessageFields } from '../message.js';
import type { ArchiveStore } from '../archive/store.js';
import type { ContextRequest, ContextResult, SearchHit } from '../cache/api.js';
import type { ArchivedSpan, RetrievalPort } from '../cache/retrieval-port.js';
import { latestUserMessage, packContext, type ContextShares } from '../context/packer.js';
import { planMilestones, type Summarizer } from '../context/summarizer.js';
import type { Tokenizer } from '../context/tokenizer.js';
import { StrataError } from '../errors.js';
import { systemClock, type Clock, type SessionRef, type Turn } from '../types.js';
import type { Preparer } from '../workers/preparer.js';
import type { Embedder } from './embedder.js';
import { encodeSnapshot, SnapshotFiles } from './index-snapshot.js';
import { HybridRetriever, type IndexData, type RetrieverOptions } from './retriever.js';
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
  /**
   * Directory of persisted user indexes (the fs store: `<dataDir>/index`). With it, each user's
   * index is kept current as sessions are archived and written there, so the first user-scope
   * search after a restart loads it instead of reading the whole history. Needs an archive
   * with `userStamp`. Default none (indexes live in memory only).
   */
  indexDir?: string | null;
  /**
   * A changed user index is written once no change came for this long (so a burst of changes is
   * written once, after it), and at the latest `8 ×` this long after the first unwritten change.
   * Default 2000 ms.
   */
  indexWriteDelayMs?: number;
}

type UserScope = { tenant: string; userId: string };

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

  private readonly snapshots: SnapshotFiles | null;
  /** Persisted indexes read but not yet handed to the retriever (shared with `knownUserSessions`). */
  private readonly loaded = new Map<string, Promise<IndexData | null>>();
  /** Per user scope: a write in flight, and whether another one is due after it. */
  private readonly writes = new Map<string, { running: Promise<void> | null; timer: NodeJS.Timeout | null; since: number; again: boolean; scope: UserScope }>();
  /** `tenant\0session` → the session version whose embedder was last checked by a write. */
  private readonly embedderChecked = new Map<string, string>();
  private closed = false;

  constructor(private readonly o: ArchiveRetrievalOptions) {
    this.retriever = new HybridRetriever(this, o.embedder, o.retriever);
    this.snapshots = o.indexDir && o.archive.userStamp ? new SnapshotFiles(o.indexDir) : null;
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

  // ------------------------------------------------------------- persisted user indexes

  private gen(tenant: string, sessionId: string): number {
    return this.generations.get(`${tenant}\u0000${sessionId}`) ?? 0;
  }

  /** The user's persisted index, read once and verified; null when absent, damaged or of another embedder. */
  private readSnapshot(scope: UserScope): Promise<IndexData | null> {
    const sk = scopeKey(scope);
    let p = this.loaded.get(sk);
    if (!p) {
      p = (async () => {
        // Damage the background read of the message fields finds: the file is dropped, and the
        // index rebuilt from the archive and written again.
        const onDamage = () => void this.indexDamaged(scope).then(() => this.scheduleWrite(scope), () => undefined);
        const data = await this.snapshots!.load({ ...scope, embedderId: this.o.embedder.id }, onDamage).catch(() => null);
        if (!data) return null;
        // Session versions are stored without this process's generations (see `writeSnapshot`).
        data.sessionVersions = new Map([...data.sessionVersions].map(([id, v]) => [id, `${v}:${this.gen(scope.tenant, id)}`]));
        return data;
      })();
      this.loaded.set(sk, p);
    }
    return p;
  }

  async loadIndex(scope: RetrievalScope & { userId: string }): Promise<IndexData | null> {
    if (!this.snapshots) return null;
    const data = await this.readSnapshot(scope);
    this.loaded.delete(scopeKey(scope));
    return data;
  }

  /**
   * The user's sessions as of archive stamp `stamp`, when an index of exactly that stamp is at
   * hand (in memory or persisted), else null. Every session in it was checked at write time to
   * hold vectors of this embedder (or none), so the caller needs no per-session look-up.
   */
  async knownUserSessions(tenant: string, userId: string, stamp: string): Promise<string[] | null> {
    const scope = { tenant, userId };
    // Only for a start: an index in memory was not necessarily checked against the embedder.
    if (!this.snapshots || this.retriever.hasIndex(scope)) return null;
    const data = await this.readSnapshot(scope);
    return data && data.version === `user:${stamp}` ? [...data.sessionVersions.keys()] : null;
  }

  async indexDamaged(scope: RetrievalScope & { userId: string }): Promise<void> {
    if (!this.snapshots) return;
    this.loaded.delete(scopeKey(scope));
    this.retriever.invalidate(scope);
    await this.snapshots.remove(scope.tenant, scope.userId);
  }

  indexChanged(scope: RetrievalScope & { userId: string }): void {
    if (this.snapshots) this.scheduleWrite({ tenant: scope.tenant, userId: scope.userId });
  }

  private scheduleWrite(scope: UserScope): void {
    if (this.closed) return;
    const sk = scopeKey(scope);
    let w = this.writes.get(sk);
    if (!w) this.writes.set(sk, (w = { running: null, timer: null, since: 0, again: false, scope }));
    if (w.running) {
      w.again = true;
      return;
    }
    // Writing competes with searches for the CPU and the disk: wait for a quiet moment.
    const delay = this.o.indexWriteDelayMs ?? 2000;
    const now = performance.now();
    if (w.timer) {
      if (now - w.since >= 8 * delay) return;
      clearTimeout(w.timer);
    } else w.since = now;
    w.timer = setTimeout(() => void this.startWrite(sk), Math.min(delay, Math.max(0, w.since + 8 * delay - now)));
    w.timer.unref();
  }

  private startWrite(sk: string): Promise<void> {
    const w = this.writes.get(sk);
    if (!w) return Promise.resolve();
    if (w.timer) clearTimeout(w.timer);
    w.timer = null;
    if (w.running) return w.running;
    w.again = false;
    w.running = this.writeSnapshot(w.scope)
      // A failed write leaves the previous snapshot, which the next start checks and updates.
      .catch(() => undefined)
      .finally(() => {
        w.running = null;
        if (w.again) this.scheduleWrite(w.scope);
        else if (!w.timer) this.writes.delete(sk);
      });
    return w.running;
  }

  /** Brings the user's index up to date, then writes it (live docs only, so deleted turns never reach the file). */
  private async writeSnapshot(scope: UserScope): Promise<void> {
    await this.retriever.turns(scope);
    const data = await this.retriever.exportIndex(scope);
    if (!data) return;
    // Vectors of another embedder must never be searched: the reader relies on this check.
    // Sessions checked at their current version by an earlier write are not looked up again.
    for (const [sessionId, version] of data.sessionVersions) {
      const k = `${scope.tenant}\u0000${sessionId}`;
      if (this.embedderChecked.get(k) === version) continue;
      const stored = (await this.o.archive.info({ tenant: scope.tenant, sessionId }))?.embedderId ?? null;
      if (stored !== null && stored !== this.o.embedder.id) return;
      if (this.embedderChecked.size >= 100_000) this.embedderChecked.delete(this.embedderChecked.keys().next().value!);
      this.embedderChecked.set(k, version);
    }
    // Generations are local to this process: stored without them, added again on reading.
    data.sessionVersions = new Map([...data.sessionVersions].map(([id, v]) => [id, v.slice(0, v.lastIndexOf(':'))]));
    await this.snapshots!.write(scope.tenant, scope.userId, await encodeSnapshot({ ...scope, embedderId: this.o.embedder.id }, data));
  }

  /** Writes every changed user index now and waits for the writes (tests, shutdown). */
  async persistIndexes(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes.keys()].map((sk) => this.startWrite(sk)));
  }

  /**
   * A session was deleted: the persisted index of its user (it holds the session's text) is
   * removed before the call returns, and written again without the session later.
   */
  async forgetSession(ref: SessionRef, userId: string | null): Promise<void> {
    if (!this.snapshots || userId === null) return;
    const scope = { tenant: ref.tenant, userId };
    await this.removeSnapshot(scope);
    this.scheduleWrite(scope);
  }

  /** A user was deleted: its index is dropped from memory and from disk. */
  async forgetUser(tenant: string, userId: string): Promise<void> {
    const scope = { tenant, userId };
    this.retriever.invalidate(scope);
    if (!this.snapshots) return;
    await this.removeSnapshot(scope);
    const w = this.writes.get(scopeKey(scope));
    if (w?.timer) clearTimeout(w.timer);
    if (w && !w.running) this.writes.delete(scopeKey(scope));
  }

  private async removeSnapshot(scope: UserScope): Promise<void> {
    const sk = scopeKey(scope);
    // A write in flight may hold the deleted turns: it finishes first, then the file goes.
    const w = this.writes.get(sk);
    if (w?.running) await w.running;
    this.loaded.delete(sk);
    await this.snapshots!.remove(scope.tenant, scope.userId);
  }

  /** Writes pending index snapshots; later changes are not persisted. */
  async close(): Promise<void> {
    await this.persistIndexes();
    this.closed = true;
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

  async afterCompaction(ref: SessionRef, workers?: Preparer, archived?: ArchivedSpan): Promise<void> {
    await this.writeMilestones(ref, false, workers, archived);
    // The owner's persisted index follows the archive (written after a delay, off this path),
    // so a restart finds it current.
    if (this.snapshots) {
      const userId = (await this.o.archive.info(ref))?.userId ?? null;
      if (userId !== null) this.scheduleWrite({ tenant: ref.tenant, userId });
    }
  }

  /**
   * Writes the milestones still missing; with `sessionEnded` also the open tail range. Returns
   * how many. With `workers`, an extractive summary is computed on their threads. A range inside
   * `archived` (turns compaction just wrote) is summarized from them, not read back and decoded.
   */
  async writeMilestones(ref: SessionRef, sessionEnded: boolean, workers?: Preparer, archived?: ArchivedSpan): Promise<number> {
    const every = this.o.summaryEveryTurns ?? 50;
    if (!this.o.summarizer || every === 0) return 0;
    const info = await this.o.archive.info(ref);
    if (!info) return 0;
    const plan = planMilestones(info.highWater, await this.o.archive.loadSummaries(ref), every, { sessionEnded });
    let written = 0;
    for (const range of plan) {
      const held = archived !== undefined && range.fromTurn >= archived.fromTurn && range.toTurn <= archived.toTurn;
      const turns = held ? archived.turns.filter((t) => t.turnId >= range.fromTurn && t.turnId <= range.toTurn) : await this.o.archive.read(ref, range);
      if (turns.length === 0) continue;
      const text = workers ? await workers.summarize(this.o.summarizer, turns) : await this.o.summarizer.summarize(turns);
      await this.o.archive.saveSummary(ref, { ...range, text, createdAt: (this.o.clock ?? systemClock).now() });
      written++;
    }
    return written;
  }
}
