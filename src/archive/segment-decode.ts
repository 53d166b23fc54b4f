import { decodeFrame, decodeFrameAsync, getCodec, readFrameHeader } from '../codec/codec.js';
import { StrataError } from '../errors.js';
import { applyExtension } from '../message.js';
import type { ArchivedTurn, Role } from '../types.js';
import { BLOCK_KINDS, FormatViolation, ROLE_CODES, SEGMENT_FLAGS } from './format.js';
import type { SegmentHeader, SegmentPlace } from './segment.js';
import { blockReader, guard } from './segment.js';
import { fromHalf } from './vectors.js';

/*
 * Reads the columns of a parsed segment (segment.ts checked its header, footer and block CRCs):
 * turn ids, times, whole turns, and the stored vectors (decoded, counted, or scored against a
 * query in their stored encoding).
 */

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes the turn-id column (cheap); validates it against the header. */
export function decodeTurnIds(body: Uint8Array, header: SegmentHeader, place: SegmentPlace): Uint32Array {
  return guard(place, 'turnIds', () => {
    const r = blockReader(body, header, BLOCK_KINDS.turnIds);
    const ids = new Uint32Array(header.count);
    let prev = 0;
    for (let i = 0; i < header.count; i++) {
      const d = r.varint();
      if (d < 1) throw new FormatViolation('turn ids not strictly increasing');
      prev += d;
      ids[i] = prev;
    }
    if (r.remaining !== 0 || ids[0] !== header.firstTurn || prev !== header.lastTurn) throw new FormatViolation('turn ids disagree with the header');
    return ids;
  });
}

/** Decodes the created-at column (delta-encoded, zigzag varints). */
export function decodeCreatedAt(body: Uint8Array, header: SegmentHeader, place: SegmentPlace): number[] {
  return guard(place, 'createdAt', () => {
    const n = header.count;
    const r = blockReader(body, header, BLOCK_KINDS.createdAt);
    const out = new Array<number>(n);
    out[0] = r.varint();
    for (let i = 1; i < n; i++) {
      out[i] = out[i - 1]! + r.svarint();
      if (!Number.isSafeInteger(out[i]) || out[i]! < 0) throw new FormatViolation('timestamp out of range');
    }
    if (r.remaining !== 0) throw new FormatViolation('trailing bytes');
    return out;
  });
}

export interface DecodeSegmentOptions {
  maxDecodedBytes?: number;
  /** Inclusive range of turn ids to decode. */
  fromTurn?: number;
  toTurn?: number;
  /** Skip the embeddings column (faster when only text is needed). */
  withEmbeddings?: boolean;
  /** Frames decoded beforehand (`decodeLargeFrames`), by their offset in the body. */
  frames?: ReadonlyMap<number, Uint8Array>;
}

/** A frame that decodes to at least this many bytes is decoded off the event loop by `decodeLargeFrames`. */
export const LARGE_FRAME_BYTES = 256 * 1024;

/**
 * The segment's whole-column frames (text, metadata, message extensions) that decode to at least
 * `minBytes`, decoded on node:zlib's thread pool: a 20 MiB message does not stall the event loop
 * while it inflates. Pass the result to `decodeSegment` as `frames`; the checks stay there (a
 * malformed column found here is left to it, and reported as it always is).
 */
export async function decodeLargeFrames(body: Uint8Array, header: SegmentHeader, options: { maxDecodedBytes?: number } = {}, minBytes = LARGE_FRAME_BYTES): Promise<Map<number, Uint8Array>> {
  const frames = new Map<number, Uint8Array>();
  const n = header.count;
  const kinds = [BLOCK_KINDS.metadata, BLOCK_KINDS.message, ...(header.flags & SEGMENT_FLAGS.textPerTurn ? [] : [BLOCK_KINDS.text])];
  for (const kind of kinds) {
    if (!header.blocks.some((b) => b.kind === kind)) continue;
    try {
      const r = blockReader(body, header, kind);
      let total = 0;
      for (let i = 0; i < n; i++) total += r.varint();
      if (total === 0 && kind !== BLOCK_KINDS.text) continue;
      const frame = body.subarray(r.pos, r.end);
      if (readFrameHeader(frame, options).decodedLength < minBytes) continue;
      frames.set(r.pos, await decodeFrameAsync(frame, options));
    } catch {
      // decodeSegment decodes this column itself and reports what is wrong with it.
    }
  }
  return frames;
}

/** Decodes the turns of a parsed segment whose ids fall in the range. */
export function decodeSegment(body: Uint8Array, header: SegmentHeader, place: SegmentPlace, options: DecodeSegmentOptions = {}): ArchivedTurn[] {
  const n = header.count;
  const ids = decodeTurnIds(body, header, place);
  const from = options.fromTurn ?? 0;
  const to = options.toTurn ?? Infinity;
  let i0 = 0;
  while (i0 < n && ids[i0]! < from) i0++;
  let i1 = i0;
  while (i1 < n && ids[i1]! <= to) i1++;
  if (i0 === i1) return [];
  checkCodec(header, place);

  const roles = guard(place, 'roles', () => {
    const r = blockReader(body, header, BLOCK_KINDS.roles);
    if (r.remaining !== n) throw new FormatViolation('length differs from the turn count');
    const out: Role[] = [];
    for (let i = 0; i < n; i++) {
      const role = ROLE_CODES[r.u8()];
      if (role === undefined) throw new FormatViolation('unknown role code');
      out.push(role);
    }
    return out;
  });
  const times = decodeCreatedAt(body, header, place);
  const tokens = guard(place, 'tokens', () => {
    const r = blockReader(body, header, BLOCK_KINDS.tokens);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = r.varint();
    if (r.remaining !== 0) throw new FormatViolation('trailing bytes');
    return out;
  });
  const decodeOpts = options.maxDecodedBytes === undefined ? {} : { maxDecodedBytes: options.maxDecodedBytes };
  const texts = guard(place, 'text', () => {
    const r = blockReader(body, header, BLOCK_KINDS.text);
    const lengths = new Array<number>(n);
    for (let i = 0; i < n; i++) lengths[i] = r.varint();
    const out: string[] = [];
    if (header.flags & SEGMENT_FLAGS.textPerTurn) {
      let pos = r.pos;
      for (let i = 0; i < n; i++) {
        if (pos + lengths[i]! > r.end) throw new FormatViolation('frame runs past the block');
        if (i >= i0 && i < i1) out.push(strictUtf8.decode(decodeFrame(body.subarray(pos, pos + lengths[i]!), decodeOpts)));
        pos += lengths[i]!;
      }
      if (pos !== r.end) throw new FormatViolation('trailing bytes');
    } else {
      const all = options.frames?.get(r.pos) ?? decodeFrame(body.subarray(r.pos, r.end), decodeOpts);
      let pos = 0;
      for (let i = 0; i < n; i++) {
        if (pos + lengths[i]! > all.length) throw new FormatViolation('text lengths exceed the decoded block');
        if (i >= i0 && i < i1) out.push(strictUtf8.decode(all.subarray(pos, pos + lengths[i]!)));
        pos += lengths[i]!;
      }
      if (pos !== all.length) throw new FormatViolation('text lengths disagree with the decoded block');
    }
    return out;
  });
  const metas = guard(place, 'metadata', () => decodeJsonColumn(body, header, BLOCK_KINDS.metadata, i0, i1, decodeOpts, options.frames));
  const exts = header.blocks.some((b) => b.kind === BLOCK_KINDS.message) ? guard(place, 'message', () => decodeJsonColumn(body, header, BLOCK_KINDS.message, i0, i1, decodeOpts, options.frames)) : null;
  const vectors = options.withEmbeddings === false ? null : decodeEmbeddings(body, header, place);

  const turns: ArchivedTurn[] = [];
  for (let i = i0; i < i1; i++) {
    const t: ArchivedTurn = { turnId: ids[i]!, role: roles[i]!, content: texts[i - i0]!, createdAt: times[i]! };
    const ext = exts?.[i - i0];
    if (ext !== undefined) guard(place, 'message', () => applyExtension(t, texts[i - i0]!, ext));
    if (tokens[i]! > 0) t.tokens = tokens[i]! - 1;
    const m = metas[i - i0];
    if (m !== undefined) t.metadata = guard(place, 'metadata', () => JSON.parse(m) as Record<string, unknown>);
    const v = vectors?.[i];
    if (v) t.embedding = v;
    turns.push(t);
  }
  return turns;
}

/**
 * A column of per-turn JSON texts (metadata, message extension): N varint byte lengths (0 = none),
 * then, when any is non-zero, one frame of the concatenated texts. Returns the texts of turns
 * i0 … i1−1 (undefined where none).
 */
function decodeJsonColumn(body: Uint8Array, header: SegmentHeader, kind: number, i0: number, i1: number, decodeOpts: { maxDecodedBytes?: number }, frames?: ReadonlyMap<number, Uint8Array>): Array<string | undefined> {
  const n = header.count;
  const r = blockReader(body, header, kind);
  const lengths = new Array<number>(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += lengths[i] = r.varint();
  const out: Array<string | undefined> = [];
  if (total === 0) {
    if (r.remaining !== 0) throw new FormatViolation('trailing bytes');
    for (let i = i0; i < i1; i++) out.push(undefined);
    return out;
  }
  const all = frames?.get(r.pos) ?? decodeFrame(body.subarray(r.pos, r.end), decodeOpts);
  if (all.length !== total) throw new FormatViolation('lengths disagree with the decoded block');
  let pos = 0;
  for (let i = 0; i < n; i++) {
    if (i >= i0 && i < i1) out.push(lengths[i] === 0 ? undefined : strictUtf8.decode(all.subarray(pos, pos + lengths[i]!)));
    pos += lengths[i]!;
  }
  return out;
}

/** Per-turn vectors (null where a turn has none), dequantized. Null when the segment stores no embeddings. */
export function decodeEmbeddings(body: Uint8Array, header: SegmentHeader, place: SegmentPlace): Array<Float32Array | null> | null {
  if (header.encoding === 'none') return null;
  return guard(place, 'embeddings', () => {
    const r = blockReader(body, header, BLOCK_KINDS.embeddings);
    const n = header.count;
    const dims = header.dims;
    const bitmap = r.bytes(Math.ceil(n / 8));
    const out: Array<Float32Array | null> = [];
    // One allocation for the whole segment, one view per vector: a 1,000-turn load otherwise
    // makes a thousand small buffers for the collector.
    const all = new Float32Array(n * dims);
    for (let i = 0; i < n; i++) {
      if (!(bitmap[i >> 3]! & (1 << (i & 7)))) {
        out.push(null);
        continue;
      }
      const v = all.subarray(i * dims, (i + 1) * dims);
      if (header.encoding === 'int8') {
        const scale = r.f32();
        const q = r.bytes(dims);
        for (let j = 0; j < dims; j++) v[j] = ((q[j]! << 24) >> 24) * scale;
      } else {
        for (let j = 0; j < dims; j++) v[j] = fromHalf(r.u16());
      }
      out.push(v);
    }
    if (r.remaining !== 0) throw new FormatViolation('trailing bytes');
    return out;
  });
}

function checkCodec(header: SegmentHeader, place: SegmentPlace): void {
  try {
    getCodec(header.codecId);
  } catch (err) {
    throw new StrataError('STRATA_ERR_CODEC_UNKNOWN', `${place.file}: segment ${place.segment} uses codec id 0x${header.codecId.toString(16).padStart(2, '0')}, which this build does not know`, { cause: err, details: { ...place } });
  }
}

/** How many turns of the segment have a stored vector: the set bits of the embeddings bitmap (nothing decoded). */
export function countVectors(body: Uint8Array, header: SegmentHeader): number {
  if (header.encoding === 'none') return 0;
  const e = header.blocks.find((x) => x.kind === BLOCK_KINDS.embeddings)!;
  let n = 0;
  for (let i = 0; i < header.count; i++) if (body[e.offset + (i >> 3)]! & (1 << (i & 7))) n++;
  return n;
}

/**
 * Cosine similarity of `query` with every stored vector of the segment, computed on the stored
 * encoding directly (int8 scale cancels out of cosine). NaN where a turn has no vector.
 */
export function scoreEmbeddings(body: Uint8Array, header: SegmentHeader, place: SegmentPlace, query: Float32Array, queryNorm: number): Float64Array {
  const n = header.count;
  const dims = header.dims;
  const scores = new Float64Array(n).fill(NaN);
  if (header.encoding === 'none') return scores;
  return guard(place, 'embeddings', () => {
    const r = blockReader(body, header, BLOCK_KINDS.embeddings);
    const bitmap = r.bytes(Math.ceil(n / 8));
    const per = header.encoding === 'int8' ? 4 + dims : 2 * dims;
    let present = 0;
    for (let i = 0; i < n; i++) if (bitmap[i >> 3]! & (1 << (i & 7))) present++;
    if (r.remaining !== present * per) throw new FormatViolation('length disagrees with the vector count');
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    let pos = r.pos;
    for (let i = 0; i < n; i++) {
      if (!(bitmap[i >> 3]! & (1 << (i & 7)))) continue;
      let dot = 0;
      let nn = 0;
      if (header.encoding === 'int8') {
        const q = pos + 4;
        for (let j = 0; j < dims; j++) {
          const x = (body[q + j]! << 24) >> 24;
          dot += x * query[j]!;
          nn += x * x;
        }
      } else {
        for (let j = 0; j < dims; j++) {
          const x = fromHalf(view.getUint16(pos + 2 * j, true));
          dot += x * query[j]!;
          nn += x * x;
        }
      }
      pos += per;
      scores[i] = nn === 0 || queryNorm === 0 ? 0 : dot / (Math.sqrt(nn) * queryNorm);
    }
    return scores;
  });
}
