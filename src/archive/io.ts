import { open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { StrataError, isStrataError } from '../errors.js';

/**
 * The steps of the archive's durable writes. Tests inject faults by throwing from a hook at one
 * step, which leaves the files exactly as a crash at that point would (plus, at most, a stray
 * temp file, which readers ignore).
 */
export type WriteStep = 'write-temp' | 'fsync-temp' | 'rename' | 'fsync-dir' | 'append' | 'fsync-append';
export type WriteHook = (step: WriteStep, file: string) => void | Promise<void>;

let tempCounter = 0;

/** ENOSPC or EDQUOT: the filesystem (or the user's quota) has no room for the write. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** A failed file operation as a coded error: STRATA_ERR_STORAGE_FULL (503) for a full disk, STRATA_ERR_ARCHIVE_IO otherwise. */
export function ioError(err: unknown, action: string, file: string): StrataError {
  if (isStrataError(err)) return err;
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
  if (isDiskFull(err)) {
    return new StrataError('STRATA_ERR_STORAGE_FULL', `${action} ${file} failed: the disk is full (${code}); nothing of this write was committed, it succeeds again once space is freed`, { cause: err, details: { file, errno: code } });
  }
  return new StrataError('STRATA_ERR_ARCHIVE_IO', `${action} ${file} failed (${code}): ${(err as Error).message}`, { cause: err, details: { file, errno: code } });
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Temp files are dot-prefixed: ids never start with '.', so they can never be mistaken for a session. */
export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

/**
 * Replaces `file` with `bytes` atomically: temp file in the same directory, fsync, rename, fsync
 * the directory. `durable: false` skips both fsyncs: readers and a killed process still see the
 * old file or the new one, only a power loss may not.
 */
export async function atomicWrite(file: string, bytes: Uint8Array, hook?: WriteHook, options: { durable?: boolean } = {}): Promise<void> {
  const durable = options.durable ?? true;
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}-${++tempCounter}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await hook?.('write-temp', tmp);
      await writeAll(fh, bytes, 0);
      await hook?.('fsync-temp', tmp);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await hook?.('rename', file);
    await rename(tmp, file);
    renamed = true;
    await hook?.('fsync-dir', dir);
    if (durable) await fsyncDir(dir);
  } catch (err) {
    if (!renamed) await unlink(tmp).catch(() => undefined);
    throw ioError(err, 'atomic write of', file);
  }
}

export async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

export async function readAt(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}
