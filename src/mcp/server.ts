import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ErrorCode as RpcErrorCode, ListToolsRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult, Tool, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { ConversationMemory, NewMessage } from '../cache/api.js';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import { toErrorReply } from '../server/errors.js';
import * as s from '../server/schemas.js';

/*
 * The MCP adapter: six tools over one ConversationMemory, acting for one tenant. Like the HTTP
 * routes it only translates; the core decides. Input schemas are the REST API's zod schemas
 * (src/server/schemas.ts) with the session id, which REST carries in the path, as a field.
 *
 * Built on the SDK's low-level `Server` rather than `McpServer.registerTool`: McpServer checks
 * arguments itself and answers a failure with an uncoded "Input validation error" text. Here
 * every bad input is a tool error with a STRATA_ERR_* code naming the field, exactly as the
 * HTTP API answers it — including the message rules only the core can check (content null
 * without tool_calls, tool_call_id on tool messages, sizes), which is why add_messages, like
 * POST /v1/sessions/{id}/messages, hands the messages to the core unchecked.
 */

export const MCP_SERVER_NAME = 'strata';
export const MCP_SERVER_VERSION = '0.1.0';

/** Default number of search hits (as over HTTP). */
const DEFAULT_K = 10;

export interface StrataMcpServerOptions {
  memory: ConversationMemory;
  /** The tenant every tool call acts for (the API key's tenant over HTTP, `--tenant` over stdio). */
  tenant: string;
  /** Told of errors that are not Strata's (bugs); the caller answered STRATA_ERR_INTERNAL. */
  onUnexpectedError?: (err: unknown, tool: string) => void;
}

const sessionId = s.sessionParams.shape.id.describe('The session (conversation) id: 1-256 characters, no control characters');
const idempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .optional()
  .describe('Makes a retry safe: a second call with the same key in this session answers the first call\'s turn ids and stores nothing (printable ASCII, kept 24 h)');

interface ToolDef<In extends z.ZodObject, Args> {
  name: string;
  title: string;
  description: string;
  /** What tools/list advertises. */
  input: In;
  /** What arguments are checked with before `run`; default `input`. */
  check?: z.ZodType<Args>;
  annotations: ToolAnnotations;
  run(args: Args, memory: ConversationMemory, tenant: string): Promise<Record<string, unknown>>;
}

/** A tool whose arguments are checked with its advertised schema. */
function tool<In extends z.ZodObject>(def: ToolDef<In, z.output<In>>): ToolDef<z.ZodObject, unknown> {
  return def as unknown as ToolDef<z.ZodObject, unknown>;
}

const addMessagesInput = s.addMessagesBody.options[1].extend({ sessionId, idempotencyKey });
const searchInput = s.sessionSearchBodyWithRecent.extend({
  sessionId: sessionId.optional().describe('Search this session (give sessionId or userId)'),
  userId: s.userSearchBody.shape.userId.optional().describe('Search every session of this user (give sessionId or userId)'),
});
const sessionOnly = z.strictObject({ sessionId });

export const TOOLS: ReadonlyArray<ToolDef<z.ZodObject, unknown>> = [
  {
    name: 'add_messages',
    title: 'Store messages',
    description:
      'Append messages to a session, in order, all or nothing. Messages are in the OpenAI Chat Completions shape: ' +
      '{role: system|user|assistant|tool, content: string | parts | null, name?, tool_calls?, tool_call_id?, metadata?}. ' +
      'An assistant message that only calls tools has content null and tool_calls; a tool result has role tool and the tool_call_id it answers. ' +
      'Returns {turnIds}.',
    input: addMessagesInput,
    // The messages go to the core unchecked (see the comment at the top of this file).
    check: addMessagesInput.extend({ messages: z.array(z.unknown()) }),
    annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    async run(args, memory, tenant) {
      const { sessionId: id, messages, userId, idempotencyKey: key } = args as z.output<typeof addMessagesInput>;
      return memory.addMessages(id, messages as NewMessage[], { tenant, ...(userId !== undefined ? { userId } : {}), ...(key !== undefined ? { idempotencyKey: key } : {}) });
    },
  },
  tool({
    name: 'get_context',
    title: 'Get conversation context',
    description:
      'Context for the next LLM call from a session: type "recent" (the last turns), "full" (the whole history, paginated by after/limit), ' +
      'or "smart" (recent turns + older turns relevant to query + milestone summaries, within maxTokens; explain says why each turn is there). ' +
      'An unknown session has no messages. Returns {type, messages, summary, tokens, explain, nextAfter}.',
    input: s.contextBody.extend({ sessionId }),
    annotations: { readOnlyHint: true, openWorldHint: false },
    run: ({ sessionId: id, ...request }, memory, tenant) => memory.getContext(id, { ...request, tenant }) as unknown as Promise<Record<string, unknown>>,
  }),
  tool({
    name: 'search_history',
    title: 'Search conversation history',
    description:
      'Hybrid (keyword + embedding) search of past turns — text, tool calls and tool results — in one session (sessionId) or in every session of a user (userId). ' +
      'Every turn is searched; in one session, excludeRecent: true leaves out the recent window (the last turns, which get_context returns anyway). ' +
      'Returns {hits: [{sessionId, turnId, role, content, score, ...}]}, best first.',
    input: searchInput,
    annotations: { readOnlyHint: true, openWorldHint: false },
    async run({ query, k, sessionId: id, userId, excludeRecent }, memory, tenant) {
      if ((id === undefined) === (userId === undefined)) {
        const field = id === undefined ? 'sessionId' : 'userId';
        throw new StrataError('STRATA_ERR_VALIDATION', `${field}: give exactly one of sessionId (one session) or userId (every session of a user)`, { details: { field } });
      }
      if (excludeRecent !== undefined && id === undefined) throw new StrataError('STRATA_ERR_VALIDATION', 'excludeRecent: applies to a session search (sessionId)', { details: { field: 'excludeRecent' } });
      const scope = id !== undefined ? { tenant, sessionId: id, ...(excludeRecent !== undefined ? { excludeRecent } : {}) } : { tenant, userId: userId! };
      return { hits: await memory.searchDiskHistory(query, k ?? DEFAULT_K, scope) };
    },
  }),
  tool({
    name: 'list_sessions',
    title: 'List sessions',
    description: 'Sessions of the tenant (optionally of one user), paginated: pass nextCursor back as cursor. Returns {sessions, nextCursor}.',
    input: s.listSessionsQuery,
    annotations: { readOnlyHint: true, openWorldHint: false },
    run: ({ cursor, limit, userId }, memory, tenant) =>
      memory.listSessions({ tenant, cursor: cursor ?? null, ...(limit !== undefined ? { limit } : {}), ...(userId !== undefined ? { userId } : {}) }) as unknown as Promise<Record<string, unknown>>,
  }),
  tool({
    name: 'get_session',
    title: 'Session details',
    description: 'One session: owner, turn counts per tier, bytes, creation and last activity times. STRATA_ERR_NOT_FOUND for a session that never existed.',
    input: sessionOnly,
    annotations: { readOnlyHint: true, openWorldHint: false },
    run: ({ sessionId: id }, memory, tenant) => memory.getSession(id, { tenant }) as unknown as Promise<Record<string, unknown>>,
  }),
  tool({
    name: 'delete_session',
    title: 'Delete a session',
    description: 'Delete a session from every tier (hot tier, journal, archive, indexes) for good. Returns a deletion receipt. STRATA_ERR_NOT_FOUND for a session that never existed.',
    input: sessionOnly,
    annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    run: ({ sessionId: id }, memory, tenant) => memory.deleteSession(id, { tenant }) as unknown as Promise<Record<string, unknown>>,
  }),
];

const TOOL_LIST: Tool[] = TOOLS.map((t) => ({
  name: t.name,
  title: t.title,
  description: t.description,
  inputSchema: s.jsonSchema(t.input) as Tool['inputSchema'],
  annotations: t.annotations,
}));

/** `messages[2].tool_calls[0].id`, the form the core's errors name fields in. */
function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out === '' ? String(key) : `.${String(key)}`;
  return out;
}

function validationError(error: z.ZodError): StrataError {
  const issues = error.issues.map((issue) => {
    // An unknown field is reported on its object; name the field itself.
    const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path;
    return { path: fieldPath(path) || 'arguments', message: issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message };
  });
  const first = issues[0]!;
  return new StrataError('STRATA_ERR_VALIDATION', `${first.path}: ${first.message}`, { details: { field: first.path, issues } });
}

/** A tool result: the value as JSON text, and as structured content for clients that read it. */
function result(value: Record<string, unknown>, isError = false): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value, ...(isError ? { isError: true } : {}) };
}

/**
 * An MCP server with Strata's tools over `memory`, acting for `tenant`. Connect it to a
 * transport (`server.connect(transport)`); closing the server does not close `memory`.
 * A Strata error is a tool result with `isError: true` and the service's error body
 * `{"error": {code, message, details}}`; an unknown tool is a protocol error.
 */
export function createMcpServer(options: StrataMcpServerOptions): Server {
  const { memory, onUnexpectedError } = options;
  const tenant = validateId('tenant', options.tenant);
  const server = new Server(
    { name: MCP_SERVER_NAME, title: 'Strata conversation memory', version: MCP_SERVER_VERSION },
    {
      capabilities: { tools: {} },
      instructions:
        'Strata stores every message of every conversation losslessly and returns the right context for the next LLM call. ' +
        'Store turns with add_messages, read them back with get_context (recent, full or smart within a token budget), find older turns with search_history.',
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOL_LIST }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const def = TOOLS.find((t) => t.name === request.params.name);
    if (def === undefined) throw new McpError(RpcErrorCode.InvalidParams, `unknown tool ${JSON.stringify(request.params.name)}; the tools are ${TOOLS.map((t) => t.name).join(', ')}`);
    try {
      const parsed = (def.check ?? def.input).safeParse(request.params.arguments ?? {});
      if (!parsed.success) throw validationError(parsed.error);
      return result(await def.run(parsed.data, memory, tenant));
    } catch (err) {
      const reply = toErrorReply(err);
      if (reply.unexpected) onUnexpectedError?.(err, def.name);
      return result(reply.body as unknown as Record<string, unknown>, true);
    }
  });
  return server;
}
