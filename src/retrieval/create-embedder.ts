import { StrataError } from '../errors.js';
import type { Embedder, EmbedderConfig } from './embedder.js';
import { GloveEmbedder } from './embedders/glove.js';
import { HashEmbedder } from './embedders/hash.js';
import { OpenAIEmbedder } from './embedders/openai.js';

/** Builds the configured embedder; `glove` (offline) when no config is given. */
export function createEmbedder(config: EmbedderConfig = { provider: 'glove' }): Embedder {
  switch (config?.provider) {
    case 'glove':
      return new GloveEmbedder(config.tablePath === undefined ? {} : { tablePath: config.tablePath });
    case 'openai':
      return new OpenAIEmbedder(config);
    case 'hash':
      return new HashEmbedder(config.dimensions);
    default:
      throw new StrataError('STRATA_ERR_CONFIG_INVALID', `embedder.provider: expected one of glove, openai, hash, got ${JSON.stringify((config as { provider?: unknown })?.provider)}`);
  }
}
