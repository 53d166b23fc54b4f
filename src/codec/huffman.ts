import { StrataError } from '../errors.js';

/**
 * Optimal length-limited code lengths by package-merge (Larmore & Hirschberg). Deterministic:
 * symbols are ordered by (weight, symbol id) and ties in the merge prefer leaves, so the same
 * weights always give the same lengths. Symbols of weight 0 get length 0 (no code). A single used
 * symbol gets length 1. Cost O(n · maxLen) time and bytes.
 */
export function codeLengths(weights: ArrayLike<number>, maxLen: number): Uint8Array {
  const size = weights.length;
  const lengths = new Uint8Array(size);
  const used: number[] = [];
  for (let i = 0; i < size; i++) if (weights[i]! > 0) used.push(i);
  const n = used.length;
  if (n === 0) return lengths;
  if (n === 1) {
    lengths[used[0]!] = 1;
    return lengths;
  }
  if (2 ** maxLen < n) throw new RangeError(`${n} symbols do not fit in codes of at most ${maxLen} bits`);
  used.sort((a, b) => weights[a]! - weights[b]! || a - b);
  const leaf = new Float64Array(n);
  for (let i = 0; i < n; i++) leaf[i] = weights[used[i]!]!;

  // Lists are capped at 2n-2 items: no level ever selects more than that.
  const cap = 2 * n - 2;
  const isLeaf: Uint8Array[] = new Array<Uint8Array>(maxLen);
  let list = leaf.slice(0, Math.min(n, cap));
  isLeaf[maxLen - 1] = new Uint8Array(list.length).fill(1);
  for (let level = maxLen - 2; level >= 0; level--) {
    const packages = list.length >> 1;
    const total = Math.min(cap, n + packages);
    const merged = new Float64Array(total);
    const flags = new Uint8Array(total);
    let li = 0;
    let pi = 0;
    for (let k = 0; k < total; k++) {
      const pw = pi < packages ? list[2 * pi]! + list[2 * pi + 1]! : Infinity;
      if (li < n && leaf[li]! <= pw) {
        merged[k] = leaf[li++]!;
        flags[k] = 1;
      } else {
        merged[k] = pw;
        pi++;
      }
    }
    list = merged;
    isLeaf[level] = flags;
  }
  // Walk down from the top level: each selected leaf at a level adds one bit to its symbol.
  let take = cap;
  for (let level = 0; level < maxLen && take > 0; level++) {
    const flags = isLeaf[level]!;
    let leaves = 0;
    for (let k = 0; k < take; k++) leaves += flags[k]!;
    for (let i = 0; i < leaves; i++) lengths[used[i]!]!++;
    take = 2 * (take - leaves);
  }
  return lengths;
}

/** Canonical codes (MSB-first values) for the given lengths: shorter codes first, then by symbol. */
export function canonicalCodes(lengths: Uint8Array, maxLen: number): Uint32Array {
  const count = new Uint32Array(maxLen + 2);
  for (const l of lengths) count[l]!++;
  count[0] = 0;
  const next = new Uint32Array(maxLen + 2);
  let code = 0;
  for (let len = 1; len <= maxLen; len++) {
    code = (code + count[len - 1]!) << 1;
    next[len] = code;
  }
  const codes = new Uint32Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    const l = lengths[s]!;
    if (l) codes[s] = next[l]!++;
  }
  return codes;
}

/** Kraft sum scaled by 2^maxLen; a complete prefix code sums to exactly 2^maxLen. */
export function kraftSum(lengths: ArrayLike<number>, maxLen: number): number {
  let sum = 0;
  for (let i = 0; i < lengths.length; i++) {
    const l = lengths[i]!;
    if (l) sum += 2 ** (maxLen - l);
  }
  return sum;
}

export function assertCompleteCode(lengths: ArrayLike<number>, maxLen: number, what: string): void {
  if (kraftSum(lengths, maxLen) !== 2 ** maxLen) throw new StrataError('STRATA_ERR_CODEC_CORRUPT', `${what}: code lengths do not form a complete prefix code`);
}

/**
 * Decoder for large alphabets with long codes (the token table). A primary table indexed by the
 * next PRIMARY_BITS bits resolves every code of at most that length in one lookup; longer codes
 * are resolved canonically by comparing the left-justified window against per-length limits,
 * which needs no memory beyond the symbols sorted by code.
 */
export const PRIMARY_BITS = 11;

export class CanonicalDecoder {
  /** (symbol << 5) | length for codes ≤ PRIMARY_BITS, else 0. */
  readonly primary: Int32Array;
  /** limit[len]: first left-justified (maxLen-bit) window value that has a longer code. */
  readonly limit: Float64Array;
  /** base[len]: index into `sorted` of the first code of that length minus its first code value. */
  readonly base: Int32Array;
  readonly firstCode: Uint32Array;
  readonly sorted: Int32Array;
  readonly minLongLen: number;

  constructor(
    lengths: Uint8Array,
    readonly maxLen: number,
  ) {
    assertCompleteCode(lengths, maxLen, 'static table');
    const count = new Uint32Array(maxLen + 1);
    for (const l of lengths) if (l) count[l]!++;
    const offset = new Uint32Array(maxLen + 2);
    for (let len = 1; len <= maxLen; len++) offset[len + 1] = offset[len]! + count[len]!;
    const sorted = new Int32Array(offset[maxLen + 1]!);
    const fill = offset.slice();
    for (let s = 0; s < lengths.length; s++) {
      const l = lengths[s]!;
      if (l) sorted[fill[l]!++] = s;
    }
    this.sorted = sorted;
    this.firstCode = new Uint32Array(maxLen + 1);
    this.base = new Int32Array(maxLen + 1);
    this.limit = new Float64Array(maxLen + 1);
    let code = 0;
    for (let len = 1; len <= maxLen; len++) {
      code = (code + (len > 1 ? count[len - 1]! : 0)) * 2;
      if (len === 1) code = 0;
      this.firstCode[len] = code;
      this.base[len] = offset[len]! - code;
      this.limit[len] = (code + count[len]!) * 2 ** (maxLen - len);
    }
    let minLong = maxLen + 1;
    for (let len = PRIMARY_BITS + 1; len <= maxLen; len++) if (count[len]) { minLong = len; break; }
    this.minLongLen = minLong;
    this.primary = new Int32Array(1 << PRIMARY_BITS);
    for (let len = 1; len <= Math.min(PRIMARY_BITS, maxLen); len++) {
      for (let i = 0; i < count[len]!; i++) {
        const sym = sorted[offset[len]! + i]!;
        const c = this.firstCode[len]! + i;
        const start = c << (PRIMARY_BITS - len);
        const end = start + (1 << (PRIMARY_BITS - len));
        const entry = (sym << 5) | len;
        for (let k = start; k < end; k++) this.primary[k] = entry;
      }
    }
  }

  /** Slow path: `window` is the next maxLen bits. Returns (symbol << 5) | length. */
  decodeLong(window: number): number {
    for (let len = this.minLongLen; len <= this.maxLen; len++) {
      if (window < this.limit[len]!) {
        const code = Math.floor(window / 2 ** (this.maxLen - len));
        return (this.sorted[this.base[len]! + code]! << 5) | len;
      }
    }
    throw new StrataError('STRATA_ERR_CODEC_CORRUPT', 'bit stream holds no valid code');
  }
}
