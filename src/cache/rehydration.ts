import type { ArchiveStore, IdempotencyEntry } from '../archive/store.js';
import { StrataError } from '../errors.js';
import { recordToTurn } from '../journal/ledger.js';
import type { TurnRecord } from '../journal/types.js';
import type { SessionRef, Turn } from '../types.js';
import { CachePart, notFound, stripEmbedding } from './core.js';
import { RecoveryIndex, isClientKey, messageHash, parseClientKey, voidIdentity } from './recovery.js';

/**
 * Epochs and re-seeding (docs/consistency.md, "Redis loss"): knows the hot tier's epoch this
 * instance works in, recovers (reads every instance's unarchived journal records) when the hot
 * tier answers with another one, and creates a session's hot state from the archive and those
 * records when the hot tier does not hold it.
 */
export class Rehydration extends CachePart {
  private epochValue: number | null = null;
  private recovering: Promise<number> | null = null;
  /** Every instance's unarchived records, read at the last recovery. */
  recoveryIndex: RecoveryIndex = new RecoveryIndex();

  /** The epoch this instance recovered in (null before the first recovery). */
  get epoch(): number | null {
    return this.epochValue;
  }

  /** The epoch this instance works in, recovering first when it has none yet. */
  async currentEpoch(): Promise<number> {
    return this.epochValue ?? this.recover();
  }

  /**
   * Called at start and whenever the hot tier answers with another epoch (or none): makes sure
   * the tier has an epoch, and when it is not the one this instance recovered in, reads every
   * instance's journal (docs/consistency.md, "Redis loss"). Concurrent callers share one run.
   */
  recover(): Promise<number> {
    this.recovering ??= (async () => {
      let epoch = await this.hot.epoch();
      // A read-only core with its own in-process hot tier writes nothing, not even an epoch marker.
      const durable = !(this.readOnly && this.core.hotDriver === 'memory');
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
   * Finishes a deletion the hot tier's floor shows and the archive's does not, under the
   * session's lease and from floors read under it: the deleting instance may still be at work
   * (it holds the lease until both floors agree), or have finished while this one waited, and
   * turns written after it must not go with the deleted ones. Only turns at or below the hot
   * tier's floor are deleted: the whole file while the archive holds nothing above the floor
   * (the floor then becomes durable with it), else just those turns. True when the archive's
   * floor now matches (seed again); false when turns above the floor kept the floor where it is.
   */
  private async finishDeletion(ref: SessionRef): Promise<boolean> {
    return this.lock.withLock(ref, async (held) => {
      const [archiveFloor, hotFloor, info] = await Promise.all([this.archive.deletedUpTo(ref), this.hot.floor(ref), this.archive.info(ref)]);
      if (hotFloor <= archiveFloor) return true;
      if ((info?.highWater ?? 0) <= hotFloor) {
        await this.archive.deleteSession(ref, { upTo: hotFloor, fence: held.fence });
        return true;
      }
      const ids = (await this.archive.read(ref, { toTurn: hotFloor })).map((t) => t.turnId);
      if (ids.length > 0) await this.archive.deleteTurns(ref, ids);
      return false;
    });
  }

  /**
   * What a seed of the session holds: every turn any instance journaled above the archive's
   * high-water mark and the deletion floor (the recovery index, plus this instance's pending
   * records), the next id, and the owner.
   */
  async planSeed(ref: SessionRef): Promise<{
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
      if (await this.finishDeletion(ref)) return this.planSeed(ref);
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
  async seedHot(ref: SessionRef, userId: string | undefined, create: boolean): Promise<boolean | 'epochChanged'> {
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

  /** Makes sure the hot tier knows the session; returns its last turn id. Throws NOT_FOUND for unknown sessions. */
  async ensureHot(ref: SessionRef): Promise<number> {
    const last = await this.lastTurnId(ref);
    if (last === null) throw notFound(ref);
    return last;
  }

  /** The session's last turn id, seeding the hot tier when it does not hold the session; null for a session that does not exist. */
  async lastTurnId(ref: SessionRef): Promise<number | null> {
    let meta = await this.hot.meta(ref);
    if (!meta) {
      if (!(await this.seedHot(ref, undefined, false))) return null;
      meta = await this.hot.meta(ref);
      if (!meta) throw new StrataError('STRATA_ERR_HOT_UNAVAILABLE', `session ${ref.sessionId} vanished from the hot store while it was being seeded`);
    }
    return meta.nextTurnId - 1;
  }
}
