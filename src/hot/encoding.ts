import { StrataError } from '../errors.js';
import { applyExtension, messageExtension, messageText, type MessageFields } from '../message.js';
import type { Metadata, Role, Turn } from '../types.js';

/**
 * Compact text encoding of one hot turn (the turn id is not inside: it is the hash field).
 *
 *   <role char><createdAt base36>,<tokens base36 or empty>,<metadata JSON length base36 or empty>,<metadata JSON><content>
 *
 * e.g. `uloyw3v28,1c,,Hello` = user, createdAt 1700000000000, 48 tokens, no metadata.
 * The header is ~12 bytes against ~60 for `{"role":"user","createdAt":…}`, and the Lua scripts
 * only ever read the createdAt at the front (`^.([0-9a-z]+),`). The metadata length counts UTF-16
 * code units because only JavaScript slices it. Content is stored verbatim after the header.
 *
 * A turn written with an append key (docs/consistency.md) has an upper-case role character and
 * one more header field, the key's length, followed by the key (printable ASCII, so its length
 * is the same in bytes and in UTF-16 units; the confirm script reads it in Lua):
 *
 *   <ROLE char><createdAt>,<tokens>,<metaLen>,<keyLen base36>,<key><metadata JSON><content>
 *
 * A message with more than text (parts, tool calls, a tool call id, a name: src/message.ts) has
 * its extension JSON after the metadata JSON; its length follows the metadata length after a
 * dot (`<metaLen>.<extLen>`, either may be empty before the dot), and the text column holds the
 * content when it is a string (else nothing):
 *
 *   <role char><createdAt>,<tokens>,<metaLen>.<extLen>,[<keyLen>,<key>]<metadata JSON><extension JSON><text>
 */
const ROLE_TO_CHAR: Readonly<Record<Role, string>> = { system: 's', user: 'u', assistant: 'a', tool: 't' };
const CHAR_TO_ROLE: Readonly<Record<string, Role>> = { s: 'system', u: 'user', a: 'assistant', t: 'tool' };

export function encodeTurn(turn: MessageFields & { createdAt: number; tokens?: number; metadata?: Metadata; key?: string }): string {
  const meta = turn.metadata === undefined ? '' : JSON.stringify(turn.metadata);
  const tokens = turn.tokens === undefined ? '' : turn.tokens.toString(36);
  const ext = messageExtension(turn);
  const metaLen = (turn.metadata === undefined ? '' : meta.length.toString(36)) + (ext === undefined ? '' : `.${ext.length.toString(36)}`);
  const text = messageText(turn);
  if (turn.key === undefined) return `${ROLE_TO_CHAR[turn.role]}${turn.createdAt.toString(36)},${tokens},${metaLen},${meta}${ext ?? ''}${text}`;
  return `${ROLE_TO_CHAR[turn.role].toUpperCase()}${turn.createdAt.toString(36)},${tokens},${metaLen},${turn.key.length.toString(36)},${turn.key}${meta}${ext ?? ''}${text}`;
}

/** `encoded` with its token count set, or null when it has one already. */
export function withEncodedTokens(encoded: string, tokens: number): string | null {
  const c1 = encoded.indexOf(',', 1);
  if (c1 < 0 || encoded.charAt(c1 + 1) !== ',') return null;
  return `${encoded.slice(0, c1 + 1)}${tokens.toString(36)}${encoded.slice(c1 + 1)}`;
}

/** The append key of an encoded turn, or null when it was written without one. */
export function encodedTurnKey(encoded: string): string | null {
  const m = /^[SUAT][0-9a-z]+,[0-9a-z]*,[0-9a-z.]*,([0-9a-z]+),/.exec(encoded);
  if (!m) return null;
  const start = m[0].length;
  return encoded.slice(start, start + parseInt(m[1]!, 36));
}

function corrupt(turnId: number, why: string): StrataError {
  return new StrataError('STRATA_ERR_INTERNAL', `hot turn ${turnId} is not in the expected encoding (${why})`, { details: { turnId } });
}

function base36(text: string): number | null {
  if (!/^[0-9a-z]{1,11}$/.test(text)) return null;
  const value = parseInt(text, 36);
  return Number.isSafeInteger(value) ? value : null;
}

/** A decoded turn with its append key (compaction carries client keys into the archive). */
export function decodeTurnWithKey(turnId: number, encoded: string): Turn & { key?: string } {
  const turn: Turn & { key?: string } = decodeTurn(turnId, encoded);
  const key = encodedTurnKey(encoded);
  if (key !== null) turn.key = key;
  return turn;
}

export function decodeTurn(turnId: number, encoded: string): Turn {
  const roleChar = encoded.charAt(0);
  const keyed = roleChar >= 'A' && roleChar <= 'Z';
  const role = CHAR_TO_ROLE[roleChar.toLowerCase()];
  if (role === undefined) throw corrupt(turnId, 'unknown role');
  const c1 = encoded.indexOf(',', 1);
  const c2 = c1 < 0 ? -1 : encoded.indexOf(',', c1 + 1);
  const c3 = c2 < 0 ? -1 : encoded.indexOf(',', c2 + 1);
  if (c3 < 0) throw corrupt(turnId, 'truncated header');
  const createdAt = base36(encoded.slice(1, c1));
  if (createdAt === null) throw corrupt(turnId, 'bad createdAt');
  const turn: Turn = { turnId, role, content: '', createdAt };
  if (c2 > c1 + 1) {
    const tokens = base36(encoded.slice(c1 + 1, c2));
    if (tokens === null) throw corrupt(turnId, 'bad token count');
    turn.tokens = tokens;
  }
  let contentStart = c3 + 1;
  if (keyed) {
    const c4 = encoded.indexOf(',', c3 + 1);
    const keyLen = c4 < 0 ? null : base36(encoded.slice(c3 + 1, c4));
    if (keyLen === null || c4 + 1 + keyLen > encoded.length) throw corrupt(turnId, 'bad key length');
    contentStart = c4 + 1 + keyLen;
  }
  const lengths = encoded.slice(c2 + 1, c3);
  const dot = lengths.indexOf('.');
  const metaField = dot < 0 ? lengths : lengths.slice(0, dot);
  if (metaField.length > 0) {
    const metaLen = base36(metaField);
    if (metaLen === null || contentStart + metaLen > encoded.length) throw corrupt(turnId, 'bad metadata length');
    try {
      turn.metadata = JSON.parse(encoded.slice(contentStart, contentStart + metaLen)) as Metadata;
    } catch {
      throw corrupt(turnId, 'bad metadata JSON');
    }
    contentStart += metaLen;
  }
  let ext: string | undefined;
  if (dot >= 0) {
    const extLen = base36(lengths.slice(dot + 1));
    if (extLen === null || contentStart + extLen > encoded.length) throw corrupt(turnId, 'bad extension length');
    ext = encoded.slice(contentStart, contentStart + extLen);
    contentStart += extLen;
  }
  try {
    applyExtension(turn, encoded.slice(contentStart), ext);
  } catch {
    throw corrupt(turnId, 'bad extension JSON');
  }
  return turn;
}

/**
 * Approximate bytes a turn costs in the hot tier: its encoded UTF-8 size plus its id as text.
 * Both drivers use this formula (the Redis scripts compute the same `#field + #value`), so byte
 * budgets behave alike whichever driver is configured. Container overhead is not counted.
 */
export function turnBytes(turnId: number, encoded: string): number {
  return String(turnId).length + Buffer.byteLength(encoded, 'utf8');
}
