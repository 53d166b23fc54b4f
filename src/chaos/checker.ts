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
 *    the hot tier's loss explains. docs/consistency.md: an id is lost only when its write was
 *    never acknowledged and Redis lost its data before the turn was archived, so the missing ids
 *    of a session may not outnumber the messages of its writes that were in flight, without an
 *    answer, across a Redis FLUSHALL or restart;
 *  - foreign: stored content this client never sent to that session;
 *  - readError: the session could not be read back at all.
 * An unacknowledged message may be stored or not, but at most once.
 */
import type { StoredTurn } from './readback.js';
import type { DeleteOp, LogicalWrite } from './workload.js';
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

/**
 * The writes around a gap: the neighbours holding the ids on either side, and the writes of
 * the session that were in flight between them and took more than one attempt (the likely
 * holders of the missing ids).
 */
function gapSuspects(writes: LogicalWrite[], before: LogicalWrite | undefined, after: LogicalWrite | undefined): string[] {
  const from = before?.firstStartMs ?? 0;
  const to = after?.ackMs ?? Infinity;
  const inFlight = writes.filter((w) => w !== before && w !== after && w.attempts > 1 && w.firstStartMs <= to && w.lastEndMs >= from);
  return [...(before ? [before.key] : []), ...inFlight.slice(0, 4).map((w) => w.key), ...(after ? [after.key] : [])];
}

export interface CheckInput {
  phase: string;
  writes: LogicalWrite[];
  deletes: DeleteOp[];
  /** When the hot tier lost its data (FLUSHALL, Redis restart), ms on the log's clock. */
  losses?: number[];
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
    // Messages whose attempts went unanswered across a loss of the hot tier: each may have
    // taken an id that the loss emptied.
    const losses = input.losses ?? [];
    let lostBudget = 0;
    for (const w of writes) {
      const unanswered = w.attempts - (w.ackMs === null ? 0 : 1);
      if (unanswered <= 0) continue;
      const end = w.ackMs ?? w.lastEndMs;
      if (losses.some((at) => at >= w.firstStartMs && at <= end)) lostBudget += unanswered * w.messages.length;
    }
    let prev = 0;
    const gaps: Array<{ from: number; to: number; next: number; before: number }> = [];
    for (const t of turns) {
      if (t.turnId > prev + 1 && t.turnId - 1 > horizon) gaps.push({ from: Math.max(prev + 1, horizon + 1), to: t.turnId - 1, next: t.turnId, before: prev });
      prev = Math.max(prev, t.turnId);
    }
    const missing = gaps.reduce((n, g) => n + g.to - g.from + 1, 0);
    if (missing > lostBudget) {
      for (const g of gaps) {
        add('gap', session, `${g.from}-${g.to}`, `turn ids ${g.from}..${g.to} missing before ${g.next}${deletes.length ? ` (deletes explain ids up to ${horizon})` : ' (never deleted)'}; ${missing} missing ids, ${lostBudget} unanswered messages across a Redis loss`, gapSuspects(writes, ackedAt.get(g.before), ackedAt.get(g.next)));
      }
    }
  }
  return out;
}
