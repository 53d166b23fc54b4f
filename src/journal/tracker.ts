import type { JournalRecord, Lsn } from './types.js';

export function compareLsn(a: Lsn, b: Lsn): number {
  return a.file - b.file || a.offset - b.offset;
}

interface Pending {
  lsn: Lsn;
  /** Turn id, or -1 for a delete record. */
  turnId: number;
}

/**
 * Knows which journal records are not yet safely in the archive, so the owner can compute a
 * checkpoint that never drops an unarchived record.
 *
 * How it works: every record the journal writes is added here (in LSN order) under its
 * session. Turn records leave when the owner calls `markArchived(tenant, session, upTo)` after
 * the archive holds them; a delete record leaves when `markDeleteApplied` says the archive
 * applied it. A delete record also drops the pending turns it deletes (they will never be
 * archived, and replay would delete them anyway). `lowest()` is the minimum over sessions of
 * each session's oldest pending record: every record before it is archived, so it is a safe
 * checkpoint. With nothing pending the safe checkpoint is the end of what was written.
 *
 * Cost: `add` is O(1); a mark is O(pending records of that session) (compaction archives a
 * prefix, which is removed in one slice); `lowest()` is O(sessions with pending records),
 * called once per checkpoint, not per append.
 */
export class ArchiveTracker {
  private readonly sessions = new Map<string, Pending[]>();
  private count = 0;

  /** Records not yet marked archived (turns) or applied (deletes). */
  get size(): number {
    return this.count;
  }

  add(record: JournalRecord, lsn: Lsn): void {
    const key = sessionKey(record.tenant, record.sessionId);
    let list = this.sessions.get(key);
    if (record.type === 'void') {
      // The voided turn will never be archived; the void itself needs no archiving either.
      this.remove(record.tenant, record.sessionId, (p) => p.turnId === record.turnId);
      return;
    }
    if (record.type === 'delete') {
      if (list) {
        const ids = record.turnIds === undefined ? null : new Set(record.turnIds);
        const kept = list.filter((p) => p.turnId === -1 || (ids !== null && !ids.has(p.turnId)));
        this.count -= list.length - kept.length;
        list = kept;
        this.sessions.set(key, list);
      }
      if (!list) this.sessions.set(key, (list = []));
      list.push({ lsn, turnId: -1 });
      this.count++;
      return;
    }
    if (!list) this.sessions.set(key, (list = []));
    list.push({ lsn, turnId: record.turnId });
    this.count++;
  }

  /** Every turn of the session with id ≤ `upToTurnId` is in the archive. */
  markArchived(tenant: string, sessionId: string, upToTurnId: number): void {
    this.remove(tenant, sessionId, (p) => p.turnId !== -1 && p.turnId <= upToTurnId);
  }

  /** Every delete record journaled so far for the session has been applied to the archive. */
  markDeleteApplied(tenant: string, sessionId: string): void {
    this.remove(tenant, sessionId, (p) => p.turnId === -1);
  }

  /** The session's oldest pending LSN, or null when nothing of it is pending. */
  pending(tenant: string, sessionId: string): Lsn | null {
    return this.sessions.get(sessionKey(tenant, sessionId))?.[0]?.lsn ?? null;
  }

  /** The lowest pending LSN over all sessions, or null when nothing is pending. */
  lowest(): Lsn | null {
    let min: Lsn | null = null;
    for (const list of this.sessions.values()) {
      const first = list[0];
      if (first && (min === null || compareLsn(first.lsn, min) < 0)) min = first.lsn;
    }
    return min;
  }

  private remove(tenant: string, sessionId: string, done: (p: Pending) => boolean): void {
    const key = sessionKey(tenant, sessionId);
    const list = this.sessions.get(key);
    if (!list) return;
    // Fast path: the archived records are a prefix.
    let prefix = 0;
    while (prefix < list.length && done(list[prefix]!)) prefix++;
    let kept = prefix === 0 ? list : list.slice(prefix);
    if (kept.some(done)) kept = kept.filter((p) => !done(p));
    this.count -= list.length - kept.length;
    if (kept.length === 0) this.sessions.delete(key);
    else this.sessions.set(key, kept);
  }
}

function sessionKey(tenant: string, sessionId: string): string {
  // Ids cannot contain '/', so the pair is unambiguous.
  return `${tenant}/${sessionId}`;
}
