import { isWellFormed } from './codec/text.js';
import { StrataError, type ErrorCode } from './errors.js';
import type { Metadata, Role } from './types.js';
import { ROLES } from './types.js';

/*
 * The message model: the OpenAI Chat Completions message (the shape the AI SDK, LangChain and
 * most agent frameworks convert to and from), stored losslessly in every tier. A message that
 * goes in comes back JSON-equal. docs/messages.md describes the rules.
 */

export interface TextPart {
  type: 'text';
  text: string;
}

export interface ImagePart {
  type: 'image_url';
  /** `url`: an http(s) URL or a `data:` URL with base64 content (inline, capped by maxInlineDataBytes). */
  image_url: { url: string; detail?: 'auto' | 'low' | 'high' };
}

export interface FilePart {
  type: 'file';
  /** At least one of `file_data` (a `data:` URL or base64), `file_id` or `url` (http(s)). */
  file: { file_data?: string; file_id?: string; url?: string; filename?: string };
}

export type ContentPart = TextPart | ImagePart | FilePart;

/** A string, an array of parts, or null (an assistant message that only calls tools). */
export type MessageContent = string | ContentPart[] | null;

export interface ToolCall {
  id: string;
  type: 'function';
  /** `arguments` is the model's JSON text, stored verbatim (not re-serialised). */
  function: { name: string; arguments: string };
}

/** The fields of a message other than Strata's own (turn id, time, tokens, metadata). */
export interface MessageFields {
  role: Role;
  content: MessageContent;
  /** Optional participant name (any role); on a tool message, the tool's name. */
  name?: string;
  /** Assistant only: the tools the model called. */
  tool_calls?: ToolCall[];
  /** Tool only, required: the id of the call this message answers. */
  tool_call_id?: string;
}

export interface MessageLimits {
  maxMessageBytes: number;
  maxMetadataBytes: number;
  /** Largest inline (`data:` / base64) payload of one part, in bytes of its text. */
  maxInlineDataBytes: number;
}

/** A validated message, ready for the tiers. */
export interface ValidMessage extends MessageFields {
  metadata?: Metadata;
}

export const MAX_TOOL_CALLS = 128;
export const MAX_PARTS = 256;
const MAX_NAME_CHARS = 256;
const MAX_CALL_ID_CHARS = 256;

const encoder = new TextEncoder();
const ROLE_SET: ReadonlySet<string> = new Set(ROLES);

function fail(code: ErrorCode, field: string, message: string, extra: Record<string, unknown> = {}): never {
  throw new StrataError(code, `${field}: ${message}`, { details: { field, ...extra } });
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function onlyKeys(value: Record<string, unknown>, allowed: readonly string[], field: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail('STRATA_ERR_VALIDATION', `${field}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

/**
 * Refuses text with a lone UTF-16 surrogate (STRATA_ERR_TEXT_INVALID, naming `field`). Such text
 * has no UTF-8 form: JSON responses, the archive's UTF-8 column and every client would change it,
 * so accepting it would acknowledge text Strata cannot give back as it was sent.
 */
export function checkText(field: string, text: string): void {
  if (isWellFormed(text)) return;
  const at = firstLoneSurrogate(text);
  throw new StrataError('STRATA_ERR_TEXT_INVALID', `${field} has a lone UTF-16 surrogate at index ${at}; send valid Unicode`, { details: { field, index: at } });
}

function firstLoneSurrogate(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return i;
    } else if (c >= 0xdc00 && c <= 0xdfff) return i;
  }
  return -1;
}

function str(value: unknown, field: string, opts: { min?: number; max?: number } = {}): string {
  if (typeof value !== 'string') fail('STRATA_ERR_VALIDATION', field, `expected a string, received ${describe(value)}`);
  const min = opts.min ?? 0;
  if (value.length < min) fail('STRATA_ERR_VALIDATION', field, min === 1 ? 'must not be empty' : `must have at least ${min} characters`);
  if (opts.max !== undefined && value.length > opts.max) fail('STRATA_ERR_VALIDATION', field, `at most ${opts.max} characters; received ${value.length}`);
  checkText(field, value);
  return value;
}

/** Bytes of a string in UTF-8, with the cheap upper bound (3 bytes per UTF-16 unit) checked first. */
function overLimit(text: string, limit: number): number | null {
  if (text.length * 3 <= limit) return null;
  const bytes = encoder.encode(text).length;
  return bytes > limit ? bytes : null;
}

function url(value: unknown, field: string, limits: MessageLimits, allowData: boolean): string {
  const text = str(value, field, { min: 1 });
  if (text.startsWith('data:')) {
    if (!allowData) fail('STRATA_ERR_VALIDATION', field, 'expected an http(s) URL');
    const bytes = overLimit(text, limits.maxInlineDataBytes);
    if (bytes !== null) fail('STRATA_ERR_CONTENT_TOO_LARGE', field, `inline data is ${bytes} bytes; the limit (maxInlineDataBytes) is ${limits.maxInlineDataBytes}`, { bytes, limit: limits.maxInlineDataBytes });
    if (!/^data:[^,]*,/.test(text.slice(0, 256))) fail('STRATA_ERR_VALIDATION', field, 'a data: URL needs a comma after its media type');
    return text;
  }
  if (!/^https?:\/\/[^\s]+$/i.test(text.length > 8192 ? '' : text)) fail('STRATA_ERR_VALIDATION', field, `expected an http(s) URL${allowData ? ' or a data: URL' : ''} of at most 8192 characters`);
  return text;
}

function part(value: unknown, field: string, limits: MessageLimits): ContentPart {
  if (!isPlainObject(value)) fail('STRATA_ERR_VALIDATION', field, `expected an object, received ${describe(value)}`);
  switch (value.type) {
    case 'text':
      onlyKeys(value, ['type', 'text'], field);
      return { type: 'text', text: str(value.text, `${field}.text`) };
    case 'image_url': {
      onlyKeys(value, ['type', 'image_url'], field);
      const image = value.image_url;
      if (!isPlainObject(image)) fail('STRATA_ERR_VALIDATION', `${field}.image_url`, `expected an object {url, detail?}, received ${describe(image)}`);
      onlyKeys(image, ['url', 'detail'], `${field}.image_url`);
      const out: ImagePart = { type: 'image_url', image_url: { url: url(image.url, `${field}.image_url.url`, limits, true) } };
      if (image.detail !== undefined) {
        if (image.detail !== 'auto' && image.detail !== 'low' && image.detail !== 'high') fail('STRATA_ERR_VALIDATION', `${field}.image_url.detail`, 'expected auto, low or high');
        out.image_url.detail = image.detail;
      }
      return out;
    }
    case 'file': {
      onlyKeys(value, ['type', 'file'], field);
      const file = value.file;
      if (!isPlainObject(file)) fail('STRATA_ERR_VALIDATION', `${field}.file`, `expected an object, received ${describe(file)}`);
      onlyKeys(file, ['file_data', 'file_id', 'url', 'filename'], `${field}.file`);
      const out: FilePart = { type: 'file', file: {} };
      if (file.file_data !== undefined) {
        const data = str(file.file_data, `${field}.file.file_data`, { min: 1 });
        const bytes = overLimit(data, limits.maxInlineDataBytes);
        if (bytes !== null) fail('STRATA_ERR_CONTENT_TOO_LARGE', `${field}.file.file_data`, `inline data is ${bytes} bytes; the limit (maxInlineDataBytes) is ${limits.maxInlineDataBytes}`, { bytes, limit: limits.maxInlineDataBytes });
        out.file.file_data = data;
      }
      if (file.file_id !== undefined) out.file.file_id = str(file.file_id, `${field}.file.file_id`, { min: 1, max: 512 });
      if (file.url !== undefined) out.file.url = url(file.url, `${field}.file.url`, limits, false);
      if (file.filename !== undefined) out.file.filename = str(file.filename, `${field}.file.filename`, { min: 1, max: 1024 });
      if (out.file.file_data === undefined && out.file.file_id === undefined && out.file.url === undefined) fail('STRATA_ERR_VALIDATION', `${field}.file`, 'needs file_data, file_id or url');
      // Keys in a fixed order, so the stored form does not depend on the order they were sent in.
      return out;
    }
    default:
      return fail('STRATA_ERR_VALIDATION', `${field}.type`, `expected text, image_url or file; received ${JSON.stringify(typeof value.type === 'string' ? value.type.slice(0, 40) : value.type)}`);
  }
}

function toolCall(value: unknown, field: string): ToolCall {
  if (!isPlainObject(value)) fail('STRATA_ERR_VALIDATION', field, `expected an object {id, type: "function", function: {name, arguments}}, received ${describe(value)}`);
  onlyKeys(value, ['id', 'type', 'function'], field);
  const id = str(value.id, `${field}.id`, { min: 1, max: MAX_CALL_ID_CHARS });
  if (value.type !== 'function') fail('STRATA_ERR_VALIDATION', `${field}.type`, `expected "function", received ${JSON.stringify(value.type)}`);
  const fn = value.function;
  if (!isPlainObject(fn)) fail('STRATA_ERR_VALIDATION', `${field}.function`, `expected an object {name, arguments}, received ${describe(fn)}`);
  onlyKeys(fn, ['name', 'arguments'], `${field}.function`);
  return { id, type: 'function', function: { name: str(fn.name, `${field}.function.name`, { min: 1, max: MAX_NAME_CHARS }), arguments: str(fn.arguments, `${field}.function.arguments`) } };
}

/**
 * Validates one message before anything is written and returns it in its stored form (the same
 * JSON value, fields in a fixed order). `field` prefixes error paths, e.g. `messages[2]`. Every
 * failure is a coded error naming the offending field, and happens before any state changes.
 */
export function validateMessage(input: unknown, limits: MessageLimits, field = 'message'): ValidMessage {
  if (!isPlainObject(input)) fail('STRATA_ERR_VALIDATION', field, `expected a message object, received ${describe(input)}`);
  const prefix = field === '' ? '' : `${field}.`;
  for (const key of Object.keys(input)) {
    if (!['role', 'content', 'name', 'tool_calls', 'tool_call_id', 'metadata'].includes(key)) {
      fail('STRATA_ERR_VALIDATION', `${prefix}${key}`, 'unknown field (allowed: role, content, name, tool_calls, tool_call_id, metadata)');
    }
  }
  const role = input.role;
  if (typeof role !== 'string' || !ROLE_SET.has(role)) {
    throw new StrataError('STRATA_ERR_INVALID_ROLE', `${prefix}role must be one of ${ROLES.join(', ')}; received ${typeof role === 'string' ? JSON.stringify(role.length > 40 ? `${role.slice(0, 40)}…` : role) : describe(role)}`, { details: { field: `${prefix}role` } });
  }
  const out: ValidMessage = { role: role as Role, content: null };

  let toolCalls: ToolCall[] | undefined;
  if (input.tool_calls !== undefined) {
    if (role !== 'assistant') fail('STRATA_ERR_VALIDATION', `${prefix}tool_calls`, `only assistant messages carry tool calls (role is ${role})`);
    if (!Array.isArray(input.tool_calls)) fail('STRATA_ERR_VALIDATION', `${prefix}tool_calls`, `expected an array, received ${describe(input.tool_calls)}`);
    if (input.tool_calls.length > MAX_TOOL_CALLS) fail('STRATA_ERR_VALIDATION', `${prefix}tool_calls`, `at most ${MAX_TOOL_CALLS} tool calls; received ${input.tool_calls.length}`);
    toolCalls = input.tool_calls.map((c, i) => toolCall(c, `${prefix}tool_calls[${i}]`));
    const seen = new Set<string>();
    toolCalls.forEach((c, i) => {
      if (seen.has(c.id)) fail('STRATA_ERR_VALIDATION', `${prefix}tool_calls[${i}].id`, `duplicate tool call id ${JSON.stringify(c.id)}`);
      seen.add(c.id);
    });
  }
  const content = input.content;
  const hasCalls = toolCalls !== undefined && toolCalls.length > 0;
  if (content === null || content === undefined) {
    if (!hasCalls) fail('STRATA_ERR_CONTENT_EMPTY', `${prefix}content`, 'a message needs content (a string or parts) unless it carries tool_calls');
    if (content === undefined) fail('STRATA_ERR_VALIDATION', `${prefix}content`, 'send content: null (or "") with tool_calls');
    out.content = null;
  } else if (typeof content === 'string') {
    if (content.length === 0 && !hasCalls && role !== 'tool') fail('STRATA_ERR_CONTENT_EMPTY', `${prefix}content`, 'must not be empty (an empty content is valid only with tool_calls, or as a tool result)');
    checkText(`${prefix}content`, content);
    out.content = content;
  } else if (Array.isArray(content)) {
    if (content.length === 0 && !hasCalls) fail('STRATA_ERR_CONTENT_EMPTY', `${prefix}content`, 'an empty parts array is valid only with tool_calls');
    if (content.length > MAX_PARTS) fail('STRATA_ERR_VALIDATION', `${prefix}content`, `at most ${MAX_PARTS} parts; received ${content.length}`);
    const parts = content.map((p, i) => part(p, `${prefix}content[${i}]`, limits));
    parts.forEach((p, i) => {
      if (p.type !== 'text' && role !== 'user') fail('STRATA_ERR_VALIDATION', `${prefix}content[${i}].type`, `${p.type} parts are valid in user messages only (role is ${role})`);
    });
    out.content = parts;
  } else {
    fail('STRATA_ERR_VALIDATION', `${prefix}content`, `expected a string, an array of parts or null; received ${describe(content)}`);
  }
  if (input.name !== undefined) out.name = str(input.name, `${prefix}name`, { min: 1, max: MAX_NAME_CHARS });
  if (toolCalls !== undefined) out.tool_calls = toolCalls;
  if (role === 'tool') {
    if (input.tool_call_id === undefined) fail('STRATA_ERR_VALIDATION', `${prefix}tool_call_id`, 'a tool message needs the id of the call it answers');
    out.tool_call_id = str(input.tool_call_id, `${prefix}tool_call_id`, { min: 1, max: MAX_CALL_ID_CHARS });
  } else if (input.tool_call_id !== undefined) {
    fail('STRATA_ERR_VALIDATION', `${prefix}tool_call_id`, `only tool messages carry tool_call_id (role is ${role})`);
  }
  // The whole message as stored (text column + extension) counts against maxMessageBytes.
  const text = messageText(out);
  const ext = messageExtension(out) ?? '';
  if ((text.length + ext.length) * 3 > limits.maxMessageBytes) {
    const bytes = encoder.encode(text).length + encoder.encode(ext).length;
    if (bytes > limits.maxMessageBytes) fail('STRATA_ERR_CONTENT_TOO_LARGE', `${prefix}content`, `the message is ${bytes} bytes; the limit (maxMessageBytes) is ${limits.maxMessageBytes}`, { bytes, limit: limits.maxMessageBytes });
  }
  if (input.metadata !== undefined) out.metadata = validateMetadata(input.metadata, limits, `${prefix}metadata`);
  return out;
}

/** A plain JSON object within maxMetadataBytes, returned as its JSON round trip. */
export function validateMetadata(metadata: unknown, limits: Pick<MessageLimits, 'maxMetadataBytes'>, field = 'metadata'): Metadata {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata) || Object.getPrototypeOf(metadata) !== Object.prototype) {
    throw new StrataError('STRATA_ERR_METADATA_INVALID', `${field} must be a plain JSON object; received ${Array.isArray(metadata) ? 'array' : metadata === null ? 'null' : typeof metadata}`, { details: { field } });
  }
  let json: string;
  try {
    json = JSON.stringify(metadata);
  } catch (err) {
    throw new StrataError('STRATA_ERR_METADATA_INVALID', `${field} is not JSON-serialisable: ${(err as Error).message}`, { details: { field } });
  }
  const bytes = encoder.encode(json).length;
  if (bytes > limits.maxMetadataBytes) throw new StrataError('STRATA_ERR_METADATA_TOO_LARGE', `${field} is ${bytes} bytes as JSON; the limit (maxMetadataBytes) is ${limits.maxMetadataBytes}`, { details: { field, bytes, limit: limits.maxMetadataBytes } });
  // A JSON round trip drops undefined values and functions so every tier stores the same thing.
  const parsed = JSON.parse(json) as Metadata;
  checkMetadataText(parsed, field);
  return parsed;
}

/** Every key and string value of parsed metadata, walked with an explicit stack (no recursion limit). */
function checkMetadataText(metadata: Metadata, field: string): void {
  const stack: Array<{ path: string; value: unknown }> = [{ path: field, value: metadata }];
  while (stack.length > 0) {
    const { path, value } = stack.pop()!;
    if (typeof value === 'string') checkText(path, value);
    else if (Array.isArray(value)) value.forEach((v, i) => stack.push({ path: `${path}[${i}]`, value: v }));
    else if (value !== null && typeof value === 'object') {
      for (const [key, v] of Object.entries(value)) {
        checkText(`${path} key ${JSON.stringify(key)}`, key);
        stack.push({ path: `${path}.${key}`, value: v });
      }
    }
  }
}

// ---------------------------------------------------------------- storage form

/**
 * What every tier stores beside the role: the text column (the content when it is a string,
 * else empty) and the extension, a JSON object of the other message fields under their own
 * names (`content` only when it is not a string), or undefined for a plain text message. A
 * plain message is stored exactly as before the extension existed.
 */
export function messageText(m: Pick<MessageFields, 'content'>): string {
  return typeof m.content === 'string' ? m.content : '';
}

export function messageExtension(m: MessageFields): string | undefined {
  const ext: Record<string, unknown> = {};
  let any = false;
  if (typeof m.content !== 'string') {
    ext.content = m.content;
    any = true;
  }
  if (m.name !== undefined) {
    ext.name = m.name;
    any = true;
  }
  if (m.tool_calls !== undefined) {
    ext.tool_calls = m.tool_calls;
    any = true;
  }
  if (m.tool_call_id !== undefined) {
    ext.tool_call_id = m.tool_call_id;
    any = true;
  }
  return any ? JSON.stringify(ext) : undefined;
}

/** Sets the message fields of `target` from the stored text column and extension. */
export function applyExtension<T extends { content: MessageContent; name?: string; tool_calls?: ToolCall[]; tool_call_id?: string }>(target: T, text: string, ext: string | undefined): T {
  target.content = text;
  if (ext === undefined || ext === '') return target;
  const parsed = JSON.parse(ext) as Partial<MessageFields>;
  if ('content' in parsed) target.content = parsed.content ?? null;
  if (parsed.name !== undefined) target.name = parsed.name;
  if (parsed.tool_calls !== undefined) target.tool_calls = parsed.tool_calls;
  if (parsed.tool_call_id !== undefined) target.tool_call_id = parsed.tool_call_id;
  return target;
}

/** Copies the message fields (role, content, name, tool calls, tool call id) of `from`. */
export function messageFields(from: MessageFields): MessageFields {
  const out: MessageFields = { role: from.role, content: from.content };
  if (from.name !== undefined) out.name = from.name;
  if (from.tool_calls !== undefined) out.tool_calls = from.tool_calls;
  if (from.tool_call_id !== undefined) out.tool_call_id = from.tool_call_id;
  return out;
}

/** True when two messages have the same role and fields (as stored). */
export function sameMessage(a: MessageFields, b: MessageFields): boolean {
  return a.role === b.role && messageText(a) === messageText(b) && messageExtension(a) === messageExtension(b);
}

// ---------------------------------------------------------------- search and token counts

/**
 * The text search indexes for a message: its text (string content, or text parts one per line),
 * the name of each tool called and its arguments, and a tool message's name. Image and file
 * parts contribute their file name only.
 */
export function searchText(m: MessageFields): string {
  const out: string[] = [];
  if (typeof m.content === 'string') {
    if (m.content.length > 0) out.push(m.content);
  } else if (m.content !== null) {
    for (const p of m.content) {
      if (p.type === 'text') out.push(p.text);
      else if (p.type === 'file' && p.file.filename !== undefined) out.push(p.file.filename);
    }
  }
  if (m.tool_calls) for (const c of m.tool_calls) out.push(`${c.function.name} ${c.function.arguments}`);
  if (m.role === 'tool' && m.name !== undefined) out.unshift(m.name);
  return out.join('\n');
}

/** Tokens an image costs the model: OpenAI's figure for a low-detail image, and for a 1024×1024 one at high detail. */
export const IMAGE_TOKENS = { low: 85, high: 765 } as const;

/**
 * Tokens the model sees for a message's payload: its text, each text part, each tool call's name
 * and arguments, the name and the tool call id; an image counts IMAGE_TOKENS (the size is not
 * known here), a file part its file name. Per-message framing tokens are not counted.
 */
export function countMessageTokens(m: MessageFields, count: (text: string) => number): number {
  let n = 0;
  if (typeof m.content === 'string') n += count(m.content);
  else if (m.content !== null) {
    for (const p of m.content) {
      if (p.type === 'text') n += count(p.text);
      else if (p.type === 'image_url') n += p.image_url.detail === 'low' ? IMAGE_TOKENS.low : IMAGE_TOKENS.high;
      else n += p.file.filename !== undefined ? count(p.file.filename) : 1;
    }
  }
  if (m.tool_calls) for (const c of m.tool_calls) n += count(c.function.name) + count(c.function.arguments) + count(c.id);
  if (m.name !== undefined) n += count(m.name);
  if (m.tool_call_id !== undefined) n += count(m.tool_call_id);
  return n;
}

/** True when the message is plain text: a string content and nothing else. */
export function isPlainText(m: MessageFields): boolean {
  return typeof m.content === 'string' && m.name === undefined && m.tool_calls === undefined && m.tool_call_id === undefined;
}

// ---------------------------------------------------------------- tool call groups

/**
 * Groups turns so a tool call and its results stay together: an assistant turn with tool calls
 * and every tool turn answering one of its call ids form one group, keyed by the assistant
 * turn's id. Returns turn id → the group's turn ids (ascending), for turns in a group of two or
 * more. A tool result whose call is not among `turns` is in no group (an orphan).
 */
export function toolGroups(turns: ReadonlyArray<{ turnId: number } & MessageFields>): Map<number, number[]> {
  const callOwner = new Map<string, number>();
  const groups = new Map<number, number[]>();
  const sorted = [...turns].sort((a, b) => a.turnId - b.turnId);
  for (const t of sorted) {
    if (t.tool_calls && t.tool_calls.length > 0) {
      for (const c of t.tool_calls) callOwner.set(c.id, t.turnId);
    } else if (t.role === 'tool' && t.tool_call_id !== undefined) {
      const owner = callOwner.get(t.tool_call_id);
      if (owner === undefined) continue;
      let members = groups.get(owner);
      if (!members) groups.set(owner, (members = [owner]));
      members.push(t.turnId);
    }
  }
  const out = new Map<number, number[]>();
  for (const members of groups.values()) for (const id of members) out.set(id, members);
  return out;
}

/** A tool result turn whose call is not among the given turns. */
export function isOrphanToolResult(t: MessageFields & { turnId: number }, groups: ReadonlyMap<number, readonly number[]>): boolean {
  return t.role === 'tool' && !groups.has(t.turnId);
}
