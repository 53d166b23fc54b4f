import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { crc32c } from '@node-rs/crc32';
import { StrataError } from '../errors.js';
import { CanonicalDecoder, canonicalCodes } from './huffman.js';
import { getVocab, VOCAB_NAME } from './vocab.js';

/*
 * The static model of huffman-tokens: CONTEXTS canonical codes over the alphabet
 * (every o200k token id, plus MATCH), one per class of the previous token. The class is the
 * kind of the previous token's last byte (start, newline, space, letter, digit, non-ASCII,
 * sentence punctuation, other): after a space a word piece without a leading space is likely,
 * after a newline markup and capitals are, and so on. Measured on held-out ShareGPT sessions,
 * these eight codes take about 5% fewer bits than a single code.
 */
export const CONTEXTS = 8;
/** ~200k symbols need long codes for the rarest ids; 24 bits keeps the decoder's window in one 32-bit read. */
export const MAX_TOKEN_CODE_BITS = 24;
/** Shortest token match worth a MATCH code (shorter ones almost never pay). */
export const MIN_MATCH = 3;

export const TABLE_MAGIC = 0x314b5453; // "STK1" little-endian
export const TABLE_VERSION = 1;
/*
 * Table file: u32 magic "STK1", u8 version, u8 contexts, u8 max code bits, u8 0,
 * u32 alphabet size, u32 CRC32C of the lengths, then Brotli(contexts × alphabet u8 lengths).
 */
const TABLE_HEADER_BYTES = 16;

export function classOfByte(b: number): number {
  if (b === 10) return 1;
  if (b === 32) return 2;
  if ((b >= 65 && b <= 90) || (b >= 97 && b <= 122)) return 3;
  if (b >= 48 && b <= 57) return 4;
  if (b >= 128) return 5;
  if (b === 46 || b === 44 || b === 58 || b === 59 || b === 33 || b === 63) return 6;
  return 7;
}

export interface TokenModel {
  /** The MATCH symbol's id: the vocabulary size. */
  match: number;
  alphabet: number;
  /** Context class after each token id. */
  classOf: Uint8Array;
  lengths: Uint8Array[];
  codes: Uint32Array[];
  decoders: CanonicalDecoder[];
}

export function tokenClasses(): Uint8Array {
  const v = getVocab();
  const classOf = new Uint8Array(v.size);
  for (let t = 0; t < v.size; t++) {
    const end = v.offsets[t + 1]!;
    classOf[t] = end > v.offsets[t]! ? classOfByte(v.bytes[end - 1]!) : 7;
  }
  return classOf;
}

export function serializeTable(lengths: Uint8Array[]): Uint8Array {
  const alphabet = lengths[0]!.length;
  const raw = new Uint8Array(lengths.length * alphabet);
  lengths.forEach((l, i) => raw.set(l, i * alphabet));
  const packed = zlib.brotliCompressSync(raw, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length } });
  const out = new Uint8Array(TABLE_HEADER_BYTES + packed.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, TABLE_MAGIC, true);
  out[4] = TABLE_VERSION;
  out[5] = lengths.length;
  out[6] = MAX_TOKEN_CODE_BITS;
  dv.setUint32(8, alphabet, true);
  dv.setUint32(12, crc32c(raw) >>> 0, true);
  out.set(packed, TABLE_HEADER_BYTES);
  return out;
}

export function parseTable(file: Uint8Array): Uint8Array[] {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const bad = (why: string) => new StrataError('STRATA_ERR_CODEC_CORRUPT', `huffman-tokens table (${VOCAB_NAME}) ${why}`);
  if (file.length < TABLE_HEADER_BYTES || dv.getUint32(0, true) !== TABLE_MAGIC || file[4] !== TABLE_VERSION) throw bad('has a wrong magic or version');
  if (file[5] !== CONTEXTS || file[6] !== MAX_TOKEN_CODE_BITS) throw bad('was built for other parameters');
  const alphabet = dv.getUint32(8, true);
  if (alphabet !== getVocab().size + 1) throw bad('does not match the vocabulary size');
  const raw = new Uint8Array(zlib.brotliDecompressSync(file.subarray(TABLE_HEADER_BYTES), { maxOutputLength: CONTEXTS * alphabet }));
  if (raw.length !== CONTEXTS * alphabet || (crc32c(raw) >>> 0) !== dv.getUint32(12, true)) throw bad('fails its checksum');
  return Array.from({ length: CONTEXTS }, (_, i) => raw.subarray(i * alphabet, (i + 1) * alphabet));
}

export function modelFromLengths(lengths: Uint8Array[]): TokenModel {
  const v = getVocab();
  return {
    match: v.size,
    alphabet: v.size + 1,
    classOf: tokenClasses(),
    lengths,
    codes: lengths.map((l) => canonicalCodes(l, MAX_TOKEN_CODE_BITS)),
    decoders: lengths.map((l) => new CanonicalDecoder(l, MAX_TOKEN_CODE_BITS)),
  };
}

export const TABLE_URL = new URL('./tables/o200k-tokens.bin', import.meta.url);

let model: TokenModel | undefined;

/** The shipped model, loaded and checked once, on first use. */
export function getTokenModel(): TokenModel {
  model ??= modelFromLengths(parseTable(new Uint8Array(readFileSync(TABLE_URL))));
  return model;
}
