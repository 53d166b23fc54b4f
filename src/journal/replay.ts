import type { SessionRef } from '../types.js';
import type { Journal } from './journal.js';
import type { TurnRecord } from './types.js';

/** Where replay puts records. The archive is the usual sink. */
export interface ReplaySink {
  /**
   * Must be idempotent: turns at or below the session's archived high-water mark are skipped
   * (`ArchiveStore.append` does this), since a crash after archiving and before the checkpoint
   * replays them again. Turns arrive in ascending turn id order per session.
   */
  archiveTurns(ref: SessionRef, turns: TurnRecord[]): Promise<void>;
  /** Applies a journaled turn deletion. Must accept ids that the sink does not hold. */
  deleteTurns?(ref: SessionRef, turnIds: number[]): Promise<void>;
  /** Applies a journaled session deletion. Must accept a session the sink does not hold. */
  deleteSession?(ref: SessionRef): Promise<void>;
}

export interface ReplayOptions {
  /** Turns buffered over all sessions before they are flushed to the sink. Default 10,000. */
  maxBufferedTurns?: number;
}

export interface ReplaySummary {
  records: number;
  turns: number;
  deletes: number;
  sessions: number;
  /** The torn tail that `Journal.open` cut off, if any. */
  tornTail: { file: string; offset: number; bytes: number } | null;
}

/**
 * Replays every record of previous runs into `sink`, then calls `journal.markReplayed()` so
 * `safeCheckpoint()` may move past them.
 *
 * Turns are buffered per session and handed over in groups (one archive segment per group
 * rather than per record). A delete record first drops the deleted turns still in the buffer,
 * flushes the rest of that session's buffer, then calls `deleteTurns`/`deleteSession` for
 * turns that reached the sink earlier (in this replay or a previous run), so a deleted turn is
 * never resurrected. Without those sink methods, only buffered turns can be dropped.
 */
export async function replayInto(journal: Journal, sink: ReplaySink, options: ReplayOptions = {}): Promise<ReplaySummary> {
  const maxBuffered = options.maxBufferedTurns ?? 10_000;
  const buffers = new Map<string, { ref: SessionRef; turns: TurnRecord[] }>();
  const sessions = new Set<string>();
  let buffered = 0;
  const summary: ReplaySummary = { records: 0, turns: 0, deletes: 0, sessions: 0, tornTail: journal.recovery.tornTail };

  const flush = async (key: string): Promise<void> => {
    const entry = buffers.get(key);
    if (!entry) return;
    buffers.delete(key);
    buffered -= entry.turns.length;
    if (entry.turns.length === 0) return;
    // Journal order is call order; sorting guards callers that appended a session's turns out of order.
    entry.turns.sort((a, b) => a.turnId - b.turnId);
    await sink.archiveTurns(entry.ref, entry.turns);
  };

  for await (const batch of journal.replayBatches()) {
    for (const { record } of batch) {
      summary.records++;
      const key = `${record.tenant}/${record.sessionId}`;
      sessions.add(key);
      if (record.type === 'turn') {
        summary.turns++;
        let entry = buffers.get(key);
        if (!entry) buffers.set(key, (entry = { ref: { tenant: record.tenant, sessionId: record.sessionId }, turns: [] }));
        entry.turns.push(record);
        if (++buffered >= maxBuffered) for (const k of [...buffers.keys()]) await flush(k);
        continue;
      }
      if (record.type === 'void') {
        const entry = buffers.get(key);
        if (entry) {
          const kept = entry.turns.filter((t) => !(t.turnId === record.turnId && t.key === record.key));
          buffered -= entry.turns.length - kept.length;
          entry.turns = kept;
        }
        continue;
      }
      summary.deletes++;
      const ref = { tenant: record.tenant, sessionId: record.sessionId };
      const entry = buffers.get(key);
      if (entry) {
        const ids = record.turnIds === undefined ? null : new Set(record.turnIds);
        const kept = ids === null ? [] : entry.turns.filter((t) => !ids.has(t.turnId));
        buffered -= entry.turns.length - kept.length;
        entry.turns = kept;
        await flush(key);
      }
      if (record.turnIds === undefined) await sink.deleteSession?.(ref);
      else await sink.deleteTurns?.(ref, [...record.turnIds]);
    }
  }
  for (const k of [...buffers.keys()]) await flush(k);
  summary.sessions = sessions.size;
  journal.markReplayed();
  return summary;
}
