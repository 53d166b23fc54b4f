/**
 * Reading the cluster back after the faults: flush each session, then read it page by page
 * (`after`/`limit`, a random page size), each page from a random instance, so the answer has
 * to agree across instances and across the hot tier / archive boundary. Outage answers are
 * retried; anything else unexpected is reported, not papered over.
 */
import type { StrataInstance } from './cluster.js';
import { serving } from './cluster.js';
import type { Op, RunLog } from './log.js';
import { isSuccess, retryable, send } from './http.js';
import type { Rng } from './prng.js';
import { sleep } from './prng.js';
import type { SessionRef } from './workload.js';

export interface StoredTurn {
  turnId: number;
  role: string;
  content: unknown;
  tool_calls?: unknown;
  tool_call_id?: string;
}

export type ReadResult = { ok: true; turns: StoredTurn[] } | { ok: false; error: string };

// Outage answers are retried for this long per request: recovery after the final restart
// re-seeds sessions from journals and archive on a loaded machine, but a session that still
// answers 503 after it is stuck, not recovering.
const RETRY_BUDGET_MS = 20_000;

async function call(log: RunLog, instances: StrataInstance[], rng: Rng, op: Op, method: string, path: string, session: SessionRef, timeoutMs: number): Promise<{ status: number | null; json: unknown; error: string }> {
  let last = '';
  const deadline = performance.now() + RETRY_BUDGET_MS;
  for (let attempt = 1; performance.now() < deadline; attempt++) {
    const { attempt: a, json } = await send(log, { op, method, path, instance: rng.pick(serving(instances)), tenant: session.tenant, session: session.id, key: null, attempt, timeoutMs });
    if (isSuccess(a) || a.status === 404 || !retryable(a)) return { status: a.status, json, error: '' };
    last = a.status !== null ? `${a.status} ${a.code ?? ''}` : (a.error ?? '');
    await sleep(Math.min(500, 50 * attempt));
  }
  return { status: null, json: null, error: `no answer within ${RETRY_BUDGET_MS} ms of retries (last: ${last})` };
}

/** POST flush: every unarchived turn of the session goes to the archive now. */
export async function flushSession(log: RunLog, instances: StrataInstance[], rng: Rng, session: SessionRef, timeoutMs: number): Promise<string | null> {
  const r = await call(log, instances, rng, 'flush', 'POST', `/v1/sessions/${session.id}/flush`, session, timeoutMs);
  if (r.status !== null && (r.status < 300 || r.status === 404)) return null;
  return `flush ${session.id}: ${r.status ?? r.error} ${JSON.stringify(r.json)}`;
}

export async function readSession(log: RunLog, instances: StrataInstance[], rng: Rng, session: SessionRef, timeoutMs: number): Promise<ReadResult> {
  const turns: StoredTurn[] = [];
  let after = 0;
  for (let pages = 0; pages < 100_000; pages++) {
    const limit = rng.int(5, 300);
    const r = await call(log, instances, rng, 'read', 'GET', `/v1/sessions/${session.id}/messages?after=${after}&limit=${limit}`, session, timeoutMs);
    // 404: the session does not exist (never written, or deleted and not written again).
    if (r.status === 404 && after === 0) return { ok: true, turns };
    if (r.status !== 200) return { ok: false, error: `GET messages of ${session.id} after ${after}: ${r.status ?? r.error} ${JSON.stringify(r.json).slice(0, 300)}` };
    const page = r.json as { messages?: StoredTurn[]; nextAfter?: number | null };
    if (!Array.isArray(page.messages)) return { ok: false, error: `GET messages of ${session.id}: no messages array` };
    for (const m of page.messages) turns.push({ turnId: m.turnId, role: m.role, content: m.content, ...(m.tool_calls !== undefined ? { tool_calls: m.tool_calls } : {}), ...(m.tool_call_id !== undefined ? { tool_call_id: m.tool_call_id } : {}) });
    if (page.nextAfter === null || page.nextAfter === undefined) return { ok: true, turns };
    if (page.nextAfter <= after) return { ok: false, error: `GET messages of ${session.id}: nextAfter ${page.nextAfter} does not advance past ${after}` };
    after = page.nextAfter;
  }
  return { ok: false, error: `GET messages of ${session.id}: pagination does not end` };
}
