import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { isStrataError } from '../errors.js';
import { FILE_HEADER_BYTES, FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD, corrupt, decodeFileHeader, decodePayload, frameCrc } from './format.js';

/** One verified frame: its byte offset in the file and its payload (valid until the next batch is read). */
export interface RawFrame {
  offset: number;
  payload: Buffer;
}

/**
 * A damaged stretch of a journal file: `bytes` bytes from `offset` that are not a valid frame.
 * `recovered` is true when the damage was only in the frame's length field and the frame itself
 * was recovered (its payload checks against its CRC once the length is corrected).
 */
export interface JournalDamage {
  offset: number;
  bytes: number;
  why: string;
  recovered: boolean;
}

export interface ScanResult {
  /** Offset just past the last valid frame or damaged stretch: everything after it is a torn tail. */
  validEnd: number;
  size: number;
  /** An incomplete final write at the end of the last file (not cut by the scanner itself). */
  torn: { offset: number; bytes: number } | null;
  /** False when the whole file is a torn creation (shorter than, or a zeroed, header). */
  headerOk: boolean;
  /** Damage: intact frames around it were still yielded. Empty for a healthy file. */
  damage: JournalDamage[];
}

export interface ScanOptions {
  /** The newest file of its directory, the only one that may end in a torn write. */
  isLast: boolean;
  /** Where frames start (a checkpoint offset, or the end of the header). */
  from?: number;
  /**
   * Reading a journal that a live process is writing: the file may grow or shrink (a refused
   * write is truncated away) while it is read. A shrink then ends the file quietly instead of
   * being reported as damage.
   */
  live?: boolean;
}

const CHUNK_BYTES = 1024 * 1024;

/**
 * Reads one journal file front to back, verifying every frame, and yields the frames in
 * batches (one batch per chunk read, so replay does not pay an await per record).
 *
 * Damage is never silently cut, and never stops the scan (docs/format.md, "Journal"):
 * - A torn tail is only an incomplete final write in the last file: the file ends inside a
 *   frame header, or before the frame's declared length, or the rest of the file is zeros (a
 *   size extended by the crash before its data reached the disk) — and no valid frame follows.
 *   It was never acknowledged under `durability: 'fsync'` (its fsync had not returned).
 * - Anything else that fails is damage, reported in `result.damage`, and the scan resyncs on
 *   the next valid frame, so every intact record is still yielded (see `recover`).
 */
export class FileScanner {
  result: ScanResult | null = null;
  readonly isLast: boolean;
  readonly from: number;
  readonly live: boolean;

  constructor(
    readonly path: string,
    readonly expectedSeq: number,
    options: ScanOptions,
  ) {
    this.isLast = options.isLast;
    this.from = Math.max(options.from ?? FILE_HEADER_BYTES, FILE_HEADER_BYTES);
    this.live = options.live ?? false;
  }

  async *frames(): AsyncGenerator<RawFrame[]> {
    const fh = await open(this.path, 'r');
    try {
      yield* this.read(fh);
    } finally {
      await fh.close();
    }
  }

  private async *read(fh: FileHandle): AsyncGenerator<RawFrame[]> {
    const size = (await fh.stat()).size;
    const header = Buffer.alloc(FILE_HEADER_BYTES);
    const { bytesRead } = await fh.read(header, 0, FILE_HEADER_BYTES, 0);
    const damage: JournalDamage[] = [];
    if (this.isLast && (bytesRead < FILE_HEADER_BYTES || header.every((b) => b === 0))) {
      // Crash while the file was being created: it never held a record.
      this.result = { validEnd: 0, size, torn: size > 0 ? { offset: 0, bytes: size } : null, headerOk: false, damage };
      return;
    }
    try {
      const seq = decodeFileHeader(header.subarray(0, bytesRead), this.path);
      if (seq !== this.expectedSeq) throw corrupt(this.path, 8, `header names sequence ${seq}, the file name says ${this.expectedSeq}`);
    } catch (err) {
      // A header that checks but names another sequence is a misplaced file, not bit rot: refuse.
      // A header that fails its CRC is damage; the frames after it are still checked one by one.
      if (!isStrataError(err, 'STRATA_ERR_JOURNAL_CORRUPT') || err.message.includes('header names')) throw err;
      damage.push({ offset: 0, bytes: FILE_HEADER_BYTES, why: err.message.replace(`${this.path} at byte 0: `, ''), recovered: false });
    }

    let buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let bufStart = this.from; // file offset of buf[0]
    let bufLen = 0;
    let pos = this.from;
    while (true) {
      // Parse every complete, valid frame in the buffer; stop at the first doubt.
      const batch: RawFrame[] = [];
      let doubt = false;
      while (pos < size) {
        const at = pos - bufStart;
        if (pos + FRAME_HEADER_BYTES > size) {
          doubt = true;
          break;
        }
        if (at + FRAME_HEADER_BYTES > bufLen) break;
        const length = buf.readUInt32LE(at);
        if (length === 0 || length > MAX_FRAME_PAYLOAD || pos + FRAME_HEADER_BYTES + length > size) {
          doubt = true;
          break;
        }
        if (at + FRAME_HEADER_BYTES + length > bufLen) break;
        const payload = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
        if (frameCrc(buf.subarray(at, at + 4), payload) !== buf.readUInt32LE(at + 4)) {
          doubt = true;
          break;
        }
        batch.push({ offset: pos, payload });
        pos += FRAME_HEADER_BYTES + length;
      }
      if (batch.length > 0) yield batch;
      if (doubt) {
        // Rare path: the rest of the file is read at once and resynced in memory.
        const rest = Buffer.allocUnsafe(size - pos);
        const { bytesRead: got } = await fh.read(rest, 0, rest.length, pos);
        const r = this.recover(got === rest.length ? rest : rest.subarray(0, got), pos);
        if (r.frames.length > 0) yield r.frames;
        damage.push(...r.damage);
        this.result = { validEnd: r.torn ? r.torn.offset : pos + got, size, torn: r.torn, headerOk: true, damage };
        return;
      }
      if (pos >= size) {
        this.result = { validEnd: pos, size, torn: null, headerOk: true, damage };
        return;
      }
      // Refill: keep the unparsed rest at the front, grow when one frame is larger than the buffer.
      const keep = bufLen - (pos - bufStart);
      const need = keep >= FRAME_HEADER_BYTES ? FRAME_HEADER_BYTES + buf.readUInt32LE(pos - bufStart) : FRAME_HEADER_BYTES;
      if (need > buf.length) {
        const bigger = Buffer.allocUnsafe(need);
        buf.copy(bigger, 0, pos - bufStart, bufLen);
        buf = bigger;
      } else if (keep > 0) {
        buf.copy(buf, 0, pos - bufStart, bufLen); // memmove: regions may overlap
      }
      bufStart = pos;
      bufLen = keep;
      const want = Math.min(buf.length - bufLen, size - (bufStart + bufLen));
      const { bytesRead: got } = await fh.read(buf, bufLen, want, bufStart + bufLen);
      if (got === 0) {
        // Only a live writer truncating a refused write shrinks a journal file.
        if (this.live) {
          this.result = { validEnd: pos, size, torn: null, headerOk: true, damage };
          return;
        }
        throw corrupt(this.path, bufStart + bufLen, 'file shrank while being read');
      }
      bufLen += got;
    }
  }

  /**
   * Classifies and resyncs the bytes after the last valid frame (`rest` starts at file offset
   * `base`). Returns every intact frame found in it, the damage, and a torn tail if there is one.
   *
   * How a frame that fails is skipped:
   * 1. Its length field is trusted when the frame it declares ends exactly where a valid frame
   *    (or the end of the file, or a zeroed tail) starts: only its payload or CRC is damaged, and
   *    exactly that frame is lost. This needs no search, so a user's message that happens to
   *    contain bytes shaped like a frame can never be mistaken for a record here.
   * 2. Otherwise the length field itself may be damaged. Candidate frame starts are searched byte
   *    by byte; if the damaged frame, with its length corrected to end at a candidate (or at the
   *    end of the file), checks against its own CRC, the frame is recovered whole (the CRC covers
   *    the length bytes, so only the length was wrong). Otherwise the scan resumes at the first
   *    candidate, a valid frame whose payload also decodes.
   * Residual case (documented in docs/format.md): a flipped length field together with damage in
   * the same frame's payload, when that payload holds user bytes forming a well-formed frame with
   * a matching CRC32C: that embedded frame would be taken as a record.
   */
  private recover(rest: Buffer, base: number): { frames: RawFrame[]; damage: JournalDamage[]; torn: ScanResult['torn'] } {
    const frames: RawFrame[] = [];
    const damage: JournalDamage[] = [];
    const end = rest.length;
    let p = 0;
    while (p < end) {
      const len = validFrameAt(rest, p);
      if (len > 0) {
        frames.push({ offset: base + p, payload: rest.subarray(p + FRAME_HEADER_BYTES, p + FRAME_HEADER_BYTES + len) });
        p += FRAME_HEADER_BYTES + len;
        continue;
      }
      if (isZero(rest, p)) {
        if (this.isLast) return { frames, damage, torn: { offset: base + p, bytes: end - p } };
        damage.push({ offset: base + p, bytes: end - p, why: 'zeros where a frame should start, in a file that was complete', recovered: false });
        break;
      }
      const declared = end - p >= 4 ? rest.readUInt32LE(p) : 0;
      const declaredEnd = p + FRAME_HEADER_BYTES + declared;
      if (declared > 0 && declared <= MAX_FRAME_PAYLOAD && declaredEnd <= end && (declaredEnd === end || validFrameAt(rest, declaredEnd) > 0 || isZero(rest, declaredEnd))) {
        damage.push({ offset: base + p, bytes: FRAME_HEADER_BYTES + declared, why: 'frame fails its CRC32C', recovered: false });
        p = declaredEnd;
        continue;
      }
      // The length field cannot be trusted: search.
      let first = -1;
      let fixed = -1;
      for (let q = p + 1; q < end; q++) {
        if (first >= 0 && q - p > FRAME_HEADER_BYTES + MAX_FRAME_PAYLOAD) break;
        if (validFrameAt(rest, q) <= 0 || !decodes(rest, q)) continue;
        if (checksWithLength(rest, p, q - p - FRAME_HEADER_BYTES)) {
          fixed = q;
          break;
        }
        if (first < 0) first = q;
      }
      if (fixed < 0 && checksWithLength(rest, p, end - p - FRAME_HEADER_BYTES)) fixed = end;
      if (fixed >= 0) {
        frames.push({ offset: base + p, payload: rest.subarray(p + FRAME_HEADER_BYTES, fixed) });
        damage.push({ offset: base + p, bytes: 4, why: `frame length field is damaged (reads ${declared}, the frame is ${fixed - p - FRAME_HEADER_BYTES} bytes); the record was recovered`, recovered: true });
        p = fixed;
        continue;
      }
      if (first >= 0) {
        damage.push({ offset: base + p, bytes: first - p, why: 'damaged bytes before the next valid frame', recovered: false });
        p = first;
        continue;
      }
      // Nothing valid follows. An incomplete final write (the file ends inside the header or
      // before the declared length) is a torn tail; anything else is damage.
      const incomplete = end - p < FRAME_HEADER_BYTES || (declared > 0 && declared <= MAX_FRAME_PAYLOAD && declaredEnd > end);
      if (this.isLast && incomplete) return { frames, damage, torn: { offset: base + p, bytes: end - p } };
      damage.push({ offset: base + p, bytes: end - p, why: incomplete ? 'file ends inside a frame, in a file that was complete' : 'frame fails its length or CRC32C check', recovered: false });
      break;
    }
    return { frames, damage, torn: null };
  }
}

/** Payload length of a valid frame (bounds + CRC) at `p` of `buf`, or 0. */
function validFrameAt(buf: Buffer, p: number): number {
  if (p + FRAME_HEADER_BYTES > buf.length) return 0;
  const length = buf.readUInt32LE(p);
  if (length === 0 || length > MAX_FRAME_PAYLOAD || p + FRAME_HEADER_BYTES + length > buf.length) return 0;
  const payload = buf.subarray(p + FRAME_HEADER_BYTES, p + FRAME_HEADER_BYTES + length);
  return frameCrc(buf.subarray(p, p + 4), payload) === buf.readUInt32LE(p + 4) ? length : 0;
}

/** A resync candidate must also parse: a CRC match by chance (2^-32 per position) is not enough. */
function decodes(buf: Buffer, p: number): boolean {
  const length = buf.readUInt32LE(p);
  try {
    decodePayload(buf.subarray(p + FRAME_HEADER_BYTES, p + FRAME_HEADER_BYTES + length), '', p);
    return true;
  } catch {
    return false;
  }
}

/** True when the frame at `p`, with `length` in place of its length field, checks against its CRC. */
function checksWithLength(buf: Buffer, p: number, length: number): boolean {
  if (length < 1 || length > MAX_FRAME_PAYLOAD || p + FRAME_HEADER_BYTES + length > buf.length) return false;
  const field = Buffer.alloc(4);
  field.writeUInt32LE(length, 0);
  return frameCrc(field, buf.subarray(p + FRAME_HEADER_BYTES, p + FRAME_HEADER_BYTES + length)) === buf.readUInt32LE(p + 4);
}

function isZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}
