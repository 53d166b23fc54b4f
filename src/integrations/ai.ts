/**
 * `@strata-memory/strata/ai`: Strata as the memory of Vercel AI SDK calls (`ai` is a peer
 * dependency of this entry point, for its types only: nothing of it runs here).
 *
 *   const memory = withStrataMemory({ memory: strata, sessionId: 'chat-1', maxTokens: 4000 });
 *   const user: ModelMessage = { role: 'user', content: 'Weather in Lisbon?' };
 *   const result = await generateText({ model, tools, stopWhen: stepCountIs(3), messages: [...(await memory.load()), user] });
 *   await memory.save([user, ...result.response.messages]);
 *
 * `toModelMessages` turns Strata turns (or a context) into `ModelMessage[]`; `fromModelMessages`
 * is its inverse, for what `generateText`/`streamText` return. Messages saved from the AI SDK
 * come back equal. Kept: text, image and file parts, tool calls (their input as JSON text), tool
 * results (`text`, `json`, `error-text`, `error-json`, `execution-denied`, text `content`), an
 * image's OpenAI `imageDetail`. Not stored: `providerOptions` otherwise, reasoning parts.
 * Refused (STRATA_ERR_VALIDATION naming the part): files in assistant messages, results of
 * provider-executed tools inside assistant messages, tool approval parts, media in tool results.
 */
import type { AssistantContent, FilePart, ImagePart, JSONValue, ModelMessage, TextPart, ToolCallPart, ToolContent, ToolResultPart, UserContent } from 'ai';
import type { ContextResult, NewMessage } from '../cache/api.js';
import { StrataError } from '../errors.js';
import type { ContentPart, FilePart as StrataFilePart, MessageContent, MessageFields, ToolCall } from '../message.js';
import type { Metadata } from '../types.js';
import { openSession } from './source.js';
import type { SessionOptions, StrataSource } from './source.js';

export type { StrataSource, InProcessSource, HttpSource, ClientSource } from './source.js';

/** A Strata turn or message: what `toModelMessages` reads. */
export type StrataMessageLike = MessageFields & { metadata?: Metadata };

/** Turns, messages, or a context (`getContext`), whose summary becomes a leading system message. */
export type StrataMessagesInput = readonly StrataMessageLike[] | Pick<ContextResult, 'messages'> & { summary?: string | null };

/** Key of the turn metadata that records what a tool result's text alone cannot say (its output type). */
const META_KEY = 'aiSdk';

type OutputType = ToolResultPart['output']['type'];

interface AiSdkMeta {
  output?: OutputType;
}

function fail(field: string, message: string): never {
  throw new StrataError('STRATA_ERR_VALIDATION', `${field}: ${message}`, { details: { field } });
}

// ---------------------------------------------------------------- Strata → AI SDK

/**
 * Strata turns as AI SDK messages, in order. An assistant turn's tool calls become `tool-call`
 * parts (input parsed from the JSON arguments); consecutive tool turns become one `tool` message
 * of `tool-result` parts; image and file parts keep their URL or data. A context's summary, when
 * it has one, comes first as a system message.
 */
export function toModelMessages(input: StrataMessagesInput): ModelMessage[] {
  const turns: readonly StrataMessageLike[] = isTurnArray(input) ? input : input.messages;
  const summary = isTurnArray(input) ? null : (input.summary ?? null);
  const out: ModelMessage[] = [];
  if (summary) out.push({ role: 'system', content: summary });
  // Tool names by call id, for tool turns stored without a name.
  const toolNames = new Map<string, string>();
  for (const t of turns) for (const c of t.tool_calls ?? []) toolNames.set(c.id, c.function.name);
  for (const t of turns) {
    switch (t.role) {
      case 'system':
        out.push({ role: 'system', content: textOf(t.content) });
        break;
      case 'user':
        out.push({ role: 'user', content: userContent(t.content) });
        break;
      case 'assistant':
        out.push({ role: 'assistant', content: assistantContent(t.content, t.tool_calls) });
        break;
      case 'tool': {
        const part: ToolResultPart = { type: 'tool-result', toolCallId: t.tool_call_id ?? '', toolName: t.name ?? toolNames.get(t.tool_call_id ?? '') ?? '', output: toolOutput(t) };
        const last = out.at(-1);
        if (last?.role === 'tool') last.content.push(part);
        else out.push({ role: 'tool', content: [part] });
        break;
      }
    }
  }
  return out;
}

function isTurnArray(input: StrataMessagesInput): input is readonly StrataMessageLike[] {
  return Array.isArray(input);
}

function textOf(content: MessageContent): string {
  if (typeof content === 'string') return content;
  return (content ?? []).map((p) => (p.type === 'text' ? p.text : '')).join('');
}

function userContent(content: MessageContent): UserContent {
  if (typeof content === 'string') return content;
  return (content ?? []).map((p): TextPart | ImagePart | FilePart => {
    if (p.type === 'text') return { type: 'text', text: p.text };
    if (p.type === 'image_url') {
      const image: ImagePart = { type: 'image', ...dataOf(p.image_url.url) };
      if (p.image_url.detail !== undefined) image.providerOptions = { openai: { imageDetail: p.image_url.detail } };
      return image;
    }
    return filePart(p);
  });
}

function filePart(p: StrataFilePart): FilePart {
  const { file_data, file_id, url, filename } = p.file;
  let out: FilePart;
  if (file_data !== undefined || url !== undefined) {
    const { image: data, mediaType } = dataOf((file_data ?? url)!);
    out = { type: 'file', data, mediaType: mediaType ?? mediaTypeOfName(filename) ?? 'application/octet-stream' };
  } else {
    // A provider's file id is not data: marked so it comes back as a file id.
    out = { type: 'file', data: file_id ?? '', mediaType: mediaTypeOfName(filename) ?? 'application/octet-stream', providerOptions: { strata: { fileId: true } } };
  }
  if (filename !== undefined) out.filename = filename;
  return out;
}

/**
 * Data as the AI SDK takes it: a base64 data: URL as its base64 text and media type, an http(s)
 * URL as a URL, anything else (raw base64) as it is.
 */
function dataOf(text: string): { image: string | URL; mediaType?: string } {
  const m = /^data:([^;,]*)((?:;[^;,]*)*),/.exec(text.slice(0, 256));
  if (m) {
    const base64 = /;base64$/i.test(m[2] ?? '');
    if (base64) return { image: text.slice(m[0].length), ...(m[1] ? { mediaType: m[1] } : {}) };
    return { image: text, ...(m[1] ? { mediaType: m[1] } : {}) };
  }
  if (/^https?:\/\//i.test(text)) return { image: new URL(text) };
  return { image: text };
}

function assistantContent(content: MessageContent, calls: readonly ToolCall[] | undefined): AssistantContent {
  if (calls === undefined || calls.length === 0) {
    if (typeof content === 'string') return content;
    return (content ?? []).filter((p) => p.type === 'text').map((p) => ({ type: 'text', text: p.text }));
  }
  const parts: Exclude<AssistantContent, string> = [];
  if (typeof content === 'string') {
    if (content.length > 0) parts.push({ type: 'text', text: content });
  } else for (const p of content ?? []) if (p.type === 'text') parts.push({ type: 'text', text: p.text });
  for (const c of calls) {
    const input = parseJson(c.function.arguments);
    const part: ToolCallPart = { type: 'tool-call', toolCallId: c.id, toolName: c.function.name, input: input.ok ? input.value : c.function.arguments };
    // The model's text when parsing loses something (spacing, key order, invalid JSON), so it is stored back unchanged.
    if (!input.ok || JSON.stringify(input.value) !== c.function.arguments) part.providerOptions = { strata: { arguments: c.function.arguments } };
    parts.push(part);
  }
  return parts;
}

/**
 * A tool turn's output: parts are `content`; a string is `json` when it is a JSON object or
 * array, else `text` — unless the turn's metadata records another type (saved by
 * fromModelMessages when the text alone would read differently).
 */
function toolOutput(t: StrataMessageLike): ToolResultPart['output'] {
  if (Array.isArray(t.content)) return { type: 'content', value: t.content.map((p) => ({ type: 'text', text: p.type === 'text' ? p.text : '' })) };
  const text = typeof t.content === 'string' ? t.content : '';
  const recorded = aiSdkMeta(t.metadata).output;
  const type = recorded ?? inferredOutput(text);
  switch (type) {
    case 'json':
    case 'error-json': {
      const parsed = parseJson(text);
      return parsed.ok ? { type, value: parsed.value as JSONValue } : { type: type === 'json' ? 'text' : 'error-text', value: text };
    }
    case 'error-text':
      return { type, value: text };
    case 'execution-denied':
      return text.length > 0 ? { type, reason: text } : { type };
    default:
      return { type: 'text', value: text };
  }
}

function inferredOutput(text: string): 'json' | 'text' {
  const parsed = parseJson(text);
  return parsed.ok && parsed.value !== null && typeof parsed.value === 'object' ? 'json' : 'text';
}

function aiSdkMeta(metadata: Metadata | undefined): AiSdkMeta {
  const meta = metadata?.[META_KEY];
  return meta !== null && typeof meta === 'object' && !Array.isArray(meta) ? (meta as AiSdkMeta) : {};
}

// ---------------------------------------------------------------- AI SDK → Strata

/**
 * AI SDK messages (e.g. `[userMessage, ...result.response.messages]`) as Strata messages, ready
 * for `addMessages`. A tool message of several results becomes one tool turn per result.
 * Reasoning parts are left out; parts Strata cannot store are refused (see the module comment).
 */
export function fromModelMessages(messages: readonly ModelMessage[]): NewMessage[] {
  const out: NewMessage[] = [];
  messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    switch (m.role) {
      case 'system':
        out.push({ role: 'system', content: m.content });
        break;
      case 'user':
        out.push({ role: 'user', content: typeof m.content === 'string' ? m.content : m.content.map((p, j) => fromUserPart(p, `${field}.content[${j}]`)) });
        break;
      case 'assistant':
        out.push(fromAssistant(m.content, field));
        break;
      case 'tool':
        m.content.forEach((p, j) => out.push(fromToolPart(p as ToolContent[number], `${field}.content[${j}]`)));
        break;
      default:
        fail(`${field}.role`, `unknown role ${JSON.stringify((m as { role?: unknown }).role)}`);
    }
  });
  return out;
}

function fromUserPart(p: TextPart | ImagePart | FilePart, field: string): ContentPart {
  switch (p.type) {
    case 'text':
      return { type: 'text', text: p.text };
    case 'image': {
      const url = asUrl(p.image, p.mediaType ?? imageMediaType(p.image) ?? 'application/octet-stream');
      const detail = (p.providerOptions?.openai as { imageDetail?: unknown } | undefined)?.imageDetail;
      const out: ContentPart = { type: 'image_url', image_url: { url } };
      if (detail === 'auto' || detail === 'low' || detail === 'high') out.image_url.detail = detail;
      return out;
    }
    case 'file': {
      const out: StrataFilePart = { type: 'file', file: {} };
      if (p.providerOptions?.strata?.fileId === true && typeof p.data === 'string') out.file.file_id = p.data;
      else {
        const url = asUrl(p.data, p.mediaType);
        if (url.startsWith('data:')) out.file.file_data = url;
        else out.file.url = url;
      }
      if (p.filename !== undefined) out.file.filename = p.filename;
      return out;
    }
    default:
      return fail(`${field}.type`, `a ${JSON.stringify((p as { type?: unknown }).type)} part cannot be stored`);
  }
}

function fromAssistant(content: AssistantContent, field: string): NewMessage {
  if (typeof content === 'string') return { role: 'assistant', content };
  const texts: ContentPart[] = [];
  const calls: ToolCall[] = [];
  content.forEach((p, j) => {
    const at = `${field}.content[${j}]`;
    switch (p.type) {
      case 'text':
        texts.push({ type: 'text', text: p.text });
        break;
      case 'reasoning':
        break; // The model's scratchpad, not the conversation.
      case 'tool-call': {
        if (p.providerExecuted) fail(`${at}.providerExecuted`, 'calls of provider-executed tools cannot be stored');
        calls.push({ id: p.toolCallId, type: 'function', function: { name: p.toolName, arguments: argumentsText(p) } });
        break;
      }
      default:
        fail(`${at}.type`, `a ${JSON.stringify(p.type)} part of an assistant message cannot be stored (text, reasoning and tool-call parts can)`);
    }
  });
  if (calls.length === 0) return { role: 'assistant', content: texts };
  return { role: 'assistant', content: texts.length > 0 ? texts : null, tool_calls: calls };
}

/** The model's arguments text kept by toModelMessages when it still says what `input` says; else `input` as JSON. */
function argumentsText(p: ToolCallPart): string {
  const kept = p.providerOptions?.strata?.arguments;
  if (typeof kept === 'string') {
    const parsed = parseJson(kept);
    if (parsed.ok ? sameJson(parsed.value, p.input) : kept === p.input) return kept;
  }
  return JSON.stringify(p.input ?? {});
}

function fromToolPart(p: ToolContent[number], field: string): NewMessage {
  if (p.type !== 'tool-result') fail(`${field}.type`, `a ${JSON.stringify(p.type)} part cannot be stored (tool-result parts can)`);
  const out: NewMessage = { role: 'tool', tool_call_id: p.toolCallId, name: p.toolName, content: '' };
  const o = p.output;
  let type: OutputType = o.type;
  switch (o.type) {
    case 'text':
    case 'error-text':
      out.content = o.value;
      break;
    case 'json':
    case 'error-json':
      out.content = JSON.stringify(o.value ?? null);
      break;
    case 'execution-denied':
      out.content = o.reason ?? '';
      break;
    case 'content':
      out.content = o.value.map((v, k) => {
        if (v.type !== 'text') fail(`${field}.output.value[${k}].type`, `a ${JSON.stringify(v.type)} item of a tool result cannot be stored (text items can)`);
        return { type: 'text' as const, text: v.text };
      });
      type = 'content';
      break;
  }
  // Recorded only when the stored text alone would read as another output type.
  if (typeof out.content === 'string' && type !== inferredOutput(out.content)) out.metadata = { [META_KEY]: { output: type } };
  return out;
}

// ---------------------------------------------------------------- memory helper

export interface StrataMemoryOptions extends SessionOptions {
  /** The Strata session. */
  sessionId: string;
  /**
   * `load()` returns Strata's smart context within this many tokens (recent turns, relevant older
   * ones, the milestone summary; a tool call and its results always together). Without it,
   * `load()` returns the whole session.
   */
  maxTokens?: number;
}

export interface StrataMemory {
  /** The session as AI SDK messages: smart context within `maxTokens`, or the whole session. `query` steers the smart context's search (default: the latest user message). */
  load(query?: string): Promise<ModelMessage[]>;
  /** Appends messages (the user's, then `result.response.messages`) as one batch; answers the turn ids. */
  save(messages: readonly ModelMessage[]): Promise<number[]>;
  /** Deletes the session (a session that does not exist is already clear). */
  clear(): Promise<void>;
}

/** Load-before and save-after for `generateText`/`streamText`, over a core in this process or the HTTP service. */
export function withStrataMemory(options: StrataSource & StrataMemoryOptions): StrataMemory {
  const { maxTokens } = options;
  if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || maxTokens < 1)) fail('maxTokens', `expected a positive integer, received ${String(maxTokens)}`);
  const session = openSession(options, options.sessionId, options.userId === undefined ? {} : { userId: options.userId });
  return {
    async load(query) {
      if (maxTokens === undefined) return toModelMessages(await session.all());
      return toModelMessages(await session.context({ type: 'smart', maxTokens, ...(query === undefined ? {} : { query }) }));
    },
    async save(messages) {
      if (messages.length === 0) return [];
      return session.append(fromModelMessages(messages));
    },
    clear: () => session.clear(),
  };
}

// ---------------------------------------------------------------- helpers

type Parsed = { ok: true; value: unknown } | { ok: false };

function parseJson(text: string): Parsed {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/** Equal as JSON values (key order aside). */
function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
}

/** An image's or file's data as Strata stores it: an http(s) or data: URL. */
function asUrl(data: ImagePart['image'], mediaType: string): string {
  if (data instanceof URL) return data.href;
  if (typeof data === 'string') {
    if (/^(https?:|data:)/i.test(data)) return data;
    return `data:${mediaType};base64,${data}`;
  }
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
  return `data:${mediaType};base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}`;
}

/** The media type of base64 image data by its first bytes (PNG, JPEG, GIF, WebP). */
function imageMediaType(data: ImagePart['image']): string | undefined {
  if (typeof data !== 'string' || /^(https?:|data:)/i.test(data)) {
    if (typeof data === 'string' || data instanceof URL) return undefined;
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
    return imageMediaType(Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 16)).toString('base64'));
  }
  if (data.startsWith('iVBORw0KGgo')) return 'image/png';
  if (data.startsWith('/9j/')) return 'image/jpeg';
  if (data.startsWith('R0lGOD')) return 'image/gif';
  if (data.startsWith('UklGR')) return 'image/webp';
  return undefined;
}

const MEDIA_TYPES: Record<string, string> = { pdf: 'application/pdf', txt: 'text/plain', md: 'text/markdown', csv: 'text/csv', json: 'application/json', html: 'text/html', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', mp3: 'audio/mpeg', wav: 'audio/wav' };

function mediaTypeOfName(name: string | undefined): string | undefined {
  const ext = name?.split('.').pop()?.toLowerCase();
  return ext === undefined ? undefined : MEDIA_TYPES[ext];
}
