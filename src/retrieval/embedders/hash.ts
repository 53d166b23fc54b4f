import { crc32c } from '@node-rs/crc32';
import { StrataError } from '../../errors.js';
import { l2normalize, type Embedder } from '../embedder.js';
import { terms } from '../text.js';

/**
 * Deterministic feature hashing of stemmed terms (signed, so collisions cancel on average).
 * No model, no I/O: for tests and as a floor in evaluations. Not semantic: only shared words match.
 */
export class HashEmbedder implements Embedder {
  readonly id: string;
  readonly dimensions: number;

  constructor(dimensions = 256) {
    if (!Number.isInteger(dimensions) || dimensions < 8 || dimensions > 4096) {
      throw new StrataError('STRATA_ERR_CONFIG_INVALID', `embedder.dimensions: expected an integer 8-4096, got ${String(dimensions)}`);
    }
    this.dimensions = dimensions;
    this.id = `hash-v1@${dimensions}`;
  }

  embed(texts: readonly string[]): Promise<Float32Array[]> {
    return Promise.resolve(texts.map((t) => this.embedOne(t)));
  }

  private embedOne(text: string): Float32Array {
    const v = new Float32Array(this.dimensions);
    for (const term of terms(text)) {
      const h = crc32c(Buffer.from(term, 'utf8')) >>> 0;
      v[h % this.dimensions]! += (h & 0x80000000) !== 0 ? -1 : 1;
    }
    return l2normalize(v);
  }
}
