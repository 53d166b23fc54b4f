/**
 * One HTTP attempt against one instance, recorded in the run log before it is sent and
 * completed when it ends: answered (status, error code, turn ids) or not (timeout, refused,
 * cut). Timeouts are short on purpose: a SIGSTOPped instance accepts connections and never
 * answers, and the client must give up and retry elsewhere, as a real client would.
 */
import type { StrataInstance, Tenant } from './cluster.js';
import type { Attempt, Op, RunLog } from './log.js';

export interface SendRequest {
  op: Op;
  method: string;
  /** Path with query, e.g. `/v1/sessions/s1/messages?after=0&limit=10`. */
  path: string;
  instance: StrataInstance;
  tenant: Tenant | null;
  session: string | null;
  key: string | null;
  attempt: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
  timeoutMs: number;
}

export interface Answer {
  attempt: Attempt;
  /** The parsed JSON body, or null (no answer, empty or not JSON). */
  json: unknown;
}

function classify(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timeout';
  const code = e.cause?.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code !== '' || e.message === 'fetch failed' || e.message === 'terminated') return `cut${code ? ` ${code}` : ''}`;
  // fetch itself refused the request (a header value it will not send): nothing reached a server.
  return `unsendable: ${e.message ?? String(err)}`;
}

function turnIdsOf(json: unknown): number[] | null {
  if (typeof json !== 'object' || json === null) return null;
  const body = json as { turnId?: unknown; turnIds?: unknown };
  if (typeof body.turnId === 'number') return [body.turnId];
  if (Array.isArray(body.turnIds) && body.turnIds.every((id) => typeof id === 'number')) return body.turnIds as number[];
  return null;
}

function errorCodeOf(json: unknown): string | null {
  const code = (json as { error?: { code?: unknown } } | null)?.error?.code;
  return typeof code === 'string' ? code : null;
}

export async function send(log: RunLog, req: SendRequest): Promise<Answer> {
  const attempt = log.begin({
    op: req.op,
    method: req.method,
    url: req.path,
    instance: req.instance.index,
    tenant: req.tenant?.name ?? null,
    session: req.session,
    key: req.key,
    attempt: req.attempt,
  });
  const headers: Record<string, string> = { ...(req.tenant ? { authorization: `Bearer ${req.tenant.key}` } : {}), ...req.headers };
  let json: unknown = null;
  try {
    const res = await fetch(`${req.instance.base}${req.path}`, {
      method: req.method,
      headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    // The body is part of the answer: a connection cut while it streams is no answer at all.
    const text = await res.text();
    attempt.status = res.status;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = null;
    }
    attempt.code = errorCodeOf(json);
    if (res.status >= 200 && res.status < 300) attempt.turnIds = turnIdsOf(json);
  } catch (err) {
    attempt.error = classify(err);
  }
  log.end(attempt);
  return { attempt, json };
}

/** Worth another try with the same idempotency key: no answer, outage, backpressure, key in progress. */
export function retryable(a: Attempt): boolean {
  if (a.status === null) return !(a.error ?? '').startsWith('unsendable');
  return a.status >= 500 || a.status === 429 || a.status === 409;
}

export const isSuccess = (a: Attempt): boolean => a.status !== null && a.status >= 200 && a.status < 300;
