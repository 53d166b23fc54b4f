/**
 * The token-counting contract. Counts are stored per turn and used by the packer, so one
 * encoder instance per encoding is shared by the whole process (building an encoder costs
 * far more than counting a message).
 *
 * Bounded cost: byte-pair merging is super-linear in the length of one pre-tokenized piece (a
 * 256 KiB word took about a minute), so implementations hand the encoder no run of
 * all-whitespace or all-non-whitespace characters longer than {@link MAX_BPE_RUN_CHARS}: such a
 * run is cut into pieces of that length first (`boundedSegments`). Ordinary prose never has such
 * runs and counts exactly; a long URL, hash or base64 blob counts about one token more per cut.
 */
export interface Tokenizer {
  /** Encoding name, e.g. `o200k_base`. Stored with token counts so a change is detectable. */
  readonly id: string;
  count(text: string): number;
  /** The longest prefix of `text` (on token boundaries) with at most `maxTokens` tokens. */
  truncate(text: string, maxTokens: number): string;
}

export type TokenizerEncoding = 'o200k_base' | 'cl100k_base';

/**
 * Longest run of all-whitespace or all-non-whitespace characters encoded in one piece: the same
 * bound huffman-tokens uses (src/codec/vocab.ts), so counting and coding agree on where long runs
 * are cut. Almost every o200k and cl100k token is shorter (the exceptions are long runs of
 * spaces or repeated punctuation), so a cut rarely splits a token BPE would have formed.
 */
export const MAX_BPE_RUN_CHARS = 64;

/**
 * `text` as consecutive slices whose concatenation is `text`, cut only inside runs longer than
 * `maxRun` (never between the halves of a surrogate pair). Text without such runs is one slice,
 * so it tokenizes exactly as before.
 */
export function* boundedSegments(text: string, maxRun: number = MAX_BPE_RUN_CHARS): Generator<string> {
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
    if (++run > maxRun && !(c >= 0xdc00 && c <= 0xdfff)) {
      yield text.slice(start, i);
      start = i;
      run = 1;
    }
  }
  yield start === 0 ? text : text.slice(start);
}
