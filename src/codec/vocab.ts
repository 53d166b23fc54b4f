import bpe from 'gpt-tokenizer/bpeRanks/o200k_base';
import tokenizer from 'gpt-tokenizer/encoding/o200k_base';

/*
 * The token vocabulary huffman-tokens codes over: o200k_base (measured against cl100k_base on
 * the ShareGPT corpus: a slightly smaller ideal code, 0.290 vs 0.292 of the UTF-8 bytes held out,
 * and the tokenizer of current OpenAI models). The vocabulary is part of the format: changing it
 * needs a new codec id.
 */
export const VOCAB_NAME = 'o200k_base';

export interface Vocab {
  /** Number of token ids (ids 0 .. size-1). */
  size: number;
  /** Bytes of token t are bytes[offsets[t], offsets[t+1]). */
  bytes: Uint8Array;
  offsets: Uint32Array;
  /** The id of the one-byte token for each byte value, used for bytes that are not UTF-8. */
  byteToken: Int32Array;
}

let vocab: Vocab | undefined;

export function getVocab(): Vocab {
  if (vocab) return vocab;
  const enc = new TextEncoder();
  const pieces = bpe.map((p) => (typeof p === 'string' ? enc.encode(p) : Uint8Array.from(p)));
  const offsets = new Uint32Array(pieces.length + 1);
  for (let i = 0; i < pieces.length; i++) offsets[i + 1] = offsets[i]! + pieces[i]!.length;
  const bytes = new Uint8Array(offsets[pieces.length]!);
  const byteToken = new Int32Array(256).fill(-1);
  pieces.forEach((p, i) => {
    bytes.set(p, offsets[i]!);
    if (p.length === 1 && byteToken[p[0]!] === -1) byteToken[p[0]!] = i;
  });
  if (byteToken.includes(-1)) throw new Error(`${VOCAB_NAME} lacks a one-byte token for some byte value`);
  vocab = { size: pieces.length, bytes, offsets, byteToken };
  return vocab;
}

/** Special-token text (e.g. "<|endoftext|>") is tokenized as plain text, never as a special id. */
const ENCODE_OPTIONS = { disallowedSpecial: new Set<string>() };

/**
 * Longest run of all-whitespace or all-non-whitespace characters handed to the tokenizer in one
 * piece. Byte-pair merging is quadratic in the length of one pre-tokenized piece, so a hostile
 * 200 kB word would take minutes; cutting such runs costs about one token per cut and never
 * changes the bytes (the decoder only concatenates token bytes).
 */
const MAX_RUN_CHARS = 64;

/** Token ids of a well-formed string. One shared tokenizer instance for the process. */
export function tokenize(text: string): number[] {
  let out: number[] | undefined;
  let start = 0;
  let run = 0;
  let prevSpace = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const space = c === 32 || c === 10 || c === 9 || c === 13;
    if (space !== prevSpace) {
      run = 0;
      prevSpace = space;
    }
    // Never cut between the halves of a surrogate pair.
    if (++run > MAX_RUN_CHARS && !(c >= 0xdc00 && c <= 0xdfff)) {
      appendAll((out ??= []), tokenizer.encode(text.slice(start, i), ENCODE_OPTIONS));
      start = i;
      run = 1;
    }
  }
  if (!out) return tokenizer.encode(text, ENCODE_OPTIONS);
  appendAll(out, tokenizer.encode(text.slice(start), ENCODE_OPTIONS));
  return out;
}

/**
 * `out.push(...items)` without the spread: a spread passes every element as a call argument,
 * and beyond roughly 10^5 of them V8 throws "Maximum call stack size exceeded". The tail of a
 * long message after one cut run is such an array.
 */
export function appendAll(out: number[], items: ArrayLike<number>): void {
  for (let i = 0; i < items.length; i++) out.push(items[i]!);
}
