import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ConversationMemory, NewMessage } from '../cache/api.js';
import { StrataError } from '../errors.js';
import { asImportError } from '../archive/validate.js';
import * as s from './schemas.js';

/** Default page size of `GET /v1/sessions/{id}/messages`. */
const DEFAULT_MESSAGES_LIMIT = 100;
/** Default number of search hits. */
const DEFAULT_K = 10;

const security = [{ bearerAuth: [] }];
const errorResponse = { $ref: 'StrataError#' };
const errors = { 400: errorResponse, 401: errorResponse, 404: errorResponse, 409: errorResponse, 413: errorResponse, 429: errorResponse, 500: errorResponse, 503: errorResponse };

/** A route schema: JSON Schemas derived from zod, plus OpenAPI tags and summary. */
function schema(summary: string, parts: { params?: Parameters<typeof s.jsonSchema>[0]; querystring?: Parameters<typeof s.jsonSchema>[0]; body?: Parameters<typeof s.jsonSchema>[0]; tag?: string; consumes?: string[]; produces?: string[] }) {
  return {
    summary,
    tags: [parts.tag ?? 'sessions'],
    security,
    ...(parts.params ? { params: s.jsonSchema(parts.params) } : {}),
    ...(parts.querystring ? { querystring: s.jsonSchema(parts.querystring) } : {}),
    ...(parts.body ? { body: s.jsonSchema(parts.body) } : {}),
    ...(parts.consumes ? { consumes: parts.consumes } : {}),
    ...(parts.produces ? { produces: parts.produces } : {}),
    response: errors,
  };
}

type Id = { Params: { id: string } };

/** A validator that accepts everything (the route's handler and the core validate). */
const passThrough = () => (value: unknown) => ({ value });

/**
 * The `/v1` routes. Each one only translates between HTTP and one `ConversationMemory` call,
 * always passing the tenant of the request's API key.
 */
export function registerV1Routes(app: FastifyInstance, memory: ConversationMemory, importLimitBytes: number): void {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: importLimitBytes }, (_request, body, done) => done(null, body));
  app.addHook('preParsing', async (request) => {
    checkCharset(request);
  });
  app.addHook('preValidation', async (request) => {
    coerceIntegerQuery(request);
  });

  // The body is checked by the core, not by the schema validator: the message rules (content
  // null only with tool calls, tool_call_id on tool messages, sizes) need an error that names
  // the offending field, e.g. `messages[2].tool_calls[0].function.name`. The schema documents it.
  app.post<Id & { Body: unknown }>('/v1/sessions/:id/messages', { schema: schema('Append one message, or a batch {messages: [...]} (all or nothing)', { params: s.sessionParams, body: s.addMessagesBody }), validatorCompiler: passThrough }, async (request, reply) => {
    const body = request.body;
    const tenant = request.tenant;
    // One key per request: a retried request (any instance) answers the first one's turn ids.
    const key = request.headers['idempotency-key'];
    if (Array.isArray(key)) throw new StrataError('STRATA_ERR_VALIDATION', 'send one Idempotency-Key header', { details: { field: 'Idempotency-Key' } });
    const idempotency = key === undefined ? {} : { idempotencyKey: key };
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new StrataError('STRATA_ERR_VALIDATION', 'body: expected a message object or {messages: [...]}', { details: { field: 'body' } });
    const { userId, ...rest } = body as Record<string, unknown>;
    const owner = userId === undefined ? {} : { userId: userId as string };
    if ('messages' in rest) {
      for (const k of Object.keys(rest)) if (k !== 'messages') throw new StrataError('STRATA_ERR_VALIDATION', `${k}: unknown field (a batch body has messages and userId)`, { details: { field: k } });
      const result = await memory.addMessages(request.params.id, rest.messages as NewMessage[], { tenant, ...owner, ...idempotency });
      return reply.status(201).send(result);
    }
    const result = await memory.addMessage(request.params.id, rest as unknown as NewMessage, { tenant, ...owner, ...idempotency });
    return reply.status(201).send(result);
  });

  app.get<Id & { Querystring: s.GetMessagesQuery }>('/v1/sessions/:id/messages', { schema: schema('Turns in order after a turn id (pagination with nextAfter)', { params: s.sessionParams, querystring: s.getMessagesQuery }) }, async (request) => {
    const { after, limit } = request.query;
    return memory.getMessages(request.params.id, { tenant: request.tenant, ...(after !== undefined ? { after } : {}), limit: limit ?? DEFAULT_MESSAGES_LIMIT });
  });

  app.post<Id & { Body: s.ContextBody }>('/v1/sessions/:id/context', { schema: schema('Context for the next LLM call: recent, full, or smart within maxTokens', { params: s.sessionParams, body: s.contextBody }) }, async (request) => {
    return memory.getContext(request.params.id, { ...request.body, tenant: request.tenant });
  });

  app.post<Id & { Body: s.SessionSearchBodyWithRecent }>('/v1/sessions/:id/search', { schema: schema('Hybrid search over one session (every turn; excludeRecent leaves out the recent window)', { tag: 'search', params: s.sessionParams, body: s.sessionSearchBodyWithRecent }) }, async (request) => {
    const hits = await memory.searchDiskHistory(request.body.query, request.body.k ?? DEFAULT_K, { tenant: request.tenant, sessionId: request.params.id, ...(request.body.excludeRecent !== undefined ? { excludeRecent: request.body.excludeRecent } : {}) });
    return { hits };
  });

  app.post<{ Body: s.UserSearchBody }>('/v1/search', { schema: schema('Hybrid search over every session of one user', { tag: 'search', body: s.userSearchBody }) }, async (request) => {
    const hits = await memory.searchDiskHistory(request.body.query, request.body.k ?? DEFAULT_K, { tenant: request.tenant, userId: request.body.userId });
    return { hits };
  });

  app.get<{ Querystring: s.ListSessionsQuery }>('/v1/sessions', { schema: schema('Sessions of the tenant, paginated by cursor', { querystring: s.listSessionsQuery }) }, async (request) => {
    const { cursor, limit, userId } = request.query;
    return memory.listSessions({ tenant: request.tenant, cursor: cursor ?? null, ...(limit !== undefined ? { limit } : {}), ...(userId ? { userId } : {}) });
  });

  app.get<Id>('/v1/sessions/:id', { schema: schema('One session: turns, tiers, bytes, last activity', { params: s.sessionParams }) }, async (request) => {
    return memory.getSession(request.params.id, { tenant: request.tenant });
  });

  app.post<Id>('/v1/sessions/:id/flush', { schema: schema('Archive every unarchived turn of the session now', { params: s.sessionParams }) }, async (request) => {
    // flush() of an unknown session would be a no-op; answer 404 like every other session route.
    await memory.getSession(request.params.id, { tenant: request.tenant });
    return memory.flush(request.params.id, { tenant: request.tenant });
  });

  app.delete<Id>('/v1/sessions/:id', { schema: schema('Delete a session from every tier; returns a receipt', { params: s.sessionParams }) }, async (request) => {
    return memory.deleteSession(request.params.id, { tenant: request.tenant });
  });

  app.delete<Id>('/v1/users/:id', { schema: schema("Delete every session of a user; returns a receipt", { tag: 'users', params: s.userParams }) }, async (request) => {
    return memory.deleteUser(request.params.id, { tenant: request.tenant });
  });

  app.get<Id>('/v1/sessions/:id/export', { schema: schema('The session archive file (flushed first), byte for byte', { tag: 'transfer', params: s.sessionParams, produces: ['application/octet-stream'] }) }, async (request, reply) => {
    const file = await memory.exportSession(request.params.id, { tenant: request.tenant });
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${request.params.id}.strata"`)
      .send(Buffer.from(file.buffer, file.byteOffset, file.byteLength));
  });

  app.post<{ Querystring: s.ImportQuery; Body: Buffer }>('/v1/import', { schema: schema('Import an exported archive file as a new session (409 if it exists)', { tag: 'transfer', querystring: s.importQuery, consumes: ['application/octet-stream'] }) }, async (request, reply) => {
    const sessionId = request.query.sessionId ?? headerValue(request, 'x-strata-session-id');
    if (sessionId === undefined) throw new StrataError('STRATA_ERR_VALIDATION', 'the session id of the import is missing: pass ?sessionId=… or the header x-strata-session-id');
    if (!Buffer.isBuffer(request.body)) throw new StrataError('STRATA_ERR_INPUT_FORMAT', 'send the archive file with content-type application/octet-stream');
    if (request.body.byteLength === 0) throw new StrataError('STRATA_ERR_INPUT_FORMAT', 'the uploaded archive file is empty');
    const file = new Uint8Array(request.body.buffer, request.body.byteOffset, request.body.byteLength);
    const info = await memory.importSession(sessionId, file, { tenant: request.tenant, ...(request.query.userId ? { userId: request.query.userId } : {}) }).catch((err: unknown) => {
      throw asImportError(err);
    });
    return reply.status(201).send(info);
  });
}

/**
 * JSON bodies are UTF-8 (RFC 8259) and parsed as such; a body declared in another charset would
 * be stored as mis-decoded text, so it is refused instead of acknowledged.
 */
export function checkCharset(request: FastifyRequest): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') throw new StrataError('STRATA_ERR_INPUT_FORMAT', `unsupported charset ${JSON.stringify(charset)}: send UTF-8`);
}

/** Strictly decimal integers (no exponent, hex, blanks or leading zeros) of at most 16 digits. */
const DECIMAL_INTEGER = /^-?(?:0|[1-9][0-9]{0,15})$/;

/**
 * Query-string values are text; ajv does not coerce (see app.ts), so the fields a route declares
 * as integers are converted here, before validation, and only when they are plain decimal
 * integers. Anything else ("abc", "1e3", a repeated parameter) stays as it is and fails
 * validation with the field's name.
 */
function coerceIntegerQuery(request: FastifyRequest): void {
  const schema = request.routeOptions.schema?.querystring as { properties?: Record<string, { type?: unknown }> } | undefined;
  const query = request.query as Record<string, unknown> | undefined;
  if (!schema?.properties || !query) return;
  for (const [name, property] of Object.entries(schema.properties)) {
    const value = query[name];
    if (property.type === 'integer' && typeof value === 'string' && DECIMAL_INTEGER.test(value)) query[name] = Number(value);
  }
}

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
