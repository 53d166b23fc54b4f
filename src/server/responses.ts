import { z } from 'zod';
import { ROLES } from '../types.js';
import { message, toolCall } from './schemas.js';

/**
 * Success answers of the HTTP API, in zod, for the OpenAPI document (src/server/openapi.ts) and
 * for the test that checks every route's real answers against them
 * (test/integration/openapi.test.ts). They describe what the core returns; the server
 * serializes answers without them, so a field missing here is a documentation bug the test
 * catches, never a field dropped from an answer.
 */

const count = z.number().int().min(0);
const turnId = z.number().int().min(1);
const millis = z.number().int().describe('Milliseconds since the Unix epoch');

/** A stored message: the message as appended (OpenAI Chat Completions shape) plus its id, time and token count. */
export const turn = message.extend({
  turnId: turnId.describe('Dense, strictly increasing per session, from 1'),
  createdAt: millis,
  tokens: count.optional().describe('Tokens the model sees for this message with the configured tokenizer, when known'),
});

export const addMessagesReply = z.union([z.strictObject({ turnId }), z.strictObject({ turnIds: z.array(turnId) })]).describe('{turnId} for one message, {turnIds} (in order) for a batch');

export const messagesPage = z.strictObject({
  messages: z.array(turn),
  nextAfter: turnId.nullable().describe('Pass as `after` for the next page; null at the end'),
});

export const explainItem = z.strictObject({
  source: z.enum(['hot', 'archive', 'summary']),
  turnId: turnId.optional(),
  fromTurn: turnId.optional(),
  toTurn: turnId.optional(),
  reason: z.enum(['recent', 'relevant', 'neighbour', 'summary', 'full']),
  score: z.number().optional(),
  tokens: count,
  truncated: z.boolean().optional(),
  toolGroup: z.array(turnId).optional().describe('The turns of one tool call and its results, packed all or none'),
});

export const contextResult = z.strictObject({
  type: z.enum(['recent', 'full', 'smart']),
  messages: z.array(turn).describe('Chronological'),
  summary: z.string().nullable().describe('smart: milestone summaries included, if any'),
  tokens: count,
  explain: z.array(explainItem).describe('What was included, from which tier, why, and how many tokens'),
  nextAfter: turnId.nullable().describe('full: cursor of the next page; null at the end'),
});

export const searchHit = z.strictObject({
  tenant: z.string(),
  sessionId: z.string(),
  turnId,
  role: z.enum(ROLES),
  content: message.shape.content,
  name: z.string().optional(),
  tool_calls: z.array(toolCall).optional(),
  tool_call_id: z.string().optional(),
  metadata: message.shape.metadata,
  createdAt: millis,
  tokens: count.optional(),
  score: z.number(),
  scores: z.strictObject({ dense: z.number().nullable(), lexical: z.number().nullable(), fused: z.number() }),
  neighbour: z.boolean().describe('Brought in as a neighbour of a hit'),
});

export const searchReply = z.strictObject({ hits: z.array(searchHit) });

export const sessionInfo = z.strictObject({
  tenant: z.string(),
  sessionId: z.string(),
  userId: z.string().nullable(),
  turns: count,
  lastTurnId: count,
  hotTurns: count,
  unarchivedTurns: count,
  archivedTurns: count,
  bytes: z.strictObject({ hot: count, archive: count }),
  createdAt: millis.nullable(),
  lastActivityAt: millis.nullable(),
});

export const sessionsPage = z.strictObject({
  sessions: z.array(sessionInfo),
  nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null at the end'),
});

export const flushReply = z.strictObject({ sessions: count, turns: count.describe('Turns archived') });

export const deletionReceipt = z.strictObject({
  tenant: z.string(),
  sessionIds: z.array(z.string()),
  hotTurns: count,
  journalTombstones: count,
  sessions: count,
  turns: count,
  bytes: count.describe('Archive bytes removed'),
  vectors: count,
  summaries: count,
});

export const liveness = z.strictObject({ ok: z.boolean() });

export const healthReport = z.strictObject({
  ok: z.boolean(),
  hot: z.strictObject({ ok: z.boolean(), driver: z.enum(['redis', 'memory']), error: z.string().optional() }),
  dataDir: z.strictObject({ ok: z.boolean(), path: z.string(), error: z.string().optional() }),
  journal: z.strictObject({ ok: z.boolean(), error: z.string().optional(), code: z.string().optional() }),
});

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses) of what the server sends. */
export function responseJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'output' }) as Record<string, unknown>;
  return rest;
}
