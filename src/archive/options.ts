import type { Codec } from '../codec/codec.js';
import { DEFAULT_MAX_DECODED_BYTES, getCodec, listCodecs } from '../codec/codec.js';
import { brotliFastCodec } from '../codec/zlib.js';
// Readers must open every codec the archive ever wrote, whatever else the application imported.
import '../codec/huffman-bytes.js';
import '../codec/huffman-tokens.js';
import { StrataError } from '../errors.js';
import type { Clock, SessionLock } from '../types.js';
import { systemClock } from '../types.js';
import type { EmbeddingEncoding } from './format.js';
import type { WriteHook } from './io.js';
import { InProcessSessionLock } from './lock.js';

export type TextLayoutOption = 'auto' | 'turn' | 'block';

/** Options of the filesystem archive (`FsArchiveStore`, `ConversationArchive`). */
export interface ArchiveOptions {
  /** Data directory; session files live under `<dataDir>/archive/<tenant>/<shard>/<sessionId>.strata`. Required. */
  dataDir: string;
  /** Time source for retention and metadata. Default: the system clock. */
  clock?: Clock;
  /** Per-session writer lock. Default: a new `InProcessSessionLock` (single process). */
  lock?: SessionLock;
  /**
   * Codec for text and metadata, by name, id or instance. Default: brotli written at quality 5 (see `defaultTextCodec`).
   */
  textCodec?: string | number | Codec;
  /**
   * Text block layout: `turn` = one frame per turn (one turn decodes alone), `block` = one frame per
   * segment (context across turns compresses better). Default `auto`: `turn` for the static-table
   * Huffman codecs, which gain nothing from context, `block` for the others.
   */
  textLayout?: TextLayoutOption;
  /** How embeddings are stored. Default `int8` (per-vector float32 scale). `none` drops them. */
  embeddingEncoding?: EmbeddingEncoding;
  /** Largest decoded size a frame may declare before it is rejected. Default 64 MiB. */
  maxDecodedBytes?: number;
  /** An append that leaves more segments than this in a file compacts it (under the lock). Default 32. */
  compactAfterSegments?: number;
  /** Largest number of turns per segment written by compaction and rewrites. Default 4096. */
  maxSegmentTurns?: number;
  /** Parsed file indexes kept in memory (LRU). Default 1000. */
  indexCacheSize?: number;
  /** How long a commit waits for another process's commit lock on the same session (ms). Default 30000. */
  commitWaitMs?: number;
  /** Fault injection for tests: called before each durable write step. */
  writeHook?: WriteHook;
}

export interface ResolvedArchiveOptions {
  readonly dataDir: string;
  readonly clock: Clock;
  readonly lock: SessionLock;
  readonly textCodec: Codec;
  readonly textLayout: TextLayoutOption;
  readonly embeddingEncoding: EmbeddingEncoding;
  readonly maxDecodedBytes: number;
  readonly compactAfterSegments: number;
  readonly maxSegmentTurns: number;
  readonly indexCacheSize: number;
  readonly commitWaitMs: number;
  readonly writeHook: WriteHook | undefined;
}

function invalid(option: string, expected: string, received: unknown): StrataError {
  const shown = typeof received === 'string' ? JSON.stringify(received) : typeof received === 'number' ? String(received) : received === null ? 'null' : typeof received;
  return new StrataError('STRATA_ERR_CONFIG_INVALID', `archive option \`${option}\`: expected ${expected}, received ${shown}`, { details: { option, expected } });
}

function intOption(o: Record<string, unknown>, name: string, def: number, min: number, max: number): number {
  const v = o[name];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(name, `an integer from ${min} to ${max}`, v);
  return v;
}

/**
 * The default text codec, chosen by measurement (docs/format.md, "Choice of codec and layout"):
 * brotli per block, written at quality 5 (`brotliFastCodec`: 45× faster to write than quality 11
 * for 17% more text bytes; compaction runs on the event loop). huffman-tokens per turn is smaller
 * still but decodes ~2.5× slower, which breaks the 20 ms budget for loading a 1,000-turn session;
 * pass `textCodec: 'huffman-tokens'` (or `'brotli'` for quality 11) to trade speed for size.
 */
export function defaultTextCodec(): Codec {
  return brotliFastCodec;
}

export function resolveArchiveOptions(input: unknown): ResolvedArchiveOptions {
  if (typeof input !== 'object' || input === null) throw invalid('options', 'an object', input);
  const o = input as Record<string, unknown>;
  const known = new Set(['dataDir', 'clock', 'lock', 'textCodec', 'textLayout', 'embeddingEncoding', 'maxDecodedBytes', 'compactAfterSegments', 'maxSegmentTurns', 'indexCacheSize', 'commitWaitMs', 'writeHook']);
  for (const key of Object.keys(o)) if (!known.has(key)) throw invalid(key, `one of the known options (${[...known].join(', ')})`, 'an unknown option');
  if (typeof o.dataDir !== 'string' || o.dataDir.length === 0 || o.dataDir.includes('\0')) throw invalid('dataDir', 'a non-empty path string', o.dataDir);
  if (o.clock !== undefined && (typeof o.clock !== 'object' || o.clock === null || typeof (o.clock as Clock).now !== 'function')) throw invalid('clock', 'an object with now()', o.clock);
  if (o.lock !== undefined && (typeof o.lock !== 'object' || o.lock === null || typeof (o.lock as SessionLock).withLock !== 'function')) throw invalid('lock', 'a SessionLock (an object with withLock())', o.lock);
  let textCodec: Codec;
  if (o.textCodec === undefined) textCodec = defaultTextCodec();
  else if (typeof o.textCodec === 'string' || typeof o.textCodec === 'number') {
    try {
      textCodec = getCodec(o.textCodec);
    } catch {
      throw invalid('textCodec', `a registered codec (${listCodecs().map((c) => c.name).join(', ')})`, o.textCodec);
    }
  } else if (typeof o.textCodec === 'object' && o.textCodec !== null && typeof (o.textCodec as Codec).compress === 'function') {
    textCodec = o.textCodec as Codec;
    try {
      if (getCodec(textCodec.id) !== textCodec) throw new Error('different codec');
    } catch {
      throw invalid('textCodec', 'a codec registered with registerCodec (readers find codecs by id)', `codec ${textCodec.name}`);
    }
  } else throw invalid('textCodec', 'a codec name, id or Codec', o.textCodec);
  const textLayout = o.textLayout ?? 'auto';
  if (textLayout !== 'auto' && textLayout !== 'turn' && textLayout !== 'block') throw invalid('textLayout', "'auto', 'turn' or 'block'", textLayout);
  const embeddingEncoding = o.embeddingEncoding ?? 'int8';
  if (embeddingEncoding !== 'int8' && embeddingEncoding !== 'f16' && embeddingEncoding !== 'none') throw invalid('embeddingEncoding', "'int8', 'f16' or 'none'", embeddingEncoding);
  if (o.writeHook !== undefined && typeof o.writeHook !== 'function') throw invalid('writeHook', 'a function', o.writeHook);
  return Object.freeze({
    dataDir: o.dataDir,
    clock: (o.clock as Clock | undefined) ?? systemClock,
    lock: (o.lock as SessionLock | undefined) ?? new InProcessSessionLock(),
    textCodec,
    textLayout: textLayout as TextLayoutOption,
    embeddingEncoding: embeddingEncoding as EmbeddingEncoding,
    maxDecodedBytes: intOption(o, 'maxDecodedBytes', DEFAULT_MAX_DECODED_BYTES, 1, 2 ** 32 - 1),
    compactAfterSegments: intOption(o, 'compactAfterSegments', 32, 1, 1_000_000),
    maxSegmentTurns: intOption(o, 'maxSegmentTurns', 4096, 1, 1_000_000),
    indexCacheSize: intOption(o, 'indexCacheSize', 1000, 0, 10_000_000),
    commitWaitMs: intOption(o, 'commitWaitMs', 30_000, 0, 3_600_000),
    writeHook: o.writeHook as WriteHook | undefined,
  });
}
