import { StrataError } from '../errors.js';
import { BitReader, BitWriter } from './bits.js';
import type { Codec } from './codec.js';
import { CODEC_IDS, registerCodec } from './codec.js';
import { KIND_BYTES, KIND_UTF8 } from './huffman-bytes.js';
import { PRIMARY_BITS } from './huffman.js';
import { MAX_TOKEN_CODE_BITS, MIN_MATCH, getTokenModel } from './token-model.js';
import type { TokenModel } from './token-model.js';
import { tryDecodeUtf8 } from './text.js';
import { appendAll, getVocab, tokenize } from './vocab.js';

/*
 * huffman-tokens payload (docs/format.md): one MSB-first bit stream,
 *   3 bits kind: 000 bytes, 011 UTF-8 text, 101 WTF-8 text (pairwise two bits apart, so one
 *   flipped bit cannot change the kind), then symbols until the declared length is reached:
 *     a token id, coded with the static code of the previous token's context class, or
 *     MATCH + gamma(length - MIN_MATCH + 1) + gamma(distance): copy `length` tokens starting
 *     `distance` tokens back (overlap allowed),
 *   then zero bits to the byte boundary. Nothing may follow.
 */

const MAX_GAMMA_BITS = 25;
const KIND_BITS = [0b000, 0b011, 0b101] as const;

/** Token ids whose bytes concatenate to exactly `input`. Non-UTF-8 bytes become one-byte tokens. */
export function tokensOf(input: Uint8Array, text?: string): Int32Array {
  const v = getVocab();
  const str = text ?? tryDecodeUtf8(input);
  if (str !== undefined) {
    const ids = Int32Array.from(tokenize(str));
    if (sameBytes(ids, input)) return ids;
  }
  // Not UTF-8 (or a tokenizer that does not reproduce its input): split into valid UTF-8 runs.
  const out: number[] = [];
  let start = 0;
  for (let i = 0; i < input.length; ) {
    const n = utf8SeqLength(input, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > start) appendAll(out, tokenize(new TextDecoder().decode(input.subarray(start, i))));
    out.push(v.byteToken[input[i]!]!);
    start = ++i;
  }
  if (start < input.length) appendAll(out, tokenize(new TextDecoder().decode(input.subarray(start))));
  const ids = Int32Array.from(out);
  return sameBytes(ids, input) ? ids : Int32Array.from(input, (b) => v.byteToken[b]!);
}

function sameBytes(ids: Int32Array, input: Uint8Array): boolean {
  const { bytes, offsets } = getVocab();
  let o = 0;
  for (const t of ids) {
    const end = offsets[t + 1]!;
    for (let k = offsets[t]!; k < end; k++) if (bytes[k] !== input[o++]) return false;
  }
  return o === input.length;
}

/** Length of the valid UTF-8 sequence at `i`, or 0. */
function utf8SeqLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const d = b[i + 1] ?? 0;
    if ((c === 0xe0 && d < 0xa0) || (c === 0xed && d > 0x9f)) return 0;
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const d = b[i + 1] ?? 0;
    if ((c === 0xf0 && d < 0x90) || (c === 0xf4 && d > 0x8f)) return 0;
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

function gammaBits(v: number): number {
  return 2 * (31 - Math.clz32(v)) + 1;
}

/**
 * Greedy parse into literals and token matches. Returns ops: a token id ≥ 0 is a literal; a
 * negative value -L is a match of L tokens, followed by its distance and its last token id. A match is taken
 * only when its code is shorter than the literals it replaces under `lengths`.
 */
export function parseTokens(tokens: Int32Array, lengths: Uint8Array[], classOf: Uint8Array, match: number): Int32Array {
  const n = tokens.length;
  const ops = new Int32Array(n * 3 + 3);
  let no = 0;
  const bits = Math.min(20, Math.max(8, 33 - Math.clz32(n)));
  const head = new Int32Array(1 << bits).fill(-1);
  const chain = new Int32Array(n);
  const hash = (i: number) => (Math.imul(tokens[i]!, 0x9e3779b1) ^ Math.imul(tokens[i + 1]!, 0x85ebca77) ^ Math.imul(tokens[i + 2]!, 0xc2b2ae3d)) >>> (32 - bits);
  const insert = (i: number) => {
    if (i + 2 < n) {
      const h = hash(i);
      chain[i] = head[h]!;
      head[h] = i;
    }
  };
  let cls = 0;
  let i = 0;
  while (i < n) {
    let best = 0;
    let bestD = 0;
    if (i + MIN_MATCH <= n) {
      let cand = head[hash(i)]!;
      for (let depth = 0; cand >= 0 && depth < 16; depth++) {
        let l = 0;
        while (i + l < n && tokens[cand + l] === tokens[i + l]) l++;
        if (l > best) {
          best = l;
          bestD = i - cand;
        }
        cand = chain[cand]!;
      }
    }
    if (best >= MIN_MATCH) {
      const cost = lengths[cls]![match]! + gammaBits(best - MIN_MATCH + 1) + gammaBits(bestD);
      let lit = 0;
      let c = cls;
      for (let j = 0; j < best && lit <= cost; j++) {
        const t = tokens[i + j]!;
        lit += lengths[c]![t]!;
        c = classOf[t]!;
      }
      if (cost < lit) {
        for (let j = 0; j < best; j++) insert(i + j);
        i += best;
        ops[no++] = -best;
        ops[no++] = bestD;
        ops[no++] = tokens[i - 1]!;
        cls = classOf[tokens[i - 1]!]!;
        continue;
      }
    }
    insert(i);
    const t = tokens[i++]!;
    ops[no++] = t;
    cls = classOf[t]!;
  }
  return ops.subarray(0, no);
}

export function encodeTokens(tokens: Int32Array, kind: number, model: TokenModel = getTokenModel()): Uint8Array {
  const ops = parseTokens(tokens, model.lengths, model.classOf, model.match);
  const w = new BitWriter(tokens.length * 2 + 8);
  w.write(KIND_BITS[kind as 0 | 1 | 2], 3);
  let cls = 0;
  for (let k = 0; k < ops.length; k++) {
    const op = ops[k]!;
    if (op >= 0) {
      w.write(model.codes[cls]![op]!, model.lengths[cls]![op]!);
      cls = model.classOf[op]!;
    } else {
      const len = -op;
      const dist = ops[++k]!;
      w.write(model.codes[cls]![model.match]!, model.lengths[cls]![model.match]!);
      w.writeGamma(len - MIN_MATCH + 1);
      w.writeGamma(dist);
      cls = model.classOf[ops[++k]!]!;
    }
  }
  return w.finish().slice();
}

export function decodeTokens(payload: Uint8Array, decodedLength: number, model: TokenModel = getTokenModel()): { bytes: Uint8Array; kind: number } {
  const { bytes: vb, offsets } = getVocab();
  const r = new BitReader(payload);
  const kind = (KIND_BITS as readonly number[]).indexOf(r.read(3));
  if (kind < 0) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'unknown huffman-tokens kind');
  const out = new Uint8Array(decodedLength);
  let tokens = new Int32Array(Math.min(1024, decodedLength + 1));
  let nt = 0;
  let op = 0;
  let cls = 0;
  const shift = MAX_TOKEN_CODE_BITS - PRIMARY_BITS;
  const put = (t: number) => {
    const s = offsets[t]!;
    const e = offsets[t + 1]!;
    if (op + e - s > decodedLength) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'huffman-tokens stream decodes past its declared length');
    for (let k = s; k < e; k++) out[op++] = vb[k]!;
    if (nt === tokens.length) {
      const next = new Int32Array(Math.min(tokens.length * 2, decodedLength + 1));
      next.set(tokens);
      tokens = next;
    }
    tokens[nt++] = t;
    cls = model.classOf[t]!;
  };
  while (op < decodedLength) {
    const dec = model.decoders[cls]!;
    const window = r.peek(MAX_TOKEN_CODE_BITS);
    let e = dec.primary[window >>> shift]!;
    if (e === 0) e = dec.decodeLong(window);
    r.skip(e & 31);
    r.checkNotOverrun();
    const sym = e >>> 5;
    if (sym !== model.match) {
      put(sym);
      continue;
    }
    const len = r.readGamma(MAX_GAMMA_BITS) + MIN_MATCH - 1;
    const dist = r.readGamma(MAX_GAMMA_BITS);
    r.checkNotOverrun();
    if (dist > nt) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'token match reaches before the start');
    for (let j = 0; j < len; j++) put(tokens[nt - dist]!);
  }
  if (r.finishAligned() !== payload.length) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'bytes after the end of the huffman-tokens stream');
  return { bytes: out, kind };
}

export function compressTokens(input: Uint8Array, kind: number = KIND_BYTES, text?: string): Uint8Array {
  return encodeTokens(tokensOf(input, kind === KIND_UTF8 ? text : undefined), kind);
}

export const huffmanTokensCodec: Codec = {
  id: CODEC_IDS['huffman-tokens'],
  name: 'huffman-tokens',
  compress: (input) => compressTokens(input),
  decompress: (payload, n) => decodeTokens(payload, n).bytes,
};

registerCodec(huffmanTokensCodec);
