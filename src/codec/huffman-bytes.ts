import { StrataError } from '../errors.js';
import { BitReader, BitWriter } from './bits.js';
import type { Codec } from './codec.js';
import { CODEC_IDS, concat, registerCodec } from './codec.js';
import { assertCompleteCode, canonicalCodes, codeLengths } from './huffman.js';

/*
 * huffman-bytes payload (docs/format.md, "huffman-bytes payload"):
 *   u8 kind: 0x00 bytes, 0x33 UTF-8 text, 0x55 WTF-8 text (what HuffmanConversationCodec returns)
 *   blocks, each coding min(BLOCK_SIZE, remaining) decoded bytes:
 *     u8 type: 0 stored (the bytes follow), 1 Huffman, 2 run (one byte value follows)
 *     Huffman: code-length table (bit-packed, zero-padded to a byte), then the codes (MSB-first,
 *     zero-padded to a byte).
 */

/** 65536: the decode table is rebuilt per block, so blocks adapt to changing content. */
export const BLOCK_SIZE = 65536;
/** 15 bits keeps the byte decoder to one table of at most 2^15 entries (no secondary lookups). */
export const MAX_CODE_BITS = 15;
/**
 * The encoder limits codes to 12 bits (the format allows 15, and decoders accept 15). The decoder
 * builds a 2^maxLen lookup table per 64 KiB block; at 15 bits that build costs about as much as
 * decoding the block, at 12 bits one eighth, while the size cost on text is a few hundredths of
 * a percent (only bytes rarer than 1 in 4096 get longer codes).
 */
export const ENCODE_MAX_BITS = 12;

export const BLOCK_STORED = 0;
export const BLOCK_HUFFMAN = 1;
export const BLOCK_RUN = 2;

/** What the decoded bytes are, so HuffmanConversationCodec.decode can return the input's type. */
export const KIND_BYTES = 0;
export const KIND_UTF8 = 1;
export const KIND_WTF8 = 2;
/**
 * How a kind is written in the huffman-bytes payload header. The three values differ in four
 * bits, so no single flipped bit turns one kind into another (the frame CRC covers the decoded
 * bytes, not the kind).
 */
export const KIND_BYTE = [0x00, 0x33, 0x55] as const;

/** Appends one coded block for `block` (1 ≤ length ≤ BLOCK_SIZE) to `parts`. */
export function encodeBlock(block: Uint8Array, parts: Uint8Array[]): void {
  const freq = new Uint32Array(256);
  for (let i = 0; i < block.length; i++) freq[block[i]!]!++;
  let distinct = 0;
  let only = 0;
  for (let s = 0; s < 256; s++)
    if (freq[s]) {
      distinct++;
      only = s;
    }
  if (distinct === 1) {
    parts.push(Uint8Array.of(BLOCK_RUN, only));
    return;
  }
  const lengths = codeLengths(freq, ENCODE_MAX_BITS);
  const table = new BitWriter(64);
  table.write(BLOCK_HUFFMAN, 8);
  table.write(distinct - 1, 8);
  // Present symbols in ascending order: gap to the previous one, then the change in length,
  // both Elias-gamma coded; text has small gaps and slowly varying lengths, so this stays small.
  let prev = -1;
  let prevLen = 8;
  for (let s = 0; s < 256; s++) {
    const l = lengths[s]!;
    if (!l) continue;
    table.writeGamma(s - prev);
    const d = l - prevLen;
    table.writeGamma((d >= 0 ? 2 * d : -2 * d - 1) + 1);
    prev = s;
    prevLen = l;
  }
  const head = table.finish();
  let dataBits = 0;
  for (let s = 0; s < 256; s++) dataBits += freq[s]! * lengths[s]!;
  const dataBytes = Math.ceil(dataBits / 8);
  if (head.length + dataBytes >= 1 + block.length) {
    const stored = new Uint8Array(1 + block.length);
    stored[0] = BLOCK_STORED;
    stored.set(block, 1);
    parts.push(stored);
    return;
  }
  const codes = canonicalCodes(lengths, MAX_CODE_BITS);
  const out = new Uint8Array(dataBytes);
  let acc = 0;
  let cnt = 0;
  let o = 0;
  for (let i = 0; i < block.length; i++) {
    const b = block[i]!;
    const l = lengths[b]!;
    acc = (acc << l) | codes[b]!;
    cnt += l;
    while (cnt >= 8) {
      cnt -= 8;
      out[o++] = acc >>> cnt;
    }
    acc &= (1 << cnt) - 1;
  }
  if (cnt > 0) out[o++] = acc << (8 - cnt);
  parts.push(head, out);
}

/**
 * Decodes one block at `input[pos]` into `out[op, op + size)`; returns the offset after the block.
 * Reads nothing outside `input[pos, end)` and writes nothing outside `out[op, op + size)`.
 */
export function decodeBlock(input: Uint8Array, pos: number, end: number, out: Uint8Array, op: number, size: number): number {
  if (pos >= end) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'huffman-bytes payload ends before its last block');
  const type = input[pos]!;
  if (type === BLOCK_STORED) {
    if (pos + 1 + size > end) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'stored block runs past the payload');
    out.set(input.subarray(pos + 1, pos + 1 + size), op);
    return pos + 1 + size;
  }
  if (type === BLOCK_RUN) {
    if (pos + 2 > end) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'run block runs past the payload');
    out.fill(input[pos + 1]!, op, op + size);
    return pos + 2;
  }
  if (type !== BLOCK_HUFFMAN) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', `unknown huffman-bytes block type ${type}`);

  const r = new BitReader(input, pos + 1, end);
  const k = r.read(8) + 1;
  if (k < 2) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'Huffman block with fewer than two symbols');
  const lengths = new Uint8Array(256);
  let prev = -1;
  let prevLen = 8;
  let maxLen = 0;
  for (let i = 0; i < k; i++) {
    const sym = prev + r.readGamma(9);
    const zz = r.readGamma(6) - 1;
    const len = prevLen + (zz & 1 ? -((zz + 1) >> 1) : zz >> 1);
    if (sym > 255 || len < 1 || len > MAX_CODE_BITS) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'bad code-length table');
    lengths[sym] = len;
    if (len > maxLen) maxLen = len;
    prev = sym;
    prevLen = len;
  }
  assertCompleteCode(lengths, MAX_CODE_BITS, 'huffman-bytes block');
  let ip = r.finishAligned();

  // single[w]: symbol | length << 8 for the T-bit window w. multi[w] adds a second symbol when
  // both codes fit in the window: sym1 | sym2 << 8 | bits << 16 | count << 24.
  const T = maxLen;
  const mask = (1 << T) - 1;
  const single = new Int32Array(1 << T);
  const codes = canonicalCodes(lengths, MAX_CODE_BITS);
  for (let s = 0; s < 256; s++) {
    const l = lengths[s]!;
    if (!l) continue;
    const start = codes[s]! << (T - l);
    single.fill(s | (l << 8), start, start + (1 << (T - l)));
  }
  const multi = new Int32Array(1 << T);
  for (let w = 0; w <= mask; w++) {
    const e1 = single[w]!;
    const l1 = e1 >>> 8;
    const e2 = single[(w << l1) & mask]!;
    const l2 = e2 >>> 8;
    multi[w] = l2 <= T - l1 ? (e1 & 255) | ((e2 & 255) << 8) | ((l1 + l2) << 16) | (2 << 24) : (e1 & 255) | (l1 << 16) | (1 << 24);
  }

  let buf = 0;
  let cnt = 0;
  const outEnd = op + size;
  // Hot loop: one lookup yields one or two bytes. Both output slots are in bounds (op + 1 < outEnd)
  // and the refill reads two bytes only when both exist; the tail below handles the rest.
  while (op + 1 < outEnd) {
    if (cnt < 16) {
      if (ip + 2 > end) break;
      buf = (buf << 16) | (input[ip]! << 8) | input[ip + 1]!;
      ip += 2;
      cnt += 16;
    }
    const e = multi[(buf >>> (cnt - T)) & mask]!;
    out[op] = e;
    out[op + 1] = e >>> 8;
    op += e >>> 24;
    cnt -= (e >>> 16) & 31;
  }
  let over = 0;
  while (op < outEnd) {
    while (cnt < T) {
      if (ip < end) buf = (buf << 8) | input[ip++]!;
      else {
        buf <<= 8;
        over += 8;
      }
      cnt += 8;
    }
    const e = single[(buf >>> (cnt - T)) & mask]!;
    out[op++] = e;
    cnt -= e >>> 8;
    if (over > cnt) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'Huffman block ends early');
  }
  const pad = cnt & 7;
  if (pad && ((buf >>> (cnt - pad)) & ((1 << pad) - 1)) !== 0) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'non-zero padding after a Huffman block');
  cnt -= pad;
  return ip - ((cnt - over) >> 3);
}

export function compressBytes(input: Uint8Array, kind: number = KIND_BYTES): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.of(KIND_BYTE[kind as 0 | 1 | 2])];
  for (let p = 0; p < input.length; p += BLOCK_SIZE) encodeBlock(input.subarray(p, Math.min(input.length, p + BLOCK_SIZE)), parts);
  return concat(parts);
}

export function decompressBytes(payload: Uint8Array, decodedLength: number): { bytes: Uint8Array; kind: number } {
  if (payload.length < 1) throw new StrataError('STRATA_ERR_CODEC_TRUNCATED', 'empty huffman-bytes payload');
  const kind = (KIND_BYTE as readonly number[]).indexOf(payload[0]!);
  if (kind < 0) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', `unknown huffman-bytes kind byte ${payload[0]!}`);
  const out = new Uint8Array(decodedLength);
  let pos = 1;
  for (let op = 0; op < decodedLength; op += BLOCK_SIZE) pos = decodeBlock(payload, pos, payload.length, out, op, Math.min(BLOCK_SIZE, decodedLength - op));
  if (pos !== payload.length) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', `${payload.length - pos} bytes after the last huffman-bytes block`);
  return { bytes: out, kind };
}


export const huffmanBytesCodec: Codec = {
  id: CODEC_IDS['huffman-bytes'],
  name: 'huffman-bytes',
  compress: (input) => compressBytes(input),
  decompress: (payload, n) => decompressBytes(payload, n).bytes,
};

registerCodec(huffmanBytesCodec);
