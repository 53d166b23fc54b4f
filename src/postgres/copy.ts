import type pg from 'pg';
import { escapeLiteral } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { StrataError } from '../errors.js';

/*
 * Bytea columns read in PostgreSQL's binary COPY format (docs/postgres.md, "Reading segments").
 *
 * node-postgres reads results in text format only, where a bytea travels as hex: the server
 * spends ~15 ns per byte encoding it and the client decodes twice the bytes. A 1,000-turn
 * session is ~400 KB of segments, so that alone cost ~7 ms per load. `COPY (SELECT …) TO STDOUT
 * (FORMAT binary)` sends the bytes as they are stored. COPY takes no bind parameters, so the
 * statement is built with `literal` and `integer` below, never with raw text.
 */

/** A string as an SQL literal (node-postgres's escaping: quotes doubled, E'' when it holds a backslash). */
export function literal(value: string): string {
  return escapeLiteral(value);
}

/** A number as an SQL integer literal; anything else is a programming error. */
export function integer(value: number): string {
  if (!Number.isSafeInteger(value)) throw new StrataError('STRATA_ERR_INTERNAL', `expected a safe integer for an SQL literal, received ${String(value)}`);
  return String(value);
}

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** The values of a one-column binary COPY stream (null values are left out). */
export function parseBinaryCopy(data: Buffer): Buffer[] {
  const corrupt = (why: string): StrataError => new StrataError('STRATA_ERR_INTERNAL', `PostgreSQL sent a binary COPY stream that cannot be read: ${why}`);
  if (data.length < 19 || !data.subarray(0, 11).equals(SIGNATURE)) throw corrupt('no PGCOPY signature');
  let at = 15;
  const extension = data.readInt32BE(at);
  at += 4 + extension;
  const values: Buffer[] = [];
  for (;;) {
    if (at + 2 > data.length) throw corrupt('it ends before its trailer');
    const fields = data.readInt16BE(at);
    at += 2;
    if (fields === -1) return values;
    if (fields !== 1) throw corrupt(`a row has ${fields} columns, expected 1`);
    if (at + 4 > data.length) throw corrupt('a row is cut short');
    const length = data.readInt32BE(at);
    at += 4;
    if (length === -1) continue;
    if (length < 0 || at + length > data.length) throw corrupt('a value is cut short');
    values.push(data.subarray(at, at + length));
    at += length;
  }
}

/** Runs `COPY (<select of one bytea column>) TO STDOUT (FORMAT binary)` on `client`; the values in order. */
export async function copyByteaOut(client: pg.ClientBase, select: string): Promise<Buffer[]> {
  const stream = client.query(copyTo(`COPY (${select}) TO STDOUT (FORMAT binary)`));
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return parseBinaryCopy(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
}
