import { crc32c } from '@node-rs/crc32';
import { StrataError } from '../errors.js';
import { CODEC_IDS, DEFAULT_MAX_DECODED_BYTES, checkDecoded, concat, decodeFrame, frameFromPayload, readFrameHeader, readVarint, writeVarint } from './codec.js';
import { BLOCK_SIZE, KIND_BYTES, KIND_UTF8, KIND_WTF8, compressBytes, decodeBlock, decompressBytes, encodeBlock } from './huffman-bytes.js';
import { compressTokens, decodeTokens } from './huffman-tokens.js';
import { decodeUtf8, decodeWtf8, encodeUtf8, encodeWtf8, isWellFormed } from './text.js';
import './zlib.js';

export interface HuffmanCodecOptions {
  /**
   * `tokens` (default): huffman-tokens, the static o200k_base token code — best for chat text,
   * one message at a time. `bytes`: huffman-bytes, a code built per 64 KiB block — for any bytes,
   * faster to decode.
   */
  mode?: 'tokens' | 'bytes';
  /** Frames declaring more decoded bytes are rejected before allocating. Default 64 MiB. */
  maxDecodedBytes?: number;
}

function toBytes(input: string | Uint8Array): { bytes: Uint8Array; kind: number; text?: string } {
  if (typeof input !== 'string') return { bytes: input, kind: KIND_BYTES };
  return isWellFormed(input) ? { bytes: encodeUtf8(input), kind: KIND_UTF8, text: input } : { bytes: encodeWtf8(input), kind: KIND_WTF8 };
}

function fromBytes(bytes: Uint8Array, kind: number): string | Uint8Array {
  return kind === KIND_UTF8 ? decodeUtf8(bytes) : kind === KIND_WTF8 ? decodeWtf8(bytes) : bytes;
}

function validateOptions(options: HuffmanCodecOptions): Required<HuffmanCodecOptions> {
  const mode = options.mode ?? 'tokens';
  if (mode !== 'tokens' && mode !== 'bytes') throw new StrataError('STRATA_ERR_CONFIG_INVALID', `option mode: expected 'tokens' or 'bytes', got ${JSON.stringify(mode)}`);
  const max = options.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
  if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) throw new StrataError('STRATA_ERR_CONFIG_INVALID', `option maxDecodedBytes: expected an integer in [0, 2^32), got ${String(max)}`);
  return Object.freeze({ mode, maxDecodedBytes: max });
}

/**
 * Canonical Huffman coding of conversation text into self-checking frames (docs/format.md).
 * `decode` returns a string when a string was encoded (even one with lone surrogates) and bytes
 * when bytes were, and reads frames of every registered codec.
 */
export class HuffmanConversationCodec {
  readonly options: Readonly<Required<HuffmanCodecOptions>>;

  constructor(options: HuffmanCodecOptions = {}) {
    this.options = validateOptions(options);
  }

  encode(input: string | Uint8Array): Uint8Array {
    const { bytes, kind, text } = toBytes(input);
    if (bytes.length > 0xffffffff) throw new StrataError('STRATA_ERR_VALIDATION', 'input longer than 2^32-1 bytes');
    if (this.options.mode === 'bytes') return frameFromPayload(CODEC_IDS['huffman-bytes'], bytes, compressBytes(bytes, kind));
    return frameFromPayload(CODEC_IDS['huffman-tokens'], bytes, compressTokens(bytes, kind, text));
  }

  decode(frame: Uint8Array): string | Uint8Array {
    const header = readFrameHeader(frame, { maxDecodedBytes: this.options.maxDecodedBytes });
    const payload = frame.subarray(header.payloadOffset);
    let decoded: { bytes: Uint8Array; kind: number };
    if (header.codecId === CODEC_IDS['huffman-bytes'] || header.codecId === CODEC_IDS['huffman-tokens']) {
      try {
        decoded = header.codecId === CODEC_IDS['huffman-bytes'] ? decompressBytes(payload, header.decodedLength) : decodeTokens(payload, header.decodedLength);
      } catch (err) {
        if (err instanceof StrataError) throw err;
        throw new StrataError('STRATA_ERR_CODEC_CORRUPT', `payload does not decode: ${(err as Error).message}`, { cause: err });
      }
      checkDecoded(header, decoded.bytes, 'huffman');
    } else decoded = { bytes: decodeFrame(frame, { maxDecodedBytes: this.options.maxDecodedBytes }), kind: KIND_BYTES };
    return fromBytes(decoded.bytes, decoded.kind);
  }
}

/*
 * Stream format (docs/format.md, "Huffman stream"): u8 0x48 ('H', format 1), then chunks
 *   varint raw length (1 … 65536), varint block length (≤ raw length + 1), u32 LE CRC32C of the
 *   raw bytes, one huffman-bytes block;
 * ended by a varint 0. Each chunk decodes on its own, so a reader holds at most one block.
 */
export const STREAM_MAGIC = 0x48;

/** Encodes a byte stream pushed in pieces of any size; output is available per 64 KiB. */
export class HuffmanStreamEncoder {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private started = false;
  private ended = false;
  private highSurrogate = '';

  /** Adds input; returns the stream bytes completed so far (possibly empty). */
  push(chunk: Uint8Array | string): Uint8Array {
    if (this.ended) throw new StrataError('STRATA_ERR_VALIDATION', 'push after end');
    if (typeof chunk === 'string') {
      // A surrogate pair split between two pushes must be encoded as one character.
      let text = this.highSurrogate + chunk;
      this.highSurrogate = '';
      const last = text.charCodeAt(text.length - 1);
      if (last >= 0xd800 && last <= 0xdbff) {
        this.highSurrogate = text.slice(-1);
        text = text.slice(0, -1);
      }
      chunk = isWellFormed(text) ? encodeUtf8(text) : encodeWtf8(text);
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    return this.emit(false);
  }

  /** Flushes the rest and the end marker. */
  end(): Uint8Array {
    if (this.highSurrogate) {
      this.pending.push(encodeWtf8(this.highSurrogate));
      this.pendingBytes += 3;
      this.highSurrogate = '';
    }
    const out = this.emit(true);
    this.ended = true;
    return concat([out, Uint8Array.of(0)]);
  }

  private emit(all: boolean): Uint8Array {
    const parts: Uint8Array[] = [];
    if (!this.started) {
      parts.push(Uint8Array.of(STREAM_MAGIC));
      this.started = true;
    }
    if (this.pendingBytes >= BLOCK_SIZE || (all && this.pendingBytes > 0)) {
      const data = concat(this.pending);
      let p = 0;
      for (; data.length - p >= BLOCK_SIZE || (all && p < data.length); p += BLOCK_SIZE) {
        const raw = data.subarray(p, Math.min(data.length, p + BLOCK_SIZE));
        const blockParts: Uint8Array[] = [];
        encodeBlock(raw, blockParts);
        const block = concat(blockParts);
        const head = new Uint8Array(14);
        let h = writeVarint(head, 0, raw.length);
        h = writeVarint(head, h, block.length);
        new DataView(head.buffer).setUint32(h, crc32c(raw) >>> 0, true);
        parts.push(head.subarray(0, h + 4), block);
      }
      const rest = data.subarray(Math.min(p, data.length));
      this.pending = rest.length ? [rest.slice()] : [];
      this.pendingBytes = rest.length;
    }
    return concat(parts);
  }
}

/** Decodes the stream format from pieces split anywhere (mid-header, mid-block, mid-bit). */
export class HuffmanStreamDecoder {
  private buffer: Uint8Array = new Uint8Array(0);
  private total = 0;
  private started = false;
  private done = false;
  private readonly maxDecodedBytes: number;

  constructor(options: Pick<HuffmanCodecOptions, 'maxDecodedBytes'> = {}) {
    this.maxDecodedBytes = validateOptions(options).maxDecodedBytes;
  }

  /** Adds stream bytes; returns the bytes decoded from every chunk completed so far. */
  push(chunk: Uint8Array): Uint8Array {
    if (this.done) {
      if (chunk.length) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'bytes after the end of the stream');
      return new Uint8Array(0);
    }
    this.buffer = this.buffer.length ? concat([this.buffer, chunk]) : chunk.slice();
    const out: Uint8Array[] = [];
    let pos = 0;
    const buf = this.buffer;
    if (!this.started) {
      if (buf.length < 1) return new Uint8Array(0);
      if (buf[0] !== STREAM_MAGIC) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'not a Huffman stream (bad magic byte)');
      this.started = true;
      pos = 1;
    }
    for (;;) {
      let rawLen: number;
      let blockLen: number;
      let p: number;
      try {
        [rawLen, p] = readVarint(buf, pos);
        if (rawLen === 0) {
          this.done = true;
          if (p !== buf.length) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'bytes after the end of the stream');
          pos = p;
          break;
        }
        [blockLen, p] = readVarint(buf, p);
      } catch (err) {
        if (err instanceof StrataError && err.code === 'STRATA_ERR_CODEC_TRUNCATED') break; // wait for more input
        throw err;
      }
      if (rawLen > BLOCK_SIZE || blockLen > rawLen + 1 || blockLen < 2) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'stream chunk with impossible lengths');
      if (this.total + rawLen > this.maxDecodedBytes) throw new StrataError('STRATA_ERR_CODEC_TOO_LARGE', `stream decodes to more than ${this.maxDecodedBytes} bytes`);
      if (p + 4 + blockLen > buf.length) break;
      const crc = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(p, true);
      const raw = new Uint8Array(rawLen);
      const end = decodeBlock(buf, p + 4, p + 4 + blockLen, raw, 0, rawLen);
      if (end !== p + 4 + blockLen) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'stream block length does not match its content');
      if ((crc32c(raw) >>> 0) !== crc) throw new StrataError('STRATA_ERR_CODEC_CHECKSUM', 'stream chunk fails its CRC32C check');
      this.total += rawLen;
      out.push(raw);
      pos = p + 4 + blockLen;
    }
    this.buffer = buf.subarray(pos);
    return concat(out);
  }

  /** Throws unless the end marker was seen. */
  end(): void {
    if (!this.done) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'stream ends before its end marker');
  }
}
