import { StrataError } from '../errors.js';
import { toSessionRef, validateId } from '../ids.js';
import type { Turn } from '../types.js';
import type { DeletionReceipt, SessionInfo, TenantOption } from './api.js';
import type { Compactor } from './compactor.js';
import { CachePart, HOT_READ_PAGE, notFound, type CacheCore } from './core.js';
import type { Reads } from './reads.js';
import type { Rehydration } from './rehydration.js';

/** Deletion (crash-safe, fenced), export and import, retention, re-embedding. */
export class Lifecycle extends CachePart {
  constructor(
    core: CacheCore,
    private readonly rehydration: Rehydration,
    private readonly compactor: Compactor,
    private readonly reads: Reads,
  ) {
    super(core);
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
      await this.compactor.compactSession(ref);
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
    await this.rehydration.currentEpoch();
    const [meta, info] = await Promise.all([this.hot.meta(ref), this.archive.info(ref)]);
    if (!meta && !info && !this.pending.has(ref) && !this.rehydration.recoveryIndex.has(ref)) throw notFound(ref);
    return this.lock.withLock(ref, async (held) => {
      // The floor must cover every journaled turn of the session: delete only in the epoch this
      // instance recovered in (its recovery index then holds every older epoch's records).
      // The hot tier's floor and the archive's are one number: the hot tier raises its floor to
      // cover every id this instance knows from journals and the archive, atomically with the
      // drop, and answers the floor in force; ids handed out after it are above it.
      const wanted = (): number => Math.max(this.pending.maxTurnId(ref), this.rehydration.recoveryIndex.turns(ref, 0).turns.at(-1)?.turnId ?? 0, info?.highWater ?? 0);
      let hot = await this.hot.deleteSession(ref, { epoch: await this.rehydration.currentEpoch(), minFloor: wanted() });
      for (let attempt = 0; hot === 'epochChanged'; attempt++) {
        if (attempt >= 5) throw new StrataError('STRATA_ERR_RECOVERING', `the hot tier kept losing its data while session ${ref.sessionId} was being deleted; retry`, { details: { sessionId: ref.sessionId } });
        const epoch = await this.rehydration.recover();
        hot = await this.hot.deleteSession(ref, { epoch, minFloor: wanted() });
      }
      const upTo = hot.lastTurnId;
      const archived = await this.archive.deleteSession(ref, { upTo, fence: held.fence });
      this.rehydration.recoveryIndex.forget(ref);
      this.compactor.markArchived(ref, upTo);
      // For this instance's replay: its own records of the session are gone for good.
      await this.journal.appendMany([{ type: 'delete', tenant: ref.tenant, sessionId: ref.sessionId, at: this.clock.now(), upTo }]);
      this.journal.markDeleteApplied(ref.tenant, ref.sessionId);
      this.retrieval?.invalidate(ref);
      await this.retrieval?.forgetSession?.(ref, info?.userId ?? null);
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
    await this.retrieval?.forgetUser?.(tenant, userId);
    this.metrics.archiveBytes?.(-rest.bytes);
    receipt.sessions += rest.sessions;
    receipt.turns += rest.turns;
    receipt.bytes += rest.bytes;
    return receipt;
  }

  async exportSession(sessionId: string, options: TenantOption = {}): Promise<Uint8Array> {
    const ref = toSessionRef(sessionId, options.tenant);
    await this.reads.getSession(ref.sessionId, { tenant: ref.tenant });
    await this.compactor.compactSession(ref);
    if (!this.readOnly) return this.archive.exportSession(ref);
    // Read-only: nothing can be archived, so the unarchived turns (seeded from the journals) are
    // added to the exported file as one more segment, in memory.
    const last = await this.rehydration.ensureHot(ref);
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
    const info = await this.reads.getSession(ref.sessionId, { tenant: ref.tenant });
    this.metrics.archiveBytes?.(info.bytes.archive);
    return info;
  }

  async cleanupExpiredSessions(maxAgeDays: number): Promise<number> {
    if (typeof maxAgeDays !== 'number' || !(maxAgeDays > 0)) throw new StrataError('STRATA_ERR_VALIDATION', `maxAgeDays must be a positive number; received ${JSON.stringify(maxAgeDays)}`);
    return this.archive.cleanupExpiredSessions(maxAgeDays);
  }
}
