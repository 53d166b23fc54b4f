import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import { ROLES } from '../types.js';
import type { SessionRef, Turn } from '../types.js';
import type { HotSeed, NewHotTurn } from './store.js';

/**
 * Argument checks shared by every HotStore driver. The cache validates messages before they get
 * here; these checks exist so that a bad call can never corrupt stored state (a NaN count, a
 * negative id, a seed whose turns are out of order), and they run before any write.
 */

/** The most turns one read returns; keeps Lua `unpack` and reply sizes bounded. */
export const MAX_READ_TURNS = 10_000;

/** The most ids a seed may leave out between its first turn and nextTurnId (turns deleted from the archive). */
export const MAX_SEED_MISSING_IDS = 100_000;

function invalid(what: string, expected: string, value: unknown): StrataError {
  const shown = typeof value === 'number' || typeof value === 'boolean' ? String(value) : typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value;
  return new StrataError('STRATA_ERR_VALIDATION', `${what}: expected ${expected}, got ${shown}`, { details: { argument: what } });
}

export function checkRef(ref: SessionRef): SessionRef {
  if (typeof ref !== 'object' || ref === null) throw new StrataError('STRATA_ERR_INVALID_ID', 'session ref must be an object {tenant, sessionId}');
  validateId('tenant', ref.tenant);
  validateId('session', ref.sessionId);
  return ref;
}

export function checkInt(what: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(what, `an integer in [${min}, ${max}]`, value);
  }
  return value;
}

/** A time in milliseconds since the epoch (or any non-negative integer clock reading). */
export function checkTime(what: string, value: unknown): number {
  return checkInt(what, value, 0);
}

export function checkToken(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) throw invalid('token', 'a non-empty string of at most 256 characters', value);
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

export function checkTurnFields(turn: { role: unknown; content: unknown; createdAt: unknown; tokens?: unknown; metadata?: unknown }): void {
  if (typeof turn !== 'object' || turn === null) throw invalid('turn', 'an object', turn);
  if (!(ROLES as readonly unknown[]).includes(turn.role)) {
    throw new StrataError('STRATA_ERR_INVALID_ROLE', `role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(turn.role)}`);
  }
  if (typeof turn.content !== 'string' && turn.content !== null && !Array.isArray(turn.content)) throw invalid('content', 'a string, an array of parts or null', turn.content);
  checkTime('createdAt', turn.createdAt);
  if (turn.tokens !== undefined) checkInt('tokens', turn.tokens, 0);
  if (turn.metadata !== undefined && !isPlainObject(turn.metadata)) {
    throw new StrataError('STRATA_ERR_METADATA_INVALID', 'metadata must be a plain JSON object');
  }
}

export function checkNewTurn(turn: NewHotTurn): NewHotTurn {
  checkTurnFields(turn);
  if (turn.userId !== undefined) validateId('user', turn.userId);
  return turn;
}

/** Arguments of `setTokens`: turn ids, their append keys (printable ASCII) and counts. */
export function checkTokenCounts(turns: ReadonlyArray<{ turnId: number; key: string; tokens: number }>): void {
  if (!Array.isArray(turns)) throw invalid('turns', 'an array', turns);
  if (turns.length > MAX_READ_TURNS) throw invalid('turns', `at most ${MAX_READ_TURNS} entries`, turns.length);
  for (const t of turns) {
    if (typeof t !== 'object' || t === null) throw invalid('turn', 'an object', t);
    checkInt('turnId', t.turnId, 1);
    checkInt('tokens', t.tokens, 0);
    if (typeof t.key !== 'string' || !/^[\x21-\x7e]{1,512}$/.test(t.key)) throw invalid('key', 'an append key (1-512 printable ASCII characters)', t.key);
  }
}

/** Checks a seed and returns what both drivers derive from it. */
export function checkSeed(seed: HotSeed): { unarchived: Turn[]; oldestUnarchivedAt: number | null } {
  if (typeof seed !== 'object' || seed === null) throw invalid('seed', 'an object', seed);
  checkInt('seed.nextTurnId', seed.nextTurnId, 1);
  checkInt('seed.archivedUpTo', seed.archivedUpTo, 0, seed.nextTurnId - 1);
  if (seed.userId !== undefined) validateId('user', seed.userId);
  if (!Array.isArray(seed.turns)) throw invalid('seed.turns', 'an array', seed.turns);
  let previous = 0;
  for (const turn of seed.turns) {
    checkTurnFields(turn);
    checkInt('seed turn id', turn.turnId, previous + 1, seed.nextTurnId - 1);
    previous = turn.turnId;
  }
  // Reads walk ids downwards from nextTurnId and skip missing ones, so a seed whose turns leave
  // a huge gap (deleted turns) would make every read scan it; such a seed is refused.
  const first = seed.turns[0]?.turnId ?? seed.nextTurnId;
  const missing = seed.nextTurnId - first - seed.turns.length;
  if (missing > MAX_SEED_MISSING_IDS) throw invalid('seed.turns', `turns leaving at most ${MAX_SEED_MISSING_IDS} missing ids before nextTurnId`, missing);
  const unarchived = seed.turns.filter((t) => t.turnId > seed.archivedUpTo);
  return { unarchived, oldestUnarchivedAt: unarchived[0]?.createdAt ?? null };
}
