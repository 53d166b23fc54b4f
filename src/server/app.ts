import { randomUUID } from 'node:crypto';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConversationMemory } from '../cache/api.js';
import type { StrataConfig } from '../config.js';
import { createAuthenticator } from './auth.js';
import { errorBody, errorHandler, toErrorReply } from './errors.js';
import { createServerMetrics } from './metrics.js';
import { mcpRoute } from './mcp-route.js';
import type { ServerMetrics } from './metrics.js';
import { docsPageOptions, swaggerOptions } from './openapi.js';
import { registerV1Routes } from './routes.js';

export interface BuildServerOptions {
  memory: ConversationMemory;
  /** The validated configuration (`loadConfig`); the server reads `server.*`. */
  config: Pick<StrataConfig, 'server'>;
  /** Default: `createServerLogger(config.server.logLevel)`, JSON lines on stdout. */
  logger?: FastifyBaseLogger;
  /** Metrics shared with the core (`createStrata({ metrics: metrics.hooks })`). Default: new ones on `registry`. */
  metrics?: ServerMetrics;
  /** Registry for new metrics when `metrics` is not given. Default: a fresh registry. */
  registry?: Registry;
}

const ERROR_SCHEMA = {
  $id: 'StrataError',
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: ['object', 'null'], additionalProperties: true } },
      required: ['code', 'message', 'details'],
    },
  },
  required: ['error'],
};

/** A client's `x-request-id` is kept when it is 1–128 characters of this set; otherwise one is generated. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Paths of log fields that may carry a credential, censored in every line whatever a caller logs
 * (request lines themselves carry no headers, bodies or query strings).
 */
const REDACT = ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization', 'authorization', 'apiKey', 'apiKeys', '*.apiKey', '*.apiKeys', 'server.apiKeys'];

/** The service's logger: one JSON object per line on stdout, credentials censored. */
export function createServerLogger(level: StrataConfig['server']['logLevel']): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' } });
}

/**
 * The HTTP service over one `ConversationMemory`: routes translate, the core decides. Routes
 * under `/v1` need a bearer API key (unless auth is off); `/healthz`, `/readyz`, `/metrics`,
 * `/openapi.json` and `/docs` do not.
 */
export function buildServer(options: BuildServerOptions): FastifyInstance {
  const { memory, config } = options;
  const logger = options.logger ?? createServerLogger(config.server.logLevel);
  const metrics = options.metrics ?? createServerMetrics(options.registry ? { registry: options.registry } : {});
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: config.server.bodyLimitBytes,
    // Session and user ids are up to 256 characters, each up to 12 characters percent-encoded.
    routerOptions: { maxParamLength: 4096 },
    // Body fields are validated strictly: an unknown field is an error, not silently dropped, and
    // no type is coerced (ajv's coerceTypes would store `"content": 123` as "123" and `["hi"]` as
    // "hi"). Query strings, which are text by nature, are converted where the route declares an
    // integer (registerV1Routes).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // Errors the router raises before any route (an undecodable URL, an over-long path
    // parameter) get the same coded body as every other error instead of fastify's own.
    frameworkErrors: errorHandler,
    // Request ids: the client's x-request-id when it is well formed (so one id follows a request
    // through proxies and clients), a random UUID otherwise; echoed in the answer (onRequest).
    requestIdHeader: false,
    genReqId: (raw) => {
      const header = raw.headers['x-request-id'];
      return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    },
    // fastify's own two lines per request log the URL (ids, query) and no tenant; the onResponse
    // hook below writes one line per request with only what operators need.
    logController: new LogController({ disableRequestLogging: true }),
    // Graceful close: idle keep-alive connections are closed at once, requests in flight finish
    // (then their connection closes, see the onSend hook), new requests on open connections get 503.
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  }) as unknown as FastifyInstance;

  // Node closes only the connections idle when close() is called; a connection whose request was
  // in flight would stay open (and hold the shutdown) until its keep-alive timeout ran out.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) void reply.header('connection', 'close');
  });

  app.decorateRequest('tenant', '');
  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });

  app.addSchema(ERROR_SCHEMA);
  app.setErrorHandler((err, request, reply) => {
    metrics.observeError(toErrorReply(err).body.error.code, request.routeOptions.url ?? 'unknown');
    errorHandler(err, request, reply);
  });
  app.setNotFoundHandler((request, reply) => {
    metrics.observeError('STRATA_ERR_NOT_FOUND', 'unmatched');
    void reply.status(404).send(errorBody('STRATA_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    // One line per request: route pattern, never the URL (ids, query) nor any body or header.
    request.log.info({ method: request.method, route, status: reply.statusCode, tenant: request.tenant || null, durationMs: Math.round(reply.elapsedTime * 1000) / 1000 }, 'request');
  });

  void app.register(swagger, swaggerOptions());
  void app.register(swaggerUi, docsPageOptions());

  void app.register(async (ops) => {
    const hide = { hide: true };
    ops.get('/openapi.json', { schema: hide }, async () => app.swagger());
    // No key needed: `security: []` says so in the OpenAPI document.
    ops.get('/healthz', { schema: { summary: 'Liveness', tags: ['operations'], security: [] } }, async () => ({ ok: true }));
    ops.get('/readyz', { schema: { summary: 'Readiness: hot store, data directory and journal', tags: ['operations'], security: [] } }, async (_request, reply) => {
      const report = await memory.health();
      return reply.status(report.ok ? 200 : 503).send(report);
    });
    ops.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['operations'], security: [] } }, async (_request, reply) => {
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
    });
  });

  const authenticate = createAuthenticator(config.server.apiKeys);
  void app.register(async (v1) => {
    v1.addHook('onRequest', async (request) => {
      request.tenant = authenticate(request);
    });
    registerV1Routes(v1, memory, config.server.importLimitBytes);
  });
  void app.register(mcpRoute, { memory, authenticate });
  return app;
}
