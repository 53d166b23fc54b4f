import type { Tokenizer } from '../context/tokenizer.js';
import { countMessageTokens, searchText, type MessageFields } from '../message.js';
import type { Embedder } from '../retrieval/embedder.js';
import { PreparePool, type PrepareLane, type PreparePoolOptions, type PreparePoolStats } from './pool.js';
import { prepareSpec, workerFields, type PrepareSpec } from './prepare.js';

/**
 * Text (in UTF-16 units) below which a read counts missing tokens on its own thread: handing
 * the work to a worker costs about what counting ~2 KiB costs (~0.1 ms), so smaller work stays.
 */
export const INLINE_COUNT_CHARS = 2048;

export interface PreparedBatch {
  /** Per turn: the counted tokens where asked (`count`), else undefined. */
  tokens: Array<number | undefined>;
  /** Per turn: its vector, or undefined without an embedder. */
  vectors: Array<Float32Array | undefined>;
}

/**
 * The cache's CPU work (token counts, embeddings), on the worker pool when there is one and the
 * tokenizer or embedder can be rebuilt in a worker (`PrepareSpec`), else on this thread as
 * before. Remote embedders (HTTP) always run here: their work is I/O. Results are identical
 * either way: the worker builds the same tokenizer and embedder from the spec.
 */
export class Preparer {
  readonly spec: PrepareSpec;
  private readonly pool: PreparePool | null;

  constructor(
    private readonly tokenizer: Tokenizer | null,
    private readonly embedder: Embedder | null,
    /** Worker threads; 0 computes everything on this thread. */
    workers: number,
    poolOptions: Omit<PreparePoolOptions, 'threads'> = {},
  ) {
    this.spec = prepareSpec(tokenizer, embedder);
    const useful = this.spec.tokenizer !== null || this.spec.embedder !== null;
    this.pool = workers > 0 && useful ? new PreparePool({ threads: workers, ...poolOptions }) : null;
  }

  /** Pool occupancy (null: no pool, everything runs inline). */
  stats(): PreparePoolStats | null {
    return this.pool?.stats() ?? null;
  }

  /**
   * Token counts of the turns at `count`, and every turn's embedding when there is an embedder.
   * One worker task per call: callers hand over batches (compaction: `embedBatchSize` turns).
   */
  async prepare(turns: readonly MessageFields[], count: readonly number[], lane: PrepareLane = 'compaction'): Promise<PreparedBatch> {
    const tokens = new Array<number | undefined>(turns.length).fill(undefined);
    const vectors = new Array<Float32Array | undefined>(turns.length).fill(undefined);
    const counted = count.length > 0 && this.tokenizer !== null;
    const pooledCount = counted && this.pool !== null && this.spec.tokenizer !== null;
    const pooledEmbed = this.embedder !== null && this.pool !== null && this.spec.embedder !== null;
    const work: Array<Promise<void>> = [];
    if (pooledCount || pooledEmbed) {
      work.push(
        this.pool!.run({ spec: this.spec, items: turns.map(workerFields), count: pooledCount ? [...count] : [], embed: pooledEmbed }, lane).then((out) => {
          if (pooledCount) count.forEach((i, j) => (tokens[i] = out.tokens[j]));
          if (out.vectors) for (let i = 0; i < turns.length; i++) vectors[i] = out.vectors.subarray(i * out.dimensions, (i + 1) * out.dimensions);
        }),
      );
    }
    if (this.embedder && !pooledEmbed) {
      const embedder = this.embedder;
      work.push(embedder.embed(turns.map(searchText)).then((rows) => rows.forEach((v, i) => (vectors[i] = v))));
    }
    if (counted && !pooledCount) {
      const tokenizer = this.tokenizer!;
      for (const i of count) tokens[i] = countMessageTokens(turns[i]!, (text) => tokenizer.count(text));
    }
    await Promise.all(work);
    return { tokens, vectors };
  }

  /**
   * The turns with `tokens` filled where missing (hot turns are stored without: counting left the
   * add path). Small work is counted here, larger work on the pool's read lane.
   */
  async withTokens<T extends MessageFields & { tokens?: number }>(turns: T[]): Promise<T[]> {
    if (!this.tokenizer) return turns;
    const missing: number[] = [];
    let chars = 0;
    turns.forEach((t, i) => {
      if (t.tokens !== undefined) return;
      missing.push(i);
      chars += textLength(t);
    });
    if (missing.length === 0) return turns;
    let counts: Array<number | undefined>;
    if (this.pool && this.spec.tokenizer && chars > INLINE_COUNT_CHARS) {
      const items = missing.map((i) => workerFields(turns[i]!));
      const out = await this.pool.run({ spec: this.spec, items, count: items.map((_, j) => j), embed: false }, 'read');
      counts = out.tokens;
    } else {
      const tokenizer = this.tokenizer;
      counts = missing.map((i) => countMessageTokens(turns[i]!, (text) => tokenizer.count(text)));
    }
    const out = [...turns];
    missing.forEach((i, j) => (out[i] = { ...turns[i]!, tokens: counts[j]! }));
    return out;
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/** About the text a count reads (the strings countMessageTokens hands the tokenizer). */
function textLength(m: MessageFields): number {
  let n = 0;
  if (typeof m.content === 'string') n += m.content.length;
  else if (m.content !== null) for (const p of m.content) n += p.type === 'text' ? p.text.length : 16;
  if (m.tool_calls) for (const c of m.tool_calls) n += c.function.name.length + c.function.arguments.length + c.id.length;
  return n + (m.name?.length ?? 0) + (m.tool_call_id?.length ?? 0);
}
