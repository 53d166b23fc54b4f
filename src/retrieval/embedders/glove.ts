import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { StrataError } from '../../errors.js';
import { l2normalize, type Embedder } from '../embedder.js';
import { decodeGloveTable, type GloveTable } from '../glove-table.js';
import { STOPWORDS, words } from '../text.js';

/** The table shipped with Strata, built by `npm run build:glove-table`. */
export const DEFAULT_GLOVE_TABLE = fileURLToPath(new URL('../glove/glove-100d-int8.bin', import.meta.url));

export interface GloveEmbedderOptions {
  /** Converted table file. Default: the shipped 100k-word table. */
  tablePath?: string;
  /** SIF smoothing `a` in a/(a+p(w)). Default 1e-3. */
  sifA?: number;
  /** Drop stopwords before averaging. Default true. */
  dropStopwords?: boolean;
}

// Tables are immutable and large: one load per path per process, shared by every embedder.
const tables = new Map<string, Promise<GloveTable>>();

function loadTable(path: string): Promise<GloveTable> {
  let table = tables.get(path);
  if (!table) {
    table = readFile(path).then(
      (bytes) => decodeGloveTable(bytes, path),
      (err: unknown) => {
        throw new StrataError('STRATA_ERR_NOT_AVAILABLE', `cannot read the GloVe table ${path}; run \`npm run build:glove-table\``, { cause: err });
      },
    );
    table.catch(() => tables.delete(path));
    tables.set(path, table);
  }
  return table;
}

/**
 * Offline sentence embeddings: the SIF-weighted mean (Arora et al. 2017) of GloVe word vectors,
 * L2-normalised. Word probabilities p(w) are not in the table; the rows are in corpus frequency
 * order, so Zipf's law gives p(rank r) ≈ 1 / ((r + 1) · H) with H ≈ ln(400k) + γ for the
 * 400k-word GloVe 6B vocabulary.
 */
export class GloveEmbedder implements Embedder {
  readonly id: string;
  readonly dimensions = 100;
  /** The resolved options: plain data another thread builds an identical embedder from. */
  readonly options: Readonly<Required<GloveEmbedderOptions>>;
  private readonly path: string;
  private readonly sifA: number;
  private readonly dropStopwords: boolean;
  private weights: Float32Array | null = null;

  constructor(options: GloveEmbedderOptions = {}) {
    this.path = options.tablePath ?? DEFAULT_GLOVE_TABLE;
    this.sifA = options.sifA ?? 1e-3;
    this.dropStopwords = options.dropStopwords ?? true;
    this.options = Object.freeze({ tablePath: this.path, sifA: this.sifA, dropStopwords: this.dropStopwords });
    this.id = `glove-sg100d-int8-sif-v1`;
  }

  /** A query's vector: each word's SIF weight multiplied by `weightOf(word)` (lower-cased word). */
  async embedQuery(text: string, weightOf: (word: string) => number): Promise<Float32Array> {
    const table = await loadTable(this.path);
    return this.embedWith(table, this.weightsFor(table), [text], weightOf)[0]!;
  }

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const table = await loadTable(this.path);
    return this.embedWith(table, this.weightsFor(table), texts);
  }

  private embedWith(table: GloveTable, weights: Float32Array, texts: readonly string[], weightOf?: (word: string) => number): Float32Array[] {
    const dims = table.dimensions;
    return texts.map((text) => {
      const v = new Float32Array(dims);
      for (const w of words(text)) {
        if (this.dropStopwords && STOPWORDS.has(w)) continue;
        const row = table.index.get(w);
        if (row === undefined) continue;
        const f = weights[row]! * table.scales[row]! * (weightOf ? weightOf(w) : 1);
        const base = row * dims;
        for (let i = 0; i < dims; i++) v[i]! += f * table.values[base + i]!;
      }
      return l2normalize(v);
    });
  }

  private weightsFor(table: GloveTable): Float32Array {
    if (this.weights) return this.weights;
    const h = Math.log(400_000) + 0.5772;
    const w = new Float32Array(table.size);
    for (let r = 0; r < table.size; r++) {
      const p = 1 / ((r + 1) * h);
      w[r] = this.sifA / (this.sifA + p);
    }
    this.weights = w;
    return w;
  }
}
