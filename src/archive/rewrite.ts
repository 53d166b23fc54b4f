import type { ArchivedTurn } from '../types.js';
import type { FileIndex, SegmentEntry } from './file.js';
import { segmentsFor } from './file.js';
import { RECORD_TYPES, encodeRecord } from './format.js';
import type { ResolvedArchiveOptions } from './options.js';
import { decodeSegment } from './segment-decode.js';
import type { TextLayout } from './segment-encode.js';
import { encodeSegmentAsync } from './segment-encode.js';

/*
 * Turns into segment records, and a session's turns for a rewrite (compaction, deletion of
 * turns, re-embedding), alike for every driver: the fs driver writes the records into the
 * session's file, the PostgreSQL driver one row per record.
 */

/** A stored turn with the embedder of its segment (null: the segment holds no vectors). */
export interface StoredTurn {
  turn: ArchivedTurn;
  embedderId: string | null;
}

/** One segment record (docs/format.md) of `turns`, in the store's text codec, text layout and vector encoding. */
export async function segmentRecord(options: ResolvedArchiveOptions, turns: readonly ArchivedTurn[], embedderId: string | null): Promise<Uint8Array> {
  const codec = options.textCodec;
  let layout: TextLayout;
  if (options.textLayout === 'auto') layout = codec.id >= 0x10 && codec.id <= 0x11 ? 'turn' : 'block';
  else layout = options.textLayout;
  return encodeRecord(RECORD_TYPES.segment, await encodeSegmentAsync(turns, { codec, layout, encoding: options.embeddingEncoding, embedderId }));
}

/** Segment records of `turns`, at most `maxSegmentTurns` turns each; none for no turns. */
export async function segmentRecords(options: ResolvedArchiveOptions, turns: readonly ArchivedTurn[], embedderId: string | null): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < turns.length; i += options.maxSegmentTurns) out.push(await segmentRecord(options, turns.slice(i, i + options.maxSegmentTurns), embedderId));
  return out;
}

/** Segment records of a rewrite of `keep`: a segment has one embedder, so each run of consecutive turns of one embedder makes its own segments. */
export async function rewriteRecords(options: ResolvedArchiveOptions, keep: readonly StoredTurn[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  let run: ArchivedTurn[] = [];
  let runEmbedder: string | null = null;
  const flush = async (): Promise<void> => {
    out.push(...(await segmentRecords(options, run, runEmbedder)));
    run = [];
  };
  for (const { turn, embedderId } of keep) {
    if (run.length > 0 && embedderId !== runEmbedder) await flush();
    runEmbedder = embedderId;
    run.push(turn);
  }
  await flush();
  return out;
}

/** Every turn of the session once (the first segment holding an id wins), ascending by id, with its segment's embedder. */
export async function storedTurns(index: FileIndex, body: (s: SegmentEntry) => Promise<Uint8Array>, maxDecodedBytes: number): Promise<StoredTurn[]> {
  const out = new Map<number, StoredTurn>();
  for (const s of segmentsFor(index)) {
    const turns = decodeSegment(await body(s), s.header!, { file: index.file, segment: s.ordinal }, { maxDecodedBytes });
    for (const t of turns) if (!out.has(t.turnId)) out.set(t.turnId, { turn: t, embedderId: s.header!.encoding === 'none' ? null : s.header!.embedderId });
  }
  return [...out.values()].sort((a, b) => a.turn.turnId - b.turn.turnId);
}

/** `all` split by `drop`: the turns kept (all of them without `drop`) and the turns removed. */
export function dropTurns(all: StoredTurn[], drop: ReadonlySet<number> | undefined): { keep: StoredTurn[]; removed: ArchivedTurn[] } {
  if (!drop) return { keep: all, removed: [] };
  return { keep: all.filter((t) => !drop.has(t.turn.turnId)), removed: all.filter((t) => drop.has(t.turn.turnId)).map((t) => t.turn) };
}
