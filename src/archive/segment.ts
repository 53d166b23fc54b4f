import { StrataError, isStrataError } from '../errors.js';
import type { EmbeddingEncoding } from './format.js';
import { BLOCK_KINDS, BLOCK_NAMES, ByteReader, FOOTER_ENTRY_BYTES, FORMAT_VERSION, FormatViolation, crc } from './format.js';

/*
 * One segment = the body of a segment record: header, column blocks, footer. See docs/format.md.
 * This module parses and checks the header and the footer and gives access to the blocks;
 * segment-encode.ts writes a segment, segment-decode.ts reads its columns. All of it is pure
 * (bytes in memory); the file layer (file.ts) frames segments as records.
 */

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
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function corrupt(place: SegmentPlace, block: string, reason: string, cause?: unknown): StrataError {
  return new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${place.file}: segment ${place.segment}, block ${block}: ${reason}`, { cause, details: { file: place.file, segment: place.segment, block } });
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

/** A reader over one block of the segment (the block must exist: verifySegmentBlocks checked). */
export function blockReader(body: Uint8Array, header: SegmentHeader, kind: number): ByteReader {
  const b = header.blocks.find((x) => x.kind === kind)!;
  return new ByteReader(body, b.offset, b.offset + b.length);
}

/** Runs a block's decoder; a malformed block becomes ARCHIVE_CORRUPT naming the block, an unknown codec CODEC_UNKNOWN. */
export function guard<T>(place: SegmentPlace, block: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isStrataError(err, 'STRATA_ERR_CODEC_UNKNOWN')) throw new StrataError('STRATA_ERR_CODEC_UNKNOWN', `${place.file}: segment ${place.segment}, block ${block}: ${err.message}`, { cause: err, details: { ...place, block } });
    if (isStrataError(err, 'STRATA_ERR_CODEC_TOO_LARGE')) throw err;
    if (err instanceof FormatViolation || err instanceof SyntaxError || err instanceof TypeError || isStrataError(err)) throw corrupt(place, block, (err as Error).message, err);
    throw err;
  }
}

