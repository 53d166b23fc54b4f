import { StrataError } from '../errors.js';

/**
 * The embedding contract. Batch-first: callers (compaction, reindex, the eval) hand over many
 * texts at once so HTTP providers can batch and local providers can amortise setup.
 *
 * `id` names the model and its version (for example `glove-sg100d-int8-v1` or
 * `openai:text-embedding-3-small@1536`). The archive stores it with the vectors, so a changed
 * configuration is detected (STRATA_ERR_EMBEDDER_MISMATCH) instead of comparing vectors from two
 * different spaces.
 */
export interface Embedder {
  readonly id: string;
  readonly dimensions: number;
  /** One L2-normalised vector of length `dimensions` per text, in input order. */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
  /**
   * Optional, for embedders that average word vectors: the text's vector with each word's
   * weight multiplied by `weightOf(word)` (the retriever passes corpus statistics of the
   * searched scope). Documents are always embedded with `embed`.
   */
  embedQuery?(text: string, weightOf: (word: string) => number): Promise<Float32Array>;
}

/** Configuration accepted by `createEmbedder`. */
export type EmbedderConfig =
  | { provider: 'glove'; /** Path of a converted table (default: the table shipped with Strata). */ tablePath?: string }
  | ({ provider: 'openai' } & OpenAIEmbedderOptions)
  | { provider: 'hash'; /** Default 256. */ dimensions?: number };

export interface OpenAIEmbedderOptions {
  /** Base URL up to and including `/v1`, e.g. `http://localhost:11434/v1`. */
  baseUrl: string;
  model: string;
  /** Vector length the model returns; checked on every response. */
  dimensions: number;
  apiKey?: string;
  /** Texts per request. Default 64. */
  batchSize?: number;
  /** Per-request timeout in ms. Default 30000. */
  timeoutMs?: number;
  /** Retries after the first attempt on network errors, 429 and 5xx. Default 3. */
  retries?: number;
  /** First backoff in ms, doubled per retry with jitter. Default 200. */
  backoffMs?: number;
  /** Pass `dimensions` in the request body (OpenAI text-embedding-3 models accept it). Default false. */
  sendDimensions?: boolean;
  /** Injected for tests. Default global fetch. */
  fetch?: typeof fetch;
}

/** L2-normalises in place; a zero vector stays zero. Returns the same array. */
export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  if (s > 0) {
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < v.length; i++) v[i]! *= inv;
  }
  return v;
}

/** Dot product of two equal-length vectors (cosine for normalised ones). */
export function dot(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) {
    throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `vector dimensions differ: ${a.length} vs ${b.length}`);
  }
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
