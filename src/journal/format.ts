import { crc32c } from '@node-rs/crc32';
import { StrataError } from '../errors.js';
import { applyExtension, messageExtension, messageText } from '../message.js';
import { ROLES } from '../types.js';
import type { Role } from '../types.js';
import type { DeleteRecord, JournalRecord, TurnRecord } from './types.js';

/*
 * Journal byte format (docs/format.md, "Journal"). All integers little-endian.
 *
 * File header, 16 bytes:
 *   0  4  magic "STRJ"
 *   4  1  format version (1)
 *   5  3  reserved, zero
 *   8  4  u32 file sequence number (matches the file name)
 *  12  4  u32 CRC32C of bytes 0..11
 *
 * Then frames, back to back:
 *   0  4  u32 payload length (1 .. MAX_FRAME_PAYLOAD)
 *   4  4  u32 CRC32C over the 4 length bytes followed by the payload, so a flipped length is
 *         caught by the CRC as well, not only by the bounds check
 *   8  …  payload: varint record count (>= 1), then the records. One `append` writes a frame of
 *         one record; one `appendMany` writes one frame of all its records, which makes the
 *         group all-or-nothing on a torn write.
 */

export const JOURNAL_MAGIC = 0x4a525453; // "STRJ" read as u32 LE
export const JOURNAL_VERSION = 1;
export const FILE_HEADER_BYTES = 16;
export const FRAME_HEADER_BYTES = 8;
/** 64 MiB: far above any sane appendMany; a larger declared length is corruption, not data. */
export const MAX_FRAME_PAYLOAD = 64 * 1024 * 1024;

const RECORD_TURN = 1;
const RECORD_DELETE = 2;
const RECORD_VOID = 3;
const TURN_HAS_METADATA = 1;
const TURN_HAS_USER = 2;
const TURN_HAS_KEY = 4;
const TURN_HAS_EPOCH = 8;
/** The message extension (parts, tool calls, tool call id, name: src/message.ts), as JSON. */
const TURN_HAS_EXTENSION = 16;
const DELETE_HAS_TURNS = 1;
const DELETE_HAS_UPTO = 2;

const ROLE_CODES: Record<Role, number> = { system: 0, user: 1, assistant: 2, tool: 3 };

export function encodeFileHeader(seq: number): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  header.writeUInt32LE(JOURNAL_MAGIC, 0);
  header[4] = JOURNAL_VERSION;
  header.writeUInt32LE(seq, 8);
  header.writeUInt32LE(crc32c(header.subarray(0, 12)) >>> 0, 12);
  return header;
}

/** Returns the sequence number, or throws STRATA_ERR_JOURNAL_CORRUPT naming the file. */
export function decodeFileHeader(header: Uint8Array, file: string): number {
  const buf = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  if (buf.length < FILE_HEADER_BYTES) throw corrupt(file, 0, `file header is ${buf.length} bytes, expected ${FILE_HEADER_BYTES}`);
  if (buf.readUInt32LE(0) !== JOURNAL_MAGIC) throw corrupt(file, 0, 'not a journal file (bad magic)');
  if ((crc32c(buf.subarray(0, 12)) >>> 0) !== buf.readUInt32LE(12)) throw corrupt(file, 0, 'file header fails its CRC32C');
  if (buf[4] !== JOURNAL_VERSION) throw corrupt(file, 0, `unknown journal format version ${buf[4]}`);
  return buf.readUInt32LE(8);
}

export function corrupt(file: string, offset: number, why: string): StrataError {
  return new StrataError('STRATA_ERR_JOURNAL_CORRUPT', `${file} at byte ${offset}: ${why}`, { details: { file, offset } });
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * Frame CRC: CRC32C of the 4 length bytes followed by the payload (one CRC over both, as if
 * they were contiguous). The 4 length bytes are folded in here in JS because a native call per
 * 4 bytes cost as much as the payload's CRC on replay.
 */
export function frameCrc(lengthField: Uint8Array, payload: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < 4; i++) c = CRC32C_TABLE[(c ^ lengthField[i]!) & 0xff]! ^ (c >>> 8);
  return crc32c(payload, (c ^ 0xffffffff) >>> 0) >>> 0;
}

/** Grows on demand; one per journal so appends do not allocate a scratch buffer each. */
class Writer {
  buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  /** Unsigned LEB128 up to 2^53 (timestamps in ms do not fit the codec's 32-bit varint). */
  varint(v: number): void {
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }
  str(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }
}

function writeRecord(w: Writer, r: JournalRecord): void {
  if (r.type === 'turn') {
    w.u8(RECORD_TURN);
    const ext = messageExtension(r);
    w.u8((r.metadata !== undefined ? TURN_HAS_METADATA : 0) | (r.userId !== undefined ? TURN_HAS_USER : 0) | (r.key !== undefined ? TURN_HAS_KEY : 0) | (r.epoch !== undefined ? TURN_HAS_EPOCH : 0) | (ext !== undefined ? TURN_HAS_EXTENSION : 0));
    w.str(r.tenant);
    w.str(r.sessionId);
    w.varint(r.turnId);
    w.u8(ROLE_CODES[r.role]);
    w.varint(r.createdAt);
    w.str(messageText(r));
    if (r.metadata !== undefined) w.str(JSON.stringify(r.metadata));
    if (r.userId !== undefined) w.str(r.userId);
    if (r.key !== undefined) w.str(r.key);
    if (r.epoch !== undefined) w.varint(r.epoch);
    if (ext !== undefined) w.str(ext);
  } else if (r.type === 'void') {
    w.u8(RECORD_VOID);
    w.u8(r.epoch !== undefined ? TURN_HAS_EPOCH : 0);
    w.str(r.tenant);
    w.str(r.sessionId);
    w.varint(r.turnId);
    w.str(r.key);
    if (r.epoch !== undefined) w.varint(r.epoch);
  } else {
    w.u8(RECORD_DELETE);
    w.u8((r.turnIds !== undefined ? DELETE_HAS_TURNS : 0) | (r.upTo !== undefined ? DELETE_HAS_UPTO : 0));
    w.str(r.tenant);
    w.str(r.sessionId);
    w.varint(r.at);
    if (r.turnIds !== undefined) {
      w.varint(r.turnIds.length);
      for (const id of r.turnIds) w.varint(id);
    }
    if (r.upTo !== undefined) w.varint(r.upTo);
  }
}

/**
 * Encodes records into one complete frame (header + payload). The returned buffer is a fresh
 * copy, safe to keep in a write queue.
 */
export function encodeFrame(records: readonly JournalRecord[]): Buffer {
  const w = new Writer(256);
  w.pos = FRAME_HEADER_BYTES;
  w.varint(records.length);
  for (const r of records) writeRecord(w, r);
  const payloadLength = w.pos - FRAME_HEADER_BYTES;
  if (payloadLength > MAX_FRAME_PAYLOAD) {
    throw new StrataError('STRATA_ERR_VALIDATION', `journal frame of ${payloadLength} bytes is above the maximum of ${MAX_FRAME_PAYLOAD}; append fewer or smaller records at once`);
  }
  const frame = Buffer.from(w.buf.subarray(0, w.pos));
  frame.writeUInt32LE(payloadLength, 0);
  frame.writeUInt32LE(frameCrc(frame.subarray(0, 4), frame.subarray(FRAME_HEADER_BYTES)), 4);
  return frame;
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  u8(): number {
    if (this.pos >= this.buf.length) throw new RangeError('payload ends early');
    return this.buf[this.pos++]!;
  }
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        return value;
      }
      scale *= 128;
    }
    throw new RangeError('varint too long');
  }
  str(): string {
    const n = this.varint();
    if (this.pos + n > this.buf.length) throw new RangeError('string runs past the payload');
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

function readRecord(r: Reader): JournalRecord {
  const type = r.u8();
  const flags = r.u8();
  const tenant = r.str();
  const sessionId = r.str();
  if (type === RECORD_TURN) {
    const turnId = r.varint();
    const role = ROLES[r.u8()];
    if (role === undefined) throw new RangeError('unknown role code');
    const createdAt = r.varint();
    const content = r.str();
    const turn: TurnRecord = { type: 'turn', tenant, sessionId, turnId, role, content, createdAt };
    if (flags & TURN_HAS_METADATA) turn.metadata = JSON.parse(r.str()) as TurnRecord['metadata'];
    if (flags & TURN_HAS_USER) turn.userId = r.str();
    if (flags & TURN_HAS_KEY) turn.key = r.str();
    if (flags & TURN_HAS_EPOCH) turn.epoch = r.varint();
    if (flags & TURN_HAS_EXTENSION) applyExtension(turn, content, r.str());
    return turn;
  }
  if (type === RECORD_VOID) {
    const v: JournalRecord = { type: 'void', tenant, sessionId, turnId: r.varint(), key: r.str() };
    if (flags & TURN_HAS_EPOCH) v.epoch = r.varint();
    return v;
  }
  if (type === RECORD_DELETE) {
    const del: DeleteRecord = { type: 'delete', tenant, sessionId, at: r.varint() };
    if (flags & DELETE_HAS_TURNS) {
      const n = r.varint();
      if (n > r.buf.length) throw new RangeError('turn id count above payload size');
      const ids: number[] = [];
      for (let i = 0; i < n; i++) ids.push(r.varint());
      del.turnIds = ids;
    }
    if (flags & DELETE_HAS_UPTO) del.upTo = r.varint();
    return del;
  }
  throw new RangeError(`unknown record type ${type}`);
}

/**
 * Decodes a payload whose CRC already checked. A payload that checks but does not parse was
 * written by a newer or broken writer: that is corruption, reported with file and offset.
 */
export function decodePayload(payload: Buffer, file: string, offset: number): JournalRecord[] {
  try {
    const r = new Reader(payload);
    const count = r.varint();
    if (count < 1 || count > payload.length) throw new RangeError(`record count ${count}`);
    const records: JournalRecord[] = [];
    for (let i = 0; i < count; i++) records.push(readRecord(r));
    if (r.pos !== payload.length) throw new RangeError(`${payload.length - r.pos} trailing bytes`);
    return records;
  } catch (err) {
    throw new StrataError('STRATA_ERR_JOURNAL_CORRUPT', `${file} at byte ${offset}: record payload does not parse (${(err as Error).message})`, { cause: err, details: { file, offset } });
  }
}

/*
 * Checkpoint file `checkpoint`, 20 bytes:
 *   0  4  magic "STRC"
 *   4  1  version (1)
 *   5  3  reserved, zero
 *   8  4  u32 file sequence number of the checkpoint LSN
 *  12  4  u32 byte offset of the checkpoint LSN
 *  16  4  u32 CRC32C of bytes 0..15
 */
export const CHECKPOINT_MAGIC = 0x43525453; // "STRC"
export const CHECKPOINT_BYTES = 20;

export function encodeCheckpoint(file: number, offset: number): Buffer {
  const buf = Buffer.alloc(CHECKPOINT_BYTES);
  buf.writeUInt32LE(CHECKPOINT_MAGIC, 0);
  buf[4] = 1;
  buf.writeUInt32LE(file, 8);
  buf.writeUInt32LE(offset, 12);
  buf.writeUInt32LE(crc32c(buf.subarray(0, 16)) >>> 0, 16);
  return buf;
}

export function decodeCheckpoint(buf: Buffer, path: string): { file: number; offset: number } {
  if (buf.length !== CHECKPOINT_BYTES || buf.readUInt32LE(0) !== CHECKPOINT_MAGIC || buf[4] !== 1 || (crc32c(buf.subarray(0, 16)) >>> 0) !== buf.readUInt32LE(16)) {
    // The checkpoint is written atomically (temp + rename), so a bad one is damage, not a crash.
    throw corrupt(path, 0, 'checkpoint file is damaged; refusing to guess which records are archived');
  }
  return { file: buf.readUInt32LE(8), offset: buf.readUInt32LE(12) };
}
