import type { ArchiveSessionInfo, ArchiveStore } from '../archive/store.js';
import type { ConversationMemory } from '../cache/api.js';
import { RecoveryIndex } from '../cache/recovery.js';
import type { CoreConfig } from '../config.js';
import { StrataError, isStrataError } from '../errors.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import type { SessionContent, SessionDigest } from './digest.js';
import { digestSession } from './digest.js';
import type { Endpoint } from './endpoint.js';
import { openSource, openTarget, parseEndpoint, sameEndpoint } from './endpoint.js';

/**
 * `strata copy`: every session of every tenant from one store to another (fs ↔ PostgreSQL, or
 * the same driver twice), through the archive contract only, verified message by message.
 *
 * - **What moves.** Each session's archive as the source exports it (segments byte for byte,
 *   embeddings, owner, high-water turn id, summaries), imported by the target's own
 *   `importSession` (which checks every block first). Unarchived journal records of the source
 *   (acknowledged turns a crashed or running instance has not archived) are refused by default
 *   (STRATA_ERR_COPY_PENDING); `includePending` archives them into the target with their session,
 *   as the source's read-only core sees them (voids, epochs and deletions applied).
 * - **Verified.** Each copied session is read back from the target and its checksum over the
 *   canonical messages, owner, high-water mark and summaries compared with the source's; the
 *   owner's user index of the target must list it. Mismatches are counted, listed, and fail the run.
 * - **Never overwrites.** A target session of the same id is compared first: identical, it is
 *   skipped (so a re-run after an interruption continues where it stopped); different (or
 *   deleted there, or with unarchived journal records there), the whole run is refused with
 *   STRATA_ERR_COPY_CONFLICT before anything is written.
 * - **The source is only read**: no journal lock, no migration, no file or row written.
 *
 * Not carried (documented in docs/postgres.md, "Moving data"): deleted sessions (they hold no
 * message; their deletion floors stay behind), idempotency keys and fencing numbers.
 */
export interface CopyOptions {
  /** `fs:<dir>` or a `postgres://` URL (its `schema` parameter names the schema). */
  from: string;
  to: string;
  /** Codec, archive and PostgreSQL options for both sides; their store settings are replaced. */
  config: CoreConfig;
  /** Archive the source's unarchived journal records into the target. Default false: refused. */
  includePending?: boolean;
  /** Plan and compare only; create and write nothing. Default false. */
  dryRun?: boolean;
  /** Sessions checked or copied at once. Default 4. */
  concurrency?: number;
  /** Called after each session is checked and after each is copied (a throw stops the run). */
  onProgress?: (event: CopyProgress) => void | Promise<void>;
}

export interface CopyProgress {
  phase: 'check' | 'copy';
  done: number;
  total: number;
  tenant: string;
  sessionId: string;
}

export type CopyAction = 'copy' | 'skip' | 'conflict';

export interface CopyPlanEntry {
  tenant: string;
  sessionId: string;
  /** copy: absent from the target; skip: already there and identical; conflict: there and different. */
  action: CopyAction;
  /** Messages of the session in the source (archived, and unarchived ones when counted). */
  messages: number;
  /** Archived bytes of the session in the source. */
  bytes: number;
  /** Unarchived turns of the session in the source's journals. */
  pendingTurns: number;
  /** Why a session is a conflict. */
  reason?: string;
}

export interface CopyReport {
  from: string;
  to: string;
  dryRun: boolean;
  /** Sessions of the source (with messages). */
  sessions: number;
  /** Copied by this run (dry run: would be copied). */
  copied: number;
  /** Already in the target and verified identical. */
  skipped: number;
  /** Messages of the sessions verified in the target (copied and skipped); dry run: of the source. */
  messages: number;
  /** Archive bytes this run wrote to the target (dry run: would write, not counting pending turns). */
  bytes: number;
  pending: { sessions: number; turns: number; included: boolean };
  /** Sessions that read back differently from the target after the copy (0 on success). */
  mismatches: number;
  mismatched: Array<{ tenant: string; sessionId: string; reason: string }>;
  conflicts: Array<{ tenant: string; sessionId: string; reason: string }>;
  /** Dry run: every session and what would happen to it. */
  plan?: CopyPlanEntry[];
  /** Dry run: the coded error the run would end with (pending records, conflicts), or null. */
  refusal?: { code: string; message: string } | null;
}

/** Sessions listed per page from either archive. */
const LIST_PAGE = 1000;
/** Messages per page read from the source's read-only core. */
const MESSAGE_PAGE = 1000;
/** Sessions named in an error message (all of them are in its details). */
const NAMED_IN_MESSAGE = 5;
/**
 * Sessions in flight by default: each session is a few round trips and fsyncs (one import
 * transaction or atomic rename, one read back), so a few at once hide their latency; more
 * mostly queue on the pools (10 connections) and the disk.
 */
const DEFAULT_CONCURRENCY = 4;

interface SourceSession {
  ref: SessionRef;
  /** Null: the session exists only in the source's journals. */
  info: ArchiveSessionInfo | null;
  /** Turn ids at or below it are archived or deleted in the source. */
  floor: number;
  pendingTurns: number;
}

interface PlannedSession extends SourceSession {
  action: CopyAction;
  reason?: string;
  /** Computed while checking a session that is already in the target. */
  digest?: SessionDigest;
  userId: string | null;
}

export async function copyStores(options: CopyOptions): Promise<CopyReport> {
  const fromSpec = parseEndpoint('--from', options.from);
  const toSpec = parseEndpoint('--to', options.to);
  if (sameEndpoint(fromSpec, toSpec)) throw new StrataError('STRATA_ERR_VALIDATION', `--from and --to name the same store (${fromSpec.label}): nothing to copy`);
  const dryRun = options.dryRun === true;
  const includePending = options.includePending === true;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new StrataError('STRATA_ERR_VALIDATION', `concurrency: expected an integer from 1 to 64, received ${String(concurrency)}`);
  const source = await openSource(options.config, fromSpec);
  let target: Endpoint | null = null;
  const copier = new Copier(source, options, concurrency);
  try {
    const sessions = await copier.listSource();
    const pending = { sessions: sessions.filter((s) => s.pendingTurns > 0).length, turns: sessions.reduce((n, s) => n + s.pendingTurns, 0), included: includePending };
    const pendingRefusal = pending.sessions > 0 && !includePending ? pendingError(pending, sessions) : null;
    // Refused before the target is opened: a refused run creates no directory and no schema.
    if (pendingRefusal && !dryRun) throw pendingRefusal;
    target = await openTarget(options.config, toSpec, { dryRun });
    const plan = await copier.check(target, sessions);
    const report: CopyReport = {
      from: fromSpec.label,
      to: toSpec.label,
      dryRun,
      sessions: plan.length,
      copied: 0,
      skipped: plan.filter((p) => p.action === 'skip').length,
      messages: 0,
      bytes: 0,
      pending,
      mismatches: 0,
      mismatched: [],
      conflicts: plan.filter((p) => p.action === 'conflict').map((p) => ({ tenant: p.ref.tenant, sessionId: p.ref.sessionId, reason: p.reason! })),
    };
    const conflictRefusal = report.conflicts.length > 0 ? conflictError(report.conflicts) : null;
    if (dryRun) {
      const toCopy = plan.filter((p) => p.action === 'copy');
      report.copied = toCopy.length;
      report.messages = plan.reduce((n, p) => n + (p.digest?.messages ?? (p.info?.turnCount ?? 0) + p.pendingTurns), 0);
      report.bytes = toCopy.reduce((n, p) => n + (p.info?.bytes ?? 0), 0);
      report.plan = plan.map((p) => ({
        tenant: p.ref.tenant,
        sessionId: p.ref.sessionId,
        action: p.action,
        messages: p.digest?.messages ?? (p.info?.turnCount ?? 0) + p.pendingTurns,
        bytes: p.info?.bytes ?? 0,
        pendingTurns: p.pendingTurns,
        ...(p.reason !== undefined ? { reason: p.reason } : {}),
      }));
      const refusal = pendingRefusal ?? conflictRefusal;
      report.refusal = refusal ? { code: refusal.code, message: refusal.message } : null;
      return report;
    }
    if (conflictRefusal) throw conflictRefusal;
    await copier.execute(target, plan, report);
    return report;
  } finally {
    await copier.close();
    await target?.close();
    await source.close();
  }
}

function sessionList(items: ReadonlyArray<{ tenant: string; sessionId: string }>): string {
  const named = items.slice(0, NAMED_IN_MESSAGE).map((s) => `${s.tenant}/${s.sessionId}`).join(', ');
  return items.length > NAMED_IN_MESSAGE ? `${named} and ${items.length - NAMED_IN_MESSAGE} more` : named;
}

function pendingError(pending: { sessions: number; turns: number }, sessions: readonly SourceSession[]): StrataError {
  const refs = sessions.filter((s) => s.pendingTurns > 0).map((s) => ({ tenant: s.ref.tenant, sessionId: s.ref.sessionId, pendingTurns: s.pendingTurns }));
  return new StrataError(
    'STRATA_ERR_COPY_PENDING',
    `the source's journals hold ${pending.turns} unarchived turn(s) of ${pending.sessions} session(s) (${sessionList(refs)}): nothing was copied. Stop the writers and let them archive (start each instance once), or pass --include-pending to archive those turns into the target`,
    { details: { sessions: refs } },
  );
}

/** `during`: found while copying (sessions copied before it stay); otherwise by the check, before any write. */
function conflictError(conflicts: CopyReport['conflicts'], during = false): StrataError {
  const outcome = during ? 'that session was left untouched, the sessions copied before it stay' : 'nothing was written';
  return new StrataError(
    'STRATA_ERR_COPY_CONFLICT',
    `the target holds ${conflicts.length} session(s) that differ from the source (${sessionList(conflicts)}; first: ${conflicts[0]!.reason}): ${outcome}. Copy into an empty store, or delete those sessions from the target first`,
    { details: { conflicts } },
  );
}

/** One run's state: the source, its pending records, and the source's read-only core when needed. */
class Copier {
  private recovery: RecoveryIndex = new RecoveryIndex();
  private core: Promise<ConversationMemory> | null = null;

  constructor(
    private readonly source: Endpoint,
    private readonly options: CopyOptions,
    private readonly concurrency: number,
  ) {}

  private get sourceArchive(): ArchiveStore {
    return this.source.archive!;
  }

  /** Every session of the source with messages: archived ones, and those only in its journals. */
  async listSource(): Promise<SourceSession[]> {
    this.recovery = RecoveryIndex.fromRecords(await this.source.journal!.readPending());
    const journaled = this.recovery.refs();
    const tenants = [...new Set([...(await this.source.tenants()), ...journaled.map((r) => r.tenant)])].sort();
    const out: SourceSession[] = [];
    for (const tenant of tenants) {
      const infos = await listAll(this.sourceArchive, tenant);
      const ids = new Set([...infos.keys(), ...journaled.filter((r) => r.tenant === tenant).map((r) => r.sessionId)]);
      for (const sessionId of [...ids].sort()) {
        const ref = { tenant, sessionId };
        const info = infos.get(sessionId) ?? null;
        let floor = info?.highWater ?? 0;
        let pendingTurns = 0;
        if (this.recovery.has(ref)) {
          // Records at or below the archive's high-water mark or its deletion floor are archived
          // or deleted: only those above are acknowledged turns the archive does not hold.
          floor = Math.max(floor, await this.sourceArchive.deletedUpTo(ref));
          pendingTurns = this.recovery.turns(ref, floor).turns.length;
        }
        if (info === null && pendingTurns === 0) continue;
        out.push({ ref, info, floor, pendingTurns });
      }
    }
    return out;
  }

  /** What to do with each session: copy, skip (identical in the target), or conflict. */
  async check(target: Endpoint, sessions: readonly SourceSession[]): Promise<PlannedSession[]> {
    const plan: PlannedSession[] = [];
    if (!target.archive) {
      for (const s of sessions) plan.push({ ...s, action: 'copy', userId: s.info?.userId ?? null });
      return plan;
    }
    const targetRecovery = RecoveryIndex.fromRecords(await target.journal!.readPending());
    const present = new Map<string, Map<string, ArchiveSessionInfo>>();
    for (const tenant of new Set(sessions.map((s) => s.ref.tenant))) present.set(tenant, await listAll(target.archive, tenant));
    let done = 0;
    await eachLimit(sessions, this.concurrency, async (s, i) => {
      const entry: PlannedSession = { ...s, action: 'copy', userId: s.info?.userId ?? null };
      if (present.get(s.ref.tenant)!.has(s.ref.sessionId)) {
        const want = await this.sourceContent(s);
        entry.userId = want.content.userId;
        entry.digest = digestSession(want.content);
        const got = digestSession(await targetContent(target.archive!, s.ref));
        if (got.checksum === entry.digest.checksum) entry.action = 'skip';
        else {
          entry.action = 'conflict';
          entry.reason = got.messages === entry.digest.messages ? `same number of messages (${got.messages}), other content` : `${got.messages} message(s) in the target, ${entry.digest.messages} in the source`;
        }
      } else if ((await target.archive!.deletedUpTo(s.ref)) > 0) {
        entry.action = 'conflict';
        entry.reason = 'the target deleted a session of this id (its turn ids are retired there)';
      } else if (targetRecovery.has(s.ref)) {
        entry.action = 'conflict';
        entry.reason = "the target's journals hold unarchived turns of this session";
      }
      plan[i] = entry;
      await this.options.onProgress?.({ phase: 'check', done: ++done, total: sessions.length, ...s.ref });
    });
    return plan;
  }

  /** Copies the planned sessions, verifies each, then the target's user index. */
  async execute(target: Endpoint, plan: readonly PlannedSession[], report: CopyReport): Promise<void> {
    const archive = target.archive!;
    const toCopy = plan.filter((p) => p.action === 'copy');
    for (const p of plan) if (p.action === 'skip') report.messages += p.digest!.messages;
    let done = 0;
    await eachLimit(toCopy, this.concurrency, async (p) => {
      const { content, pending } = await this.sourceContent(p);
      const want = digestSession(content);
      p.userId = content.userId;
      try {
        if (p.info) {
          // The archive as the source exports it, with the unarchived turns as one more segment.
          const file = await this.sourceArchive.exportSession(p.ref, pending);
          await archive.importSession(p.ref, file);
          report.bytes += file.byteLength;
        } else {
          // Only in the source's journals: archived in the target as a new session.
          await archive.append(p.ref, pending, content.userId !== null ? { userId: content.userId } : {});
          report.bytes += (await archive.info(p.ref))?.bytes ?? 0;
        }
      } catch (err) {
        // Written meanwhile by someone else: still never overwritten.
        if (isStrataError(err, 'STRATA_ERR_CONFLICT')) throw conflictError([{ ...p.ref, reason: `written to the target during the copy (${err.message})` }], true);
        throw err;
      }
      const got = digestSession(await targetContent(archive, p.ref));
      if (got.checksum !== want.checksum) {
        report.mismatched.push({ ...p.ref, reason: got.messages === want.messages ? 'other content' : `${got.messages} message(s) read back, ${want.messages} copied` });
      }
      report.copied++;
      report.messages += want.messages;
      await this.options.onProgress?.({ phase: 'copy', done: ++done, total: toCopy.length, ...p.ref });
    });
    // Sessions with an owner must be found by user in the target too (user-scope search, deleteUser).
    const members = new Map<string, Set<string>>();
    for (const p of plan) {
      if (p.userId === null) continue;
      const key = `${p.ref.tenant}\u0000${p.userId}`;
      let set = members.get(key);
      if (!set) members.set(key, (set = new Set(await archive.listUserSessions(p.ref.tenant, p.userId))));
      if (!set.has(p.ref.sessionId) && !report.mismatched.some((m) => m.tenant === p.ref.tenant && m.sessionId === p.ref.sessionId)) {
        report.mismatched.push({ ...p.ref, reason: `not listed under its user ${p.userId} in the target` });
      }
    }
    report.mismatches = report.mismatched.length;
  }

  /**
   * The session as the source's library reads it: its archive, plus (when it has any) the
   * unarchived turns the source's read-only core seeds from every instance's journal.
   */
  private async sourceContent(s: SourceSession): Promise<{ content: SessionContent; pending: ArchivedTurn[] }> {
    const archived = s.info ? await this.sourceArchive.read(s.ref) : [];
    const summaries = s.info ? await this.sourceArchive.loadSummaries(s.ref) : [];
    let userId = s.info?.userId ?? null;
    const pending: ArchivedTurn[] = [];
    if (s.pendingTurns > 0) {
      const core = await this.sourceCore();
      const options = { tenant: s.ref.tenant };
      for (let after: number | null = s.floor; after !== null; ) {
        const page = await core.getMessages(s.ref.sessionId, { ...options, after, limit: MESSAGE_PAGE });
        for (const m of page.messages) if (m.turnId > s.floor) pending.push(messageOf(m));
        after = page.nextAfter;
      }
      userId ??= (await core.getSession(s.ref.sessionId, options)).userId;
    }
    const highWater = Math.max(s.info?.highWater ?? 0, pending.at(-1)?.turnId ?? 0);
    return { content: { turns: [...archived, ...pending], userId, highWater, summaries }, pending };
  }

  /** The source's read-only core (in-process hot tier, nothing written), opened on first need. */
  private sourceCore(): Promise<ConversationMemory> {
    this.core ??= (async () => {
      const { createStrata } = await import('../strata.js');
      const config = this.source.config;
      return createStrata({ ...config, hot: { ...config.hot, driver: 'memory' }, readOnly: true });
    })();
    return this.core;
  }

  async close(): Promise<void> {
    if (this.core) await (await this.core.catch(() => null))?.close();
  }
}

/** Every live session of a tenant, by id. */
async function listAll(archive: ArchiveStore, tenant: string): Promise<Map<string, ArchiveSessionInfo>> {
  const out = new Map<string, ArchiveSessionInfo>();
  let cursor: string | null = null;
  do {
    const page = await archive.listSessions(tenant, { cursor, limit: LIST_PAGE });
    for (const info of page.sessions) out.set(info.sessionId, info);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

/** The session as the target's library reads it back. */
async function targetContent(archive: ArchiveStore, ref: SessionRef): Promise<SessionContent> {
  const info = await archive.info(ref);
  if (!info) return { turns: [], userId: null, highWater: 0, summaries: [] };
  const [turns, summaries] = await Promise.all([archive.read(ref), archive.loadSummaries(ref)]);
  return { turns, userId: info.userId, highWater: info.highWater, summaries };
}

/** The stored fields of a message (the core's hot copy may carry bookkeeping fields besides). */
function messageOf(m: ArchivedTurn): ArchivedTurn {
  const out: ArchivedTurn = { turnId: m.turnId, role: m.role, content: m.content, createdAt: m.createdAt };
  if (m.name !== undefined) out.name = m.name;
  if (m.tool_calls !== undefined) out.tool_calls = m.tool_calls;
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  if (m.tokens !== undefined) out.tokens = m.tokens;
  if (m.metadata !== undefined) out.metadata = m.metadata;
  if (m.embedding !== undefined) out.embedding = m.embedding;
  return out;
}

/**
 * Runs `fn` over `items`, at most `limit` at once. After a failure no further item starts; the
 * first failure is thrown once the items in flight settled (so nothing is left half way).
 */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  const state: { next: number; failure?: { err: unknown } } = { next: 0 };
  const worker = async (): Promise<void> => {
    while (state.failure === undefined && state.next < items.length) {
      const i = state.next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        state.failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (state.failure) throw state.failure.err;
}
