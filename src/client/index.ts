/**
 * `@strata-memory/strata/client`: a typed client of Strata's HTTP API over `fetch`, one method
 * per `/v1` route, with the library's own types. It imports nothing of the server at run time
 * (types only, and the error catalog), so it also runs where the service's dependencies do not.
 *
 *   const strata = new StrataClient({ baseUrl: 'http://127.0.0.1:8080', apiKey: process.env.STRATA_API_KEY });
 *   const { turnId } = await strata.addMessage('chat-1', 'user', 'My cat is called Biscuit', { userId: 'ana' });
 *   const context = await strata.getContext('chat-1', { type: 'smart', query: 'pet name', maxTokens: 2000 });
 *
 * Every failure is a `StrataError`: an error answer of the service carries the service's code
 * (`StrataHttpError`, with the HTTP status and the request id); no answer at all (connection
 * refused, timeout, a reply that is not Strata's) is `STRATA_ERR_UNREACHABLE`.
 */
import { ERROR_CATALOG, StrataError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import type { ContextRequest, ContextResult, DeletionReceipt, HealthReport, NewMessage, SearchHit, SessionInfo } from '../cache/api.js';
import type { Role, Turn } from '../types.js';

export type { ContextRequest, ContextResult, DeletionReceipt, HealthReport, NewMessage, SearchHit, SessionInfo, Role, Turn };

export interface StrataClientOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  baseUrl: string | URL;
  /** Sent as `Authorization: Bearer <apiKey>`; omit when the service runs without keys. */
  apiKey?: string;
  /** Per-request timeout in milliseconds. Default 30 000; 0 turns it off. */
  timeoutMs?: number;
  /** Headers added to every request. */
  headers?: Record<string, string>;
  /** The fetch implementation. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** Options of every call. */
export interface CallOptions {
  /** Cancels the request (besides the client's timeout). */
  signal?: AbortSignal;
  /** Sent as `x-request-id` (1–128 characters of `A-Za-z0-9._:-`); the service logs it and echoes it. */
  requestId?: string;
}

export interface AppendOptions extends CallOptions {
  /** Owner of the session, recorded on its first message. */
  userId?: string;
  /**
   * Sent as `Idempotency-Key`: a retry with the same key answers the first call's turn ids
   * (on any instance, for the service's idempotency window) and stores nothing twice.
   */
  idempotencyKey?: string;
}

/** The single-message form of `addMessage` also takes the message's metadata. */
export interface AddMessageOptions extends AppendOptions {
  metadata?: NewMessage['metadata'];
}

export interface MessagesPage {
  messages: Turn[];
  /** Pass as `after` for the next page; null at the end. */
  nextAfter: number | null;
}

export interface SessionsPage {
  sessions: SessionInfo[];
  /** Pass as `cursor` for the next page; null at the end. */
  nextCursor: string | null;
}

export type SearchScope = { sessionId: string; excludeRecent?: boolean } | { userId: string };

/** A failure the service answered: its code, message and details, plus the HTTP status and request id. */
export class StrataHttpError extends StrataError {
  readonly httpStatus: number;
  /** The `x-request-id` of the answer: quote it when reading the service's logs. */
  readonly requestId: string | null;

  constructor(code: ErrorCode, message: string, httpStatus: number, requestId: string | null, details: Record<string, unknown> | undefined) {
    super(code, message, details === undefined ? {} : { details });
    this.name = 'StrataHttpError';
    this.httpStatus = httpStatus;
    this.requestId = requestId;
  }
}

type Query = Record<string, string | number | undefined>;

interface Request {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  query?: Query;
  json?: unknown;
  bytes?: Uint8Array;
  headers?: Record<string, string>;
  options?: CallOptions | undefined;
}

const isErrorCode = (code: unknown): code is ErrorCode => typeof code === 'string' && Object.hasOwn(ERROR_CATALOG, code);
const segment = (id: string): string => encodeURIComponent(id);

export class StrataClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: StrataClientOptions) {
    const base = new URL(String(options.baseUrl));
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new StrataError('STRATA_ERR_VALIDATION', `baseUrl: expected an http(s) URL, received ${JSON.stringify(String(options.baseUrl))}`);
    this.base = base.href.replace(/\/+$/, '');
    this.headers = { ...options.headers, ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  /** Appends one message (`POST /v1/sessions/{id}/messages`). */
  addMessage(sessionId: string, role: Role, content: NewMessage['content'], options?: AddMessageOptions): Promise<{ turnId: number }>;
  addMessage(sessionId: string, message: NewMessage, options?: AppendOptions): Promise<{ turnId: number }>;
  addMessage(sessionId: string, roleOrMessage: Role | NewMessage, contentOrOptions?: NewMessage['content'] | AppendOptions, maybeOptions?: AddMessageOptions): Promise<{ turnId: number }> {
    let message: NewMessage;
    let options: AddMessageOptions | undefined;
    if (typeof roleOrMessage === 'string') {
      options = maybeOptions;
      message = { role: roleOrMessage, content: contentOrOptions as NewMessage['content'], ...(options?.metadata !== undefined ? { metadata: options.metadata } : {}) } as NewMessage;
    } else {
      message = roleOrMessage;
      options = contentOrOptions as AppendOptions | undefined;
    }
    return this.call({ method: 'POST', path: `/v1/sessions/${segment(sessionId)}/messages`, json: { ...message, ...(options?.userId !== undefined ? { userId: options.userId } : {}) }, headers: idempotency(options), options });
  }

  /** Appends a batch, all or nothing (`POST /v1/sessions/{id}/messages` with `{messages}`). */
  addMessages(sessionId: string, messages: readonly NewMessage[], options?: AppendOptions): Promise<{ turnIds: number[] }> {
    return this.call({ method: 'POST', path: `/v1/sessions/${segment(sessionId)}/messages`, json: { messages, ...(options?.userId !== undefined ? { userId: options.userId } : {}) }, headers: idempotency(options), options });
  }

  /** Turns after `after`, in order, at most `limit` (≤ 1000, default 100) (`GET /v1/sessions/{id}/messages`). */
  getMessages(sessionId: string, page: { after?: number; limit?: number } = {}, options?: CallOptions): Promise<MessagesPage> {
    return this.call({ method: 'GET', path: `/v1/sessions/${segment(sessionId)}/messages`, query: { after: page.after, limit: page.limit }, options });
  }

  /** Context for the next LLM call (`POST /v1/sessions/{id}/context`). */
  getContext(sessionId: string, request: Omit<ContextRequest, 'tenant'>, options?: CallOptions): Promise<ContextResult> {
    return this.call({ method: 'POST', path: `/v1/sessions/${segment(sessionId)}/context`, json: request, options });
  }

  /**
   * Hybrid search over one session (`POST /v1/sessions/{id}/search`) or over every session of a
   * user (`POST /v1/search`), like the library's `searchDiskHistory`.
   */
  async searchDiskHistory(query: string, k: number, scope: SearchScope, options?: CallOptions): Promise<SearchHit[]> {
    const reply =
      'sessionId' in scope
        ? await this.call<{ hits: SearchHit[] }>({ method: 'POST', path: `/v1/sessions/${segment(scope.sessionId)}/search`, json: { query, k, ...(scope.excludeRecent !== undefined ? { excludeRecent: scope.excludeRecent } : {}) }, options })
        : await this.call<{ hits: SearchHit[] }>({ method: 'POST', path: '/v1/search', json: { query, k, userId: scope.userId }, options });
    return reply.hits;
  }

  /** The tenant's sessions, by cursor (`GET /v1/sessions`). */
  listSessions(page: { cursor?: string | null; limit?: number; userId?: string } = {}, options?: CallOptions): Promise<SessionsPage> {
    return this.call({ method: 'GET', path: '/v1/sessions', query: { cursor: page.cursor ?? undefined, limit: page.limit, userId: page.userId }, options });
  }

  /** One session: turns, tiers, bytes, last activity (`GET /v1/sessions/{id}`). */
  getSession(sessionId: string, options?: CallOptions): Promise<SessionInfo> {
    return this.call({ method: 'GET', path: `/v1/sessions/${segment(sessionId)}`, options });
  }

  /** Archives the session's unarchived turns now (`POST /v1/sessions/{id}/flush`). */
  flush(sessionId: string, options?: CallOptions): Promise<{ sessions: number; turns: number }> {
    return this.call({ method: 'POST', path: `/v1/sessions/${segment(sessionId)}/flush`, options });
  }

  /** Deletes the session from every tier (`DELETE /v1/sessions/{id}`). */
  deleteSession(sessionId: string, options?: CallOptions): Promise<DeletionReceipt> {
    return this.call({ method: 'DELETE', path: `/v1/sessions/${segment(sessionId)}`, options });
  }

  /** Deletes every session of a user (`DELETE /v1/users/{id}`). */
  deleteUser(userId: string, options?: CallOptions): Promise<DeletionReceipt> {
    return this.call({ method: 'DELETE', path: `/v1/users/${segment(userId)}`, options });
  }

  /** The session's archive file, byte for byte (`GET /v1/sessions/{id}/export`). */
  exportSession(sessionId: string, options?: CallOptions): Promise<Uint8Array> {
    return this.call({ method: 'GET', path: `/v1/sessions/${segment(sessionId)}/export`, options }, 'bytes');
  }

  /** Imports an exported archive file as a new session (`POST /v1/import`); 409 if it exists. */
  importSession(sessionId: string, file: Uint8Array, options: CallOptions & { userId?: string } = {}): Promise<SessionInfo> {
    return this.call({ method: 'POST', path: '/v1/import', query: { sessionId, userId: options.userId }, bytes: file, options });
  }

  /** Liveness (`GET /healthz`). */
  health(options?: CallOptions): Promise<{ ok: boolean }> {
    return this.call({ method: 'GET', path: '/healthz', options });
  }

  /** Readiness (`GET /readyz`): the report, also when the service is not ready (`ok: false`, HTTP 503). */
  ready(options?: CallOptions): Promise<HealthReport> {
    return this.call({ method: 'GET', path: '/readyz', options }, 'json', [503]);
  }

  /** The Prometheus exposition text (`GET /metrics`). */
  metrics(options?: CallOptions): Promise<string> {
    return this.call({ method: 'GET', path: '/metrics', options }, 'text');
  }

  private async call<T>(request: Request, expect: 'json' | 'bytes' | 'text' = 'json', acceptStatuses: number[] = []): Promise<T> {
    const url = new URL(this.base + request.path);
    for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value));
    const headers: Record<string, string> = { ...this.headers, ...request.headers };
    if (request.options?.requestId !== undefined) headers['x-request-id'] = request.options.requestId;
    let body: string | Uint8Array | undefined;
    if (request.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(request.json);
    } else if (request.bytes !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      body = request.bytes;
    }
    const signals = [request.options?.signal, this.timeoutMs > 0 ? AbortSignal.timeout(this.timeoutMs) : undefined].filter((s): s is AbortSignal => s !== undefined);
    const what = `${request.method} ${url.pathname}`;
    let response: Response;
    try {
      response = await this.fetchImpl(url, { method: request.method, headers, ...(body !== undefined ? { body } : {}), ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}) });
    } catch (err) {
      if (request.options?.signal?.aborted) throw err; // The caller cancelled: their reason, unchanged.
      throw new StrataError('STRATA_ERR_UNREACHABLE', `${what}: no answer from ${this.base} (${(err as Error).message})`, { cause: err });
    }
    const requestId = response.headers.get('x-request-id');
    if (!response.ok && !acceptStatuses.includes(response.status)) throw await toError(response, what, requestId);
    try {
      if (expect === 'bytes') return new Uint8Array(await response.arrayBuffer()) as T;
      if (expect === 'text') return (await response.text()) as T;
      return (await response.json()) as T;
    } catch (err) {
      throw new StrataError('STRATA_ERR_UNREACHABLE', `${what}: the answer (HTTP ${response.status}) could not be read: ${(err as Error).message}`, { cause: err, details: { httpStatus: response.status, requestId } });
    }
  }
}

function idempotency(options: AppendOptions | undefined): Record<string, string> {
  return options?.idempotencyKey === undefined ? {} : { 'idempotency-key': options.idempotencyKey };
}

/** The service's `{"error": {code, message, details}}` as a StrataHttpError; anything else (a proxy's page) as UNREACHABLE. */
async function toError(response: Response, what: string, requestId: string | null): Promise<StrataError> {
  const text = await response.text().catch(() => '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (error && typeof error.code === 'string') {
    const details = error.details !== null && typeof error.details === 'object' ? (error.details as Record<string, unknown>) : undefined;
    const message = typeof error.message === 'string' ? error.message : what;
    if (isErrorCode(error.code)) return new StrataHttpError(error.code, message, response.status, requestId, details);
    // A newer service's code this client does not know: kept in the details.
    return new StrataHttpError('STRATA_ERR_INTERNAL', `${error.code}: ${message}`, response.status, requestId, { ...details, serverCode: error.code });
  }
  return new StrataError('STRATA_ERR_UNREACHABLE', `${what}: HTTP ${response.status} without a Strata error body: ${text.slice(0, 200)}`, { details: { httpStatus: response.status, requestId } });
}
