import { getTokenizer } from '../context/gpt-tokenizer.js';
import { ExtractiveSummarizer, type Summarizer } from '../context/summarizer.js';
import type { Tokenizer, TokenizerEncoding } from '../context/tokenizer.js';
import { StrataError, type ErrorCode } from '../errors.js';
import { countMessageTokens, searchText, type ContentPart, type MessageFields } from '../message.js';
import type { Embedder } from '../retrieval/embedder.js';
import { GloveEmbedder, type GloveEmbedderOptions } from '../retrieval/embedders/glove.js';
import { HashEmbedder } from '../retrieval/embedders/hash.js';
import type { Turn } from '../types.js';

/**
 * The tasks of the worker pool, shared by the worker entry and the pool so both sides agree on
 * their shape: "prepare", the CPU half of compaction (token counts and local embeddings), and
 * "summarize", a milestone summary by the extractive summarizer.
 */

/** A local embedder as plain data: a worker thread builds an identical one from it. */
export type LocalEmbedderSpec = { provider: 'hash'; dimensions: number } | { provider: 'glove'; options: Readonly<Required<GloveEmbedderOptions>> };

/**
 * What a worker needs to compute exactly what the main thread would: the tokenizer's encoding
 * and the local embedder's spec. Null where the main thread's instance cannot be rebuilt in
 * another thread (a custom tokenizer, a remote or custom embedder): that part stays inline.
 */
export interface PrepareSpec {
  tokenizer: TokenizerEncoding | null;
  embedder: LocalEmbedderSpec | null;
}

export interface PrepareTask {
  spec: PrepareSpec;
  /** Message fields as `workerFields` gives them. */
  items: MessageFields[];
  /** Indexes of the items whose tokens are counted (ascending). */
  count: number[];
  /** Embed every item's search text. */
  embed: boolean;
}

/** A milestone summary by `ExtractiveSummarizer` (the offline default), rebuilt in the worker. */
export interface SummarizeTask {
  kind: 'summarize';
  summarizer: ExtractiveSpec;
  /** The range's turns as `summaryTurns` gives them. */
  turns: Turn[];
}

export interface ExtractiveSpec {
  tokenizer: TokenizerEncoding;
  maxTokens: number;
}

export type SummarizeResult = { text: string } | { error: TaskError };

export type WorkerTask = PrepareTask | SummarizeTask;

interface TaskError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export type PrepareResult =
  | {
      /** Token counts of `task.count`'s items, in that order. */
      tokens: number[];
      /** Every item's vector, row after row (`items.length × dimensions` floats); null unless `embed`. */
      vectors: Float32Array | null;
      dimensions: number;
    }
  | { error: TaskError };

/**
 * The spec of a tokenizer and an embedder, as far as a worker can rebuild them exactly: the
 * process-wide gpt-tokenizer instances, and `HashEmbedder` / `GloveEmbedder` themselves (not a
 * subclass, whose `embed` may differ).
 */
export function prepareSpec(tokenizer: Tokenizer | null, embedder: Embedder | null): PrepareSpec {
  return { tokenizer: portableTokenizer(tokenizer), embedder: embedder ? localEmbedderSpec(embedder) : null };
}

function portableTokenizer(tokenizer: Tokenizer | null): TokenizerEncoding | null {
  if (!tokenizer || (tokenizer.id !== 'o200k_base' && tokenizer.id !== 'cl100k_base')) return null;
  return getTokenizer(tokenizer.id) === tokenizer ? tokenizer.id : null;
}

export function localEmbedderSpec(embedder: Embedder): LocalEmbedderSpec | null {
  const kind: unknown = embedder.constructor;
  if (kind === HashEmbedder) return { provider: 'hash', dimensions: embedder.dimensions };
  if (kind === GloveEmbedder) return { provider: 'glove', options: (embedder as GloveEmbedder).options };
  return null;
}

export function embedderFromSpec(spec: LocalEmbedderSpec): Embedder {
  return spec.provider === 'hash' ? new HashEmbedder(spec.dimensions) : new GloveEmbedder(spec.options);
}

/**
 * The fields token counting and search text read, without inline payloads: an image's `data:`
 * URL (up to maxInlineDataBytes) counts a fixed number of tokens and is not searched, a file's
 * data neither, so they are not copied to a worker.
 */
export function workerFields(m: MessageFields): MessageFields {
  const out: MessageFields = { role: m.role, content: typeof m.content === 'string' || m.content === null ? m.content : m.content.map(slimPart) };
  if (m.name !== undefined) out.name = m.name;
  if (m.tool_calls !== undefined) out.tool_calls = m.tool_calls;
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  return out;
}

function slimPart(p: ContentPart): ContentPart {
  if (p.type === 'text') return p;
  if (p.type === 'image_url') return { type: 'image_url', image_url: { url: '', ...(p.image_url.detail !== undefined ? { detail: p.image_url.detail } : {}) } };
  return { type: 'file', file: p.file.filename !== undefined ? { filename: p.file.filename } : {} };
}

/** Runs a task with the given tokenizer and embedder (in a worker: the ones its spec builds). */
export async function runPrepare(task: PrepareTask, tokenizer: Tokenizer | null, embedder: Embedder | null): Promise<PrepareResult> {
  try {
    const tokens: number[] = [];
    if (task.count.length > 0) {
      if (!tokenizer) throw new StrataError('STRATA_ERR_INTERNAL', 'a prepare task asked for token counts without a tokenizer');
      const count = (text: string): number => tokenizer.count(text);
      for (const i of task.count) tokens.push(countMessageTokens(task.items[i]!, count));
    }
    if (!task.embed) return { tokens, vectors: null, dimensions: 0 };
    if (!embedder) throw new StrataError('STRATA_ERR_INTERNAL', 'a prepare task asked for embeddings without an embedder');
    const rows = await embedder.embed(task.items.map(searchText));
    const dims = embedder.dimensions;
    const vectors = new Float32Array(rows.length * dims);
    rows.forEach((row, i) => {
      if (row.length !== dims) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `embedder ${embedder.id} returned ${row.length} dimensions, expected ${dims}`);
      vectors.set(row, i * dims);
    });
    return { tokens, vectors, dimensions: dims };
  } catch (err) {
    return { error: taskError(err) };
  }
}

/**
 * What a worker needs to summarize exactly as `summarizer` would: an `ExtractiveSummarizer`
 * itself (not a subclass) over a process-wide gpt-tokenizer. Null for any other summarizer (a
 * chat model's work is I/O and stays on the request thread).
 */
export function extractiveSpec(summarizer: Summarizer): ExtractiveSpec | null {
  if (summarizer.constructor !== ExtractiveSummarizer) return null;
  const extractive = summarizer as ExtractiveSummarizer;
  const tokenizer = portableTokenizer(extractive.tokenizer);
  return tokenizer ? { tokenizer, maxTokens: extractive.maxTokens } : null;
}

/**
 * The turns as the extractive summarizer reads them (id, role, search text), without metadata,
 * embeddings or inline payloads: `searchText` of each gives the original's search text.
 */
export function summaryTurns(turns: readonly Turn[]): Turn[] {
  return turns.map((t) => ({ turnId: t.turnId, role: t.role, content: searchText(t), createdAt: t.createdAt }));
}

export async function runSummarize(task: SummarizeTask): Promise<SummarizeResult> {
  try {
    const summarizer = new ExtractiveSummarizer({ tokenizer: getTokenizer(task.summarizer.tokenizer), maxTokens: task.summarizer.maxTokens });
    return { text: await summarizer.summarize(task.turns) };
  } catch (err) {
    return { error: taskError(err) };
  }
}

function taskError(err: unknown): TaskError {
  if (err instanceof StrataError) return { code: err.code, message: err.message.replace(/^[A-Z_]+: /, ''), ...(err.details ? { details: { ...err.details } } : {}) };
  return { code: 'STRATA_ERR_INTERNAL', message: (err as Error)?.message ?? String(err) };
}
