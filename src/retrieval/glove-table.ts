import { crc32c } from '@node-rs/crc32';
import { StrataError } from '../errors.js';

/**
 * The converted GloVe table, one self-describing binary file:
 *
 * | offset | size        | field                                                        |
 * |--------|-------------|--------------------------------------------------------------|
 * | 0      | 4           | magic `SGLV`                                                 |
 * | 4      | 1           | format version (1)                                           |
 * | 5      | 3           | zero                                                         |
 * | 8      | 4           | word count N (u32 LE)                                        |
 * | 12     | 4           | dimensions D (u32 LE)                                        |
 * | 16     | 4           | vocabulary byte length V (u32 LE)                            |
 * | 20     | 4           | CRC32C of every byte after the 24-byte header                |
 * | 24     | V           | words, UTF-8, joined by `\n`, in source frequency-rank order |
 * | ...    | 0-3         | zero padding to a multiple of 4                              |
 * | ...    | 4·N         | per-row scale (f32 LE): value = int8 · scale                 |
 * | ...    | N·D         | int8 components, row-major                                   |
 *
 * Per-row scales keep each word's relative precision (rows differ in norm by 10×); 100k words ×
 * 100 dims is ~10.4 MB, parsed in well under a second (no JSON, no per-number parsing).
 */
const MAGIC = 0x564c4753; // 'SGLV' read as u32 LE
const VERSION = 1;
const HEADER = 24;

export interface GloveTable {
  dimensions: number;
  /** word → row (row order is frequency rank, 0 = most frequent). */
  index: Map<string, number>;
  scales: Float32Array;
  values: Int8Array;
  size: number;
}

export function encodeGloveTable(words: readonly string[], vectors: readonly Float32Array[], dims: number): Uint8Array {
  const vocab = Buffer.from(words.join('\n'), 'utf8');
  const pad = (4 - (vocab.length % 4)) % 4;
  const n = words.length;
  const total = HEADER + vocab.length + pad + 4 * n + n * dims;
  const buf = Buffer.alloc(total);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt8(VERSION, 4);
  buf.writeUInt32LE(n, 8);
  buf.writeUInt32LE(dims, 12);
  buf.writeUInt32LE(vocab.length, 16);
  vocab.copy(buf, HEADER);
  const scaleOffset = HEADER + vocab.length + pad;
  const valueOffset = scaleOffset + 4 * n;
  for (let r = 0; r < n; r++) {
    const v = vectors[r]!;
    let max = 0;
    for (let i = 0; i < dims; i++) max = Math.max(max, Math.abs(v[i]!));
    const scale = max / 127 || 1;
    buf.writeFloatLE(scale, scaleOffset + 4 * r);
    for (let i = 0; i < dims; i++) buf.writeInt8(Math.round(v[i]! / scale), valueOffset + r * dims + i);
  }
  buf.writeUInt32LE(crc32c(buf.subarray(HEADER)) >>> 0, 20);
  return buf;
}

export function decodeGloveTable(bytes: Uint8Array, name = 'glove table'): GloveTable {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER || buf.readUInt32LE(0) !== MAGIC) {
    throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${name} is not a Strata GloVe table (bad magic)`);
  }
  if (buf.readUInt8(4) !== VERSION) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${name} has unknown version ${buf.readUInt8(4)}`);
  const n = buf.readUInt32LE(8);
  const dims = buf.readUInt32LE(12);
  const vocabLength = buf.readUInt32LE(16);
  const pad = (4 - (vocabLength % 4)) % 4;
  const scaleOffset = HEADER + vocabLength + pad;
  const valueOffset = scaleOffset + 4 * n;
  if (buf.length !== valueOffset + n * dims) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${name} is truncated or has trailing bytes`);
  if ((crc32c(buf.subarray(HEADER)) >>> 0) !== buf.readUInt32LE(20)) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${name} fails its CRC32C check`);
  const words = buf.toString('utf8', HEADER, HEADER + vocabLength).split('\n');
  if (words.length !== n) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${name} declares ${n} words but holds ${words.length}`);
  const index = new Map<string, number>();
  for (let r = 0; r < n; r++) if (!index.has(words[r]!)) index.set(words[r]!, r);
  // Copies keep the typed arrays aligned and independent of the file buffer.
  const scales = new Float32Array(n);
  for (let r = 0; r < n; r++) scales[r] = buf.readFloatLE(scaleOffset + 4 * r);
  const values = new Int8Array(buf.buffer.slice(buf.byteOffset + valueOffset, buf.byteOffset + valueOffset + n * dims));
  return { dimensions: dims, index, scales, values, size: n };
}
