import { createRequire } from 'node:module';
import { StrataError } from '../errors.js';
import { boundedSegments } from './tokenizer.js';
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
    // Every call goes through boundedSegments: see Tokenizer (a long run without spaces would
    // otherwise cost seconds to minutes of BPE inside one request).
    count: (text: string) => {
      if (text.length === 0) return 0;
      let n = 0;
      for (const segment of boundedSegments(text)) n += load().countTokens(segment, PLAIN);
      return n;
    },
    truncate: (text: string, maxTokens: number) => {
      if (maxTokens <= 0) return '';
      // Encodes segment by segment and stops at the one that crosses the budget, so a long text
      // cut to a small budget costs only its prefix.
      let kept = 0;
      let budget = maxTokens;
      for (const segment of boundedSegments(text)) {
        const tokens = load().encode(segment, PLAIN);
        if (tokens.length <= budget) {
          kept += segment.length;
          budget -= tokens.length;
          continue;
        }
        let cut = load().decode(tokens.slice(0, budget));
        // A cut inside a multi-byte character decodes to U+FFFD; drop it rather than emit garbage.
        while (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
        return text.slice(0, kept) + cut;
      }
      return text;
    },
  });
  instances.set(encoding, tokenizer);
  return tokenizer;
}
