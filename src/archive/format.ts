import { crc32c } from '@node-rs/crc32';

/*
 * Segment format: constants and the record frame. Layout and hex example: docs/format.md,
 * "Segment format". Every number here is part of the on-disk format: never change one, add a
 * new version instead, and keep reading the old one.
 */

/** "STRA" — the first four bytes of every record, so a reader can resynchronise after damage. */
export const RECORD_MAGIC = 0x41525453; // bytes 53 54 52 41 read as u32 LE
/** The version this build writes: 2 adds the segment's message block (tool calls, parts). */
export const FORMAT_VERSION = 2;
/** Versions this build reads. Version 1 is version 2 without the message block. */
export const READ_VERSIONS: readonly number[] = [1, 2];

/** 16 = 4 (magic) + 1 (version) + 1 (type) + 2 (flags) + 4 (body length) + 4 (header CRC32C). */
export const RECORD_HEADER_BYTES = 16;

export const RECORD_TYPES = {
  /** Session metadata (user id, high-water turn id). Later records override earlier ones field by field. */
  meta: 1,
  /** A segment of turns, stored as columns. */
  segment: 2,
  /** A milestone summary. */
  summary: 3,
} as const;
export type RecordType = (typeof RECORD_TYPES)[keyof typeof RECORD_TYPES];

/** Column block kinds inside a segment (footer entry byte). */
export const BLOCK_KINDS = {
  turnIds: 1,
  roles: 2,
  createdAt: 3,
  tokens: 4,
  text: 5,
  metadata: 6,
  embeddings: 7,
  /** Format v2: per-turn message extension JSON (parts, tool calls, tool call id, name). */
  message: 8,
} as const;
export type BlockKind = (typeof BLOCK_KINDS)[keyof typeof BLOCK_KINDS];
export const BLOCK_NAMES: Record<number, string> = Object.fromEntries(Object.entries(BLOCK_KINDS).map(([name, kind]) => [kind, name]));

/** Segment flags (u8 in the segment header). */
export const SEGMENT_FLAGS = {
  /** Text block holds one codec frame per turn (random access); clear: one frame for the whole block. */
  textPerTurn: 0x01,
} as const;

/** Embedding encodings (u8 in the segment header). */
export const EMBEDDING_ENCODINGS = { none: 0, int8: 1, f16: 2 } as const;
export type EmbeddingEncoding = keyof typeof EMBEDDING_ENCODINGS;

/** 13 = 1 (kind) + 4 (offset) + 4 (length) + 4 (CRC32C): one footer entry per block. */
export const FOOTER_ENTRY_BYTES = 13;

/** Segment header up to (excluding) the embedder id: 1 codec + 1 flags + 1 encoding + 2 dims + 4 count + 4 first + 4 last + 1 blocks + 1 id length. */
export const SEGMENT_FIXED_HEADER_BYTES = 19;

/** Role byte values in the roles block. */
export const ROLE_CODES = ['system', 'user', 'assistant', 'tool'] as const;

export const FILE_EXTENSION = '.strata';

export function crc(bytes: Uint8Array): number {
  return crc32c(bytes) >>> 0;
}

/** Builds one record: 16-byte header (magic, version, type, flags, body length, header CRC) + body. */
export function encodeRecord(type: RecordType, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(RECORD_HEADER_BYTES + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, RECORD_MAGIC, true);
  out[4] = FORMAT_VERSION;
  out[5] = type;
  view.setUint16(6, 0, true);
  view.setUint32(8, body.length, true);
  view.setUint32(12, crc(out.subarray(0, 12)), true);
  out.set(body, RECORD_HEADER_BYTES);
  return out;
}

/** Meta and summary bodies: payload followed by its CRC32C (u32 LE). */
export function withCrc(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 4);
  out.set(payload, 0);
  new DataView(out.buffer).setUint32(payload.length, crc(payload), true);
  return out;
}

/** Growable little-endian byte writer. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, v >>> 0, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  /** Unsigned LEB128 for integers up to 2^53 (timestamps in ms exceed 2^32). */
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.length++] = v;
  }
  /** Zigzag-mapped signed varint. */
  svarint(v: number): void {
    this.varint(v >= 0 ? v * 2 : -v * 2 - 1);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Thrown by ByteReader on any out-of-bounds or malformed value; callers turn it into a coded error naming the block. */
export class FormatViolation extends Error {}

/** Bounds-checked reader; never reads past `end`. */
export class ByteReader {
  pos: number;
  private readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.end) throw new FormatViolation(`needs ${n} bytes at ${this.pos}, ends at ${this.end}`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f32(): number {
    this.need(4);
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      this.need(1);
      const byte = this.buf[this.pos++]!;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) break;
        return value;
      }
      scale *= 128;
    }
    throw new FormatViolation('varint too long');
  }
  svarint(): number {
    const z = this.varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
}
