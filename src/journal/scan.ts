import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { FILE_HEADER_BYTES, FRAME_HEADER_BYTES, MAX_FRAME_PAYLOAD, corrupt, decodeFileHeader, frameCrc } from './format.js';

/** One verified frame: its byte offset in the file and its payload (valid until the next batch is read). */
export interface RawFrame {
  offset: number;
  payload: Buffer;
}

export interface ScanResult {
  /** Offset just past the last valid frame: where a writer may continue. */
  validEnd: number;
  size: number;
  /** A torn tail that was found at the end of the last file (not yet cut off by the scanner). */
  torn: { offset: number; bytes: number } | null;
  /** False when the whole file is a torn creation (shorter than, or a zeroed, header). */
  headerOk: boolean;
}

const CHUNK_BYTES = 1024 * 1024;

/**
 * Reads one journal file front to back, verifying every frame, and yields the frames in
 * batches (one batch per chunk read, so replay does not pay an await per record).
 *
 * Where a frame fails its bounds or CRC check:
 * - in any file but the last, the file was complete (fsynced before the next one was created),
 *   so it is corruption: STRATA_ERR_JOURNAL_CORRUPT with file and offset;
 * - in the last file it is a torn tail only if no valid frame follows anywhere after it. If a
 *   valid frame follows, the damage is in the middle and cutting there would drop records that
 *   were acknowledged: it is corruption, not a torn write.
 */
export class FileScanner {
  result: ScanResult | null = null;

  constructor(
    readonly path: string,
    readonly expectedSeq: number,
    readonly isLast: boolean,
    readonly from = FILE_HEADER_BYTES,
  ) {}

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
    if (this.isLast && (bytesRead < FILE_HEADER_BYTES || header.every((b) => b === 0))) {
      // Crash while the file was being created: it never held a record.
      this.result = { validEnd: 0, size, torn: size > 0 ? { offset: 0, bytes: size } : null, headerOk: false };
      return;
    }
    const seq = decodeFileHeader(header.subarray(0, bytesRead), this.path);
    if (seq !== this.expectedSeq) throw corrupt(this.path, 8, `header names sequence ${seq}, the file name says ${this.expectedSeq}`);

    let buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let bufStart = this.from; // file offset of buf[0]
    let bufLen = 0;
    let pos = this.from;
    while (true) {
      // Parse every complete frame in the buffer.
      const batch: RawFrame[] = [];
      let bad: string | null = null;
      while (true) {
        const at = pos - bufStart;
        if (pos === size) break;
        if (pos + FRAME_HEADER_BYTES > size) {
          bad = 'frame header runs past the end of the file';
          break;
        }
        if (at + FRAME_HEADER_BYTES > bufLen) break;
        const length = buf.readUInt32LE(at);
        if (length === 0 || length > MAX_FRAME_PAYLOAD || pos + FRAME_HEADER_BYTES + length > size) {
          bad = `frame length ${length} is out of bounds`;
          break;
        }
        if (at + FRAME_HEADER_BYTES + length > bufLen) break;
        const payload = buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
        if (frameCrc(buf.subarray(at, at + 4), payload) !== buf.readUInt32LE(at + 4)) {
          bad = 'frame fails its CRC32C';
          break;
        }
        batch.push({ offset: pos, payload });
        pos += FRAME_HEADER_BYTES + length;
      }
      if (batch.length > 0) yield batch;
      if (bad !== null) {
        this.result = { validEnd: pos, size, torn: await this.classify(fh, pos, size, bad), headerOk: true };
        return;
      }
      if (pos === size) {
        this.result = { validEnd: pos, size, torn: null, headerOk: true };
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
      if (got === 0) throw corrupt(this.path, bufStart + bufLen, 'file shrank while being read');
      bufLen += got;
    }
  }

  private async classify(fh: FileHandle, pos: number, size: number, why: string): Promise<{ offset: number; bytes: number }> {
    if (!this.isLast) throw corrupt(this.path, pos, why);
    const rest = Buffer.allocUnsafe(size - pos);
    await fh.read(rest, 0, rest.length, pos);
    for (let p = 1; p + FRAME_HEADER_BYTES < rest.length; p++) {
      const length = rest.readUInt32LE(p);
      if (length === 0 || length > rest.length - p - FRAME_HEADER_BYTES) continue;
      const payload = rest.subarray(p + FRAME_HEADER_BYTES, p + FRAME_HEADER_BYTES + length);
      if (frameCrc(rest.subarray(p, p + 4), payload) === rest.readUInt32LE(p + 4)) {
        throw corrupt(this.path, pos, `${why}, and a valid record follows at byte ${pos + p}: damage in the middle of the journal, not a torn write`);
      }
    }
    return { offset: pos, bytes: size - pos };
  }
}
