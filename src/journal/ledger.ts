import { messageFields } from '../message.js';
import { sessionKey } from '../ids.js';
import type { SessionRef, Turn } from '../types.js';
import type { JournalRecord, TurnRecord } from './types.js';

interface Entry<P> {
  record: TurnRecord;
  position: P;
  /** Read by the replay of a previous run's records (not written by this run). */
  replayed: boolean;
}

interface SessionEntries<P> {
  ref: SessionRef;
  /** Unarchived turn records by turn id, in write order. */
  turns: Map<number, Entry<P>>;
  /** Delete records not yet applied to the archive, in write order. */
  deletes: Array<{ position: P; replayed: boolean }>;
}

/**
 * The one ledger of what an instance journaled and the archive does not hold yet. The journal
 * driver adds every record it writes or replays (with its position, where the driver has one);
 * the cache marks sessions archived through `JournalStore.markArchived`, and reads it:
 *
 * - to re-seed a session the hot tier lost (its unarchived turns come from here, no journal read);
 * - for backpressure (`size`) and to find sessions that still need archiving (`refs`);
 * - the fs driver's checkpoint is the oldest position still here (`lowest`), so no unarchived
 *   record is ever cut from the journal.
 *
 * A void record drops the turn it names (same id, append key and epoch); a delete record drops
 * the session's turns it deletes and stays until the archive applied it (`markDeleteApplied`).
 *
 * Cost: `add` O(1) (a delete: O(pending turns of the session)); a mark O(pending turns of that
 * session); `lowest` O(sessions with pending records), called per checkpoint, not per append.
 */
export class PendingLedger<P = null> {
  private readonly sessions = new Map<string, SessionEntries<P>>();
  private turnCount = 0;

  constructor(private readonly compare: (a: P, b: P) => number = () => 0) {}

  add(record: JournalRecord, position: P, replayed = false): void {
    const ref = { tenant: record.tenant, sessionId: record.sessionId };
    if (record.type === 'void') {
      const entry = this.sessions.get(sessionKey(ref))?.turns.get(record.turnId);
      if (entry && entry.record.key === record.key && (entry.record.epoch ?? 0) === (record.epoch ?? 0)) this.dropTurns(ref, [record.turnId]);
      return;
    }
    if (record.type === 'delete') {
      if (record.turnIds) this.dropTurns(ref, record.turnIds);
      else this.dropTurns(ref, [...(this.sessions.get(sessionKey(ref))?.turns.keys() ?? [])]);
      this.entries(ref).deletes.push({ position, replayed });
      return;
    }
    const session = this.entries(ref);
    const known = session.turns.get(record.turnId);
    // The same id journaled again (a retry under a later epoch): the newer record is the one a
    // re-seed uses; the older position stays, so a checkpoint never passes either.
    if (known) known.record = (record.epoch ?? 0) >= (known.record.epoch ?? 0) ? record : known.record;
    else {
      session.turns.set(record.turnId, { record, position, replayed });
      this.turnCount++;
    }
  }

  /** The archive holds every turn of the session with id ≤ upTo. */
  markArchived(ref: SessionRef, upTo: number): void {
    const session = this.sessions.get(sessionKey(ref));
    if (!session) return;
    this.dropTurns(
      ref,
      [...session.turns.keys()].filter((id) => id <= upTo),
    );
  }

  /** Every delete record journaled so far for the session was applied to the archive. */
  markDeleteApplied(ref: SessionRef): void {
    const session = this.sessions.get(sessionKey(ref));
    if (!session) return;
    session.deletes = [];
    this.forgetIfEmpty(session);
  }

  /**
   * The records of previous runs are all in the archive or marked as such
   * (`JournalStore.markReplayed`): forgets what is left of them.
   */
  forgetReplayed(): void {
    for (const session of [...this.sessions.values()]) {
      session.deletes = session.deletes.filter((d) => !d.replayed);
      this.dropTurns(
        session.ref,
        [...session.turns.entries()].filter(([, e]) => e.replayed).map(([id]) => id),
      );
      this.forgetIfEmpty(session);
    }
  }

  /** The oldest position of a record still pending, or null when nothing is. */
  lowest(): P | null {
    let min: P | null = null;
    const consider = (p: P | undefined): void => {
      if (p !== undefined && (min === null || this.compare(p, min) < 0)) min = p;
    };
    for (const session of this.sessions.values()) {
      // Write order: the first entry of each list is its oldest.
      consider(session.turns.values().next().value?.position);
      consider(session.deletes[0]?.position);
    }
    return min;
  }

  /** Pending turn records of one session (or of all), in write order. */
  records(ref?: SessionRef): TurnRecord[] {
    if (ref !== undefined) return [...(this.sessions.get(sessionKey(ref))?.turns.values() ?? [])].map((e) => e.record);
    const out: TurnRecord[] = [];
    for (const session of this.sessions.values()) for (const e of session.turns.values()) out.push(e.record);
    return out;
  }

  /** Pending turns of the session, ascending by turn id. */
  turns(ref: SessionRef): Turn[] {
    return this.records(ref).map(recordToTurn).sort((a, b) => a.turnId - b.turnId);
  }

  userId(ref: SessionRef): string | undefined {
    return this.records(ref).find((r) => r.userId)?.userId;
  }

  maxTurnId(ref: SessionRef): number {
    let max = 0;
    for (const id of this.sessions.get(sessionKey(ref))?.turns.keys() ?? []) max = Math.max(max, id);
    return max;
  }

  /** Whether the session has pending turns. */
  has(ref: SessionRef): boolean {
    return (this.sessions.get(sessionKey(ref))?.turns.size ?? 0) > 0;
  }

  /** Sessions with pending turns. */
  refs(): SessionRef[] {
    const out: SessionRef[] = [];
    for (const session of this.sessions.values()) if (session.turns.size > 0) out.push(session.ref);
    return out;
  }

  /** Sessions of one tenant with pending turns owned by `userId`. */
  refsOfUser(tenant: string, userId: string): SessionRef[] {
    return this.refs().filter((ref) => ref.tenant === tenant && this.userId(ref) === userId);
  }

  /** Pending turn records. */
  get size(): number {
    return this.turnCount;
  }

  private entries(ref: SessionRef): SessionEntries<P> {
    const key = sessionKey(ref);
    let session = this.sessions.get(key);
    if (!session) this.sessions.set(key, (session = { ref, turns: new Map(), deletes: [] }));
    return session;
  }

  private dropTurns(ref: SessionRef, turnIds: readonly number[]): void {
    const session = this.sessions.get(sessionKey(ref));
    if (!session) return;
    for (const id of turnIds) if (session.turns.delete(id)) this.turnCount--;
    this.forgetIfEmpty(session);
  }

  private forgetIfEmpty(session: SessionEntries<P>): void {
    if (session.turns.size === 0 && session.deletes.length === 0) this.sessions.delete(sessionKey(session.ref));
  }
}

export function recordToTurn(record: TurnRecord): Turn {
  const turn: Turn = { turnId: record.turnId, ...messageFields(record), createdAt: record.createdAt };
  if (record.metadata !== undefined) turn.metadata = record.metadata;
  return turn;
}
