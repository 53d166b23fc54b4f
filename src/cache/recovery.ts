import { messageExtension, messageText, type MessageFields } from '../message.js';
import { createHash } from 'node:crypto';
import { journalRoot, readAllJournals } from '../journal/read-all.js';
import type { JournalRecord, TurnRecord } from '../journal/types.js';
import type { SessionRef } from '../types.js';
import { sessionKey } from '../ids.js';

/**
 * Recovery after the hot tier lost its data (docs/consistency.md, "Redis loss"): epochs are
 * allocated by the journal store (`JournalStore.allocateEpoch`), every instance's unarchived
 * records read through it (`readPending`) into a `RecoveryIndex`.
 */
export { allocateEpoch } from '../journal/epochs.js';

/**
 * The hash an idempotency key is bound to: a retry must carry the same message, at the same
 * place of a batch of the same size.
 */
export function messageHash(message: MessageFields & { metadata?: unknown }, userId: string | undefined, batchSize: number): string {
  const fields: unknown[] = [message.role, messageText(message), message.metadata ?? null, userId ?? null, batchSize];
  // A plain text message hashes as it did before messages had more than text.
  const ext = messageExtension(message);
  if (ext !== undefined) fields.push(ext);
  return createHash('sha256')
    .update(JSON.stringify(fields))
    .digest('base64url')
    .slice(0, 22);
}

/**
 * Append keys: `k:<client key>#<index in batch>/<batch size>` for a client's idempotency key,
 * `n:<random>` for a writer's nonce. The idempotency entry of a client key is the key without
 * the batch size (so a retry with another batch size finds it, and is a mismatch).
 */
export function isClientKey(key: string | undefined): key is string {
  return key !== undefined && key.startsWith('k:');
}

/**
 * What a void names: one journaled record, by id, append key and the epoch its id was given
 * in. A retry of a client key may journal the same id and key again under a later epoch; that
 * record is not the voided one.
 */
export function voidIdentity(turnId: number, key: string, epoch: number | undefined): string {
  return `${key}#${turnId}#${epoch ?? 0}`;
}

export function clientKey(key: string, index: number, batchSize: number): { appendKey: string; entry: string } {
  const entry = `k:${key}#${index}`;
  return { appendKey: `${entry}/${batchSize}`, entry };
}

/** The idempotency entry and batch size of a client append key. */
export function parseClientKey(appendKey: string): { entry: string; batchSize: number } {
  const slash = appendKey.lastIndexOf('/');
  return slash > appendKey.lastIndexOf('#') ? { entry: appendKey.slice(0, slash), batchSize: Number(appendKey.slice(slash + 1)) } : { entry: appendKey, batchSize: 1 };
}

interface SessionRecords {
  ref: SessionRef;
  /** turn id → candidate records (distinct keys), voided ones removed. */
  turns: Map<number, TurnRecord[]>;
  /** Highest `upTo` of whole-session delete records. */
  deletedUpTo: number;
}

/**
 * Every unarchived record of every instance's journal, read once per observed epoch change,
 * after the change was observed: every record that could ever be acknowledged under an older
 * epoch was journaled before its writer's confirm, and that confirm ran before the loss, so it
 * is in this read. Records written later belong to the new epoch and live in the hot tier.
 */
export class RecoveryIndex {
  private readonly sessions = new Map<string, SessionRecords>();

  /** From every instance's journal in a data directory (fs driver), plus `extra`. */
  static async build(dataDir: string | undefined, extra: Iterable<JournalRecord> = []): Promise<RecoveryIndex> {
    const all: JournalRecord[] = [];
    if (dataDir !== undefined) for (const { records } of await readAllJournals(journalRoot(dataDir))) for (const r of records) all.push(r);
    for (const r of extra) all.push(r);
    return RecoveryIndex.fromRecords(all);
  }

  /** From records of any journal store (`JournalStore.readPending`), each instance's in write order. */
  static fromRecords(all: readonly JournalRecord[]): RecoveryIndex {
    const index = new RecoveryIndex();
    const voids = new Set<string>();
    for (const r of all) if (r.type === 'void') voids.add(`${sessionKey(r)}\u0000${voidIdentity(r.turnId, r.key, r.epoch)}`);
    for (const r of all) {
      if (r.type === 'void') continue;
      const entry = index.entry(r);
      if (r.type === 'delete') {
        if (r.turnIds === undefined) entry.deletedUpTo = Math.max(entry.deletedUpTo, r.upTo ?? Number.MAX_SAFE_INTEGER);
        else for (const id of r.turnIds) entry.turns.delete(id);
        continue;
      }
      if (r.key !== undefined && voids.has(`${sessionKey(r)}\u0000${voidIdentity(r.turnId, r.key, r.epoch)}`)) continue;
      const list = entry.turns.get(r.turnId);
      if (!list) entry.turns.set(r.turnId, [r]);
      else {
        // The same record journaled twice (a retry journals the turn it found) or again under a
        // later epoch: one candidate, the later epoch's.
        const same = list.findIndex((x) => x.key !== undefined && x.key === r.key);
        if (same < 0) list.push(r);
        else if ((r.epoch ?? 0) > (list[same]!.epoch ?? 0)) list[same] = r;
      }
    }
    return index;
  }

  private entry(ref: SessionRef): SessionRecords {
    const key = sessionKey(ref);
    let e = this.sessions.get(key);
    if (!e) this.sessions.set(key, (e = { ref: { tenant: ref.tenant, sessionId: ref.sessionId }, turns: new Map(), deletedUpTo: 0 }));
    return e;
  }

  /**
   * The session's records above `floor`, one per id (the later epoch wins), ascending; and the
   * deletion floor the journals know of.
   */
  turns(ref: SessionRef, floor: number): { turns: TurnRecord[]; deletedUpTo: number } {
    const e = this.sessions.get(sessionKey(ref));
    if (!e) return { turns: [], deletedUpTo: 0 };
    const cut = Math.max(floor, e.deletedUpTo);
    const out: TurnRecord[] = [];
    for (const [id, list] of e.turns) {
      if (id <= cut) continue;
      let best = list[0]!;
      for (const r of list) if ((r.epoch ?? 0) > (best.epoch ?? 0)) best = r;
      out.push(best);
    }
    out.sort((a, b) => a.turnId - b.turnId);
    return { turns: out, deletedUpTo: e.deletedUpTo === Number.MAX_SAFE_INTEGER ? 0 : e.deletedUpTo };
  }

  has(ref: SessionRef): boolean {
    const e = this.sessions.get(sessionKey(ref));
    return e !== undefined && e.turns.size > 0;
  }

  /** Sessions with records, for eager re-seeding after a loss. */
  refs(): SessionRef[] {
    return [...this.sessions.values()].filter((e) => e.turns.size > 0).map((e) => e.ref);
  }

  /** After the session was re-seeded or deleted, its records are in the hot tier or gone. */
  forget(ref: SessionRef): void {
    this.sessions.delete(sessionKey(ref));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }
}
