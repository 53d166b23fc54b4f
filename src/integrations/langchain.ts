/**
 * `@strata-memory/strata/langchain`: Strata as a LangChain.js chat message history
 * (`@langchain/core` is a peer dependency of this entry point only).
 *
 *   const history = new StrataChatMessageHistory({ memory: strata, sessionId: 'chat-1' });        // in-process
 *   const remote = new StrataChatMessageHistory({ baseUrl: 'http://127.0.0.1:8080', apiKey, sessionId: 'chat-1' }); // HTTP
 *   const budgeted = new StrataContextHistory({ memory: strata, sessionId: 'chat-1', maxTokens: 2000 });
 *
 * Messages are stored in Strata's model (the OpenAI Chat Completions shape), so other clients of
 * the same session read them too. What LangChain gives is kept: content (a string, or text,
 * image_url and file blocks), `name`, an AI message's tool calls — the model's arguments text
 * verbatim when LangChain carries it (`additional_kwargs.tool_calls`, `invalid_tool_calls`) — a
 * tool message's `tool_call_id`, `name` and `status`, and the message `id`. Not stored:
 * `response_metadata`, `usage_metadata`, other `additional_kwargs`, a tool message's `artifact`,
 * and reasoning blocks of AI content.
 */
import { BaseListChatMessageHistory } from '@langchain/core/chat_history';
import { AIMessage, HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import type { BaseMessage, InvalidToolCall, OpenAIToolCall, ToolCall as LangChainToolCall } from '@langchain/core/messages';
import type { NewMessage } from '../cache/api.js';
import { StrataError } from '../errors.js';
import type { ContentPart, FilePart, ImagePart, MessageContent, ToolCall } from '../message.js';
import type { Metadata, Role, Turn } from '../types.js';
import { openSession } from './source.js';
import type { SessionOptions, SessionStore, StrataSource } from './source.js';

export type { StrataSource, InProcessSource, HttpSource, ClientSource } from './source.js';

export type StrataChatMessageHistoryOptions = StrataSource &
  SessionOptions & {
    /** The Strata session this history reads and writes. */
    sessionId: string;
  };

export interface StrataContextHistoryOptions {
  /** Token budget of the context `getMessages` returns (smart context). */
  maxTokens: number;
  /** What the relevant older turns are searched for. Default: the session's latest user message. */
  query?: string;
  /** Put the milestone summary of older turns, when the context has one, first as a SystemMessage. Default true. */
  includeSummary?: boolean;
}

/** Key of the turn metadata that holds what only LangChain has (message id, tool status). */
const META_KEY = 'langchain';

/** Strata's parts are LangChain's OpenAI-style blocks (text, image_url, file). */
type MessageContentOf<M extends BaseMessage> = M['content'];

interface LangChainMeta {
  id?: string;
  status?: 'success' | 'error';
  /** The AI message carried its calls in `additional_kwargs.tool_calls` too. */
  rawToolCalls?: true;
}

/**
 * The whole history of one Strata session as LangChain messages. `addMessages` is one batch
 * append (all or nothing); `clear` deletes the session from every tier (clearing a session that
 * does not exist is fine).
 */
export class StrataChatMessageHistory extends BaseListChatMessageHistory {
  override lc_namespace = ['langchain', 'stores', 'message', 'strata'];

  override get lc_secrets(): Record<string, string> {
    return { apiKey: 'STRATA_API_KEY' };
  }

  readonly sessionId: string;
  protected readonly session: SessionStore;

  constructor(options: StrataChatMessageHistoryOptions) {
    // Only plain settings go to Serializable (lc_kwargs), never the core or a client.
    super({ sessionId: options.sessionId, ...('baseUrl' in options ? { baseUrl: String(options.baseUrl) } : {}) });
    this.sessionId = options.sessionId;
    this.session = openSession(options, options.sessionId, options.userId === undefined ? {} : { userId: options.userId });
  }

  async getMessages(): Promise<BaseMessage[]> {
    return fromStrataTurns(await this.session.all());
  }

  override async addMessage(message: BaseMessage): Promise<void> {
    await this.addMessages([message]);
  }

  override async addMessages(messages: BaseMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.session.append(messages.map((m, i) => toStrataMessage(m, `messages[${i}]`)));
  }

  override async clear(): Promise<void> {
    await this.session.clear();
  }
}

/**
 * A history whose `getMessages` is Strata's smart context within `maxTokens`: the recent turns,
 * the relevant older ones and the milestone summary (a tool call and its results always
 * together). Writes and `clear` are those of `StrataChatMessageHistory`.
 */
export class StrataContextHistory extends StrataChatMessageHistory {
  private readonly budget: StrataContextHistoryOptions;

  constructor(options: StrataChatMessageHistoryOptions & StrataContextHistoryOptions) {
    super(options);
    if (!Number.isInteger(options.maxTokens) || options.maxTokens < 1) throw new StrataError('STRATA_ERR_VALIDATION', `maxTokens: expected a positive integer, received ${String(options.maxTokens)}`, { details: { field: 'maxTokens' } });
    this.budget = { maxTokens: options.maxTokens, ...(options.query === undefined ? {} : { query: options.query }), includeSummary: options.includeSummary ?? true };
  }

  override async getMessages(): Promise<BaseMessage[]> {
    const context = await this.session.context({ type: 'smart', maxTokens: this.budget.maxTokens, ...(this.budget.query === undefined ? {} : { query: this.budget.query }) });
    const messages = fromStrataTurns(context.messages);
    if (this.budget.includeSummary && context.summary) messages.unshift(new SystemMessage(context.summary));
    return messages;
  }
}

// ---------------------------------------------------------------- LangChain → Strata

function fail(field: string, message: string): never {
  throw new StrataError('STRATA_ERR_VALIDATION', `${field}: ${message}`, { details: { field } });
}

const ROLE_OF_TYPE: Record<string, Role> = { human: 'user', ai: 'assistant', system: 'system', tool: 'tool' };
const ROLE_OF_CHAT_ROLE: Record<string, Role> = { user: 'user', human: 'user', assistant: 'assistant', ai: 'assistant', system: 'system', developer: 'system' };

/** A LangChain message as a Strata message; `field` names it in errors (e.g. `messages[2]`). */
export function toStrataMessage(message: BaseMessage, field = 'message'): NewMessage {
  const type = message.type;
  let role = ROLE_OF_TYPE[type];
  if (role === undefined && type === 'generic') role = ROLE_OF_CHAT_ROLE[String((message as { role?: unknown }).role)];
  if (role === undefined) fail(`${field}.type`, `a ${type} message has no Strata role (human, ai, system, tool, or a chat message of role user, assistant or system)`);
  const meta: LangChainMeta = {};
  if (typeof message.id === 'string' && message.id.length > 0) meta.id = message.id;
  const out: NewMessage = { role, content: toStrataContent(message.content, role, `${field}.content`) };
  if (typeof message.name === 'string' && message.name.length > 0) out.name = message.name;
  if (role === 'assistant') {
    const ai = message as AIMessage;
    const raw = ai.additional_kwargs?.tool_calls;
    const calls = toStrataToolCalls(ai.tool_calls ?? [], ai.invalid_tool_calls ?? [], raw, field);
    if (calls.length > 0) {
      out.tool_calls = calls;
      if (raw !== undefined && raw.length > 0) meta.rawToolCalls = true;
    }
  } else if (role === 'tool') {
    const tool = message as ToolMessage;
    out.tool_call_id = tool.tool_call_id;
    if (tool.status !== undefined) meta.status = tool.status;
  }
  if (Object.keys(meta).length > 0) out.metadata = { [META_KEY]: meta };
  return out;
}

function toStrataToolCalls(calls: readonly LangChainToolCall[], invalid: readonly InvalidToolCall[], raw: readonly OpenAIToolCall[] | undefined, field: string): ToolCall[] {
  const rawById = new Map<string, string>();
  for (const r of raw ?? []) if (typeof r?.id === 'string' && typeof r.function?.arguments === 'string') rawById.set(r.id, r.function.arguments);
  const out: ToolCall[] = [];
  calls.forEach((c, i) => {
    if (typeof c.id !== 'string' || c.id.length === 0) fail(`${field}.tool_calls[${i}].id`, 'a tool call needs an id to be stored (its tool message refers to it)');
    // The model's own text when LangChain kept it and it still says the same as `args`
    // (an application may have edited args after parsing).
    const original = rawById.get(c.id);
    const args = original !== undefined && sameJson(parseJson(original), c.args) ? original : JSON.stringify(c.args ?? {});
    out.push({ id: c.id, type: 'function', function: { name: c.name, arguments: args } });
  });
  invalid.forEach((c, i) => {
    if (typeof c.id !== 'string' || c.id.length === 0) fail(`${field}.invalid_tool_calls[${i}].id`, 'a tool call needs an id to be stored');
    out.push({ id: c.id, type: 'function', function: { name: c.name ?? '', arguments: c.args ?? '' } });
  });
  return out;
}

/** Block types of AI content that are not conversation content (tool calls live in `tool_calls`). */
const SKIPPED_AI_BLOCKS = new Set(['tool_call', 'tool_use', 'tool_call_chunk', 'invalid_tool_call', 'reasoning', 'thinking', 'redacted_thinking']);

function toStrataContent(content: unknown, role: Role, field: string): MessageContent {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) fail(field, 'expected a string or an array of content blocks');
  const parts: ContentPart[] = [];
  content.forEach((block: unknown, i) => {
    const at = `${field}[${i}]`;
    if (typeof block === 'string') return parts.push({ type: 'text', text: block });
    if (block === null || typeof block !== 'object') fail(at, 'expected a content block object');
    const b = block as Record<string, unknown>;
    if (role === 'assistant' && typeof b.type === 'string' && SKIPPED_AI_BLOCKS.has(b.type)) return;
    parts.push(toStrataPart(b, at));
  });
  return parts;
}

function toStrataPart(b: Record<string, unknown>, at: string): ContentPart {
  switch (b.type) {
    case 'text':
      if (typeof b.text !== 'string') fail(`${at}.text`, 'expected a string');
      return { type: 'text', text: b.text };
    case 'image_url': {
      // `image_url` is a URL string or {url, detail}; stored as the object.
      const image = typeof b.image_url === 'string' ? { url: b.image_url } : (b.image_url as { url?: unknown; detail?: unknown } | undefined);
      if (!image || typeof image.url !== 'string') fail(`${at}.image_url`, 'expected a URL or {url, detail}');
      const out: ImagePart = { type: 'image_url', image_url: { url: image.url } };
      if (image.detail === 'auto' || image.detail === 'low' || image.detail === 'high') out.image_url.detail = image.detail;
      return out;
    }
    case 'image': {
      // LangChain's standard block: a URL, or base64 data with its MIME type.
      const url = standardUrl(b, at, 'image/png');
      return { type: 'image_url', image_url: { url } };
    }
    case 'file': {
      if (b.file !== undefined) return b as unknown as FilePart; // The OpenAI shape, checked by the core.
      const out: FilePart = { type: 'file', file: {} };
      if (typeof b.fileId === 'string') out.file.file_id = b.fileId;
      else if (typeof b.url === 'string' && !b.url.startsWith('data:')) out.file.url = b.url;
      else out.file.file_data = standardUrl(b, at, 'application/octet-stream');
      const filename = (b.metadata as { filename?: unknown } | undefined)?.filename;
      if (typeof filename === 'string') out.file.filename = filename;
      return out;
    }
    default:
      return fail(`${at}.type`, `a ${JSON.stringify(b.type)} block cannot be stored (text, image_url, image and file blocks can)`);
  }
}

function standardUrl(b: Record<string, unknown>, at: string, defaultMime: string): string {
  if (typeof b.url === 'string') return b.url;
  const mime = typeof b.mimeType === 'string' ? b.mimeType : typeof b.mime_type === 'string' ? b.mime_type : defaultMime;
  if (typeof b.data === 'string') return `data:${mime};base64,${b.data}`;
  if (b.data instanceof Uint8Array) return `data:${mime};base64,${Buffer.from(b.data).toString('base64')}`;
  return fail(at, 'expected url or data');
}

// ---------------------------------------------------------------- Strata → LangChain

/** Strata turns (or messages) as LangChain messages. */
export function fromStrataTurns(turns: ReadonlyArray<Pick<Turn, 'role' | 'content' | 'name' | 'tool_calls' | 'tool_call_id' | 'metadata'>>): BaseMessage[] {
  return turns.map(fromStrataTurn);
}

export function fromStrataTurn(turn: Pick<Turn, 'role' | 'content' | 'name' | 'tool_calls' | 'tool_call_id' | 'metadata'>): BaseMessage {
  const meta = langChainMeta(turn.metadata);
  // A null content (an assistant turn that only calls tools) is LangChain's empty string.
  const content = turn.content === null ? '' : (turn.content as MessageContentOf<HumanMessage>);
  const common = { content, ...(turn.name !== undefined ? { name: turn.name } : {}), ...(meta.id !== undefined ? { id: meta.id } : {}) };
  switch (turn.role) {
    case 'user':
      return new HumanMessage(common);
    case 'system':
      return new SystemMessage(common);
    case 'tool':
      return new ToolMessage({ ...common, tool_call_id: turn.tool_call_id ?? '', ...(meta.status !== undefined ? { status: meta.status } : {}) });
    case 'assistant': {
      const toolCalls: LangChainToolCall[] = [];
      const invalid: InvalidToolCall[] = [];
      let canonical = true;
      for (const c of turn.tool_calls ?? []) {
        const args = parseJson(c.function.arguments);
        if (args !== undefined && args !== null && typeof args === 'object' && !Array.isArray(args)) {
          toolCalls.push({ type: 'tool_call', id: c.id, name: c.function.name, args: args as Record<string, unknown> });
          if (JSON.stringify(args) !== c.function.arguments) canonical = false;
        } else {
          invalid.push({ type: 'invalid_tool_call', id: c.id, name: c.function.name, args: c.function.arguments, error: 'Malformed args.' });
        }
      }
      // The stored calls (with the model's text) go back in additional_kwargs when they came in
      // that way, or when parsing lost something (spacing, key order): so they come back to
      // Strata unchanged.
      const keepRaw = turn.tool_calls !== undefined && turn.tool_calls.length > 0 && (meta.rawToolCalls === true || !canonical);
      const raw: OpenAIToolCall[] = keepRaw ? (turn.tool_calls ?? []).map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } })) : [];
      return new AIMessage({ ...common, tool_calls: toolCalls, invalid_tool_calls: invalid, ...(keepRaw ? { additional_kwargs: { tool_calls: raw } } : {}) });
    }
  }
}

function langChainMeta(metadata: Metadata | undefined): LangChainMeta {
  const meta = metadata?.[META_KEY];
  return meta !== null && typeof meta === 'object' && !Array.isArray(meta) ? (meta as LangChainMeta) : {};
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Deep equality of JSON values (key order ignored). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => sameJson(v, bb[i]));
  }
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b as object, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
