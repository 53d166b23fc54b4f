import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import { ROLES } from '../types.js';
import type { JournalRecord } from './types.js';

function bad(message: string): StrataError {
  return new StrataError('STRATA_ERR_VALIDATION', `journal record: ${message}`);
}

function isSafeCount(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

/** Checks a record before anything is written, so bad input changes nothing. */
export function validateRecord(record: JournalRecord): void {
  if (record === null || typeof record !== 'object') throw bad('expected an object');
  validateId('tenant', record.tenant);
  validateId('session', record.sessionId);
  if (record.type === 'turn') {
    if (!isSafeCount(record.turnId, 1)) throw bad(`turnId must be a positive safe integer, received ${String(record.turnId)}`);
    if (!(ROLES as readonly string[]).includes(record.role)) throw new StrataError('STRATA_ERR_INVALID_ROLE', `journal record: role ${JSON.stringify(record.role)} is not one of ${ROLES.join(', ')}`);
    if (typeof record.content !== 'string' && record.content !== null && !Array.isArray(record.content)) throw bad('content must be a string, an array of parts or null');
    if (!isSafeCount(record.createdAt, 0)) throw bad(`createdAt must be a non-negative integer (ms since epoch), received ${String(record.createdAt)}`);
    if (record.metadata !== undefined && (record.metadata === null || typeof record.metadata !== 'object' || Array.isArray(record.metadata))) {
      throw new StrataError('STRATA_ERR_METADATA_INVALID', 'journal record: metadata must be a plain JSON object');
    }
    if (record.userId !== undefined) validateId('user', record.userId);
    if (record.key !== undefined && (typeof record.key !== 'string' || record.key.length === 0 || record.key.length > 512)) throw bad('key must be a string of 1-512 characters');
    if (record.epoch !== undefined && !isSafeCount(record.epoch, 0)) throw bad(`epoch must be a non-negative integer, received ${String(record.epoch)}`);
    return;
  }
  if (record.type === 'void') {
    if (!isSafeCount(record.turnId, 1)) throw bad(`turnId must be a positive safe integer, received ${String(record.turnId)}`);
    if (typeof record.key !== 'string' || record.key.length === 0 || record.key.length > 512) throw bad('key must be a string of 1-512 characters');
    return;
  }
  if (record.type === 'delete') {
    if (!isSafeCount(record.at, 0)) throw bad(`at must be a non-negative integer, received ${String(record.at)}`);
    if (record.turnIds !== undefined && (!Array.isArray(record.turnIds) || !record.turnIds.every((id) => isSafeCount(id, 1)))) throw bad('turnIds must be an array of positive integers');
    if (record.upTo !== undefined && !isSafeCount(record.upTo, 0)) throw bad(`upTo must be a non-negative integer, received ${String(record.upTo)}`);
    return;
  }
  throw bad(`unknown type ${JSON.stringify((record as { type?: unknown }).type)}`);
}
