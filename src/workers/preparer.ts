import type { Tokenizer } from '../context/tokenizer.js';
import { countMessageTokens, searchText, type MessageFields } from '../message.js';
import type { Embedder } from '../retrieval/embedder.js';
import { PreparePool, type PrepareLane, type PreparePoolOptions, type PreparePoolStats } from './pool.js';
import { prepareSpec, workerFields, type PrepareSpec } from './prepare.js';

/**
 * Text (in UTF-16 units) up to which token counts of a request (an append, a read of turns
 * without counts) are computed on its own thread: handing the work to a worker costs the
 * request thread about what counting ~2 KiB costs (~0.1 ms), and the answer ~0.3 ms more.
 * Larger work (up to a 20 MiB message: seconds of BPE) goes to the pool's `read` lane.
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
   * Token counts of messages a request waits for (an append): small work here, larger work on
   * the pool's `read` lane (ahead of compaction). Null without a tokenizer.
   */
  async countTokens(messages: readonly MessageFields[]): Promise<number[] | null> {
    if (!this.tokenizer || messages.length === 0) return this.tokenizer ? [] : null;
    let chars = 0;
    for (const m of messages) chars += textLength(m);
    if (this.pool && this.spec.tokenizer && chars > INLINE_COUNT_CHARS) {
      const items = messages.map(workerFields);
      return (await this.pool.run({ spec: this.spec, items, count: items.map((_, i) => i), embed: false }, 'read')).tokens;
    }
    const tokenizer = this.tokenizer;
    return messages.map((m) => countMessageTokens(m, (text) => tokenizer.count(text)));
  }

  /**
   * The turns with `tokens` filled where missing (hot turns re-seeded from journal records,
   * which carry no counts); the same objects when none is missing.
   */
  async withTokens<T extends MessageFields & { tokens?: number }>(turns: T[]): Promise<T[]> {
    if (!this.tokenizer) return turns;
    const missing: number[] = [];
    turns.forEach((t, i) => {
      if (t.tokens === undefined) missing.push(i);
    });
    if (missing.length === 0) return turns;
    const counts = (await this.countTokens(missing.map((i) => turns[i]!)))!;
    const out = [...turns];
    missing.forEach((i, j) => (out[i] = withTokenCount(turns[i]!, counts[j]!)));
    return out;
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/**
 * `turn` with `tokens` where the hot and archive decoders put it (right after `createdAt`), so a
 * counted turn serialises like a stored one.
 */
export function withTokenCount<T extends object>(turn: T, tokens: number): T {
  const out: Record<string, unknown> = {};
  let placed = false;
  for (const [key, value] of Object.entries(turn)) {
    out[key] = value;
    if (key === 'createdAt') {
      out.tokens = tokens;
      placed = true;
    }
  }
  if (!placed) out.tokens = tokens;
  return out as T;
}

/** About the text a count reads (the strings countMessageTokens hands the tokenizer). */
function textLength(m: MessageFields): number {
  let n = 0;
  if (typeof m.content === 'string') n += m.content.length;
  else if (m.content !== null) for (const p of m.content) n += p.type === 'text' ? p.text.length : 16;
  if (m.tool_calls) for (const c of m.tool_calls) n += c.function.name.length + c.function.arguments.length + c.id.length;
  return n + (m.name?.length ?? 0) + (m.tool_call_id?.length ?? 0);
}
