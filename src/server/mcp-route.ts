import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type * as StreamableHttp from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { ConversationMemory } from '../cache/api.js';
import type * as McpServerModule from '../mcp/server.js';
import { errorBody } from './errors.js';
import { checkCharset } from './routes.js';

/**
 * The MCP SDK, loaded on the first /mcp request: importing it costs about 300 ms, which every
 * start of the service (and every in-process server of the tests) would otherwise pay.
 */
let sdk: Promise<[typeof McpServerModule, typeof StreamableHttp]> | null = null;
const loadSdk = () => (sdk ??= Promise.all([import('../mcp/server.js'), import('@modelcontextprotocol/sdk/server/streamableHttp.js')]));

export interface McpRouteOptions {
  memory: ConversationMemory;
  /** The `/v1` authenticator: the request's API key → its tenant; throws STRATA_ERR_UNAUTHORIZED. */
  authenticate: (request: FastifyRequest) => string;
}

/**
 * `/mcp`: the MCP Streamable HTTP transport, behind the API keys of `/v1` (Authorization: Bearer),
 * every tool call acting for the key's tenant. An unauthorised request is answered 401 with the
 * service's error body before any MCP message is read.
 *
 * Stateless: each POST gets its own MCP server and transport, bound to the tenant of that
 * request's key, and answers with one JSON body (no SSE stream, no Mcp-Session-Id). Strata's
 * tools are request/response, so sessions would buy nothing, and without them any instance
 * behind a load balancer serves any request, a key is checked on every request (not once per
 * session), and no per-client state lives in the process. GET (the server-to-client stream) and
 * DELETE (session end) have nothing to serve: 405, as the transport's specification provides.
 * The route is hidden from the OpenAPI document, which describes the REST API.
 */
export const mcpRoute: FastifyPluginAsync<McpRouteOptions> = async (app, { memory, authenticate }) => {
  app.addHook('onRequest', async (request) => {
    request.tenant = authenticate(request);
  });
  app.addHook('preParsing', async (request) => {
    checkCharset(request);
  });

  app.post('/mcp', { schema: { hide: true } }, async (request, reply) => {
    const [{ createMcpServer }, { StreamableHTTPServerTransport }] = await loadSdk();
    const server = createMcpServer({ memory, tenant: request.tenant, onUnexpectedError: (err, tool) => request.log.error({ err, tool }, 'unexpected error in an MCP tool') });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    reply.raw.once('close', () => {
      void server.close();
    });
    await server.connect(transport);
    // The transport writes the answer itself; fastify's onResponse hook still logs and counts it.
    reply.hijack();
    try {
      await transport.handleRequest(request.raw, reply.raw, request.body);
    } catch (err) {
      request.log.error({ err }, 'MCP transport failed');
      if (!reply.raw.headersSent) reply.raw.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(errorBody('STRATA_ERR_INTERNAL', 'internal error')));
      else reply.raw.destroy();
    }
  });

  const notAllowed = { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed: this MCP endpoint is stateless, send every request as a POST' }, id: null };
  for (const method of ['GET', 'DELETE'] as const) {
    app.route({ method, url: '/mcp', schema: { hide: true }, handler: async (_request, reply) => reply.status(405).header('allow', 'POST').send(notAllowed) });
  }
};
