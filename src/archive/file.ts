import { StrataError, isStrataError } from '../errors.js';
import type { ArchivedTurn } from '../types.js';
import type { Summary, TurnRange } from './store.js';
import { BLOCK_NAMES, READ_VERSIONS, RECORD_HEADER_BYTES, RECORD_MAGIC, RECORD_TYPES, crc, encodeRecord, withCrc } from './format.js';
import type { SegmentHeader } from './segment.js';
import { badBlocks, parseSegmentHeader, verifySegmentBlocks } from './segment.js';
import { decodeCreatedAt, decodeLargeFrames, decodeSegment, decodeTurnIds } from './segment-decode.js';
import { getCodec } from '../codec/codec.js';

/*
 * A session file is a sequence of records (docs/format.md). This module parses a whole file into
 * an index — segments with their turn ranges, summaries, metadata, damage — and reads turns from
 * it. It never throws on damage while indexing: damage is recorded, and reads that would touch it
 * throw a coded error, so the rest of the file stays readable.
 */

export interface SessionMeta {
  userId?: string | null;
  /** Highest turn id ever archived; survives deletion of that turn. */
  highWater?: number;
  createdAt?: number;
  /** The session's id, recorded when its file name cannot give it back (src/archive/layout.ts). */
  sessionId?: string;
}

export interface SegmentEntry {
  /** 0-based ordinal among the file's segments (named in error messages). */
  ordinal: number;
  recordOffset: number;
  bodyOffset: number;
  bodyLength: number;
  header: SegmentHeader | null;
  error: StrataError | null;
  /** Decoded turn ids (only for undamaged segments). */
  ids: Uint32Array | null;
  /** Created-at of the segment's first and last turn. */
  firstAt: number | null;
  lastAt: number | null;
}

export interface Damage {
  offset: number;
  kind: 'record-header' | 'meta' | 'segment' | 'summary';
  /** Segment ordinal when kind = segment. */
  segment?: number;
  block?: string;
  code: string;
  message: string;
}

export interface FileIndex {
  file: string;
  size: number;
  /** End of the last complete record; bytes after it are a torn tail. */
  validEnd: number;
  tornBytes: number;
  meta: SessionMeta;
  metaDamaged: boolean;
  segments: SegmentEntry[];
  summaries: Summary[];
  summariesDamaged: boolean;
  damage: Damage[];
  /** A record header is damaged: which turns it held is unknown, so no read can be proven complete. */
  unknownLoss: boolean;
  /** A record of a format version or type this build cannot read. */
  versionError: StrataError | null;
  highWater: number;
  turnCount: number;
  firstTurnAt: number | null;
  lastTurnAt: number | null;
  /** Embedder of the newest segment with vectors. */
  embedderId: string | null;
  dims: number;
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

export function encodeMetaRecord(meta: SessionMeta): Uint8Array {
  return encodeRecord(RECORD_TYPES.meta, withCrc(utf8.encode(JSON.stringify(meta))));
}

export function encodeSummaryRecord(summary: Summary): Uint8Array {
  const s = { fromTurn: summary.fromTurn, toTurn: summary.toTurn, text: summary.text, createdAt: summary.createdAt };
  return encodeRecord(RECORD_TYPES.summary, withCrc(utf8.encode(JSON.stringify(s))));
}

function checkedPayload(body: Uint8Array): Uint8Array | null {
  if (body.length < 4) return null;
  const payload = body.subarray(0, body.length - 4);
  const stored = new DataView(body.buffer, body.byteOffset + payload.length, 4).getUint32(0, true);
  return stored === crc(payload) ? payload : null;
}

function isSummary(v: unknown): v is Summary {
  const s = v as Summary;
  return typeof s === 'object' && s !== null && Number.isSafeInteger(s.fromTurn) && Number.isSafeInteger(s.toTurn) && typeof s.text === 'string' && Number.isFinite(s.createdAt);
}

/** Offset of the next plausible record header (magic + version + valid header CRC) at or after `from`, or -1. */
function resync(bytes: Uint8Array, from: number): number {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = Buffer.from([0x53, 0x54, 0x52, 0x41]);
  let p = from;
  while ((p = buf.indexOf(magic, p)) !== -1) {
    if (p + RECORD_HEADER_BYTES <= bytes.length && validHeader(bytes, p)) return p;
    p++;
  }
  return -1;
}

function validHeader(bytes: Uint8Array, pos: number): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset + pos, RECORD_HEADER_BYTES);
  return view.getUint32(0, true) === RECORD_MAGIC && view.getUint32(12, true) === crc(bytes.subarray(pos, pos + 12));
}

export function indexFile(file: string, bytes: Uint8Array): FileIndex {
  const index: FileIndex = {
    file,
    size: bytes.length,
    validEnd: 0,
    tornBytes: 0,
    meta: {},
    metaDamaged: false,
    segments: [],
    summaries: [],
    summariesDamaged: false,
    damage: [],
    unknownLoss: false,
    versionError: null,
    highWater: 0,
    turnCount: 0,
    firstTurnAt: null,
    lastTurnAt: null,
    embedderId: null,
    dims: 0,
  };
  const summaries = new Map<string, Summary>();
  let pos = 0;
  while (pos < bytes.length) {
    if (bytes.length - pos < RECORD_HEADER_BYTES) break; // torn inside a header
    if (!validHeader(bytes, pos)) {
      const next = resync(bytes, pos + 1);
      if (next === -1 && bytes.subarray(pos).every((b) => b === 0)) break; // zero-filled tail of an interrupted append
      index.unknownLoss = true;
      index.damage.push({ offset: pos, kind: 'record-header', code: 'STRATA_ERR_ARCHIVE_CORRUPT', message: `${file}: record header at offset ${pos} fails its magic or CRC32C check` });
      if (next === -1) {
        pos = bytes.length;
        break;
      }
      pos = next;
      continue;
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset + pos, RECORD_HEADER_BYTES);
    const version = bytes[pos + 4]!;
    const type = bytes[pos + 5]!;
    const bodyLength = view.getUint32(8, true);
    const bodyOffset = pos + RECORD_HEADER_BYTES;
    if (bodyOffset + bodyLength > bytes.length) break; // torn inside a body
    const body = bytes.subarray(bodyOffset, bodyOffset + bodyLength);
    if (!READ_VERSIONS.includes(version) || (type !== RECORD_TYPES.meta && type !== RECORD_TYPES.segment && type !== RECORD_TYPES.summary)) {
      index.versionError ??= new StrataError('STRATA_ERR_ARCHIVE_VERSION', `${file}: record at offset ${pos} has format version ${version}, type ${type}; this build reads versions ${READ_VERSIONS.join(' and ')}, types 1-3`, { details: { file, offset: pos, version, type } });
    } else if (type === RECORD_TYPES.segment) {
      const entry: SegmentEntry = { ordinal: index.segments.length, recordOffset: pos, bodyOffset, bodyLength, header: null, error: null, ids: null, firstAt: null, lastAt: null };
      const place = { file, segment: entry.ordinal };
      try {
        entry.header = parseSegmentHeader(body, place, version);
        verifySegmentBlocks(body, entry.header, place);
        entry.ids = decodeTurnIds(body, entry.header, place);
        const times = decodeCreatedAt(body, entry.header, place);
        entry.firstAt = times[0]!;
        entry.lastAt = times[times.length - 1]!;
      } catch (err) {
        if (!isStrataError(err)) throw err;
        entry.error = err;
        const block = (err.details?.block as string | undefined) ?? 'header';
        if (block === 'header') index.unknownLoss = true;
        index.damage.push({ offset: pos, kind: 'segment', segment: entry.ordinal, block, code: err.code, message: err.message });
      }
      index.segments.push(entry);
    } else {
      const payload = checkedPayload(body);
      let parsed: unknown = undefined;
      try {
        parsed = payload && JSON.parse(utf8d.decode(payload));
      } catch {
        parsed = undefined;
      }
      if (type === RECORD_TYPES.meta) {
        if (parsed && typeof parsed === 'object') Object.assign(index.meta, parsed as SessionMeta);
        else {
          index.metaDamaged = true;
          index.damage.push({ offset: pos, kind: 'meta', code: 'STRATA_ERR_ARCHIVE_CORRUPT', message: `${file}: metadata record at offset ${pos} fails its CRC32C check` });
        }
      } else if (isSummary(parsed)) {
        summaries.set(`${parsed.fromTurn}:${parsed.toTurn}`, parsed);
      } else {
        index.summariesDamaged = true;
        index.damage.push({ offset: pos, kind: 'summary', code: 'STRATA_ERR_ARCHIVE_CORRUPT', message: `${file}: summary record at offset ${pos} fails its CRC32C check` });
      }
    }
    pos = bodyOffset + bodyLength;
  }
  index.validEnd = pos;
  index.tornBytes = bytes.length - index.validEnd;
  index.summaries = [...summaries.values()].sort((a, b) => a.fromTurn - b.fromTurn || a.toTurn - b.toTurn);
  finishIndex(index);
  return index;
}

function finishIndex(index: FileIndex): void {
  let high = index.meta.highWater ?? 0;
  let firstId = Infinity;
  let lastId = 0;
  let disjoint = true;
  let prevLast = 0;
  let count = 0;
  for (const s of index.segments) {
    const h = s.header;
    if (!h || s.error) continue;
    high = Math.max(high, h.lastTurn);
    if (h.firstTurn < firstId) {
      firstId = h.firstTurn;
      index.firstTurnAt = s.firstAt;
    }
    if (h.lastTurn > lastId) {
      lastId = h.lastTurn;
      index.lastTurnAt = s.lastAt;
    }
    if (h.encoding !== 'none') {
      index.embedderId = h.embedderId;
      index.dims = h.dims;
    }
    if (h.firstTurn <= prevLast) disjoint = false;
    prevLast = Math.max(prevLast, h.lastTurn);
    count += h.count;
  }
  if (!disjoint) {
    const seen = new Set<number>();
    for (const s of index.segments) if (s.ids && !s.error) for (const id of s.ids) seen.add(id);
    count = seen.size;
  }
  index.highWater = high;
  index.turnCount = count;
}

/** Throws the coded error a read of `range` must raise, if any part it needs is damaged. */
export function assertReadable(index: FileIndex, range: TurnRange = {}): void {
  if (index.versionError) throw index.versionError;
  if (index.unknownLoss) {
    const d = index.damage.find((x) => x.kind === 'record-header' || x.block === 'header')!;
    throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${d.message} (the turns it held are unknown; run verify)`, { details: { file: index.file, offset: d.offset, segment: d.segment, block: d.block ?? 'record-header' } });
  }
  for (const s of index.segments) {
    if (s.error && overlaps(s, range)) throw s.error;
  }
}

function overlaps(s: SegmentEntry, range: TurnRange): boolean {
  if (!s.header) return true;
  return s.header.lastTurn >= (range.fromTurn ?? 0) && s.header.firstTurn <= (range.toTurn ?? Infinity);
}

/** Segments a read of `range` needs, in file order. */
export function segmentsFor(index: FileIndex, range: TurnRange = {}): SegmentEntry[] {
  return index.segments.filter((s) => s.header && !s.error && overlaps(s, range));
}

/**
 * Reads turns in `range`, merged over segments: ascending by turn id, and when segments overlap
 * (a retried compaction, a merged import) the copy in the earliest segment wins.
 */
export async function readTurns(index: FileIndex, range: TurnRange, body: (s: SegmentEntry) => Promise<Uint8Array>, options: { maxDecodedBytes?: number; withEmbeddings?: boolean } = {}): Promise<ArchivedTurn[]> {
  assertReadable(index, range);
  const parts: ArchivedTurn[][] = [];
  for (const s of segmentsFor(index, range)) {
    const bytes = await body(s);
    // Large columns inflate on node:zlib's thread pool first; the rest decodes here.
    const frames = await decodeLargeFrames(bytes, s.header!, options);
    const decoded = decodeSegment(bytes, s.header!, { file: index.file, segment: s.ordinal }, { ...range, ...options, frames });
    if (decoded.length > 0) parts.push(decoded);
  }
  return mergeRuns(parts);
}

export function mergeRuns(parts: ArchivedTurn[][]): ArchivedTurn[] {
  if (parts.length === 0) return [];
  let sorted = true;
  for (let i = 1; i < parts.length && sorted; i++) sorted = parts[i]![0]!.turnId > parts[i - 1]![parts[i - 1]!.length - 1]!.turnId;
  if (sorted) return parts.length === 1 ? parts[0]! : parts.flat();
  const byId = new Map<number, ArchivedTurn>();
  for (const part of parts) for (const t of part) if (!byId.has(t.turnId)) byId.set(t.turnId, t);
  return [...byId.values()].sort((a, b) => a.turnId - b.turnId);
}

export interface InspectReport {
  size: number;
  validEnd: number;
  tornBytes: number;
  meta: SessionMeta;
  records: Array<{
    offset: number;
    type: 'meta' | 'segment' | 'summary' | 'unknown';
    bytes: number;
    segment?: {
      ordinal: number;
      codec: string;
      codecId: number;
      textLayout: 'turn' | 'block';
      embeddings: string;
      dims: number;
      embedderId: string | null;
      turns: number;
      firstTurn: number;
      lastTurn: number;
      blocks: Array<{ name: string; offset: number; bytes: number; crcOk: boolean }>;
    };
  }>;
  damage: Damage[];
  ok: boolean;
}

/** Structure of an archive file: records, segments, blocks, codecs, sizes and CRC status. Never throws on damage. */
export function inspectBytes(bytes: Uint8Array, file = '<bytes>'): InspectReport {
  const index = indexFile(file, bytes);
  const records: InspectReport['records'] = [];
  let pos = 0;
  while (pos + RECORD_HEADER_BYTES <= bytes.length) {
    if (!validHeader(bytes, pos)) {
      const next = resync(bytes, pos + 1);
      if (next === -1) break;
      pos = next;
      continue;
    }
    const bodyLength = new DataView(bytes.buffer, bytes.byteOffset + pos + 8, 4).getUint32(0, true);
    if (pos + RECORD_HEADER_BYTES + bodyLength > bytes.length) break;
    const type = bytes[pos + 5]!;
    const name = type === RECORD_TYPES.meta ? 'meta' : type === RECORD_TYPES.segment ? 'segment' : type === RECORD_TYPES.summary ? 'summary' : 'unknown';
    const rec: InspectReport['records'][number] = { offset: pos, type: name, bytes: RECORD_HEADER_BYTES + bodyLength };
    const seg = index.segments.find((s) => s.recordOffset === pos);
    if (seg?.header) {
      const h = seg.header;
      const body = bytes.subarray(seg.bodyOffset, seg.bodyOffset + seg.bodyLength);
      const bad = new Set(badBlocks(body, h));
      let codec = `unknown(0x${h.codecId.toString(16)})`;
      try {
        codec = getCodec(h.codecId).name;
      } catch {
        /* reported as unknown */
      }
      rec.segment = {
        ordinal: seg.ordinal,
        codec,
        codecId: h.codecId,
        textLayout: h.flags & 1 ? 'turn' : 'block',
        embeddings: h.encoding,
        dims: h.dims,
        embedderId: h.embedderId,
        turns: h.count,
        firstTurn: h.firstTurn,
        lastTurn: h.lastTurn,
        blocks: h.blocks.map((b) => ({ name: BLOCK_NAMES[b.kind] ?? String(b.kind), offset: b.offset, bytes: b.length, crcOk: !bad.has(BLOCK_NAMES[b.kind] ?? String(b.kind)) })),
      };
    }
    records.push(rec);
    pos += RECORD_HEADER_BYTES + bodyLength;
  }
  return { size: index.size, validEnd: index.validEnd, tornBytes: index.tornBytes, meta: index.meta, records, damage: index.damage, ok: index.damage.length === 0 && !index.versionError };
}

/**
 * The index of an uploaded archive file, checked whole before anything is written: a known
 * version, no damage, no torn tail, and every codec frame decoding (not only block CRCs).
 * `what` names it in errors (`import of <tenant>/<session>`).
 */
export async function checkedImport(what: string, file: Uint8Array, maxDecodedBytes: number): Promise<FileIndex> {
  if (!(file instanceof Uint8Array)) throw new StrataError('STRATA_ERR_VALIDATION', 'file: expected a Uint8Array');
  const index = indexFile(what, file);
  if (index.versionError) throw index.versionError;
  const firstDamage = index.damage[0];
  if (firstDamage) throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', firstDamage.message, { details: { ...firstDamage } });
  if (index.tornBytes > 0) throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${what}: the file ends inside a record (${index.tornBytes} trailing bytes)`);
  await readTurns(index, {}, async (s) => file.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength), { maxDecodedBytes });
  return index;
}
