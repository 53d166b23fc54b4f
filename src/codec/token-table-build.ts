import { codeLengths } from './huffman.js';
import { CONTEXTS, MAX_TOKEN_CODE_BITS, modelFromLengths, serializeTable, tokenClasses } from './token-model.js';
import { parseTokens } from './huffman-tokens.js';
import { getVocab, tokenize } from './vocab.js';

/*
 * Builds the static huffman-tokens table from training texts (one text = one message, the unit
 * the archive codes). Deterministic: same texts in the same order → identical bytes.
 *
 * Pass 1 counts tokens per context class; pass 2 parses every text with the pass-1 code (so
 * MATCH gets its real frequency) and counts again. Smoothing mixes each class's counts with the
 * whole-corpus distribution (itself add-half smoothed), so every id of the vocabulary has a code.
 */

/** Weight of the corpus-wide distribution in each class, in tokens. */
const CLASS_PRIOR_TOKENS = 32;
/** Add-k smoothing of the corpus-wide distribution. */
const UNIGRAM_PSEUDOCOUNT = 0.5;

function lengthsFromCounts(counts: Float64Array[]): Uint8Array[] {
  const alphabet = counts[0]!.length;
  const uni = new Float64Array(alphabet);
  for (const c of counts) for (let s = 0; s < alphabet; s++) uni[s]! += c[s]!;
  let total = 0;
  for (const u of uni) total += u + UNIGRAM_PSEUDOCOUNT;
  return counts.map((c) => {
    const w = new Float64Array(alphabet);
    for (let s = 0; s < alphabet; s++) w[s] = c[s]! + (CLASS_PRIOR_TOKENS * (uni[s]! + UNIGRAM_PSEUDOCOUNT)) / total;
    return codeLengths(w, MAX_TOKEN_CODE_BITS);
  });
}

export function buildTokenLengths(texts: Iterable<string>, onProgress?: (done: number) => void): Uint8Array[] {
  const v = getVocab();
  const alphabet = v.size + 1;
  const classOf = tokenClasses();
  const all: Int32Array[] = [];
  for (const text of texts) {
    all.push(Int32Array.from(tokenize(text)));
    onProgress?.(all.length);
  }
  const count = (parse: (t: Int32Array) => Int32Array): Float64Array[] => {
    const counts = Array.from({ length: CONTEXTS }, () => new Float64Array(alphabet));
    for (const tokens of all) {
      const ops = parse(tokens);
      let cls = 0;
      for (let k = 0; k < ops.length; k++) {
        const op = ops[k]!;
        if (op >= 0) {
          counts[cls]![op]!++;
          cls = classOf[op]!;
        } else {
          counts[cls]![v.size]!++;
          k += 2;
          cls = classOf[ops[k]!]!;
        }
      }
    }
    return counts;
  };
  const first = lengthsFromCounts(count((t) => t));
  return lengthsFromCounts(count((t) => parseTokens(t, first, classOf, v.size)));
}

export function buildTokenTable(texts: Iterable<string>, onProgress?: (done: number) => void): Uint8Array {
  return serializeTable(buildTokenLengths(texts, onProgress));
}

export { modelFromLengths };
