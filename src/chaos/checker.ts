/**
 * The invariants, checked against what the cluster returns after the faults:
 *  - lost: an acknowledged message is missing, though no delete of its session could have
 *    removed it (none was sent after its request started, or all of them ended before);
 *  - duplicated: a message (unique content) is stored more than once;
 *  - conflict: a turn id acknowledged for one message holds another, a message is stored at
 *    another id than the one acknowledged, two acknowledgements share an id, or ids repeat;
 *  - resurrected: a message acknowledged before a delete of its session was sent (and that
 *    delete was answered) is still there;
 *  - gap: turn ids missing between stored ones (or before the first) that neither a delete nor
 *    the hot tier's loss explains. docs/consistency.md: an id stays empty only when no call was
 *    ever answered with it and Redis lost its data while the id was taken but not yet confirmed
 *    (journaled and checked against the hot tier's epoch). That is a window on the SERVER's
 *    clock: it includes answered calls (one call may lose its first id to a FLUSHALL, void it and
 *    answer a later one) and outlives the client's patience (a paused instance resumes and
 *    processes a request whose client timed out). So the missing ids of a session may not
 *    outnumber, per message, the Redis losses that overlapped a window in which one of its
 *    writes' attempts could hold an unconfirmed id (`burnableIds`);
 *  - foreign: stored content this client never sent to that session;
 *  - readError: the session could not be read back at all.
 * An unacknowledged message may be stored or not, but at most once.
 */
import type { StoredTurn } from './readback.js';
import type { DeleteOp, LogicalWrite, WriteTry } from './workload.js';
import { messageIdentity, sessionKey } from './workload.js';

export type ViolationKind = 'lost' | 'duplicated' | 'conflict' | 'resurrected' | 'gap' | 'foreign' | 'readError';

export interface Violation {
  kind: ViolationKind;
  /** `tenant/session`. */
  session: string;
  /** What the violation is about (a content or an id), unique per kind and session. */
  subject: string;
  detail: string;
  /** Idempotency keys of the writes involved, to pull their attempts from the log. */
  keys: string[];
  phase: string;
}

type Expect = 'present' | 'gone' | 'either';

/** Where an acknowledged write must be, given the deletes of its session and their windows. */
function expectation(write: LogicalWrite, deletes: DeleteOp[]): Expect {
  const ackMs = write.ackMs!;
  // Answered after the ack was received: the write was committed before the delete started.
  if (deletes.some((d) => d.acked && d.startMs > ackMs)) return 'gone';
  // A delete whose window [start, answer] (unanswered: open) overlaps the write's is a race.
  const races = (d: DeleteOp): boolean => {
    const end = d.acked ? d.endMs : Infinity;
    return d.startMs <= ackMs ? end >= write.firstStartMs : !d.acked;
  };
  if (deletes.some(races)) return 'either';
  return 'present';
}

/** A loss of the hot tier's data, from the fault's start to its end (an instant for a bare number). */
export type Loss = number | { startMs: number; endMs: number };

/** When an instance's process was SIGKILLed: nothing it was still processing goes on after. */
export interface Stop {
  instance: number;
  atMs: number;
}

/**
 * When an attempt may hold a turn id that the hot tier assigned but that is not confirmed yet
 * (docs/consistency.md, "Acknowledging a turn"), on the server's clock:
 *  - answered 2xx: until the answer (its ids were confirmed before it);
 *  - answered otherwise (a 503 after the id was taken): until a retry got the write
 *    acknowledged (the retry finds the key and makes that id durable), or for ever;
 *  - unanswered: the same, and also until its instance stopped processing it — a SIGKILL; a
 *    paused instance resumes and processes the request after its client gave up;
 *  - refused (nothing was sent to a server): never.
 */
function holdWindow(t: WriteTry, w: LogicalWrite, stops: readonly Stop[]): [number, number] | null {
  if (!t.reached) return null;
  const acked = w.ackMs ?? Infinity;
  if (t.ok) return [t.startMs, t.endMs];
  if (t.answered) return [t.startMs, acked];
  const stop = stops.filter((s) => s.instance === t.instance && s.atMs >= t.startMs).reduce((min, s) => Math.min(min, s.atMs), Infinity);
  return [t.startMs, Math.max(acked, stop)];
}

/**
 * How many ids the write may have left empty: per message, one per Redis loss overlapping a
 * window in which one of its attempts could hold an unconfirmed id. Writes recorded without
 * their attempts (a core called in-process: server and client share one clock) count each
 * attempt over the whole call, until acknowledged.
 */
export function burnableIds(w: LogicalWrite, losses: readonly Loss[], stops: readonly Stop[]): number {
  const windows: Array<[number, number]> = [];
  if (w.tries) {
    for (const t of w.tries) {
      const window = holdWindow(t, w, stops);
      if (window) windows.push(window);
    }
  } else for (let i = 0; i < w.attempts; i++) windows.push([w.firstStartMs, w.ackMs ?? Infinity]);
  let n = 0;
  for (const [from, to] of windows) {
    for (const loss of losses) {
      const [start, end] = typeof loss === 'number' ? [loss, loss] : [loss.startMs, loss.endMs];
      if (start <= to && end >= from) n += w.messages.length;
    }
  }
  return n;
}

/**
 * The writes around a gap: the neighbours holding the ids on either side, and the writes of
 * the session in flight between them that may have left ids empty (the likely holders of the
 * missing ids).
 */
function gapSuspects(writes: LogicalWrite[], burnable: Map<LogicalWrite, number>, before: LogicalWrite | undefined, after: LogicalWrite | undefined): string[] {
  const from = before?.firstStartMs ?? 0;
  const to = after?.ackMs ?? Infinity;
  const inFlight = writes.filter((w) => w !== before && w !== after && (burnable.get(w) ?? 0) > 0 && w.firstStartMs <= to && (w.ackMs ?? Infinity) >= from);
  return [...(before ? [before.key] : []), ...inFlight.slice(0, 4).map((w) => w.key), ...(after ? [after.key] : [])];
}

export interface CheckInput {
  phase: string;
  writes: LogicalWrite[];
  deletes: DeleteOp[];
  /** When the hot tier lost its data (FLUSHALL, Redis restart), ms on the log's clock. */
  losses?: Loss[];
  /** When instances were SIGKILLed (bounds how long an unanswered attempt may still act). */
  stops?: Stop[];
  stored: Map<string, { ok: true; turns: StoredTurn[] } | { ok: false; error: string }>;
}

export function check(input: CheckInput): Violation[] {
  const out: Violation[] = [];
  const add = (kind: ViolationKind, session: string, subject: string, detail: string, keys: string[] = []): void => {
    out.push({ kind, session, subject, detail, keys, phase: input.phase });
  };
  const origin = new Map<string, { write: LogicalWrite; j: number }>();
  for (const write of input.writes) write.messages.forEach((m, j) => origin.set(messageIdentity(m), { write, j }));
  const writesBySession = new Map<string, LogicalWrite[]>();
  for (const w of input.writes) writesBySession.set(sessionKey(w.session), [...(writesBySession.get(sessionKey(w.session)) ?? []), w]);
  const deletesBySession = new Map<string, DeleteOp[]>();
  for (const d of input.deletes) deletesBySession.set(sessionKey(d.session), [...(deletesBySession.get(sessionKey(d.session)) ?? []), d]);

  for (const [session, result] of input.stored) {
    if (!result.ok) {
      add('readError', session, 'read', result.error);
      continue;
    }
    const turns = result.turns;
    const writes = writesBySession.get(session) ?? [];
    const deletes = deletesBySession.get(session) ?? [];
    const short = (s: string): string => JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);

    const byId = new Map<number, StoredTurn>();
    const byContent = new Map<string, number[]>();
    for (let i = 0; i < turns.length; i++) {
      const t = turns[i]!;
      if (i > 0 && t.turnId <= turns[i - 1]!.turnId) add('conflict', session, `order:${t.turnId}`, `turn ids out of order or repeated: ${turns[i - 1]!.turnId} then ${t.turnId}`);
      byId.set(t.turnId, t);
      const tid = messageIdentity(t);
      byContent.set(tid, [...(byContent.get(tid) ?? []), t.turnId]);
      const o = origin.get(tid);
      if (o === undefined || sessionKey(o.write.session) !== session) add('foreign', session, `id:${t.turnId}`, `turn ${t.turnId} holds ${short(tid)}, never sent to this session`, o ? [o.write.key] : []);
      else if (o.write.messages[o.j]!.role !== t.role) add('conflict', session, `role:${t.turnId}`, `turn ${t.turnId}: role ${t.role}, sent as ${o.write.messages[o.j]!.role}`, [o.write.key]);
    }
    for (const [content, ids] of byContent) {
      if (ids.length > 1) add('duplicated', session, content, `${short(content)} stored ${ids.length} times, at turn ids ${ids.join(', ')}`, origin.has(content) ? [origin.get(content)!.write.key] : []);
    }

    // Acknowledgements among themselves: ids are never reused, even across a delete.
    const ackedAt = new Map<number, LogicalWrite>();
    for (const w of writes) {
      if (w.turnIds === null) continue;
      w.turnIds.forEach((id, j) => {
        const other = ackedAt.get(id);
        if (other !== undefined && other !== w) add('conflict', session, `id:${id}`, `turn id ${id} acknowledged twice: to ${other.key} and to ${w.key} (${short(messageIdentity(w.messages[j]!))})`, [other.key, w.key]);
        ackedAt.set(id, w);
      });
    }

    for (const w of writes) {
      if (w.ackMs === null || w.turnIds === null) continue;
      const expect = expectation(w, deletes);
      w.messages.forEach((m, j) => {
        const id = w.turnIds![j]!;
        const mid = messageIdentity(m);
        const found = byContent.get(mid) ?? [];
        if (found.length === 0 && expect === 'present') add('lost', session, mid, `${short(mid)} acknowledged at turn ${id} (${w.key}) is missing`, [w.key]);
        if (found.length > 0 && expect === 'gone') add('resurrected', session, mid, `${short(mid)} acknowledged at turn ${id} before an answered delete, still stored at ${found.join(', ')}`, [w.key]);
        if (found.length > 0 && !found.includes(id)) add('conflict', session, mid, `${short(mid)} acknowledged at turn ${id}, stored at ${found.join(', ')}`, [w.key]);
        const atId = byId.get(id);
        if (atId !== undefined && messageIdentity(atId) !== mid) {
          const holder = origin.get(messageIdentity(atId))?.write.key;
          add('conflict', session, `id:${id}`, `turn id ${id} acknowledged for ${short(mid)} (${w.key}) holds ${short(messageIdentity(atId))}${holder ? ` (${holder})` : ''}`, holder ? [w.key, holder] : [w.key]);
        }
      });
    }

    // Ids a delete may have removed: up to the highest id acknowledged for a write that started
    // before the delete was answered (unanswered deletes: any acknowledged id).
    let horizon = 0;
    for (const d of deletes) {
      const end = d.acked ? d.endMs : Infinity;
      for (const w of writes) if (w.turnIds !== null && w.firstStartMs <= end) horizon = Math.max(horizon, ...w.turnIds);
    }
    // Ids the session's writes may have left empty across a loss of the hot tier.
    const burnable = new Map(writes.map((w) => [w, burnableIds(w, input.losses ?? [], input.stops ?? [])]));
    let lostBudget = 0;
    for (const n of burnable.values()) lostBudget += n;
    let prev = 0;
    const gaps: Array<{ from: number; to: number; next: number; before: number }> = [];
    for (const t of turns) {
      if (t.turnId > prev + 1 && t.turnId - 1 > horizon) gaps.push({ from: Math.max(prev + 1, horizon + 1), to: t.turnId - 1, next: t.turnId, before: prev });
      prev = Math.max(prev, t.turnId);
    }
    const missing = gaps.reduce((n, g) => n + g.to - g.from + 1, 0);
    if (missing > lostBudget) {
      for (const g of gaps) {
        add('gap', session, `${g.from}-${g.to}`, `turn ids ${g.from}..${g.to} missing before ${g.next}${deletes.length ? ` (deletes explain ids up to ${horizon})` : ' (never deleted)'}; ${missing} missing ids, ${lostBudget} ids writes in flight across a Redis loss may have left empty`, gapSuspects(writes, burnable, ackedAt.get(g.before), ackedAt.get(g.next)));
      }
    }
  }
  return out;
}
