import { terms } from './text.js';

/** BM25 parameters. Defaults are the usual k1 = 1.2, b = 0.75. */
export interface Bm25Options {
  k1?: number;
  b?: number;
}

/**
 * An append-only BM25 inverted index over documents numbered 0..n-1 in insertion order.
 * Postings are plain arrays of [doc, tf] pairs, so scoring a query touches only the documents
 * that share a term with it.
 */
export class Bm25Index {
  private readonly postings = new Map<string, number[]>();
  private readonly lengths: number[] = [];
  private totalLength = 0;
  private readonly k1: number;
  private readonly b: number;

  constructor(options: Bm25Options = {}) {
    this.k1 = options.k1 ?? 1.2;
    this.b = options.b ?? 0.75;
  }

  get size(): number {
    return this.lengths.length;
  }

  /** Adds one document; returns its number. */
  add(text: string): number {
    const doc = this.lengths.length;
    const tf = new Map<string, number>();
    const ts = terms(text);
    for (const t of ts) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const [t, n] of tf) {
      let list = this.postings.get(t);
      if (!list) this.postings.set(t, (list = []));
      list.push(doc, n);
    }
    this.lengths.push(ts.length);
    this.totalLength += ts.length;
    return doc;
  }

  /**
   * Scores every document sharing a term with the query into `out` (length ≥ size, zeroed by
   * the caller). `termWeights` multiplies a query term's contribution (default 1). Returns the
   * documents touched.
   */
  score(queryTerms: readonly string[], out: Float32Array, termWeights?: ReadonlyMap<string, number>): number[] {
    const n = this.lengths.length;
    if (n === 0) return [];
    const avg = this.totalLength / n || 1;
    const touched: number[] = [];
    const seen = new Set<string>();
    for (const t of queryTerms) {
      if (seen.has(t)) continue;
      seen.add(t);
      const list = this.postings.get(t);
      if (!list) continue;
      const df = list.length / 2;
      const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5)) * (termWeights?.get(t) ?? 1);
      for (let i = 0; i < list.length; i += 2) {
        const doc = list[i]!;
        const f = list[i + 1]!;
        const norm = f + this.k1 * (1 - this.b + (this.b * this.lengths[doc]!) / avg);
        if (out[doc] === 0) touched.push(doc);
        out[doc]! += (idf * f * (this.k1 + 1)) / norm;
      }
    }
    return touched;
  }

  /** Document frequency of a term (0 when unknown). */
  df(term: string): number {
    return (this.postings.get(term)?.length ?? 0) / 2;
  }
}
