import { availableParallelism } from 'node:os';
import type { Summarizer } from '../context/summarizer.js';
import type { Tokenizer } from '../context/tokenizer.js';
import { countMessageTokens, searchText, type MessageFields } from '../message.js';
import type { Embedder } from '../retrieval/embedder.js';
import { PreparePool, type PrepareLane, type PreparePoolOptions, type PreparePoolStats } from './pool.js';
import type { Turn } from '../types.js';
import { extractiveSpec, prepareSpec, summaryTurns, workerFields, type PrepareSpec } from './prepare.js';

/**
 * Text (in UTF-16 units) up to which the token counts a request waits for (a read of turns
 * without counts) are computed on its own thread when there is no request thread: handing the
 * work to a worker costs the request thread about what counting ~2 KiB costs (~0.1 ms), and the
 * answer ~0.3 ms more. Larger work goes to the pool's `read` lane.
 */
export const INLINE_COUNT_CHARS = 2048;

/**
 * Text (in UTF-16 units) of one request's messages up to which their token counts join the
 * counts of other requests in one worker task (one task per event-loop turn carries every small
 * request's messages). Larger work (up to a 20 MiB
 * message: seconds of BPE) is a task of its own, so small requests never wait behind it.
 */
export const BATCHED_COUNT_CHARS = 16_384;

/**
 * Request threads by default: one where the machine has a core for it beside the request
 * thread, the compaction threads and a local Redis (4 cores or more); none on smaller machines,
 * where a thread more only competes for the same cores and an inline count is cheaper.
 */
export function defaultRequestThreads(): number {
  return availableParallelism() >= 4 ? 1 : 0;
}

export interface PreparerOptions extends Omit<PreparePoolOptions, 'threads'> {
  /** Threads for token counts: those reads wait for, then those of appended turns (0: none). Default `defaultRequestThreads()`. */
  requestThreads?: number;
}

/** Messages of small requests counted in one worker task at most. */
const MAX_BATCH_ITEMS = 512;

interface CountBatch {
  items: MessageFields[];
  waiters: Array<{ from: number; count: number; resolve: (tokens: number[]) => void; reject: (err: unknown) => void }>;
}

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
  /**
   * Threads for token counts: those reads of turns without counts wait for (first), then those
   * of appended turns (`countInBackground`), so a read never waits behind a compaction batch (an
   * embedding batch or a summary takes milliseconds); null: small counts of reads run inline,
   * large ones on `pool`'s read lane.
   */
  private readonly requests: PreparePool | null;
  /** Small requests' messages waiting for the next event-loop turn's count task. */
  private countBatch: CountBatch | null = null;

  constructor(
    private readonly tokenizer: Tokenizer | null,
    private readonly embedder: Embedder | null,
    /** Worker threads; 0 computes everything on this thread. */
    workers: number,
    options: PreparerOptions = {},
  ) {
    const { requestThreads = defaultRequestThreads(), ...poolOptions } = options;
    this.spec = prepareSpec(tokenizer, embedder);
    const useful = this.spec.tokenizer !== null || this.spec.embedder !== null;
    this.pool = workers > 0 && useful ? new PreparePool({ threads: workers, ...poolOptions }) : null;
    this.requests = this.pool && this.spec.tokenizer && requestThreads > 0 ? new PreparePool({ threads: requestThreads, ...poolOptions }) : null;
  }

  /** Compaction threads of the pool (0: everything runs inline). */
  threads(): number {
    return this.pool?.threads ?? 0;
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
    if (counted && !pooledCount) for (const i of count) tokens[i] = this.countHere(turns[i]!);
    await Promise.all(work);
    return { tokens, vectors };
  }

  /**
   * Token counts of messages a request waits for (a read of turns without counts). With request threads, small
   * requests of one event-loop turn share one task there; without, small work runs here and
   * larger work on the pool's `read` lane (ahead of compaction). Null without a tokenizer.
   */
  async countTokens(messages: readonly MessageFields[]): Promise<number[] | null> {
    if (!this.tokenizer || messages.length === 0) return this.tokenizer ? [] : null;
    let chars = 0;
    for (const m of messages) chars += textLength(m);
    const pool = this.countPool();
    if (!pool || (!this.requests && chars <= INLINE_COUNT_CHARS)) return messages.map((m) => this.countHere(m));
    if (!this.requests || chars > BATCHED_COUNT_CHARS) return this.countOn(pool, messages.map(workerFields), 'read');
    return new Promise<number[]>((resolve, reject) => {
      let batch = this.countBatch;
      if (!batch || batch.items.length + messages.length > MAX_BATCH_ITEMS) {
        batch = this.countBatch = { items: [], waiters: [] };
        const current = batch;
        setImmediate(() => this.runCountBatch(current));
      }
      batch.waiters.push({ from: batch.items.length, count: messages.length, resolve, reject });
      for (const m of messages) batch.items.push(workerFields(m));
    });
  }

  /**
   * Token counts nobody waits for (turns appended uncounted, src/cache/token-counts.ts): one task
   * on the request threads or else the pool, in the `compaction` lane (reads waiting for counts
   * go first), or here without a pool, yielding to other work after every ~16 KiB of text. Null
   * without a tokenizer.
   */
  async countInBackground(messages: readonly MessageFields[]): Promise<number[] | null> {
    if (!this.tokenizer) return null;
    if (messages.length === 0) return [];
    // Behind the reads waiting on the same threads.
    const pool = this.countPool();
    if (pool) return this.countOn(pool, messages.map(workerFields), 'compaction');
    const counts: number[] = [];
    let sinceYield = 0;
    for (const m of messages) {
      counts.push(this.countHere(m));
      sinceYield += textLength(m);
      if (sinceYield >= BATCHED_COUNT_CHARS) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return counts;
  }

  /** Where counts run off this thread: the request threads (4 cores or more), else the pool if it can count. */
  private countPool(): PreparePool | null {
    return this.requests ?? (this.spec.tokenizer ? this.pool : null);
  }

  /** Every message's count, as one task on `pool`. */
  private async countOn(pool: PreparePool, items: MessageFields[], lane: PrepareLane): Promise<number[]> {
    return (await pool.run({ spec: this.spec, items, count: items.map((_, i) => i), embed: false }, lane)).tokens;
  }

  /** One message's count on this thread. */
  private countHere(m: MessageFields): number {
    return countMessageTokens(m, (text) => this.tokenizer!.count(text));
  }

  private runCountBatch(batch: CountBatch): void {
    if (this.countBatch === batch) this.countBatch = null;
    const count = (items: MessageFields[]) => this.countOn(this.requests!, items, 'read');
    count(batch.items).then(
      (tokens) => {
        for (const w of batch.waiters) w.resolve(tokens.slice(w.from, w.from + w.count));
      },
      (err: unknown) => {
        // One request's messages may be what failed the task (a worker that died on them): the
        // others are counted again, each on its own, so only that request fails.
        if (batch.waiters.length === 1) return batch.waiters[0]!.reject(err);
        for (const w of batch.waiters) count(batch.items.slice(w.from, w.from + w.count)).then(w.resolve, w.reject);
      },
    );
  }

  /** Tasks handed to the pool so far (null without a pool): diagnostics. */
  dispatched(): number | null {
    return this.pool ? this.pool.dispatched + (this.requests?.dispatched ?? 0) : null;
  }

  /**
   * A milestone summary by `summarizer`: on the pool when it is the extractive summarizer (the
   * worker rebuilds it; the text is identical), else here (a chat model's request is I/O).
   */
  async summarize(summarizer: Summarizer, turns: readonly Turn[]): Promise<string> {
    const spec = this.pool ? extractiveSpec(summarizer) : null;
    if (!spec || turns.length === 0) return summarizer.summarize(turns);
    return (await this.pool!.summarize({ kind: 'summarize', summarizer: spec, turns: summaryTurns(turns) })).text;
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
    await Promise.all([this.pool?.destroy(), this.requests?.destroy()]);
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

/** About the text a count reads (the strings countMessageTokens hands the tokenizer), in UTF-16 units. */
export function textLength(m: MessageFields): number {
  let n = 0;
  if (typeof m.content === 'string') n += m.content.length;
  else if (m.content !== null) for (const p of m.content) n += p.type === 'text' ? p.text.length : 16;
  if (m.tool_calls) for (const c of m.tool_calls) n += c.function.name.length + c.function.arguments.length + c.id.length;
  return n + (m.name?.length ?? 0) + (m.tool_call_id?.length ?? 0);
}
