import { access, constants as fsConstants } from 'node:fs/promises';
import type { ArchiveStore } from '../archive/store.js';
import type { Tokenizer } from '../context/tokenizer.js';
import { StrataError } from '../errors.js';
import type { HotStore, NewHotTurn } from '../hot/store.js';
import { toSessionRef, validateId } from '../ids.js';
import type { DeleteRecord, TurnRecord } from '../journal/types.js';
import type { StrataMetrics } from '../metrics.js';
import { noMetrics } from '../metrics.js';
import type { Embedder } from '../retrieval/embedder.js';
import type { ArchivedTurn, Clock, Role, SessionLock, SessionRef, Turn } from '../types.js';
import { systemClock } from '../types.js';
import type {
  AddMessageOptions,
  ContextRequest,
  ContextResult,
  ConversationMemory,
  DeletionReceipt,
  HealthReport,
  NewMessage,
  SearchHit,
  SearchScopeInput,
  SessionInfo,
  TenantOption,
} from './api.js';
import type { CacheTuning } from './options.js';
import { resolveTuning } from './options.js';
import { PendingIndex, sessionKey } from './pending.js';
import type { JournalPort } from './ports.js';
import type { RetrievalPort } from './retrieval-port.js';
import { validateMessage } from './validate.js';

export interface HybridCacheOptions extends Partial<CacheTuning> {
  hot: HotStore;
  archive: ArchiveStore;
  journal: JournalPort;
  /** Serialises writers of one session's archive file (a Redis lease when instances share a Redis). */
  lock: SessionLock;
  /** Records replayed from the journal at start that are not archived yet. */
  replayed?: Iterable<TurnRecord | DeleteRecord>;
  clock?: Clock;
  /** Computes embeddings at compaction; none means turns are archived without vectors. */
  embedder?: Embedder | null;
  /** Counts tokens per turn on add; none stores no counts. */
  tokenizer?: Tokenizer | null;
  retrieval?: RetrievalPort | null;
  metrics?: StrataMetrics;
  /**
   * Lease owner name of this instance (the journal's instance id). At start, leases this owner
   * left behind when it was killed are released. Default none.
   */
  leaseOwner?: string;
  /** For health reports. */
  hotDriver?: 'redis' | 'memory';
  dataDir?: string;
}

/**
 * Turns per archive segment written by one compaction step. Compaction work (token counts,
 * embeddings, brotli) is synchronous CPU: steps of this size, with a yield between embedding
 * batches, keep the event loop responsive for requests while a large backlog is archived.
 */
const UNARCHIVED_BATCH = 256;
const MAX_PAGE = 1000;
const ARCHIVE_STATS_PERIOD_MS = 5 * 60 * 1000;

/**
 * The application's entry point to memory: composes the journal (durability), a hot store
 * (recent turns, shared by instances) and the archive (full history).
 *
 * Write path: validate → assign the turn id in the hot store (atomic, shared) → journal append
 * (durable before the promise resolves) → ack. Compaction moves unarchived turns from the hot
 * tier to the archive under the session's lock, then trims the hot tier. A lost hot tier is
 * re-seeded from the archive and this instance's unarchived journal records (`PendingIndex`).
 */
export class HybridConversationCache implements ConversationMemory {
  readonly tuning: Readonly<CacheTuning>;
  private readonly hot: HotStore;
  private readonly archive: ArchiveStore;
  private readonly journal: JournalPort;
  private readonly lock: SessionLock;
  private readonly clock: Clock;
  private readonly embedder: Embedder | null;
  private readonly tokenizer: Tokenizer | null;
  private readonly retrieval: RetrievalPort | null;
  private readonly metrics: StrataMetrics;
  private readonly pending = new PendingIndex();
  private readonly hotDriver: 'redis' | 'memory';
  private readonly dataDir: string | undefined;
  private readonly leaseOwner: string | null;
  /** Sessions with an add since their last compaction check, by key → count of adds. */
  private readonly addsSinceCheck = new Map<string, { ref: SessionRef; adds: number }>();
  private timer: NodeJS.Timeout | null = null;
  private maintenanceRunning: Promise<void> | null = null;
  private lastEpoch: string | null = null;
  private lastRetentionRun = 0;
  private lastArchiveStats = 0;
  private closed = false;
  private readonly inflightCompactions = new Map<string, Promise<number>>();

  constructor(options: HybridCacheOptions) {
    const { hot, archive, journal, lock, replayed, clock, embedder, tokenizer, retrieval, metrics, hotDriver, dataDir, leaseOwner, ...tuning } = options;
    this.tuning = resolveTuning(tuning);
    this.hot = hot;
    this.archive = archive;
    this.journal = journal;
    this.lock = lock;
    this.clock = clock ?? systemClock;
    this.embedder = embedder ?? null;
    this.tokenizer = tokenizer ?? null;
    this.retrieval = retrieval ?? null;
    this.metrics = metrics ?? noMetrics;
    this.hotDriver = hotDriver ?? 'memory';
    this.dataDir = dataDir;
    this.leaseOwner = leaseOwner ?? null;
    for (const record of replayed ?? []) {
      const ref = { tenant: record.tenant, sessionId: record.sessionId };
      if (record.type === 'turn') this.pending.add(ref, record);
      else if (record.turnIds) this.pending.dropTurns(ref, record.turnIds);
      else this.pending.dropSession(ref);
    }
  }

  /**
   * Archives what the journal replay left pending, then starts the maintenance timer. Sessions
   * the hot tier still knows are compacted through it (it may hold other instances' turns);
   * sessions it lost are archived straight from the journal records.
   */
  async start(): Promise<void> {
    this.lastEpoch = await this.hot.epoch();
    for (const ref of this.pending.refs()) {
      if (this.leaseOwner) await this.hot.releaseOwnerLease(ref, this.leaseOwner);
      if (await this.hot.meta(ref)) await this.compactSession(ref);
      else await this.archiveFromPending(ref);
    }
    // Everything replayed is archived now; the journal may checkpoint past previous runs.
    this.journal.markReplayed();
    await this.checkpoint();
    if (this.tuning.maintenanceIntervalMs > 0) {
      this.timer = setInterval(() => void this.runMaintenance().catch(() => undefined), this.tuning.maintenanceIntervalMs);
      this.timer.unref();
    }
  }

  // ---------------------------------------------------------------- writes

  async addMessage(sessionId: string, role: Role, content: string, options: AddMessageOptions = {}): Promise<{ turnId: number }> {
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const message = validateMessage(role, content, options.metadata, this.tuning);
    const [turnId] = await this.appendValidated(ref, [message], userId);
    return { turnId: turnId! };
  }

  async addMessages(sessionId: string, messages: readonly NewMessage[], options: Omit<AddMessageOptions, 'metadata'> = {}): Promise<{ turnIds: number[] }> {
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    if (!Array.isArray(messages) || messages.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'messages must be a non-empty array');
    if (messages.length > MAX_PAGE) throw new StrataError('STRATA_ERR_VALIDATION', `at most ${MAX_PAGE} messages per call; received ${messages.length}`);
    // Validate every message before writing any, so a bad one changes nothing.
    const validated = messages.map((m, i) => {
      try {
        return validateMessage(m?.role, m?.content, m?.metadata, this.tuning);
      } catch (err) {
        if (err instanceof StrataError) throw new StrataError(err.code, `messages[${i}]: ${err.message.replace(/^STRATA_ERR_\w+: /, '')}`, { details: { index: i } });
        throw err;
      }
    });
    return { turnIds: await this.appendValidated(ref, validated, userId) };
  }

  private async appendValidated(ref: SessionRef, messages: ReturnType<typeof validateMessage>[], userId: string | undefined): Promise<number[]> {
    this.assertOpen();
    if (this.pending.size + messages.length > this.tuning.maxPendingTurns) {
      throw new StrataError('STRATA_ERR_BACKPRESSURE', `${this.pending.size} turns are waiting for compaction (limit ${this.tuning.maxPendingTurns}); retry later`);
    }
    const now = this.clock.now();
    const records: TurnRecord[] = [];
    for (const m of messages) {
      const turn: NewHotTurn = { role: m.role, content: m.content, createdAt: now };
      if (m.metadata !== undefined) turn.metadata = m.metadata;
      if (userId !== undefined) turn.userId = userId;
      if (this.tokenizer) turn.tokens = this.tokenizer.count(m.content);
      const turnId = await this.hotAppend(ref, turn, now);
      const record: TurnRecord = { type: 'turn', tenant: ref.tenant, sessionId: ref.sessionId, turnId, role: m.role, content: m.content, createdAt: now };
      if (m.metadata !== undefined) record.metadata = m.metadata;
      if (userId !== undefined) record.userId = userId;
      records.push(record);
    }
    const started = performance.now();
    await this.journal.appendMany(records);
    this.metrics.journalFsync?.((performance.now() - started) / 1000, records.length);
    for (const record of records) this.pending.add(ref, record);
    this.retrieval?.invalidate(ref);
    this.noteAdds(ref, records.length);
    return records.map((r) => r.turnId);
  }

  /** Appends to the hot store, seeding the session first when the store does not know it. */
  private async hotAppend(ref: SessionRef, turn: NewHotTurn, now: number): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const result = await this.hot.append(ref, turn, now);
      if ('turnId' in result) return result.turnId;
      await this.seedHot(ref, turn.userId, true);
    }
    throw new StrataError('STRATA_ERR_HOT_UNAVAILABLE', `the hot store keeps losing session ${ref.sessionId} while seeding it`);
  }

  /**
   * Creates the hot state of a session from the archive and this instance's pending journal
   * records. Returns false when the session exists nowhere and `create` is false.
   */
  private async seedHot(ref: SessionRef, userId: string | undefined, create: boolean): Promise<boolean> {
    const info = await this.archive.info(ref);
    const pendingTurns = this.pending.turns(ref);
    if (!info && pendingTurns.length === 0 && !create) return false;
    const highWater = info?.highWater ?? 0;
    const unarchived = pendingTurns.filter((t) => t.turnId > highWater);
    const nextTurnId = Math.max(highWater, unarchived.at(-1)?.turnId ?? 0) + 1;
    const recentArchived = highWater > 0 ? await this.archive.read(ref, { fromTurn: Math.max(1, highWater - this.tuning.recentTurns + 1), toTurn: highWater }) : [];
    const owner = userId ?? info?.userId ?? this.pending.userId(ref);
    const seed = { nextTurnId, archivedUpTo: highWater, turns: [...recentArchived.map(stripEmbedding), ...unarchived], ...(owner ? { userId: owner } : {}) };
    await this.hot.seed(ref, seed, this.clock.now());
    if (!info) {
      // Registers the session (and its owner) in the archive right away, so listing and user
      // deletion see sessions that have not been compacted yet.
      await this.lock.withLock(ref, () => this.archive.append(ref, [], owner ? { userId: owner } : {}));
    }
    this.metrics.rehydration?.();
    return true;
  }

  private noteAdds(ref: SessionRef, adds: number): void {
    const key = sessionKey(ref);
    const entry = this.addsSinceCheck.get(key) ?? { ref, adds: 0 };
    entry.adds += adds;
    this.addsSinceCheck.set(key, entry);
    if (entry.adds >= this.tuning.maxUnarchivedTurns) {
      this.addsSinceCheck.delete(key);
      // Off the request path: the ack does not wait for compaction.
      void this.hot.meta(ref).then((meta) => {
        if (meta && meta.unarchivedCount >= this.tuning.maxUnarchivedTurns) return this.compactSession(ref);
        return 0;
      }).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- reads

  async getContext(sessionId: string, request: ContextRequest): Promise<ContextResult> {
    const ref = toSessionRef(sessionId, request?.tenant);
    switch (request?.type) {
      case 'recent': {
        const limit = pageLimit(request.limit, this.tuning.recentTurns);
        const messages = await this.recent(ref, limit);
        return { type: 'recent', messages, summary: null, tokens: sumTokens(messages), explain: [], nextAfter: null };
      }
      case 'full': {
        const page = await this.getMessages(sessionId, { tenant: ref.tenant, after: request.after, limit: pageLimit(request.limit, MAX_PAGE) });
        return { type: 'full', messages: page.messages, summary: null, tokens: sumTokens(page.messages), explain: [], nextAfter: page.nextAfter };
      }
      case 'smart': {
        if (!this.retrieval) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'smart context needs a retrieval configuration (embedder and tokenizer)');
        await this.flushIfUnarchived(ref, true);
        await this.assertEmbedder(ref.tenant, [ref.sessionId]);
        const recentWindow = await this.recent(ref, this.tuning.recentTurns);
        return this.retrieval.smartContext(ref, request, recentWindow);
      }
      default:
        throw new StrataError('STRATA_ERR_VALIDATION', `context type must be recent, full or smart; received ${JSON.stringify(request?.type)}`);
    }
  }

  /** The last `limit` turns, from the hot tier, rehydrating from the archive on a miss. */
  private async recent(ref: SessionRef, limit: number): Promise<Turn[]> {
    const now = this.clock.now();
    let turns = await this.hot.recent(ref, limit, now);
    if (turns.length === 0) {
      this.metrics.hotAccess?.(false);
      if (!(await this.hot.meta(ref))) {
        if (!(await this.seedHot(ref, undefined, false))) throw notFound(ref);
        turns = await this.hot.recent(ref, limit, now);
      }
    } else {
      this.metrics.hotAccess?.(true);
    }
    const first = turns[0]?.turnId;
    if (first !== undefined && turns.length < limit && first > 1) {
      // The hot tier holds fewer turns than asked for: the rest comes from the archive.
      const older = await this.archive.read(ref, { fromTurn: Math.max(1, first - (limit - turns.length)), toTurn: first - 1 });
      turns = [...older.map(stripEmbedding), ...turns];
    }
    return turns.slice(-limit);
  }

  async getMessages(sessionId: string, options: TenantOption & { after?: number; limit?: number } = {}): Promise<{ messages: Turn[]; nextAfter: number | null }> {
    const ref = toSessionRef(sessionId, options.tenant);
    const after = options.after ?? 0;
    if (!Number.isInteger(after) || after < 0) throw new StrataError('STRATA_ERR_VALIDATION', `after must be a non-negative integer; received ${JSON.stringify(options.after)}`);
    const limit = pageLimit(options.limit, MAX_PAGE);
    const lastTurnId = await this.ensureHot(ref);
    const from = after + 1;
    const to = after + limit;
    const [archived, hot] = await Promise.all([this.archive.read(ref, { fromTurn: from, toTurn: to }), this.hot.range(ref, from, to)]);
    const byId = new Map<number, Turn>();
    for (const t of archived) byId.set(t.turnId, stripEmbedding(t));
    for (const t of hot) byId.set(t.turnId, t);
    const messages = [...byId.values()].sort((a, b) => a.turnId - b.turnId);
    return { messages, nextAfter: to < lastTurnId ? to : null };
  }

  /** Makes sure the hot tier knows the session; returns its last turn id. Throws NOT_FOUND for unknown sessions. */
  private async ensureHot(ref: SessionRef): Promise<number> {
    let meta = await this.hot.meta(ref);
    if (!meta) {
      if (!(await this.seedHot(ref, undefined, false))) throw notFound(ref);
      meta = await this.hot.meta(ref);
      if (!meta) throw new StrataError('STRATA_ERR_HOT_UNAVAILABLE', `session ${ref.sessionId} vanished from the hot store while it was being seeded`);
    }
    return meta.nextTurnId - 1;
  }

  async searchDiskHistory(query: string, topK: number, scope: SearchScopeInput): Promise<SearchHit[]> {
    if (!this.retrieval) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'search needs a retrieval configuration (embedder and tokenizer)');
    if (typeof query !== 'string' || query.trim().length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'query must be a non-empty string');
    if (!Number.isInteger(topK) || topK < 1 || topK > 100) throw new StrataError('STRATA_ERR_VALIDATION', `topK must be an integer from 1 to 100; received ${JSON.stringify(topK)}`);
    const tenant = validateId('tenant', scope.tenant ?? 'default');
    if ('sessionId' in scope && scope.sessionId !== undefined) {
      const ref = toSessionRef(scope.sessionId, tenant);
      // Turns still in the recent window are what the application already has.
      const meta = await this.hot.meta(ref);
      if (!meta && !(await this.archive.info(ref)) && !this.pending.has(ref)) throw notFound(ref);
      await this.flushIfUnarchived(ref, true);
      await this.assertEmbedder(tenant, [ref.sessionId]);
      const exclude = new Set((await this.hot.recent(ref, this.tuning.recentTurns, this.clock.now())).map((t) => t.turnId));
      return this.retrieval.search(query, topK, { tenant, sessionIds: [ref.sessionId] }, new Map([[ref.sessionId, exclude]]));
    }
    const userId = validateId('user', (scope as { userId: string }).userId);
    const sessionIds = await this.archive.listUserSessions(tenant, userId);
    for (const sessionId of sessionIds) await this.flushIfUnarchived({ tenant, sessionId });
    await this.assertEmbedder(tenant, sessionIds);
    return this.retrieval.search(query, topK, { tenant, sessionIds }, new Map());
  }

  /**
   * Search reads the archive only, so unarchived turns it must see are archived first: those
   * outside the recent window (`keepRecentWindow`; the window is excluded from search and
   * packed from the hot tier anyway), or all of them.
   */
  private async flushIfUnarchived(ref: SessionRef, keepRecentWindow = false): Promise<void> {
    const meta = await this.hot.meta(ref);
    const allowed = keepRecentWindow ? this.tuning.recentTurns : 0;
    if ((meta && meta.unarchivedCount > allowed) || (!meta && this.pending.has(ref))) await this.compactSession(ref);
  }

  /** Vectors of another model are not comparable with this embedder's: refuse rather than mix spaces. */
  private async assertEmbedder(tenant: string, sessionIds: readonly string[]): Promise<void> {
    if (!this.embedder) return;
    for (const sessionId of sessionIds) {
      const stored = (await this.archive.info({ tenant, sessionId }))?.embedderId ?? null;
      if (stored !== null && stored !== this.embedder.id) {
        throw new StrataError('STRATA_ERR_EMBEDDER_MISMATCH', `session ${sessionId} was embedded with ${stored}, the configured embedder is ${this.embedder.id}; run \`strata reindex\``, { details: { sessionId, stored, configured: this.embedder.id } });
      }
    }
  }

  /**
   * Re-embeds every archived turn of a tenant that the configured embedder did not embed (after
   * a model change). Sessions are archived first, so unarchived turns get vectors too.
   */
  async reindex(options: TenantOption & { onProgress?: (done: number, total: number) => void } = {}): Promise<{ sessions: number; turns: number }> {
    this.assertOpen();
    const embedder = this.embedder;
    if (!embedder) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'reindex needs an embedder');
    const tenant = validateId('tenant', options.tenant ?? 'default');
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await this.archive.listSessions(tenant, { cursor, limit: 1000 });
      ids.push(...page.sessions.map((x) => x.sessionId));
      cursor = page.nextCursor;
    } while (cursor);
    let sessions = 0;
    let turns = 0;
    const batch = this.tuning.embedBatchSize;
    for (const [i, sessionId] of ids.entries()) {
      const ref = { tenant, sessionId };
      await this.compactSession(ref);
      const result = await this.lock.withLock(ref, () =>
        this.archive.reembed(ref, embedder.id, async (texts) => {
          const out: Float32Array[] = [];
          for (let j = 0; j < texts.length; j += batch) out.push(...(await embedder.embed(texts.slice(j, j + batch))));
          return out;
        }),
      );
      if (result.turns > 0) {
        sessions++;
        turns += result.turns;
        this.retrieval?.invalidate(ref);
      }
      options.onProgress?.(i + 1, ids.length);
    }
    return { sessions, turns };
  }

  async getSession(sessionId: string, options: TenantOption = {}): Promise<SessionInfo> {
    const ref = toSessionRef(sessionId, options.tenant);
    const [meta, info] = await Promise.all([this.hot.meta(ref), this.archive.info(ref)]);
    const pendingMax = this.pending.maxTurnId(ref);
    if (!meta && !info && pendingMax === 0) throw notFound(ref);
    const lastTurnId = Math.max((meta?.nextTurnId ?? 1) - 1, info?.highWater ?? 0, pendingMax);
    const archivedTurns = info?.turnCount ?? 0;
    const unarchivedTurns = meta ? meta.unarchivedCount : this.pending.turns(ref).filter((t) => t.turnId > (info?.highWater ?? 0)).length;
    return {
      tenant: ref.tenant,
      sessionId: ref.sessionId,
      userId: meta?.userId ?? info?.userId ?? this.pending.userId(ref) ?? null,
      turns: archivedTurns + unarchivedTurns,
      lastTurnId,
      hotTurns: meta?.turnCount ?? 0,
      unarchivedTurns,
      archivedTurns,
      bytes: { hot: meta?.bytes ?? 0, archive: info?.bytes ?? 0 },
      createdAt: minDefined(meta?.createdAt, info?.firstTurnAt),
      lastActivityAt: maxDefined(meta?.lastAccess, info?.lastTurnAt),
    };
  }

  async listSessions(options: TenantOption & { cursor?: string | null; limit?: number; userId?: string } = {}): Promise<{ sessions: SessionInfo[]; nextCursor: string | null }> {
    const tenant = validateId('tenant', options.tenant ?? 'default');
    if (options.userId !== undefined) {
      const userId = validateId('user', options.userId);
      const ids = (await this.archive.listUserSessions(tenant, userId)).sort();
      const start = options.cursor ? ids.findIndex((id) => id > options.cursor!) : 0;
      const limit = pageLimit(options.limit, 100);
      const page = start < 0 ? [] : ids.slice(start, start + limit);
      const sessions = await Promise.all(page.map((id) => this.getSession(id, { tenant })));
      return { sessions, nextCursor: start >= 0 && start + limit < ids.length ? (page.at(-1) ?? null) : null };
    }
    const listed = await this.archive.listSessions(tenant, { cursor: options.cursor ?? null, limit: pageLimit(options.limit, 100) });
    const sessions = await Promise.all(listed.sessions.map((s) => this.getSession(s.sessionId, { tenant })));
    return { sessions, nextCursor: listed.nextCursor };
  }

  // ---------------------------------------------------------------- compaction

  async flush(sessionId?: string, options: TenantOption = {}): Promise<{ sessions: number; turns: number }> {
    if (sessionId !== undefined) {
      const ref = toSessionRef(sessionId, options.tenant);
      const turns = await this.compactSession(ref);
      await this.checkpoint();
      return { sessions: 1, turns };
    }
    let sessions = 0;
    let turns = 0;
    const seen = new Set<string>();
    const candidates = [...this.pending.refs(), ...(await this.hot.sessionsToCompact(1, Number.MAX_SAFE_INTEGER, 10_000))];
    for (const ref of candidates) {
      const key = sessionKey(ref);
      if (seen.has(key)) continue;
      seen.add(key);
      const n = await this.compactSession(ref);
      sessions += n > 0 ? 1 : 0;
      turns += n;
    }
    await this.checkpoint();
    return { sessions, turns };
  }

  /** Compacts one session; concurrent calls for the same session share one run. */
  compactSession(ref: SessionRef): Promise<number> {
    const key = sessionKey(ref);
    const running = this.inflightCompactions.get(key);
    if (running) return running.then(() => this.compactSessionNow(ref));
    const run = this.compactSessionNow(ref).finally(() => this.inflightCompactions.delete(key));
    this.inflightCompactions.set(key, run);
    return run;
  }

  private async compactSessionNow(ref: SessionRef): Promise<number> {
    if (!(await this.hot.meta(ref))) {
      // The hot tier lost the session (flush, restart): archive from the journal records.
      return this.archiveFromPending(ref);
    }
    return this.lock.withLock(ref, async () => {
      let total = 0;
      const started = performance.now();
      let raw = 0;
      let bytesBefore: number | null = null;
      const meta = await this.hot.meta(ref);
      const appendOptions = { ...(meta?.userId ? { userId: meta.userId } : {}), ...(this.embedder ? { embedderId: this.embedder.id } : {}) };
      while (true) {
        const turns = await this.hot.unarchived(ref, UNARCHIVED_BATCH);
        if (turns.length === 0) break;
        if (bytesBefore === null) {
          bytesBefore = (await this.archive.info(ref))?.bytes ?? 0;
          if (meta?.oldestUnarchivedAt != null) this.metrics.compactionLag?.(Math.max(0, this.clock.now() - meta.oldestUnarchivedAt) / 1000);
        }
        const prepared = await this.prepareForArchive(turns);
        const result = await this.archive.append(ref, prepared, appendOptions);
        const upTo = turns.at(-1)!.turnId;
        await this.hot.markArchived(ref, Math.max(upTo, 0), this.tuning.recentTurns);
        this.markArchived(ref, Math.max(upTo, result.highWater));
        total += turns.length;
        for (const t of turns) raw += Buffer.byteLength(t.content);
        if (turns.length < UNARCHIVED_BATCH) break;
      }
      if (total === 0) {
        // Nothing in the hot tier, but this instance may still hold records that were archived
        // by someone else (or before a crash): forget those at or below the high-water mark.
        const info = await this.archive.info(ref);
        if (info) this.markArchived(ref, info.highWater);
      }
      if (total > 0) {
        const bytesAfter = (await this.archive.info(ref))?.bytes ?? 0;
        this.metrics.compaction?.((performance.now() - started) / 1000, total, Math.max(0, bytesAfter - (bytesBefore ?? 0)), raw);
        this.retrieval?.invalidate(ref);
        await this.retrieval?.afterCompaction?.(ref);
      }
      return total;
    });
  }

  /** Archives this instance's pending journal records of a session the hot tier does not know. */
  private async archiveFromPending(ref: SessionRef): Promise<number> {
    return this.lock.withLock(ref, async () => {
      const turns = this.pending.turns(ref);
      if (turns.length === 0) return 0;
      const prepared = await this.prepareForArchive(turns);
      const userId = this.pending.userId(ref);
      const result = await this.archive.append(ref, prepared, { ...(userId ? { userId } : {}), ...(this.embedder ? { embedderId: this.embedder.id } : {}) });
      this.markArchived(ref, Math.max(result.highWater, turns.at(-1)!.turnId));
      this.retrieval?.invalidate(ref);
      return result.appended;
    });
  }

  /** Token counts and embeddings, computed in batches off the request path. */
  private async prepareForArchive(turns: readonly Turn[]): Promise<ArchivedTurn[]> {
    const out: ArchivedTurn[] = turns.map((t) => ({ ...t, ...(t.tokens === undefined && this.tokenizer ? { tokens: this.tokenizer.count(t.content) } : {}) }));
    if (!this.embedder) return out;
    for (let i = 0; i < out.length; i += this.tuning.embedBatchSize) {
      const batch = out.slice(i, i + this.tuning.embedBatchSize);
      const started = performance.now();
      const vectors = await this.embedder.embed(batch.map((t) => t.content));
      this.metrics.embedBatch?.((performance.now() - started) / 1000, batch.length);
      batch.forEach((t, j) => (t.embedding = vectors[j]));
      await yieldToEventLoop();
    }
    return out;
  }

  async evictToDiskLru(sessionId?: string, options: TenantOption = {}): Promise<{ evicted: number }> {
    if (sessionId !== undefined) {
      const ref = toSessionRef(sessionId, options.tenant);
      if (!(await this.hot.meta(ref))) return { evicted: 0 };
      const dropped = await this.evict(ref, 'explicit');
      return { evicted: dropped ? 1 : 0 };
    }
    let evicted = 0;
    while ((await this.hot.totalBytes()) > this.tuning.hotBudgetBytes) {
      const lru = await this.hot.lruSessions(16);
      if (lru.length === 0) break;
      let progress = false;
      for (const { ref } of lru) {
        if (await this.evict(ref, 'lru')) {
          evicted++;
          progress = true;
        }
        if ((await this.hot.totalBytes()) <= this.tuning.hotBudgetBytes) break;
      }
      if (!progress) break;
    }
    return { evicted };
  }

  /** Compacts then drops the session from the hot tier; never drops unarchived turns. */
  private async evict(ref: SessionRef, reason: 'lru' | 'idle' | 'explicit'): Promise<boolean> {
    await this.compactSession(ref);
    const dropped = await this.hot.dropIfArchived(ref);
    if (dropped) this.metrics.eviction?.(reason);
    return dropped;
  }

  /**
   * One pass of background work: detect a lost hot tier, compact sessions over their count or
   * age threshold, evict idle sessions and enforce the byte budget, checkpoint the journal.
   */
  runMaintenance(): Promise<void> {
    if (this.maintenanceRunning) return this.maintenanceRunning;
    this.maintenanceRunning = this.maintain().finally(() => (this.maintenanceRunning = null));
    return this.maintenanceRunning;
  }

  private async maintain(): Promise<void> {
    if (this.closed) return;
    const now = this.clock.now();
    const epoch = await this.hot.epoch();
    if (this.lastEpoch !== null && epoch !== this.lastEpoch) {
      // The hot tier lost its state: archive everything this instance still holds.
      for (const ref of this.pending.refs()) await this.archiveFromPending(ref);
    }
    this.lastEpoch = epoch;
    for (const ref of await this.hot.sessionsToCompact(this.tuning.maxUnarchivedTurns, now - this.tuning.maxUnarchivedAgeMs, 1000)) await this.compactSession(ref);
    for (const ref of await this.hot.idleSessions(now - this.tuning.sessionIdleTtlMs, 1000)) await this.evict(ref, 'idle');
    await this.evictToDiskLru();
    await this.checkpoint();
    if (this.tuning.retentionDays !== null && now - this.lastRetentionRun > 24 * 3600 * 1000) {
      this.lastRetentionRun = now;
      await this.cleanupExpiredSessions(this.tuning.retentionDays);
    }
    this.metrics.tierBytes?.('hot', await this.hot.totalBytes());
    if (this.metrics.tierBytes && now - this.lastArchiveStats > ARCHIVE_STATS_PERIOD_MS) {
      // Archive totals walk every file: refreshed rarely.
      this.lastArchiveStats = now;
      this.metrics.tierBytes('archive', (await this.archive.stats()).bytes);
    }
  }

  private markArchived(ref: SessionRef, upTo: number): void {
    this.pending.markArchived(ref, upTo);
    this.journal.markArchived(ref.tenant, ref.sessionId, upTo);
  }

  private async checkpoint(): Promise<void> {
    await this.journal.checkpoint(this.journal.safeCheckpoint());
  }

  // ---------------------------------------------------------------- deletion and lifecycle

  async deleteSession(sessionId: string, options: TenantOption = {}): Promise<DeletionReceipt> {
    const ref = toSessionRef(sessionId, options.tenant);
    const [meta, info] = await Promise.all([this.hot.meta(ref), this.archive.info(ref)]);
    if (!meta && !info && !this.pending.has(ref)) throw notFound(ref);
    return this.lock.withLock(ref, async () => {
      // The tombstone is durable first, so a crash in the middle never resurrects the session on replay.
      await this.journal.appendMany([{ type: 'delete', tenant: ref.tenant, sessionId: ref.sessionId, at: this.clock.now() }]);
      this.pending.dropSession(ref);
      const hotTurns = await this.hot.deleteSession(ref);
      const archived = await this.archive.deleteSession(ref);
      this.journal.markDeleteApplied(ref.tenant, ref.sessionId);
      this.retrieval?.invalidate(ref);
      return { tenant: ref.tenant, sessionIds: [ref.sessionId], hotTurns, journalTombstones: 1, ...archived };
    });
  }

  async deleteUser(userId: string, options: TenantOption = {}): Promise<DeletionReceipt> {
    const tenant = validateId('tenant', options.tenant ?? 'default');
    validateId('user', userId);
    const ids = new Set([...(await this.archive.listUserSessions(tenant, userId)), ...this.pending.refsOfUser(tenant, userId).map((r) => r.sessionId)]);
    if (ids.size === 0) throw new StrataError('STRATA_ERR_NOT_FOUND', `user ${userId} has no sessions`);
    const receipt: DeletionReceipt = { tenant, sessionIds: [], hotTurns: 0, journalTombstones: 0, sessions: 0, turns: 0, bytes: 0, vectors: 0, summaries: 0 };
    for (const sessionId of [...ids].sort()) {
      const r = await this.deleteSession(sessionId, { tenant }).catch((err: unknown) => {
        if (err instanceof StrataError && err.code === 'STRATA_ERR_NOT_FOUND') return null;
        throw err;
      });
      if (!r) continue;
      receipt.sessionIds.push(sessionId);
      receipt.hotTurns += r.hotTurns;
      receipt.journalTombstones += r.journalTombstones;
      receipt.sessions += r.sessions;
      receipt.turns += r.turns;
      receipt.bytes += r.bytes;
      receipt.vectors += r.vectors;
      receipt.summaries += r.summaries;
    }
    const rest = await this.archive.deleteUser(tenant, userId);
    receipt.sessions += rest.sessions;
    receipt.turns += rest.turns;
    receipt.bytes += rest.bytes;
    return receipt;
  }

  async exportSession(sessionId: string, options: TenantOption = {}): Promise<Uint8Array> {
    const ref = toSessionRef(sessionId, options.tenant);
    await this.getSession(ref.sessionId, { tenant: ref.tenant });
    await this.compactSession(ref);
    return this.archive.exportSession(ref);
  }

  async importSession(sessionId: string, file: Uint8Array, options: TenantOption & { userId?: string } = {}): Promise<SessionInfo> {
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    if ((await this.hot.meta(ref)) || this.pending.has(ref)) throw new StrataError('STRATA_ERR_CONFLICT', `session ${ref.sessionId} already exists`);
    await this.lock.withLock(ref, () => this.archive.importSession(ref, file, userId ? { userId } : {}));
    this.retrieval?.invalidate(ref);
    return this.getSession(ref.sessionId, { tenant: ref.tenant });
  }

  async cleanupExpiredSessions(maxAgeDays: number): Promise<number> {
    if (typeof maxAgeDays !== 'number' || !(maxAgeDays > 0)) throw new StrataError('STRATA_ERR_VALIDATION', `maxAgeDays must be a positive number; received ${JSON.stringify(maxAgeDays)}`);
    return this.archive.cleanupExpiredSessions(maxAgeDays);
  }

  async health(): Promise<HealthReport> {
    const hot = await this.hot.ping().then(
      () => ({ ok: true, driver: this.hotDriver }),
      (err: unknown) => ({ ok: false, driver: this.hotDriver, error: (err as Error).message }),
    );
    const path = this.dataDir ?? '';
    const dataDir = this.dataDir
      ? await access(this.dataDir, fsConstants.W_OK).then(
          () => ({ ok: true, path }),
          (err: unknown) => ({ ok: false, path, error: (err as Error).message }),
        )
      : { ok: true, path };
    return { ok: hot.ok && dataDir.ok && !this.closed, hot, dataDir };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.maintenanceRunning;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      await this.journal.close();
      await this.hot.close();
      await this.archive.close();
    }
  }

  /** Unarchived turns this instance holds in its journal (for metrics and tests). */
  get pendingTurns(): number {
    return this.pending.size;
  }

  private assertOpen(): void {
    if (this.closed) throw new StrataError('STRATA_ERR_CLOSED', 'this Strata instance is closed');
  }
}

/** Lets pending I/O callbacks (requests) run between slices of CPU-bound work. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function stripEmbedding(turn: ArchivedTurn): Turn {
  const { embedding: _embedding, ...rest } = turn;
  return rest;
}

function sumTokens(turns: readonly Turn[]): number {
  let n = 0;
  for (const t of turns) n += t.tokens ?? 0;
  return n;
}

function pageLimit(value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > MAX_PAGE) throw new StrataError('STRATA_ERR_VALIDATION', `limit must be an integer from 1 to ${MAX_PAGE}; received ${JSON.stringify(value)}`);
  return value;
}

function notFound(ref: SessionRef): StrataError {
  return new StrataError('STRATA_ERR_NOT_FOUND', `session ${ref.sessionId} not found`, { details: { sessionId: ref.sessionId } });
}

function minDefined(...values: Array<number | null | undefined>): number | null {
  const xs = values.filter((v): v is number => typeof v === 'number');
  return xs.length ? Math.min(...xs) : null;
}

function maxDefined(...values: Array<number | null | undefined>): number | null {
  const xs = values.filter((v): v is number => typeof v === 'number');
  return xs.length ? Math.max(...xs) : null;
}
