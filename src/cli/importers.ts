import { isWellFormed } from '../codec/text.js';
import { StrataError } from '../errors.js';
import type { NewMessage } from '../cache/api.js';
import type { Role } from '../types.js';
import { ROLES } from '../types.js';

/**
 * Conversation file formats `strata import` reads. Detection looks at the content (magic bytes,
 * JSON shape), never at the file name.
 *
 * - `sessions`: ShareGPT as LongMemEval ships it, `[{session_id, date?, turns: [{role, content}]}]`
 *   (also `conversations: [{from, value}]`, the original ShareGPT shape).
 * - `openai-jsonl`: one conversation per line, `{"messages": [{role, content}], "session_id"?}`;
 *   without an id field the session is named after the line number.
 * - `locomo`: LoCoMo conversations; each `session_k` becomes a Strata session
 *   `<sample_id>-s<k>` owned by the user `<sample_id>`, speaker A as `user`, speaker B as
 *   `assistant`, with `{speaker, diaId}` in each message's metadata.
 * - `archive`: a Strata archive file (`strata export`), imported as one session.
 */
export const IMPORT_FORMATS = ['sessions', 'openai-jsonl', 'locomo', 'archive'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

export interface ImportedConversation {
  sessionId: string;
  userId?: string;
  messages: NewMessage[];
}

/** "STRA", the magic of every archive record. */
const ARCHIVE_MAGIC = [0x53, 0x54, 0x52, 0x41];

function formatError(message: string, details: Record<string, unknown> = {}): StrataError {
  return new StrataError('STRATA_ERR_INPUT_FORMAT', message, { details });
}

export function detectFormat(bytes: Uint8Array): ImportFormat {
  if (bytes.length === 0) throw formatError('the file is empty');
  if (ARCHIVE_MAGIC.every((b, i) => bytes[i] === b)) return 'archive';
  const text = new TextDecoder().decode(bytes.subarray(0, 4096)).trimStart();
  if (text.startsWith('[')) {
    if (/"sample_id"\s*:/.test(text) || /"conversation"\s*:\s*\{/.test(text)) return 'locomo';
    return 'sessions';
  }
  if (text.startsWith('{')) {
    const firstLine = text.split('\n', 1)[0] ?? '';
    if (/"messages"\s*:/.test(firstLine)) return 'openai-jsonl';
    if (/"sample_id"\s*:/.test(text)) return 'locomo';
  }
  throw formatError('cannot recognise the file: expected a Strata archive, a JSON array of sessions (ShareGPT/LongMemEval or LoCoMo), or OpenAI chat JSONL; use --format');
}

/** Makes an id of the id alphabet from any string (ids from foreign files may hold spaces, slashes, ...). */
export function toId(raw: unknown, fallback: string): string {
  const text = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : '';
  // Ids are any text of 1-256 characters without control characters (src/ids.ts).
  let cleaned = text.replace(/\p{Cc}/gu, ' ').trim().slice(0, 256);
  if (/[\ud800-\udbff]$/.test(cleaned)) cleaned = cleaned.slice(0, -1);
  return cleaned === '' || !isWellFormed(cleaned) ? fallback : cleaned;
}

const ROLE_ALIASES: Record<string, Role> = { human: 'user', gpt: 'assistant', chatgpt: 'assistant', bing: 'assistant', bard: 'assistant', model: 'assistant', developer: 'system', function: 'tool' };

function toRole(raw: unknown, where: string): Role {
  const name = typeof raw === 'string' ? raw.toLowerCase() : '';
  if ((ROLES as readonly string[]).includes(name)) return name as Role;
  const alias = ROLE_ALIASES[name];
  if (alias) return alias;
  throw formatError(`${where}: unknown role ${JSON.stringify(raw)}`, { role: raw });
}

/**
 * OpenAI content may be a string or an array of parts; only text parts are kept. A missing or
 * null content (a tool-call stub) is empty; any other type (a number, a boolean, an object) is
 * refused rather than turned into text.
 */
function toText(raw: unknown, where: string): string {
  if (typeof raw === 'string') return raw;
  if (raw === undefined || raw === null) return '';
  if (Array.isArray(raw)) return raw.map((p: unknown) => (typeof p === 'string' ? p : typeof (p as { text?: unknown } | null)?.text === 'string' ? (p as { text: string }).text : '')).filter(Boolean).join('\n');
  throw formatError(`${where}: content must be a string or an array of text parts, received ${typeof raw}`);
}

/** Object entries of a parsed file; anything else (null, a number, an array) is a format error. */
function asRecord(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw formatError(`${where}: expected an object, received ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
  return value as Record<string, unknown>;
}

/** Empty messages (tool-call stubs, blank turns) are skipped: the core rejects empty content. */
function pushMessage(out: NewMessage[], role: Role, content: string, metadata?: Record<string, unknown>): void {
  if (content.trim() === '') return;
  out.push(metadata ? { role, content, metadata } : { role, content });
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw formatError(`${where}: invalid JSON (${(err as Error).message})`);
  }
}

function parseSessions(text: string): ImportedConversation[] {
  const data = parseJson(text, 'sessions file');
  if (!Array.isArray(data)) throw formatError('sessions file: expected a JSON array of {session_id, turns}');
  return data.map((raw: unknown, i) => {
    const entry = asRecord(raw, `session ${i}`);
    const turns = (entry.turns ?? entry.conversations) as unknown;
    if (!Array.isArray(turns)) throw formatError(`session ${i}: expected "turns" (or "conversations") to be an array`, { index: i });
    const messages: NewMessage[] = [];
    turns.forEach((rawTurn: unknown, j) => {
      const t = asRecord(rawTurn, `session ${i} turn ${j}`);
      pushMessage(messages, toRole(t.role ?? t.from, `session ${i} turn ${j}`), toText(t.content ?? t.value, `session ${i} turn ${j}`));
    });
    return { sessionId: toId(entry.session_id ?? entry.id, `session-${i + 1}`), messages };
  });
}

function parseOpenAiJsonl(text: string): ImportedConversation[] {
  const out: ImportedConversation[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const entry = asRecord(parseJson(line, `line ${i + 1}`), `line ${i + 1}`);
    if (!Array.isArray(entry.messages)) throw formatError(`line ${i + 1}: expected {"messages": [...]}`, { line: i + 1 });
    const messages: NewMessage[] = [];
    (entry.messages as unknown[]).forEach((raw, j) => {
      const m = asRecord(raw, `line ${i + 1} message ${j}`);
      // Tool calls, tool results and content parts are kept whole (the core validates them and
      // names the offending field); plain text goes through as before.
      if (m.tool_calls !== undefined || m.tool_call_id !== undefined || m.name !== undefined || Array.isArray(m.content) || m.content === null) {
        const message: Record<string, unknown> = {};
        for (const k of ['role', 'content', 'name', 'tool_calls', 'tool_call_id']) if (m[k] !== undefined) message[k] = m[k];
        messages.push(message as unknown as NewMessage);
      } else {
        pushMessage(messages, toRole(m.role, `line ${i + 1} message ${j}`), toText(m.content, `line ${i + 1} message ${j}`));
      }
    });
    const userId = entry.user_id ?? entry.userId ?? entry.user;
    out.push({ sessionId: toId(entry.session_id ?? entry.sessionId ?? entry.id, `line-${i + 1}`), ...(userId !== undefined ? { userId: toId(userId, 'user') } : {}), messages });
  });
  return out;
}

function parseLocomo(text: string): ImportedConversation[] {
  const data = parseJson(text, 'LoCoMo file');
  const list = Array.isArray(data) ? data : [data];
  const out: ImportedConversation[] = [];
  list.forEach((raw: unknown, i) => {
    const sample = asRecord(raw, `LoCoMo item ${i}`);
    const conversation = sample.conversation as Record<string, unknown> | undefined;
    if (!conversation || typeof conversation !== 'object' || Array.isArray(conversation)) throw formatError(`LoCoMo item ${i}: expected a "conversation" object`, { index: i });
    const sampleId = toId(sample.sample_id, `conv-${i + 1}`);
    const speakerA = conversation.speaker_a;
    // Enumerate session_<k> keys (not the date keys: some conversations have extra ones).
    const keys = Object.keys(conversation).filter((k) => /^session_\d+$/.test(k)).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
    for (const key of keys) {
      const turns = conversation[key];
      if (!Array.isArray(turns)) continue;
      const messages: NewMessage[] = [];
      turns.forEach((rawTurn: unknown, j) => {
        const t = asRecord(rawTurn, `LoCoMo item ${i} ${key} turn ${j}`);
        const metadata: Record<string, unknown> = { speaker: t.speaker, diaId: t.dia_id };
        pushMessage(messages, t.speaker === speakerA ? 'user' : 'assistant', toText(t.text, `LoCoMo item ${i} ${key} turn ${j}`), metadata);
      });
      out.push({ sessionId: `${sampleId}-s${key.slice(8)}`, userId: sampleId, messages });
    }
  });
  return out;
}

/** Parses a conversation file (every format but `archive`, which is imported as it is). */
export function parseConversations(bytes: Uint8Array, format: Exclude<ImportFormat, 'archive'>): ImportedConversation[] {
  let text: string;
  try {
    // Fatal: invalid UTF-8 would otherwise be imported as U+FFFD, not as the file's text.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw formatError('the file is not valid UTF-8 text');
  }
  switch (format) {
    case 'sessions':
      return parseSessions(text);
    case 'openai-jsonl':
      return parseOpenAiJsonl(text);
    case 'locomo':
      return parseLocomo(text);
  }
}
