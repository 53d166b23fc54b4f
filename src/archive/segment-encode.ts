import type { Codec } from '../codec/codec.js';
import { concat, encodeFrame, encodeFrameAsync } from '../codec/codec.js';
import { rawCodec } from '../codec/zlib.js';
import { StrataError } from '../errors.js';
import { messageExtension, messageText } from '../message.js';
import type { ArchivedTurn } from '../types.js';
import type { EmbeddingEncoding } from './format.js';
import { BLOCK_KINDS, ByteWriter, EMBEDDING_ENCODINGS, ROLE_CODES, SEGMENT_FLAGS, crc } from './format.js';
import type { BlockEntry } from './segment.js';
import { quantizeInt8, toHalf } from './vectors.js';

/*
 * Writes one segment (docs/format.md): the column blocks of a batch of turns, the header before
 * them and the footer after. Pure: the file layer frames the bytes as a record and appends it.
 */

export type TextLayout = 'turn' | 'block';

export interface SegmentEncodeOptions {
  codec: Codec;
  layout: TextLayout;
  encoding: EmbeddingEncoding;
  embedderId: string | null;
}

const utf8 = new TextEncoder();

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

/** One segment's bytes; compression runs on this thread. */
export function encodeSegment(turns: readonly ArchivedTurn[], options: SegmentEncodeOptions): Uint8Array {
  const plan = planSegment(turns, options);
  return plan.assemble(plan.payloads.map((p) => encodeFrame(p.codec, p.bytes)));
}

/**
 * The same bytes as `encodeSegment`, with the compression of its text, metadata and message
 * blocks off this thread where the codec can (`compressAsync`: brotli on node:zlib's pool), so
 * compaction does not block the event loop for the milliseconds a large segment takes.
 */
export async function encodeSegmentAsync(turns: readonly ArchivedTurn[], options: SegmentEncodeOptions): Promise<Uint8Array> {
  const plan = planSegment(turns, options);
  return plan.assemble(await Promise.all(plan.payloads.map((p) => encodeFrameAsync(p.codec, p.bytes))));
}

/** The payloads a segment compresses (in block order), and how the segment is built from their frames. */
interface SegmentPlan {
  payloads: Array<{ codec: Codec; bytes: Uint8Array }>;
  assemble(frames: readonly Uint8Array[]): Uint8Array;
}

function planSegment(turns: readonly ArchivedTurn[], options: SegmentEncodeOptions): SegmentPlan {
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

  const payloads: SegmentPlan['payloads'] = [];
  const texts = turns.map((t) => utf8.encode(messageText(t)));
  if (options.layout === 'turn') for (const b of texts) payloads.push({ codec: options.codec, bytes: b });
  else payloads.push({ codec: options.codec, bytes: concat(texts) });
  const metas = turns.map((t) => (t.metadata === undefined ? new Uint8Array(0) : utf8.encode(JSON.stringify(t.metadata))));
  const allMeta = concat(metas);
  // Tiny metadata compresses to more than it weighs; 64 bytes is about where deflate starts paying.
  if (allMeta.length > 0) payloads.push({ codec: allMeta.length < 64 ? rawCodec : options.codec, bytes: allMeta });
  // Format v2: the message extension (parts, tool calls, tool call id, name) of each turn, laid
  // out like metadata; absent when every turn is plain text.
  const exts = turns.map((t) => {
    const ext = messageExtension(t);
    return ext === undefined ? new Uint8Array(0) : utf8.encode(ext);
  });
  const allExt = concat(exts);
  if (allExt.length > 0) payloads.push({ codec: allExt.length < 64 ? rawCodec : options.codec, bytes: allExt });

  const assemble = (frames: readonly Uint8Array[]): Uint8Array => {
    let next = 0;
    const text = new ByteWriter();
    if (options.layout === 'turn') {
      const perTurn = frames.slice(0, n);
      next = n;
      for (const f of perTurn) text.varint(f.length);
      for (const f of perTurn) text.bytes(f);
    } else {
      for (const b of texts) text.varint(b.length);
      text.bytes(frames[next++]!);
    }
    const meta = new ByteWriter();
    for (const m of metas) meta.varint(m.length);
    if (allMeta.length > 0) meta.bytes(frames[next++]!);
    const blocksOut: Array<[number, Uint8Array]> = [...blocks, [BLOCK_KINDS.text, text.finish()], [BLOCK_KINDS.metadata, meta.finish()]];
    if (allExt.length > 0) {
      const ext = new ByteWriter();
      for (const e of exts) ext.varint(e.length);
      ext.bytes(frames[next++]!);
      blocksOut.push([BLOCK_KINDS.message, ext.finish()]);
    }
    if (embeddings) blocksOut.push([BLOCK_KINDS.embeddings, embeddings]);
    return frameSegment(blocksOut, header);
  };

  let embeddings: Uint8Array | null = null;
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
    embeddings = emb.finish();
  }

  const embedder = options.embedderId !== null && encoding !== 'none' ? utf8.encode(options.embedderId) : new Uint8Array(0);
  if (embedder.length > 255) throw new StrataError('STRATA_ERR_VALIDATION', 'embedder id is longer than 255 UTF-8 bytes');
  const header = { codecId: options.codec.id, flags: options.layout === 'turn' ? SEGMENT_FLAGS.textPerTurn : 0, encoding: EMBEDDING_ENCODINGS[encoding], dims, n, first: turns[0]!.turnId, last: turns[n - 1]!.turnId, embedder };
  return { payloads, assemble };
}

interface SegmentHeader {
  codecId: number;
  flags: number;
  encoding: number;
  dims: number;
  n: number;
  first: number;
  last: number;
  embedder: Uint8Array;
}

/** Header, blocks and footer (docs/format.md, "Segment"). */
function frameSegment(blocks: ReadonlyArray<[number, Uint8Array]>, h: SegmentHeader): Uint8Array {
  const out = new ByteWriter();
  out.u8(h.codecId);
  out.u8(h.flags);
  out.u8(h.encoding);
  out.u16(h.dims);
  out.u32(h.n);
  out.u32(h.first);
  out.u32(h.last);
  out.u8(blocks.length);
  out.u8(h.embedder.length);
  out.bytes(h.embedder);
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
