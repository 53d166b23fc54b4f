/**
 * The token-counting contract. Counts are stored per turn and used by the packer, so one
 * encoder instance per encoding is shared by the whole process (building an encoder costs
 * far more than counting a message).
 */
export interface Tokenizer {
  /** Encoding name, e.g. `o200k_base`. Stored with token counts so a change is detectable. */
  readonly id: string;
  count(text: string): number;
  /** The longest prefix of `text` (on token boundaries) with at most `maxTokens` tokens. */
  truncate(text: string, maxTokens: number): string;
}

export type TokenizerEncoding = 'o200k_base' | 'cl100k_base';
