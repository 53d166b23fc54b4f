import { crc32c } from '@node-rs/crc32';
import { StrataError } from '../errors.js';

/**
 * The contract every compression codec implements. A codec only turns bytes into a payload and
 * back; the frame around it (codec id, decoded length, CRC32C) is added by `encodeFrame` so every
 * codec gets the same integrity checks.
 */
export interface Codec {
  /** One byte, written in every frame; never reused for a different format. */
  readonly id: number;
  readonly name: string;
  compress(input: Uint8Array): Uint8Array;
  /**
   * Must return exactly `decodedLength` bytes or throw a coded `STRATA_ERR_CODEC_*` error. Must
   * never allocate more than `decodedLength` bytes for the output, nor read past `payload`.
   */
  decompress(payload: Uint8Array, decodedLength: number): Uint8Array;
  /**
   * Optional: `compress` off the calling thread (node:zlib's thread pool), with the same output,
   * for callers that must not block their event loop on a large input.
   */
  compressAsync?(input: Uint8Array): Promise<Uint8Array>;
  /** Optional: `decompress` off the calling thread, under the same contract. */
  decompressAsync?(payload: Uint8Array, decodedLength: number): Promise<Uint8Array>;
}

/** Codec ids. Stable forever: a reader must read every id it ever wrote. */
export const CODEC_IDS = {
  raw: 0x00,
  deflate: 0x01,
  gzip: 0x02,
  brotli: 0x03,
  'huffman-bytes': 0x10,
  'huffman-tokens': 0x11,
} as const;

/** Default bound on a frame's declared decoded size: 64 MiB, far above maxMessageBytes. */
export const DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024;

export interface DecodeOptions {
  /** Frames declaring more decoded bytes than this are rejected before any allocation. */
  maxDecodedBytes?: number;
}

const registry = new Map<number, Codec>();

export function registerCodec(codec: Codec): void {
  const existing = registry.get(codec.id);
  if (existing && existing !== codec) throw new Error(`codec id 0x${codec.id.toString(16)} already registered by ${existing.name}`);
  registry.set(codec.id, codec);
}

export function getCodec(idOrName: number | string): Codec {
  if (typeof idOrName === 'string') {
    for (const codec of registry.values()) if (codec.name === idOrName) return codec;
    throw new StrataError('STRATA_ERR_CODEC_UNKNOWN', `unknown codec name ${JSON.stringify(idOrName)}; known: ${listCodecs().map((c) => c.name).join(', ')}`);
  }
  const codec = registry.get(idOrName);
  if (!codec) throw new StrataError('STRATA_ERR_CODEC_UNKNOWN', `unknown codec id 0x${idOrName.toString(16).padStart(2, '0')}`);
  return codec;
}

export function listCodecs(): Codec[] {
  return [...registry.values()].sort((a, b) => a.id - b.id);
}

/*
 * Frame layout (docs/format.md, "Codec frame"):
 *   u8       codec id
 *   varint   decoded length (unsigned LEB128, at most 5 bytes, value < 2^32)
 *   u32 LE   CRC32C of the decoded bytes
 *   ...      codec payload, to the end of the frame
 * The frame does not store its own length: its container (an archive block) delimits it.
 */
export const FRAME_MAX_HEADER_BYTES = 1 + 5 + 4;

export function encodeFrame(codec: Codec, input: Uint8Array): Uint8Array {
  return frameFromPayload(codec.id, input, codec.compress(input));
}

/** `encodeFrame`, compressing on the codec's `compressAsync` when it has one. */
export async function encodeFrameAsync(codec: Codec, input: Uint8Array): Promise<Uint8Array> {
  return frameFromPayload(codec.id, input, codec.compressAsync ? await codec.compressAsync(input) : codec.compress(input));
}

/** Wraps an already computed `payload` of codec `codecId` for the decoded bytes `input`. */
export function frameFromPayload(codecId: number, input: Uint8Array, payload: Uint8Array): Uint8Array {
  const header = new Uint8Array(FRAME_MAX_HEADER_BYTES);
  header[0] = codecId;
  let pos = writeVarint(header, 1, input.length);
  new DataView(header.buffer).setUint32(pos, crc32c(input) >>> 0, true);
  pos += 4;
  const frame = new Uint8Array(pos + payload.length);
  frame.set(header.subarray(0, pos), 0);
  frame.set(payload, pos);
  return frame;
}

export interface FrameHeader {
  codecId: number;
  decodedLength: number;
  crc: number;
  payloadOffset: number;
}

export function readFrameHeader(frame: Uint8Array, options: DecodeOptions = {}): FrameHeader {
  const max = options.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
  if (frame.length < 6) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', `frame of ${frame.length} bytes is shorter than the smallest header (6 bytes)`);
  const codecId = frame[0]!;
  const [decodedLength, after] = readVarint(frame, 1);
  if (after + 4 > frame.length) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'frame ends inside its header');
  if (decodedLength > max) throw new StrataError('STRATA_ERR_CODEC_TOO_LARGE', `frame declares ${decodedLength} decoded bytes, above the maximum of ${max}`);
  const crc = new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getUint32(after, true);
  return { codecId, decodedLength, crc, payloadOffset: after + 4 };
}

export function decodeFrame(frame: Uint8Array, options: DecodeOptions = {}): Uint8Array {
  const header = readFrameHeader(frame, options);
  const codec = getCodec(header.codecId);
  let out: Uint8Array;
  try {
    out = codec.decompress(frame.subarray(header.payloadOffset), header.decodedLength);
  } catch (err) {
    throw decodeError(codec, err);
  }
  checkDecoded(header, out, codec.name);
  return out;
}

/**
 * `decodeFrame`, with the payload decoded off the calling thread when its codec can
 * (`decompressAsync`; node:zlib's thread pool), on it otherwise. Same result, same errors.
 */
export async function decodeFrameAsync(frame: Uint8Array, options: DecodeOptions = {}): Promise<Uint8Array> {
  const header = readFrameHeader(frame, options);
  const codec = getCodec(header.codecId);
  if (!codec.decompressAsync) return decodeFrame(frame, options);
  let out: Uint8Array;
  try {
    out = await codec.decompressAsync(frame.subarray(header.payloadOffset), header.decodedLength);
  } catch (err) {
    throw decodeError(codec, err);
  }
  checkDecoded(header, out, codec.name);
  return out;
}

/** A codec's failure to decode, coded (its own coded errors pass through). */
function decodeError(codec: Codec, err: unknown): StrataError {
  if (err instanceof StrataError) return err;
  return new StrataError('STRATA_ERR_CODEC_CORRUPT', `${codec.name} payload does not decode: ${(err as Error).message}`, { cause: err });
}

/** Throws unless `out` has the frame's declared length and CRC32C. */
export function checkDecoded(header: FrameHeader, out: Uint8Array, name: string): void {
  if (out.length !== header.decodedLength) throw new StrataError('STRATA_ERR_CODEC_CHECKSUM', `${name} decoded ${out.length} bytes, frame declares ${header.decodedLength}`);
  if ((crc32c(out) >>> 0) !== header.crc) throw new StrataError('STRATA_ERR_CODEC_CHECKSUM', `${name} frame fails its CRC32C check`);
}

export function writeVarint(buf: Uint8Array, pos: number, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`varint out of range: ${value}`);
  while (value >= 0x80) {
    buf[pos++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[pos++] = value;
  return pos;
}

/** Reads an unsigned LEB128 varint of at most 5 bytes (< 2^32). Returns [value, next position]. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 5; i++) {
    if (pos >= buf.length) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'varint runs past the end of its input');
    const byte = buf[pos++]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (value > 0xffffffff) break;
      return [value, pos];
    }
    scale *= 128;
  }
  throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'varint longer than 5 bytes or above 2^32-1');
}

/** Joins byte arrays into one new array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}
