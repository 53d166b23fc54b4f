import { randomBytes } from 'node:crypto';
import { access, constants as fsConstants } from 'node:fs/promises';
import type { ArchiveStore, IdempotencyEntry } from '../archive/store.js';
import type { Tokenizer } from '../context/tokenizer.js';
import { StrataError } from '../errors.js';
import type { HotStore, NewHotTurn } from '../hot/store.js';
import { toSessionRef, validateId } from '../ids.js';
import type { TurnRecord, VoidRecord } from '../journal/types.js';
import type { StrataMetrics, StrataSnapshot } from '../metrics.js';
import { noMetrics } from '../metrics.js';
import type { Embedder } from '../retrieval/embedder.js';
import type { ArchivedTurn, Clock, Role, SessionLock, SessionRef, Turn } from '../types.js';
import type { MessageContent } from '../message.js';
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
import { sessionKey } from '../ids.js';
import { recordToTurn } from '../journal/ledger.js';
import type { PendingTurns } from '../journal/store.js';
import { RecoveryIndex, clientKey, isClientKey, messageHash, parseClientKey, voidIdentity } from './recovery.js';
import type { JournalPort } from './ports.js';
import type { RetrievalPort } from './retrieval-port.js';
import { countMessageTokens, messageFields, sameMessage, searchText, validateMessage, type ValidMessage } from '../message.js';

export interface HybridCacheOptions extends Partial<CacheTuning> {
  hot: HotStore;
  archive: ArchiveStore;
  journal: JournalPort;
  /** Serialises writers of one session's archive file (a Redis lease when instances share a Redis). */
  lock: SessionLock;
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
  /** No writes, no compaction, no maintenance (see `createStrata({ readOnly })`). Default false. */
  readOnly?: boolean;
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
/** How far a recent window reaches back for the tool call of the tool results it starts with. */
const MAX_TOOL_REACH = 128;
const MAX_PAGE = 1000;
/** Turns per hot-tier read when a whole range is needed (the stores' read limit). */
const HOT_READ_PAGE = 10_000;
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
  /** The journal's ledger of this instance's unarchived records. */
  private readonly pending: PendingTurns;
  /** Per user: its archived sessions and whether their embedder was checked, valid while the archive's user stamp is unchanged. */
  private readonly userSessionCache = new Map<string, { stamp: string | null; sessionIds: string[]; embedderChecked: boolean }>();
  private readonly hotDriver: 'redis' | 'memory';
  private readonly readOnly: boolean;
  private readonly dataDir: string | undefined;
  private readonly leaseOwner: string | null;
  /** Sessions with an add since their last compaction check, by key → count of adds. */
  private readonly addsSinceCheck = new Map<string, { ref: SessionRef; adds: number }>();
  private timer: NodeJS.Timeout | null = null;
  private maintenanceRunning: Promise<void> | null = null;
  private lastRetentionRun = 0;
  private lastArchiveStats = 0;
  private closed = false;
  private readonly inflightCompactions = new Map<string, Promise<number>>();
  /** The hot tier's epoch this instance recovered in (null: not yet). */
  private epochValue: number | null = null;
  private recovering: Promise<number> | null = null;
  private recoveryIndex: RecoveryIndex = new RecoveryIndex();
  /** Per session: consecutive maintenance failures and when to try again (backoff). */
  private readonly failures = new Map<string, { count: number; retryAt: number }>();
  /** Per session: the highest turn id replayed from the journal at start, until archived. */
  private readonly replayedUpTo = new Map<string, { ref: SessionRef; upTo: number }>();
  private replayDone = false;
  private lastMaintenanceError: { code: string; message: string; at: number } | null = null;

  constructor(options: HybridCacheOptions) {
    const { hot, archive, journal, lock, clock, embedder, tokenizer, retrieval, metrics, hotDriver, dataDir, leaseOwner, readOnly, ...tuning } = options;
    this.readOnly = readOnly ?? false;
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
    // The journal's ledger holds what its replay found unarchived (records of previous runs).
    this.pending = journal.pending;
    for (const ref of this.pending.refs()) this.replayedUpTo.set(sessionKey(ref), { ref, upTo: this.pending.maxTurnId(ref) });
    this.metrics.snapshot?.(() => this.metricsSnapshot());
  }

  /** What the service's metrics read at scrape time (StrataMetrics.snapshot): never stale. */
  private async metricsSnapshot(): Promise<StrataSnapshot> {
    const now = this.clock.now();
    // The session whose oldest unarchived turn is the oldest of all (the store's age index, read first).
    const [oldest] = await this.hot.sessionsToCompact(Number.MAX_SAFE_INTEGER, now + 1, 1);
    const [meta, hotBytes] = await Promise.all([oldest ? this.hot.meta(oldest) : null, this.hot.totalBytes()]);
    return { now, unarchivedTurns: this.pending.size, unarchivedTurnsLimit: this.tuning.maxPendingTurns, oldestUnarchivedAt: meta?.oldestUnarchivedAt ?? null, hotBytes, hotBudgetBytes: this.tuning.hotBudgetBytes };
  }

  // ---------------------------------------------------------------- epochs and recovery

  /** The epoch this instance works in, recovering first when it has none yet. */
  private async currentEpoch(): Promise<number> {
    return this.epochValue ?? this.recover();
  }

  /**
   * Called at start and whenever the hot tier answers with another epoch (or none): makes sure
   * the tier has an epoch, and when it is not the one this instance recovered in, reads every
   * instance's journal (docs/consistency.md, "Redis loss"). Concurrent callers share one run.
   */
  private recover(): Promise<number> {
    this.recovering ??= (async () => {
      let epoch = await this.hot.epoch();
      // A read-only core with its own in-process hot tier writes nothing, not even an epoch marker.
      const durable = !(this.readOnly && this.hotDriver === 'memory');
      if (epoch === null) epoch = await this.hot.initEpoch(durable ? await this.journal.allocateEpoch() : (this.epochValue ?? 0) + 1);
      if (epoch !== this.epochValue) {
        const started = performance.now();
        // Every instance's unarchived records, whichever journal store holds them.
        this.recoveryIndex = RecoveryIndex.fromRecords(await this.journal.readPending());
        this.epochValue = epoch;
        this.metrics.recovery?.((performance.now() - started) / 1000, this.recoveryIndex.sessionCount);
      }
      return epoch;
    })().finally(() => (this.recovering = null));
    return this.recovering;
  }

  /**
   * Archives what the journal replay left pending, then starts the maintenance timer. Sessions
   * the hot tier still knows are compacted through it (it may hold other instances' turns);
   * sessions it lost are archived straight from the journal records.
   */
  async start(): Promise<void> {
    try {
      await this.recover();
    } catch (err) {
      // The hot tier is down right now (Redis restarting): start anyway; the first write, read
      // or maintenance pass recovers, and /readyz says the hot tier is not ready meanwhile.
      if (!(err instanceof StrataError) || err.code !== 'STRATA_ERR_HOT_UNAVAILABLE') throw err;
      this.noteBackgroundError(err);
    }
    if (this.readOnly) return;
    for (const ref of this.pending.refs()) {
      // Per session and never fatal: a session that cannot be archived now (lease held, hot tier
      // away) is retried by maintenance; its records stay in the journal until then.
      await this.isolated(ref, async () => {
        if (this.leaseOwner) await this.hot.releaseOwnerLease(ref, this.leaseOwner);
        await this.compactSession(ref);
      });
    }
    this.checkReplayDone();
    await this.checkpoint();
    if (this.tuning.maintenanceIntervalMs > 0) {
      this.timer = setInterval(
        () =>
          void this.runMaintenance().catch((err: unknown) => {
            const code = err instanceof StrataError ? err.code : 'STRATA_ERR_INTERNAL';
            this.lastMaintenanceError = { code, message: (err as Error).message, at: this.clock.now() };
            this.metrics.backgroundError?.(code);
          }),
        this.tuning.maintenanceIntervalMs,
      );
      this.timer.unref();
    }
  }

  // ---------------------------------------------------------------- writes

  async addMessage(sessionId: string, role: Role, content: MessageContent, options?: AddMessageOptions): Promise<{ turnId: number }>;
  async addMessage(sessionId: string, message: NewMessage, options?: Omit<AddMessageOptions, 'metadata'>): Promise<{ turnId: number }>;
  async addMessage(sessionId: string, roleOrMessage: Role | NewMessage, contentOrOptions?: MessageContent | AddMessageOptions, maybeOptions?: AddMessageOptions): Promise<{ turnId: number }> {
    const whole = typeof roleOrMessage === 'object' && roleOrMessage !== null;
    const options: AddMessageOptions = (whole ? (contentOrOptions as AddMessageOptions | undefined) : maybeOptions) ?? {};
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const idempotencyKey = validateIdempotencyKey(options.idempotencyKey);
    const input = whole ? roleOrMessage : { role: roleOrMessage, content: contentOrOptions, ...(options.metadata !== undefined ? { metadata: options.metadata } : {}) };
    const message = validateMessage(input, this.tuning, '');
    const [turnId] = await this.appendValidated(ref, [message], userId, idempotencyKey);
    return { turnId: turnId! };
  }

  async addMessages(sessionId: string, messages: readonly NewMessage[], options: Omit<AddMessageOptions, 'metadata'> = {}): Promise<{ turnIds: number[] }> {
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const idempotencyKey = validateIdempotencyKey(options.idempotencyKey);
    if (!Array.isArray(messages) || messages.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'messages must be a non-empty array');
    if (messages.length > MAX_PAGE) throw new StrataError('STRATA_ERR_VALIDATION', `at most ${MAX_PAGE} messages per call; received ${messages.length}`);
    // Validate every message before writing any, so a bad one changes nothing.
    const validated = messages.map((m, i) => validateMessage(m, this.tuning, `messages[${i}]`));
    return { turnIds: await this.appendValidated(ref, validated, userId, idempotencyKey) };
  }

  /**
   * The write path (docs/consistency.md, "Acknowledging a turn"): the hot tier assigns ids under
   * the current epoch (a known idempotency key answers its id instead); the records are
   * journaled (durable); the hot tier confirms that each id still holds this writer's turn. A
   * turn the hot tier lost in between (Redis loss while this call ran) is voided in the journal
   * and appended again, so the caller only ever sees ids that hold its messages.
   */
  private async appendValidated(ref: SessionRef, messages: ValidMessage[], userId: string | undefined, idempotencyKey: string | undefined): Promise<number[]> {
    this.assertOpen();
    if (this.pending.size + messages.length > this.tuning.maxPendingTurns) {
      throw new StrataError('STRATA_ERR_BACKPRESSURE', `${this.pending.size} turns are waiting for compaction (limit ${this.tuning.maxPendingTurns}); retry later`);
    }
    const ids: Array<number | undefined> = new Array(messages.length).fill(undefined);
    /** Voided records a re-seed brought back meanwhile: journaled again under the current epoch. */
    let carried: Array<{ slot: number; record: TurnRecord }> = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      const epoch = await this.currentEpoch();
      const now = this.clock.now();
      const records: TurnRecord[] = carried.map((c) => ({ ...c.record, epoch }));
      const slots: number[] = carried.map((c) => c.slot);
      carried = [];
      let epochChanged = false;
      for (let i = 0; i < messages.length; i++) {
        if (ids[i] !== undefined || slots.includes(i)) continue;
        const m = messages[i]!;
        const client = idempotencyKey === undefined ? null : clientKey(idempotencyKey, i, messages.length);
        const key = client === null ? `n:${randomBytes(9).toString('base64url')}` : client.appendKey;
        const turn: NewHotTurn = { ...messageFields(m), createdAt: now, key };
        if (this.tokenizer) turn.tokens = countMessageTokens(m, (text) => this.tokenizer!.count(text));
        if (m.metadata !== undefined) turn.metadata = m.metadata;
        if (userId !== undefined) turn.userId = userId;
        const idem = client === null ? undefined : { key: client.entry, hash: messageHash(m, userId, messages.length), windowMs: this.tuning.idempotencyWindowMs };
        const result = await this.hotAppend(ref, turn, now, epoch, idem);
        if (result === 'epochChanged') {
          epochChanged = true;
          break;
        }
        let record: TurnRecord = { type: 'turn', tenant: ref.tenant, sessionId: ref.sessionId, turnId: result.turnId, ...messageFields(m), createdAt: now, key, epoch };
        if (m.metadata !== undefined) record.metadata = m.metadata;
        if (userId !== undefined) record.userId = userId;
        if (result.known) {
          // A retry: the first call's turn may not be durable yet (its instance may have died
          // before journaling it). Journal the turn as the hot tier holds it; archived = durable.
          const held = (await this.hot.range(ref, result.turnId, result.turnId))[0];
          const meta = await this.hot.meta(ref);
          if (!held && meta && result.turnId <= meta.archivedUpTo) {
            ids[i] = result.turnId;
            continue;
          }
          if (held) record = { ...record, createdAt: held.createdAt, ...(held.metadata !== undefined ? { metadata: held.metadata } : {}) };
        }
        records.push(record);
        slots.push(i);
      }
      if (records.length > 0) {
        const started = performance.now();
        await this.journal.appendMany(records);
        this.metrics.journalAppend?.((performance.now() - started) / 1000, records.length);
      }
      if (epochChanged) {
        // Records journaled in this attempt are confirmed (or voided) like any other.
        await this.recover();
      }
      const confirmed = records.length === 0 ? [] : await this.hot.confirm(ref, records[0]!.epoch!, records.map((r) => ({ turnId: r.turnId, key: r.key! })));
      const voids: VoidRecord[] = [];
      const voided: Array<{ slot: number; record: TurnRecord }> = [];
      for (let j = 0; j < records.length; j++) {
        // Not held by the hot tier any more, but archived before the loss: the id is this
        // writer's (a new dataset never hands out an archived id again), so it is stored.
        const r = records[j]!;
        if (confirmed[j] || r.key === undefined) continue;
        const archived = await this.archive.committedTurn(ref, r.turnId);
        if (archived && sameMessage(archived, r)) confirmed[j] = true;
      }
      records.forEach((r, j) => {
        if (confirmed[j]) {
          ids[slots[j]!] = r.turnId;
        } else {
          voids.push({ type: 'void', tenant: r.tenant, sessionId: r.sessionId, turnId: r.turnId, key: r.key!, epoch: r.epoch! });
          voided.push({ slot: slots[j]!, record: r });
        }
      });
      if (voids.length > 0) {
        await this.journal.appendMany(voids);
        this.metrics.appendRetry?.(voids.length);
        // Between the void marker (in the hot tier) and the durable void record, the hot tier
        // may have lost its data again and a re-seed taken the record from this journal. If
        // the id now holds this writer's turn, that is its place: journal it again under the
        // current epoch (the void names only the old one) and confirm it in the next attempt.
        await this.recover();
        const holds = await this.hot.holds(ref, voided.map((v) => ({ turnId: v.record.turnId, key: v.record.key! })));
        carried = voided.filter((_, j) => holds[j]);
      }
      if (ids.every((id) => id !== undefined)) {
        this.retrieval?.invalidate(ref);
        this.noteAdds(ref, records.length);
        return ids as number[];
      }
    }
    throw new StrataError('STRATA_ERR_RECOVERING', `the hot tier kept losing session ${ref.sessionId} while appending; nothing was acknowledged, retry`, { details: { sessionId: ref.sessionId } });
  }

  /** Appends to the hot store, seeding the session first when the store does not know it. */
  private async hotAppend(ref: SessionRef, turn: NewHotTurn, now: number, epoch: number, idempotency: { key: string; hash: string; windowMs: number } | undefined): Promise<{ turnId: number; known?: true } | 'epochChanged'> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await this.hot.append(ref, turn, now, { epoch, ...(idempotency ? { idempotency } : {}) });
      if ('turnId' in result) return result;
      if ('epochChanged' in result) return 'epochChanged';
      if ('mismatch' in result) {
        throw new StrataError('STRATA_ERR_IDEMPOTENCY_MISMATCH', `idempotency key was used for another message in session ${ref.sessionId} (turn ${result.knownTurnId})`, { details: { sessionId: ref.sessionId, turnId: result.knownTurnId } });
      }
      const seeded = await this.seedHot(ref, turn.userId, true);
      if (seeded === 'epochChanged') return 'epochChanged';
    }
    throw new StrataError('STRATA_ERR_RECOVERING', `the hot store keeps losing session ${ref.sessionId} while seeding it`, { details: { sessionId: ref.sessionId } });
  }

  /**
   * What a seed of the session holds: every turn any instance journaled above the archive's
   * high-water mark and the deletion floor (the recovery index, plus this instance's pending
   * records), the next id, and the owner.
   */
  private async planSeed(ref: SessionRef): Promise<{
    info: Awaited<ReturnType<ArchiveStore['info']>>;
    floor: number;
    unarchived: Array<Turn & { key?: string }>;
    unarchivedRecords: TurnRecord[];
    nextTurnId: number;
    owner: string | undefined;
    archivedKeys: IdempotencyEntry[];
  }> {
    const [info, archiveFloor, hotFloor, voided, archivedKeys] = await Promise.all([this.archive.info(ref), this.archive.deletedUpTo(ref), this.hot.floor(ref), this.hot.voided(ref), this.archive.idempotencyKeys(ref)]);
    const voids = new Set(voided);
    const highWater = info?.highWater ?? 0;
    const known = this.recoveryIndex.turns(ref, Math.max(archiveFloor, hotFloor));
    const floor = Math.max(archiveFloor, hotFloor, known.deletedUpTo);
    if (hotFloor > archiveFloor && !this.readOnly) {
      // A deletion stopped between the hot tier's floor and the archive's (a crash): it was
      // not acknowledged, but the hot tier already refuses those ids. Finish it, so the session
      // is deleted as a whole rather than in part.
      await this.lock.withLock(ref, (held) => this.archive.deleteSession(ref, { upTo: hotFloor, fence: held.fence }));
      return this.planSeed(ref);
    }
    const byId = new Map<number, TurnRecord>();
    for (const r of known.turns) if (r.key === undefined || !voids.has(voidIdentity(r.turnId, r.key, r.epoch))) byId.set(r.turnId, r);
    for (const r of this.pending.records(ref)) {
      if (r.key !== undefined && voids.has(voidIdentity(r.turnId, r.key, r.epoch))) continue;
      const other = byId.get(r.turnId);
      if (!other || (r.epoch ?? 0) > (other.epoch ?? 0)) byId.set(r.turnId, r);
    }
    // One client key names one message: when a retry stored it again at another id (its first
    // attempt was journaled but never confirmed, and the hot tier lost it), only the copy from
    // the later epoch (the one the retry acknowledged) is kept.
    const byKey = new Map<string, TurnRecord>();
    for (const r of byId.values()) {
      if (!isClientKey(r.key)) continue;
      const entry = parseClientKey(r.key).entry;
      const other = byKey.get(entry);
      if (!other || (r.epoch ?? 0) > (other.epoch ?? 0) || ((r.epoch ?? 0) === (other.epoch ?? 0) && r.turnId > other.turnId)) byKey.set(entry, r);
    }
    const unarchivedRecords = [...byId.values()]
      .filter((r) => r.turnId > Math.max(highWater, floor) && (!isClientKey(r.key) || byKey.get(parseClientKey(r.key).entry) === r))
      .sort((a, b) => a.turnId - b.turnId);
    const unarchived = unarchivedRecords.map((r) => ({ ...recordToTurn(r), ...(r.key !== undefined ? { key: r.key } : {}), ...(r.epoch !== undefined ? { epoch: r.epoch } : {}) }));
    const nextTurnId = Math.max(highWater, floor, unarchived.at(-1)?.turnId ?? 0) + 1;
    const owner = info?.userId ?? unarchivedRecords.find((r) => r.userId)?.userId ?? this.pending.userId(ref);
    return { info, floor, unarchived, unarchivedRecords, nextTurnId, owner, archivedKeys };
  }

  /**
   * Creates the hot state of a session from the archive and every instance's unarchived journal
   * records (see `planSeed`). Returns false when the session exists nowhere and `create` is
   * false; 'epochChanged' when the hot tier lost its data meanwhile (the caller recovers).
   */
  private async seedHot(ref: SessionRef, userId: string | undefined, create: boolean): Promise<boolean | 'epochChanged'> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const epoch = await this.currentEpoch();
      const plan = await this.planSeed(ref);
      if (!plan.info && plan.unarchived.length === 0 && !create) return false;
      const highWater = plan.info?.highWater ?? 0;
      const archivedUpTo = Math.max(highWater, plan.floor);
      const recentArchived = highWater > plan.floor ? await this.archive.read(ref, { fromTurn: Math.max(plan.floor + 1, highWater - this.tuning.recentTurns + 1), toTurn: highWater }) : [];
      const owner = userId ?? plan.owner;
      const since = this.clock.now() - this.tuning.idempotencyWindowMs;
      const idempotency = [
        ...plan.archivedKeys.filter((e) => e.createdAt >= since),
        ...plan.unarchivedRecords
          .filter((r) => isClientKey(r.key))
          .map((r) => {
            const { entry, batchSize } = parseClientKey(r.key!);
            return { key: entry, turnId: r.turnId, hash: messageHash(r, r.userId, batchSize), createdAt: r.createdAt };
          }),
      ];
      const seed = { nextTurnId: plan.nextTurnId, archivedUpTo, turns: [...recentArchived.map(stripEmbedding), ...plan.unarchived], ...(owner ? { userId: owner } : {}) };
      const outcome = await this.hot.seed(ref, seed, this.clock.now(), { epoch, idempotency, windowMs: this.tuning.idempotencyWindowMs });
      if (outcome === 'epochChanged') {
        await this.recover();
        continue;
      }
      if (outcome === 'conflict') continue;
      if (outcome === true) this.metrics.rehydration?.();
      if (!plan.info && !this.readOnly) {
        // Registers the session (and its owner) in the archive right away, so listing and user
        // deletion see sessions that have not been compacted yet.
        await this.lock.withLock(ref, (held) => this.archive.append(ref, [], { ...(owner ? { userId: owner } : {}), fence: held.fence }));
      }
      return true;
    }
    throw new StrataError('STRATA_ERR_RECOVERING', `session ${ref.sessionId} could not be re-seeded (its deletion floor or void markers kept changing); retry`, { details: { sessionId: ref.sessionId } });
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

  /**
   * Context of a session that does not exist (yet) is empty, not an error: an application asks
   * for context before the first message of every new session.
   */
  async getContext(sessionId: string, request: ContextRequest): Promise<ContextResult> {
    const ref = toSessionRef(sessionId, request?.tenant);
    if (request?.type === 'recent' || request?.type === 'full' || request?.type === 'smart') {
      if ((await this.lastTurnId(ref)) === null) return { type: request.type, messages: [], summary: null, tokens: 0, explain: [], nextAfter: null };
    }
    switch (request?.type) {
      case 'recent': {
        const limit = pageLimit(request.limit, this.tuning.recentTurns);
        let messages = await this.recent(ref, limit);
        // A window that starts inside a tool round (tool results whose call is older) reaches
        // back to the call: a model API refuses a tool result without it (at most MAX_TOOL_REACH turns).
        if (messages[0]?.role === 'tool' && messages[0].turnId > 1) {
          const wider = await this.recent(ref, limit + MAX_TOOL_REACH);
          let j = wider.findIndex((m) => m.turnId === messages[0]!.turnId) - 1;
          while (j >= 0 && wider[j]!.role === 'tool') j--;
          if (j >= 0 && (wider[j]!.tool_calls?.length ?? 0) > 0) messages = wider.slice(j);
        }
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
        if (!(await this.seedHot(ref, undefined, false))) return [];
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
    const lastTurnId = await this.lastTurnId(ref);
    // A session nobody wrote to yet has no messages (not an error: see getContext).
    if (lastTurnId === null) return { messages: [], nextAfter: null };
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
    const last = await this.lastTurnId(ref);
    if (last === null) throw notFound(ref);
    return last;
  }

  /** The session's last turn id, seeding the hot tier when it does not hold the session; null for a session that does not exist. */
  private async lastTurnId(ref: SessionRef): Promise<number | null> {
    let meta = await this.hot.meta(ref);
    if (!meta) {
      if (!(await this.seedHot(ref, undefined, false))) return null;
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
      const meta = await this.hot.meta(ref);
      // Like its context, a session that does not exist has nothing to find.
      if (!meta && !(await this.archive.info(ref)) && !this.pending.has(ref)) return [];
      // Every turn by default; on request, not the recent window the application already has.
      const excludeRecent = (scope as { excludeRecent?: unknown }).excludeRecent;
      if (excludeRecent !== undefined && typeof excludeRecent !== 'boolean') throw new StrataError('STRATA_ERR_VALIDATION', `excludeRecent: expected a boolean, received ${typeof excludeRecent}`, { details: { field: 'excludeRecent' } });
      // Search reads the archive: turns it must find are archived first.
      await this.flushIfUnarchived(ref, excludeRecent === true);
      await this.assertEmbedder(tenant, [ref.sessionId]);
      const exclude = excludeRecent ? new Set((await this.hot.recent(ref, this.tuning.recentTurns, this.clock.now())).map((t) => t.turnId)) : new Set<number>();
      return this.retrieval.search(query, topK, { tenant, sessionIds: [ref.sessionId] }, new Map([[ref.sessionId, exclude]]));
    }
    const userId = validateId('user', (scope as { userId: string }).userId);
    // Unarchived turns of the user's sessions are archived first; only sessions with a backlog
    // (in the hot tier or this instance's journal) are looked at, not every session of the user.
    const backlog = new Set<string>();
    for (const ref of [...this.pending.refs(), ...(await this.hot.sessionsToCompact(1, Number.MAX_SAFE_INTEGER, 10_000))]) if (ref.tenant === tenant) backlog.add(ref.sessionId);
    const owned = await this.userSessions(tenant, userId);
    for (const sessionId of owned.sessionIds) if (backlog.has(sessionId)) await this.flushIfUnarchived({ tenant, sessionId });
    const current = await this.userSessions(tenant, userId);
    if (!current.embedderChecked) {
      await this.assertEmbedder(tenant, current.sessionIds);
      current.embedderChecked = true;
    }
    return this.retrieval.search(query, topK, this.archive.userStamp ? { tenant, userId } : { tenant, sessionIds: current.sessionIds }, new Map());
  }

  /** A user's archived sessions, re-listed only when the archive's stamp of the user changed. */
  private async userSessions(tenant: string, userId: string): Promise<{ stamp: string | null; sessionIds: string[]; embedderChecked: boolean }> {
    const stamp = this.archive.userStamp ? await this.archive.userStamp(tenant, userId) : null;
    const key = `${tenant}\u0000${userId}`;
    const hit = this.userSessionCache.get(key);
    if (hit && stamp !== null && hit.stamp === stamp) return hit;
    const entry = { stamp, sessionIds: await this.archive.listUserSessions(tenant, userId), embedderChecked: false };
    this.userSessionCache.delete(key);
    this.userSessionCache.set(key, entry);
    if (this.userSessionCache.size > 4096) this.userSessionCache.delete(this.userSessionCache.keys().next().value!);
    return entry;
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
    // Without hot state, unarchived turns are in journals: this instance's and, after a loss of
    // the hot tier (or in a read-only core), every instance's.
    const floor = meta ? 0 : Math.max(await this.archive.deletedUpTo(ref), await this.hot.floor(ref));
    const journaled = meta ? [] : [...new Set([...this.pending.turns(ref).map((t) => t.turnId), ...this.recoveryIndex.turns(ref, floor).turns.map((t) => t.turnId)])].filter((id) => id > Math.max(info?.highWater ?? 0, floor));
    let pendingMax = 0;
    for (const id of journaled) pendingMax = Math.max(pendingMax, id);
    if (!meta && !info && pendingMax === 0) throw notFound(ref);
    const lastTurnId = Math.max((meta?.nextTurnId ?? 1) - 1, info?.highWater ?? 0, pendingMax);
    const archivedTurns = info?.turnCount ?? 0;
    const unarchivedTurns = meta ? meta.unarchivedCount : journaled.length;
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
      const [meta, info] = await Promise.all([this.hot.meta(ref), this.archive.info(ref)]);
      if (!meta && !info && !this.pending.has(ref) && !this.recoveryIndex.has(ref)) throw notFound(ref);
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
    if (this.readOnly) return Promise.resolve(0);
    const key = sessionKey(ref);
    const running = this.inflightCompactions.get(key);
    if (running) return running.then(() => this.compactSessionNow(ref));
    const run = this.compactSessionNow(ref).finally(() => this.inflightCompactions.delete(key));
    this.inflightCompactions.set(key, run);
    return run;
  }

  private async compactSessionNow(ref: SessionRef): Promise<number> {
    if (!(await this.hot.meta(ref))) {
      // The hot tier does not hold the session (lost, dropped or deleted). Turns are archived
      // only through it: re-seed when some journal still holds unarchived turns of it (ids are
      // then known to the hot tier before anyone archives), else what this instance holds is
      // archived or deleted already.
      const plan = await this.planSeed(ref);
      if (plan.unarchived.length === 0) {
        this.markArchived(ref, Math.max(plan.info?.highWater ?? 0, plan.floor));
        return 0;
      }
      await this.seedHot(ref, undefined, false);
    }
    return this.lock.withLock(ref, async (held) => {
      let total = 0;
      const started = performance.now();
      let raw = 0;
      let bytesBefore: number | null = null;
      const meta = await this.hot.meta(ref);
      const appendOptions = {
        ...(meta?.userId ? { userId: meta.userId } : {}),
        ...(this.embedder ? { embedderId: this.embedder.id } : {}),
        fence: held.fence,
        ...(held.assertHeld ? { precommit: () => held.assertHeld!() } : {}),
      };
      while (true) {
        const turns = await this.hot.unarchived(ref, UNARCHIVED_BATCH);
        if (turns.length === 0) break;
        if (bytesBefore === null) {
          // A file without segments is the empty header the session's first append created: the
          // first compaction counts it (metrics: compression ratio, archive bytes).
          const before = await this.archive.info(ref);
          bytesBefore = before && before.segments > 0 ? before.bytes : 0;
        }
        const prepared = await this.prepareForArchive(turns);
        // Client idempotency keys go into the archive with their turns: after a loss of the hot
        // tier a re-seed registers them again, so a late retry still gets its first answer.
        const keyed = turns.filter((t) => isClientKey(t.key)).map((t) => ({ turn: t, entry: parseClientKey(t.key!).entry }));
        const entries = await this.hot.idempotencyEntries(ref, keyed.map((k) => k.entry));
        const idempotency = keyed.flatMap((k, i) => (entries[i]?.turnId === k.turn.turnId ? [{ key: k.entry, turnId: k.turn.turnId, hash: entries[i]!.hash, createdAt: k.turn.createdAt }] : []));
        const result = await this.archive.append(ref, prepared, { ...appendOptions, idempotency, keysSince: this.clock.now() - this.tuning.idempotencyWindowMs });
        const upTo = turns.at(-1)!.turnId;
        // Fenced: a holder whose lease expired meanwhile must not trim what the next holder owns.
        await this.hot.markArchived(ref, Math.max(upTo, 0), this.tuning.recentTurns, held.token ?? undefined);
        this.markArchived(ref, Math.max(upTo, result.highWater));
        total += turns.length;
        for (const t of turns) raw += Buffer.byteLength(searchText(t));
        if (turns.length < UNARCHIVED_BATCH) break;
      }
      if (total === 0) {
        // Nothing in the hot tier, but this instance may still hold records that were archived
        // by someone else (or before a crash): forget those at or below the high-water mark.
        const info = await this.archive.info(ref);
        if (info) this.markArchived(ref, info.highWater);
      }
      if (total > 0) {
        this.retrieval?.invalidate(ref);
        await this.retrieval?.afterCompaction?.(ref);
        // Measured after the milestone summaries compaction may write into the same file.
        const bytesAfter = (await this.archive.info(ref))?.bytes ?? 0;
        this.metrics.compaction?.((performance.now() - started) / 1000, total, Math.max(0, bytesAfter - (bytesBefore ?? 0)), raw);
      }
      return total;
    });
  }

  /** Token counts and embeddings, computed in batches off the request path. */
  private async prepareForArchive(turns: ReadonlyArray<Turn & { key?: string }>): Promise<ArchivedTurn[]> {
    const out: ArchivedTurn[] = turns.map(({ key: _key, ...t }) => ({ ...t, ...(t.tokens === undefined && this.tokenizer ? { tokens: countMessageTokens(t, (text) => this.tokenizer!.count(text)) } : {}) }));
    if (!this.embedder) return out;
    for (let i = 0; i < out.length; i += this.tuning.embedBatchSize) {
      const batch = out.slice(i, i + this.tuning.embedBatchSize);
      const started = performance.now();
      const vectors = await this.embedder.embed(batch.map((t) => searchText(t)));
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
    if (epoch !== this.epochValue) {
      // The hot tier lost its state: recover, then re-seed every session this instance holds
      // unarchived turns of (other instances' sessions are re-seeded on first use).
      await this.recover();
    }
    for (const ref of this.pending.refs()) if (!(await this.hot.meta(ref))) await this.isolated(ref, () => this.compactSession(ref));
    for (const ref of await this.hot.sessionsToCompact(this.tuning.maxUnarchivedTurns, now - this.tuning.maxUnarchivedAgeMs, 1000)) await this.isolated(ref, () => this.compactSession(ref));
    for (const ref of await this.hot.idleSessions(now - this.tuning.sessionIdleTtlMs, 1000)) await this.isolated(ref, () => this.evict(ref, 'idle'));
    await this.evictToDiskLru();
    this.checkReplayDone();
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

  /**
   * The journal may checkpoint past the records of previous runs only once every replayed
   * record is archived (they are not in its tracker): until then they are its only durable copy.
   */
  private checkReplayDone(): void {
    if (this.replayDone) return;
    for (const [key, { ref, upTo }] of this.replayedUpTo) if (this.pending.records(ref).every((r) => r.turnId > upTo)) this.replayedUpTo.delete(key);
    if (this.replayedUpTo.size > 0) return;
    this.replayDone = true;
    this.journal.markReplayed();
  }

  private noteBackgroundError(err: unknown): void {
    const code = err instanceof StrataError ? err.code : 'STRATA_ERR_INTERNAL';
    this.lastMaintenanceError = { code, message: (err as Error).message, at: this.clock.now() };
    this.metrics.backgroundError?.(code);
  }

  /**
   * Runs one session's background work so that its failure (a damaged file, a lost lease, a
   * full disk) is counted and retried later with backoff, and never stops the pass for the
   * other sessions.
   */
  private async isolated(ref: SessionRef, work: () => Promise<unknown>): Promise<void> {
    const key = sessionKey(ref);
    const failed = this.failures.get(key);
    if (failed && failed.retryAt > this.clock.now()) return;
    try {
      await work();
      this.failures.delete(key);
    } catch (err) {
      const code = err instanceof StrataError ? err.code : 'STRATA_ERR_INTERNAL';
      const count = (failed?.count ?? 0) + 1;
      // 1 s, 2 s, 4 s … capped at 5 minutes.
      this.failures.set(key, { count, retryAt: this.clock.now() + Math.min(300_000, 1000 * 2 ** (count - 1)) });
      this.lastMaintenanceError = { code, message: (err as Error).message, at: this.clock.now() };
      this.metrics.backgroundError?.(code);
    }
  }

  private markArchived(ref: SessionRef, upTo: number): void {
    this.journal.markArchived(ref.tenant, ref.sessionId, upTo);
  }

  private async checkpoint(): Promise<void> {
    await this.journal.checkpoint();
  }

  // ---------------------------------------------------------------- deletion and lifecycle

  /**
   * Crash-safe deletion (docs/consistency.md, "Deletion"): under the session's lease, the hot
   * tier drops the session and raises its deletion floor to the last id it ever gave (so no id is
   * reused and no seed brings those turns back); the archive makes that floor durable, then
   * unlinks the file. From the floor's fsync on, no crash, replay or other instance's journal can
   * bring a deleted turn back; the call returns after it.
   */
  async deleteSession(sessionId: string, options: TenantOption = {}): Promise<DeletionReceipt> {
    const ref = toSessionRef(sessionId, options.tenant);
    this.assertOpen();
    await this.currentEpoch();
    const [meta, info] = await Promise.all([this.hot.meta(ref), this.archive.info(ref)]);
    if (!meta && !info && !this.pending.has(ref) && !this.recoveryIndex.has(ref)) throw notFound(ref);
    return this.lock.withLock(ref, async (held) => {
      // The floor must cover every journaled turn of the session: delete only in the epoch this
      // instance recovered in (its recovery index then holds every older epoch's records).
      // The hot tier's floor and the archive's are one number: the hot tier raises its floor to
      // cover every id this instance knows from journals and the archive, atomically with the
      // drop, and answers the floor in force; ids handed out after it are above it.
      const wanted = (): number => Math.max(this.pending.maxTurnId(ref), this.recoveryIndex.turns(ref, 0).turns.at(-1)?.turnId ?? 0, info?.highWater ?? 0);
      let hot = await this.hot.deleteSession(ref, { epoch: await this.currentEpoch(), minFloor: wanted() });
      for (let attempt = 0; hot === 'epochChanged'; attempt++) {
        if (attempt >= 5) throw new StrataError('STRATA_ERR_RECOVERING', `the hot tier kept losing its data while session ${ref.sessionId} was being deleted; retry`, { details: { sessionId: ref.sessionId } });
        const epoch = await this.recover();
        hot = await this.hot.deleteSession(ref, { epoch, minFloor: wanted() });
      }
      const upTo = hot.lastTurnId;
      const archived = await this.archive.deleteSession(ref, { upTo, fence: held.fence });
      this.recoveryIndex.forget(ref);
      this.markArchived(ref, upTo);
      // For this instance's replay: its own records of the session are gone for good.
      await this.journal.appendMany([{ type: 'delete', tenant: ref.tenant, sessionId: ref.sessionId, at: this.clock.now(), upTo }]);
      this.journal.markDeleteApplied(ref.tenant, ref.sessionId);
      this.retrieval?.invalidate(ref);
      this.metrics.archiveBytes?.(-archived.bytes);
      return { tenant: ref.tenant, sessionIds: [ref.sessionId], hotTurns: hot.turns, journalTombstones: 1, ...archived };
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
    this.metrics.archiveBytes?.(-rest.bytes);
    receipt.sessions += rest.sessions;
    receipt.turns += rest.turns;
    receipt.bytes += rest.bytes;
    return receipt;
  }

  async exportSession(sessionId: string, options: TenantOption = {}): Promise<Uint8Array> {
    const ref = toSessionRef(sessionId, options.tenant);
    await this.getSession(ref.sessionId, { tenant: ref.tenant });
    await this.compactSession(ref);
    if (!this.readOnly) return this.archive.exportSession(ref);
    // Read-only: nothing can be archived, so the unarchived turns (seeded from the journals) are
    // added to the exported file as one more segment, in memory.
    const last = await this.ensureHot(ref);
    const unarchived: Turn[] = [];
    for (let from = ((await this.hot.meta(ref))?.archivedUpTo ?? 0) + 1; from <= last; from += HOT_READ_PAGE) unarchived.push(...(await this.hot.range(ref, from, Math.min(last, from + HOT_READ_PAGE - 1))));
    return this.archive.exportSession(ref, unarchived);
  }

  async importSession(sessionId: string, file: Uint8Array, options: TenantOption & { userId?: string } = {}): Promise<SessionInfo> {
    const ref = toSessionRef(sessionId, options.tenant);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    if ((await this.hot.meta(ref)) || this.pending.has(ref)) throw new StrataError('STRATA_ERR_CONFLICT', `session ${ref.sessionId} already exists`);
    await this.lock.withLock(ref, () => this.archive.importSession(ref, file, userId ? { userId } : {}));
    this.retrieval?.invalidate(ref);
    const info = await this.getSession(ref.sessionId, { tenant: ref.tenant });
    this.metrics.archiveBytes?.(info.bytes.archive);
    return info;
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
    const journal = this.journal.health();
    return { ok: hot.ok && dataDir.ok && journal.ok && !this.closed, hot, dataDir, journal };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.maintenanceRunning;
    try {
      if (!this.readOnly) await this.flush();
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
    if (this.readOnly) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'this Strata instance was opened read-only');
  }
}

/** Idempotency keys: 1-255 printable ASCII characters (they travel in an HTTP header and in Lua). */
function validateIdempotencyKey(key: unknown): string | undefined {
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new StrataError('STRATA_ERR_VALIDATION', `idempotencyKey must be 1-255 printable ASCII characters without spaces; received ${typeof key === 'string' ? `${key.length} characters` : typeof key}`, { details: { field: 'idempotencyKey' } });
  }
  return key;
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
