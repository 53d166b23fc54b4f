import { createRequire } from 'node:module';
import { StrataError } from '../errors.js';
import type { Tokenizer, TokenizerEncoding } from './tokenizer.js';

interface Encoding {
  encode(text: string, options?: { disallowedSpecial?: Set<string> }): number[];
  decode(tokens: Iterable<number>): string;
  countTokens(text: string, options?: { disallowedSpecial?: Set<string> }): number;
}

const require = createRequire(import.meta.url);
// Special-token text inside a message is ordinary text, never a control token.
const PLAIN = { disallowedSpecial: new Set<string>() };
const instances = new Map<TokenizerEncoding, Tokenizer>();

/**
 * The process-wide tokenizer of one encoding (gpt-tokenizer). Encoders are loaded on first use
 * (the BPE ranks take ~0.2 s) and shared: building one per call is the classic slow path.
 */
export function getTokenizer(encoding: TokenizerEncoding = 'o200k_base'): Tokenizer {
  const existing = instances.get(encoding);
  if (existing) return existing;
  if (encoding !== 'o200k_base' && encoding !== 'cl100k_base') {
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', `tokenizer: expected o200k_base or cl100k_base, got ${JSON.stringify(encoding)}`);
  }
  let enc: Encoding | null = null;
  const load = (): Encoding => (enc ??= require(`gpt-tokenizer/cjs/encoding/${encoding}`) as Encoding);
  const tokenizer: Tokenizer = Object.freeze({
    id: encoding,
    count: (text: string) => (text.length === 0 ? 0 : load().countTokens(text, PLAIN)),
    truncate: (text: string, maxTokens: number) => {
      if (maxTokens <= 0) return '';
      const tokens = load().encode(text, PLAIN);
      if (tokens.length <= maxTokens) return text;
      let cut = load().decode(tokens.slice(0, maxTokens));
      // A cut inside a multi-byte character decodes to U+FFFD; drop it rather than emit garbage.
      while (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
      return cut;
    },
  });
  instances.set(encoding, tokenizer);
  return tokenizer;
}
