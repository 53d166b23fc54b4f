import { messageFields } from '../message.js';
import type { TurnRecord } from '../journal/types.js';
import type { SessionRef, Turn } from '../types.js';

export function sessionKey(ref: SessionRef): string {
  // NUL cannot occur in validated ids, so the key is unambiguous.
  return `${ref.tenant}\u0000${ref.sessionId}`;
}

interface PendingSession {
  ref: SessionRef;
  /** Unarchived records of this instance's journal, by turn id. */
  records: Map<number, TurnRecord>;
}

/**
 * The journal records this instance wrote (or replayed) that are not yet archived. It is what
 * makes a lost hot tier (Redis flush or restart) recoverable without reading the journal back:
 * seeding a session takes its unarchived turns from here. (Checkpoint positions are the
 * journal's own business: its tracker follows the same `markArchived` calls.)
 */
export class PendingIndex {
  private readonly sessions = new Map<string, PendingSession>();
  private count = 0;

  add(ref: SessionRef, record: TurnRecord): void {
    const key = sessionKey(ref);
    let session = this.sessions.get(key);
    if (!session) {
      session = { ref, records: new Map() };
      this.sessions.set(key, session);
    }
    if (!session.records.has(record.turnId)) this.count++;
    session.records.set(record.turnId, record);
  }

  /** Forgets every record of the session with turn id ≤ upTo (they are archived). */
  markArchived(ref: SessionRef, upTo: number): void {
    const key = sessionKey(ref);
    const session = this.sessions.get(key);
    if (!session) return;
    for (const turnId of session.records.keys()) {
      if (turnId <= upTo) {
        session.records.delete(turnId);
        this.count--;
      }
    }
    if (session.records.size === 0) this.sessions.delete(key);
  }

  dropTurns(ref: SessionRef, turnIds: readonly number[]): void {
    const session = this.sessions.get(sessionKey(ref));
    if (!session) return;
    for (const id of turnIds) if (session.records.delete(id)) this.count--;
    if (session.records.size === 0) this.sessions.delete(sessionKey(ref));
  }

  /** Forgets the record at `turnId` if it is the voided one (same append key and epoch). */
  dropVoided(ref: SessionRef, turnId: number, key: string, epoch: number | undefined): void {
    const record = this.sessions.get(sessionKey(ref))?.records.get(turnId);
    if (record?.key === key && (record.epoch ?? 0) === (epoch ?? 0)) this.dropTurns(ref, [turnId]);
  }

  /** The records of one session (or of all), in no particular order. */
  records(ref?: SessionRef): TurnRecord[] {
    if (ref !== undefined) return [...(this.sessions.get(sessionKey(ref))?.records.values() ?? [])];
    const out: TurnRecord[] = [];
    for (const session of this.sessions.values()) for (const r of session.records.values()) out.push(r);
    return out;
  }

  dropSession(ref: SessionRef): number {
    const key = sessionKey(ref);
    const n = this.sessions.get(key)?.records.size ?? 0;
    this.sessions.delete(key);
    this.count -= n;
    return n;
  }

  /** Unarchived turns of the session, ascending by turn id. */
  turns(ref: SessionRef): Turn[] {
    const session = this.sessions.get(sessionKey(ref));
    if (!session) return [];
    return [...session.records.values()].map(recordToTurn).sort((a, b) => a.turnId - b.turnId);
  }

  userId(ref: SessionRef): string | undefined {
    const session = this.sessions.get(sessionKey(ref));
    if (!session) return undefined;
    for (const record of session.records.values()) if (record.userId) return record.userId;
    return undefined;
  }

  maxTurnId(ref: SessionRef): number {
    const session = this.sessions.get(sessionKey(ref));
    let max = 0;
    if (session) for (const id of session.records.keys()) max = Math.max(max, id);
    return max;
  }

  has(ref: SessionRef): boolean {
    return this.sessions.has(sessionKey(ref));
  }

  refs(): SessionRef[] {
    return [...this.sessions.values()].map((s) => s.ref);
  }

  /** Sessions of one tenant with pending turns owned by `userId`. */
  refsOfUser(tenant: string, userId: string): SessionRef[] {
    return this.refs().filter((ref) => ref.tenant === tenant && this.userId(ref) === userId);
  }

  get size(): number {
    return this.count;
  }
}

export function recordToTurn(record: TurnRecord): Turn {
  const turn: Turn = { turnId: record.turnId, ...messageFields(record), createdAt: record.createdAt };
  if (record.metadata !== undefined) turn.metadata = record.metadata;
  return turn;
}
