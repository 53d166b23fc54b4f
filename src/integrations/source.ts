import type { ContextResult, ConversationMemory, NewMessage } from '../cache/api.js';
import { StrataClient } from '../client/index.js';
import { isStrataError } from '../errors.js';
import type { Turn } from '../types.js';

/*
 * Where an integration finds Strata: a core in this process, or the HTTP service (through the
 * typed client). The integrations see one session through the four calls of `SessionStore`.
 */

/** A Strata core in this process (`createStrata`, `HybridConversationCache`). */
export interface InProcessSource {
  memory: ConversationMemory;
  /** The tenant of the session. Default `default`. */
  tenant?: string;
}

/** The HTTP service: its base URL and, when the service checks keys, an API key (which names the tenant). */
export interface HttpSource {
  baseUrl: string | URL;
  apiKey?: string;
  /** Per-request timeout in milliseconds. Default 30 000. */
  timeoutMs?: number;
  /** The fetch implementation. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

/** A client the application already made. */
export interface ClientSource {
  client: StrataClient;
}

export type StrataSource = InProcessSource | HttpSource | ClientSource;

export interface SessionOptions {
  /** Owner of the session, recorded with its first message (user-scope search and deletion). */
  userId?: string;
}

export interface ContextQuery {
  type: 'recent' | 'full' | 'smart';
  maxTokens?: number;
  query?: string;
  limit?: number;
}

/** One session, read and written through a core or the service. */
export interface SessionStore {
  /** Appends a batch (all or nothing); answers the turn ids. */
  append(messages: NewMessage[]): Promise<number[]>;
  /** Every turn of the session, in order (empty for a session nobody wrote to). */
  all(): Promise<Turn[]>;
  context(request: ContextQuery): Promise<ContextResult>;
  /** Deletes the session from every tier; a session that does not exist is already clear. */
  clear(): Promise<void>;
}

/** Page size of `all()`: the largest page the service answers. */
const PAGE = 1000;

export function openSession(source: StrataSource, sessionId: string, options: SessionOptions = {}): SessionStore {
  const owner = options.userId === undefined ? {} : { userId: options.userId };
  if ('memory' in source) {
    const memory = source.memory;
    const tenant = source.tenant === undefined ? {} : { tenant: source.tenant };
    return {
      append: async (messages) => (await memory.addMessages(sessionId, messages, { ...tenant, ...owner })).turnIds,
      all: () => readAll((after) => memory.getMessages(sessionId, { ...tenant, limit: PAGE, ...(after === undefined ? {} : { after }) })),
      context: (request) => memory.getContext(sessionId, { ...tenant, ...request }),
      clear: () => ignoreMissing(memory.deleteSession(sessionId, tenant)),
    };
  }
  const client =
    'client' in source
      ? source.client
      : new StrataClient({
          baseUrl: source.baseUrl,
          ...(source.apiKey === undefined ? {} : { apiKey: source.apiKey }),
          ...(source.timeoutMs === undefined ? {} : { timeoutMs: source.timeoutMs }),
          ...(source.fetch === undefined ? {} : { fetch: source.fetch }),
        });
  return {
    append: async (messages) => (await client.addMessages(sessionId, messages, owner)).turnIds,
    all: () => readAll((after) => client.getMessages(sessionId, { limit: PAGE, ...(after === undefined ? {} : { after }) })),
    context: (request) => client.getContext(sessionId, request),
    clear: () => ignoreMissing(client.deleteSession(sessionId)),
  };
}

async function readAll(page: (after: number | undefined) => Promise<{ messages: Turn[]; nextAfter: number | null }>): Promise<Turn[]> {
  const out: Turn[] = [];
  let after: number | undefined;
  for (;;) {
    const { messages, nextAfter } = await page(after);
    out.push(...messages);
    if (nextAfter === null) return out;
    after = nextAfter;
  }
}

async function ignoreMissing(deletion: Promise<unknown>): Promise<void> {
  try {
    await deletion;
  } catch (err) {
    if (!isStrataError(err, 'STRATA_ERR_NOT_FOUND')) throw err;
  }
}
