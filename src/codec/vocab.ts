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

/** Token ids of a well-formed string. One shared tokenizer instance for the process. */
export function tokenize(text: string): number[] {
  return tokenizer.encode(text, ENCODE_OPTIONS);
}
