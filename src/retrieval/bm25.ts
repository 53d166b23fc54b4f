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
  /** Term → [doc, tf] pairs, docs ascending. Lists loaded from a snapshot stay typed arrays until a doc is added to them. */
  private readonly postings = new Map<string, number[] | Int32Array>();
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
      const found = this.postings.get(t);
      let list: number[];
      if (found === undefined) this.postings.set(t, (list = []));
      else if (found instanceof Int32Array) this.postings.set(t, (list = Array.from(found)));
      else list = found;
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

  /**
   * The index restricted to docs with `newOf[doc] ≥ 0`, renumbered to `newOf[doc]` (docs at or
   * above `newOf.length` are left out: they belong to a newer version sharing these postings).
   * The result is what adding the kept docs in their new order to an empty index would hold.
   */
  export(newOf: Int32Array, count: number): Bm25Parts {
    const lengths = new Int32Array(count);
    let totalLength = 0;
    for (let doc = 0; doc < newOf.length; doc++) {
      const to = newOf[doc]!;
      if (to < 0) continue;
      lengths[to] = this.lengths[doc]!;
      totalLength += this.lengths[doc]!;
    }
    const terms: string[] = [];
    const offsets: number[] = [0];
    const pairs: number[] = [];
    for (const [term, list] of this.postings) {
      const start = pairs.length;
      let sorted = true;
      for (let i = 0; i < list.length; i += 2) {
        const doc = list[i]!;
        if (doc >= newOf.length || newOf[doc]! < 0) continue;
        const to = newOf[doc]!;
        if (pairs.length > start && pairs[pairs.length - 2]! > to) sorted = false;
        pairs.push(to, list[i + 1]!);
      }
      if (pairs.length === start) continue;
      if (!sorted) {
        // Sessions changed since the first build sit after the others: back into doc order.
        const order = Array.from({ length: (pairs.length - start) / 2 }, (_, j) => j).sort((a, b) => pairs[start + 2 * a]! - pairs[start + 2 * b]!);
        const copy = pairs.slice(start);
        order.forEach((j, k) => {
          pairs[start + 2 * k] = copy[2 * j]!;
          pairs[start + 2 * k + 1] = copy[2 * j + 1]!;
        });
      }
      terms.push(term);
      offsets.push(pairs.length);
    }
    return { lengths, totalLength, terms, offsets: Uint32Array.from(offsets), pairs: Int32Array.from(pairs) };
  }

  /** An index holding exactly `parts` (from `export`); posting lists are views of `parts.pairs`. */
  static fromParts(parts: Bm25Parts, options: Bm25Options = {}): Bm25Index {
    const ix = new Bm25Index(options);
    for (let i = 0; i < parts.lengths.length; i++) ix.lengths.push(parts.lengths[i]!);
    ix.totalLength = parts.totalLength;
    parts.terms.forEach((term, i) => ix.postings.set(term, parts.pairs.subarray(parts.offsets[i]!, parts.offsets[i + 1]!)));
    return ix;
  }
}

/** A BM25 index as flat arrays: doc lengths, and per term a slice `offsets[i]..offsets[i+1]` of [doc, tf] pairs. */
export interface Bm25Parts {
  lengths: Int32Array;
  totalLength: number;
  terms: string[];
  offsets: Uint32Array;
  pairs: Int32Array;
}
