import { z } from 'zod';
import { ROLES } from '../types.js';

/**
 * Request schemas of the HTTP API, written once in zod and converted to JSON Schema for
 * fastify's validator (ajv) and for the OpenAPI document. Ids are checked by the core
 * (`STRATA_ERR_INVALID_ID`), so the schemas only bound their length.
 */

const idParam = z.string().min(1).max(256).describe('1-256 characters, no control characters');
const metadata = z.record(z.string(), z.unknown()).describe('A plain JSON object, at most maxMetadataBytes as JSON');

export const textPart = z.strictObject({ type: z.literal('text'), text: z.string() });
export const imagePart = z.strictObject({
  type: z.literal('image_url'),
  image_url: z.strictObject({
    url: z.string().min(1).describe('An http(s) URL, or a data: URL (inline, at most maxInlineDataBytes)'),
    detail: z.enum(['auto', 'low', 'high']).optional(),
  }),
});
export const filePart = z.strictObject({
  type: z.literal('file'),
  file: z
    .strictObject({
      file_data: z.string().min(1).optional().describe('Inline content: a data: URL or base64, at most maxInlineDataBytes'),
      file_id: z.string().min(1).max(512).optional(),
      url: z.string().min(1).optional().describe('An http(s) URL'),
      filename: z.string().min(1).max(1024).optional(),
    })
    .describe('At least one of file_data, file_id, url'),
});
export const contentPart = z.union([textPart, imagePart, filePart]);

export const toolCall = z.strictObject({
  id: z.string().min(1).max(256),
  type: z.literal('function'),
  function: z.strictObject({
    name: z.string().min(1).max(256),
    arguments: z.string().describe('The JSON arguments as the model wrote them, stored verbatim'),
  }),
});

/**
 * A message: the OpenAI Chat Completions shape. The service checks the rules the schema cannot
 * say (content may be null or empty only with tool_calls or on a tool result; tool_call_id is
 * required on tool messages; sizes) and names the offending field in its error.
 */
export const message = z.strictObject({
  role: z.enum(ROLES),
  content: z.union([z.string(), z.array(contentPart), z.null()]).describe('Text (at most maxMessageBytes), an array of parts (image and file parts in user messages only), or null on an assistant message with tool_calls'),
  name: z.string().min(1).max(256).optional().describe('Participant name; on a tool message, the tool name'),
  tool_calls: z.array(toolCall).max(128).optional().describe('Assistant messages: the tools the model called'),
  tool_call_id: z.string().min(1).max(256).optional().describe('Tool messages (required): the id of the call this result answers'),
  metadata: metadata.optional(),
});

export const addMessagesBody = z.union([
  message.extend({ userId: idParam.optional().describe('Owner of the session, recorded on its first message') }),
  z.strictObject({ messages: z.array(message).min(1).max(1000), userId: idParam.optional() }),
]);

/** Path ids are checked by the core (STRATA_ERR_INVALID_ID, as in the library), so the schema only documents them. */
const pathId = z.string().describe('A session or user id: 1-256 characters, no control characters (percent-encoded in the path)');

export const sessionParams = z.strictObject({ id: pathId });

export const getMessagesQuery = z.strictObject({
  after: z.number().int().min(0).optional().describe('Return turns with a turn id greater than this'),
  limit: z.number().int().min(1).max(1000).optional().describe('At most this many turns (default 100)'),
});

export const contextBody = z.strictObject({
  type: z.enum(['recent', 'full', 'smart']),
  query: z.string().min(1).optional().describe('smart: what to find relevant older turns for (default: the latest user message)'),
  maxTokens: z.number().int().min(1).optional().describe('smart: the token budget'),
  limit: z.number().int().min(1).max(1000).optional().describe('recent: how many turns; full: page size'),
  after: z.number().int().min(0).optional().describe('full: pagination cursor (turn id)'),
});

export const sessionSearchBody = z.strictObject({
  query: z.string().min(1),
  k: z.number().int().min(1).max(100).optional().describe('Number of hits (default 10)'),
});

export const userSearchBody = sessionSearchBody.extend({ userId: idParam });

export const sessionSearchBodyWithRecent = sessionSearchBody.extend({
  excludeRecent: z.boolean().optional().describe('Leave out the recent window (the last recentTurns turns), which recent context already returns. Default false'),
});

export const listSessionsQuery = z.strictObject({
  cursor: z.string().min(1).optional(),
  limit: z.number().int().min(1).max(1000).optional().describe('Page size (default 100)'),
  userId: idParam.optional(),
});

export const importQuery = z.strictObject({
  sessionId: idParam.optional().describe('Session id of the imported archive (or header x-strata-session-id)'),
  userId: idParam.optional().describe('Owner to record for the session'),
});

export const userParams = z.strictObject({ id: pathId });

/** A JSON Schema fastify's ajv (draft-07) accepts. */
export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  return rest;
}

export type AddMessagesBody = z.infer<typeof addMessagesBody>;
export type ContextBody = z.infer<typeof contextBody>;
export type GetMessagesQuery = z.infer<typeof getMessagesQuery>;
export type SessionSearchBody = z.infer<typeof sessionSearchBody>;
export type SessionSearchBodyWithRecent = z.infer<typeof sessionSearchBodyWithRecent>;
export type UserSearchBody = z.infer<typeof userSearchBody>;
export type ListSessionsQuery = z.infer<typeof listSessionsQuery>;
export type ImportQuery = z.infer<typeof importQuery>;
