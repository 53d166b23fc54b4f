import type { Codec } from '../codec/codec.js';
import { concat, decodeFrame, encodeFrame, getCodec } from '../codec/codec.js';
import { rawCodec } from '../codec/zlib.js';
import { StrataError, isStrataError } from '../errors.js';
import { applyExtension, messageExtension, messageText } from '../message.js';
import type { ArchivedTurn, Role } from '../types.js';
import type { EmbeddingEncoding } from './format.js';
import {
  BLOCK_KINDS,
  BLOCK_NAMES,
  ByteReader,
  ByteWriter,
  EMBEDDING_ENCODINGS,
  FOOTER_ENTRY_BYTES,
  FORMAT_VERSION,
  FormatViolation,
  ROLE_CODES,
  SEGMENT_FLAGS,
  crc,
} from './format.js';
import { fromHalf, quantizeInt8, toHalf } from './vectors.js';

/*
 * One segment = the body of a segment record: header, column blocks, footer. See docs/format.md.
 * Encoding is pure (bytes in memory); the file layer frames it as a record and appends it.
 */

export type TextLayout = 'turn' | 'block';

export interface SegmentEncodeOptions {
  codec: Codec;
  layout: TextLayout;
  encoding: EmbeddingEncoding;
  embedderId: string | null;
}

export interface BlockEntry {
  kind: number;
  offset: number;
  length: number;
  crc: number;
}

export interface SegmentHeader {
  codecId: number;
  flags: number;
  encoding: EmbeddingEncoding;
  dims: number;
  count: number;
  firstTurn: number;
  lastTurn: number;
  embedderId: string | null;
  blocks: BlockEntry[];
  /** Bytes of the header including its CRC. */
  headerBytes: number;
}

/** Where a segment lives, for error messages: file path and the segment's ordinal in the file. */
export interface SegmentPlace {
  file: string;
  segment: number;
}

const ENCODING_BY_CODE: EmbeddingEncoding[] = ['none', 'int8', 'f16'];
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function corrupt(place: SegmentPlace, block: string, reason: string, cause?: unknown): StrataError {
  return new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${place.file}: segment ${place.segment}, block ${block}: ${reason}`, { cause, details: { file: place.file, segment: place.segment, block } });
}

/** Dimension of the embeddings in `turns` (0 when none); throws when they disagree. */
export function embeddingDims(turns: readonly ArchivedTurn[]): number {
  let dims = 0;
  for (const t of turns) {
    if (!t.embedding) continue;
    if (dims === 0) dims = t.embedding.length;
    else if (t.embedding.length !== dims) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `turn ${t.turnId} has a ${t.embedding.length}-dimension embedding, earlier turns have ${dims}`);
  }
  return dims;
}

export function encodeSegment(turns: readonly ArchivedTurn[], options: SegmentEncodeOptions): Uint8Array {
  if (turns.length === 0) throw new RangeError('a segment needs at least one turn');
  const n = turns.length;
  const dims = options.encoding === 'none' ? 0 : embeddingDims(turns);
  const encoding: EmbeddingEncoding = dims === 0 ? 'none' : options.encoding;
  if (dims > 0xffff) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `embeddings of ${dims} dimensions exceed the format's maximum of 65535`);
  const blocks: Array<[number, Uint8Array]> = [];

  const ids = new ByteWriter();
  let prev = 0;
  for (const t of turns) {
    ids.varint(t.turnId - prev);
    prev = t.turnId;
  }
  blocks.push([BLOCK_KINDS.turnIds, ids.finish()]);

  blocks.push([BLOCK_KINDS.roles, Uint8Array.from(turns, (t) => ROLE_CODES.indexOf(t.role))]);

  const times = new ByteWriter();
  times.varint(turns[0]!.createdAt);
  for (let i = 1; i < n; i++) times.svarint(turns[i]!.createdAt - turns[i - 1]!.createdAt);
  blocks.push([BLOCK_KINDS.createdAt, times.finish()]);

  const tokens = new ByteWriter();
  for (const t of turns) tokens.varint(t.tokens === undefined ? 0 : t.tokens + 1);
  blocks.push([BLOCK_KINDS.tokens, tokens.finish()]);

  const texts = turns.map((t) => utf8.encode(messageText(t)));
  const text = new ByteWriter();
  if (options.layout === 'turn') {
    const frames = texts.map((b) => encodeFrame(options.codec, b));
    for (const f of frames) text.varint(f.length);
    for (const f of frames) text.bytes(f);
  } else {
    for (const b of texts) text.varint(b.length);
    text.bytes(encodeFrame(options.codec, concat(texts)));
  }
  blocks.push([BLOCK_KINDS.text, text.finish()]);

  const metas = turns.map((t) => (t.metadata === undefined ? new Uint8Array(0) : utf8.encode(JSON.stringify(t.metadata))));
  const meta = new ByteWriter();
  for (const m of metas) meta.varint(m.length);
  const allMeta = concat(metas);
  // Tiny metadata compresses to more than it weighs; 64 bytes is about where deflate starts paying.
  if (allMeta.length > 0) meta.bytes(encodeFrame(allMeta.length < 64 ? rawCodec : options.codec, allMeta));
  blocks.push([BLOCK_KINDS.metadata, meta.finish()]);

  // Format v2: the message extension (parts, tool calls, tool call id, name) of each turn, laid
  // out like metadata; absent when every turn is plain text.
  const exts = turns.map((t) => {
    const ext = messageExtension(t);
    return ext === undefined ? new Uint8Array(0) : utf8.encode(ext);
  });
  const allExt = concat(exts);
  if (allExt.length > 0) {
    const ext = new ByteWriter();
    for (const e of exts) ext.varint(e.length);
    ext.bytes(encodeFrame(allExt.length < 64 ? rawCodec : options.codec, allExt));
    blocks.push([BLOCK_KINDS.message, ext.finish()]);
  }

  if (encoding !== 'none') {
    const emb = new ByteWriter();
    const bitmap = new Uint8Array(Math.ceil(n / 8));
    turns.forEach((t, i) => {
      if (t.embedding) bitmap[i >> 3]! |= 1 << (i & 7);
    });
    emb.bytes(bitmap);
    const q = new Int8Array(dims);
    for (const t of turns) {
      if (!t.embedding) continue;
      if (encoding === 'int8') {
        emb.f32(quantizeInt8(t.embedding, q));
        emb.bytes(new Uint8Array(q.buffer));
      } else {
        for (let i = 0; i < dims; i++) emb.u16(toHalf(t.embedding[i]!));
      }
    }
    blocks.push([BLOCK_KINDS.embeddings, emb.finish()]);
  }

  const embedder = options.embedderId !== null && encoding !== 'none' ? utf8.encode(options.embedderId) : new Uint8Array(0);
  if (embedder.length > 255) throw new StrataError('STRATA_ERR_VALIDATION', 'embedder id is longer than 255 UTF-8 bytes');
  const out = new ByteWriter();
  out.u8(options.codec.id);
  out.u8(options.layout === 'turn' ? SEGMENT_FLAGS.textPerTurn : 0);
  out.u8(EMBEDDING_ENCODINGS[encoding]);
  out.u16(dims);
  out.u32(n);
  out.u32(turns[0]!.turnId);
  out.u32(turns[n - 1]!.turnId);
  out.u8(blocks.length);
  out.u8(embedder.length);
  out.bytes(embedder);
  out.u32(crc(out.finish()));
  const entries: BlockEntry[] = [];
  for (const [kind, bytes] of blocks) {
    entries.push({ kind, offset: out.length, length: bytes.length, crc: crc(bytes) });
    out.bytes(bytes);
  }
  const footerStart = out.length;
  for (const e of entries) {
    out.u8(e.kind);
    out.u32(e.offset);
    out.u32(e.length);
    out.u32(e.crc);
  }
  const all = out.finish();
  out.u32(crc(all.subarray(footerStart)));
  return out.finish();
}

/**
 * Parses the header and footer and checks their CRCs and the blocks' bounds. Throws
 * ARCHIVE_CORRUPT with block 'header'. `version` is the record's format version: the message
 * block exists from version 2 on.
 */
export function parseSegmentHeader(body: Uint8Array, place: SegmentPlace, version: number = FORMAT_VERSION): SegmentHeader {
  let header: SegmentHeader;
  try {
    const r = new ByteReader(body);
    const codecId = r.u8();
    const flags = r.u8();
    const encCode = r.u8();
    const dims = r.u16();
    const count = r.u32();
    const firstTurn = r.u32();
    const lastTurn = r.u32();
    const blockCount = r.u8();
    const idLen = r.u8();
    const idBytes = r.bytes(idLen);
    const headerEnd = r.pos;
    if (r.u32() !== crc(body.subarray(0, headerEnd))) throw new FormatViolation('header CRC32C mismatch');
    const encoding = ENCODING_BY_CODE[encCode];
    if (encoding === undefined) throw new FormatViolation(`unknown embedding encoding ${encCode}`);
    if (count === 0 || firstTurn < 1 || lastTurn < firstTurn || lastTurn - firstTurn + 1 < count) throw new FormatViolation('impossible turn counts');
    header = { codecId, flags, encoding, dims, count, firstTurn, lastTurn, embedderId: idLen ? strictUtf8.decode(idBytes) : null, blocks: [], headerBytes: r.pos };
    const footerLen = blockCount * FOOTER_ENTRY_BYTES + 4;
    const footerStart = body.length - footerLen;
    if (footerStart < header.headerBytes) throw new FormatViolation('footer overlaps the header');
    const f = new ByteReader(body, footerStart);
    for (let i = 0; i < blockCount; i++) header.blocks.push({ kind: f.u8(), offset: f.u32(), length: f.u32(), crc: f.u32() });
    if (f.u32() !== crc(body.subarray(footerStart, body.length - 4))) throw new FormatViolation('footer CRC32C mismatch');
    const maxKind = version >= 2 ? BLOCK_KINDS.message : BLOCK_KINDS.embeddings;
    const seen = new Set<number>();
    for (const b of header.blocks) {
      if (b.kind < 1 || b.kind > maxKind) throw new FormatViolation(`block kind ${b.kind} is unknown in format version ${version}`);
      if (seen.has(b.kind)) throw new FormatViolation(`block ${BLOCK_NAMES[b.kind]} appears twice`);
      seen.add(b.kind);
      if (b.offset < header.headerBytes || b.offset + b.length > footerStart) throw new FormatViolation(`block ${BLOCK_NAMES[b.kind] ?? b.kind} lies outside the segment`);
    }
  } catch (err) {
    if (err instanceof FormatViolation || err instanceof TypeError) throw corrupt(place, 'header', err.message, err);
    throw err;
  }
  return header;
}

/** Checks every block's CRC32C and that the required blocks exist; throws ARCHIVE_CORRUPT naming the first bad block. */
export function verifySegmentBlocks(body: Uint8Array, header: SegmentHeader, place: SegmentPlace): void {
  const bad = badBlocks(body, header);
  if (bad.length > 0) throw corrupt(place, bad[0]!, 'CRC32C mismatch');
  for (const kind of [BLOCK_KINDS.turnIds, BLOCK_KINDS.roles, BLOCK_KINDS.createdAt, BLOCK_KINDS.tokens, BLOCK_KINDS.text, BLOCK_KINDS.metadata]) {
    if (!header.blocks.some((b) => b.kind === kind)) throw corrupt(place, BLOCK_NAMES[kind]!, 'missing');
  }
  if (header.encoding !== 'none' && !header.blocks.some((b) => b.kind === BLOCK_KINDS.embeddings)) throw corrupt(place, 'embeddings', 'missing');
}

/** Header, footer and every block checked. */
export function parseSegment(body: Uint8Array, place: SegmentPlace): SegmentHeader {
  const header = parseSegmentHeader(body, place);
  verifySegmentBlocks(body, header, place);
  return header;
}

/** Names of the blocks whose CRC32C does not match. */
export function badBlocks(body: Uint8Array, header: SegmentHeader): string[] {
  const bad: string[] = [];
  for (const b of header.blocks) if (crc(body.subarray(b.offset, b.offset + b.length)) !== b.crc) bad.push(BLOCK_NAMES[b.kind] ?? String(b.kind));
  return bad;
}

function blockReader(body: Uint8Array, header: SegmentHeader, kind: number): ByteReader {
  const b = header.blocks.find((x) => x.kind === kind)!;
  return new ByteReader(body, b.offset, b.offset + b.length);
}

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
      const all = decodeFrame(body.subarray(r.pos, r.end), decodeOpts);
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
  const metas = guard(place, 'metadata', () => decodeJsonColumn(body, header, BLOCK_KINDS.metadata, i0, i1, decodeOpts));
  const exts = header.blocks.some((b) => b.kind === BLOCK_KINDS.message) ? guard(place, 'message', () => decodeJsonColumn(body, header, BLOCK_KINDS.message, i0, i1, decodeOpts)) : null;
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
function decodeJsonColumn(body: Uint8Array, header: SegmentHeader, kind: number, i0: number, i1: number, decodeOpts: { maxDecodedBytes?: number }): Array<string | undefined> {
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
  const all = decodeFrame(body.subarray(r.pos, r.end), decodeOpts);
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

function guard<T>(place: SegmentPlace, block: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isStrataError(err, 'STRATA_ERR_CODEC_UNKNOWN')) throw new StrataError('STRATA_ERR_CODEC_UNKNOWN', `${place.file}: segment ${place.segment}, block ${block}: ${err.message}`, { cause: err, details: { ...place, block } });
    if (isStrataError(err, 'STRATA_ERR_CODEC_TOO_LARGE')) throw err;
    if (err instanceof FormatViolation || err instanceof SyntaxError || err instanceof TypeError || isStrataError(err)) throw corrupt(place, block, (err as Error).message, err);
    throw err;
  }
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
