import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';

export const LOCK_FILE = 'journal.lock';

/** Written into the lock file for people and error messages; never used to decide ownership. */
export interface LockContent {
  pid: number;
  host: string;
  since: number;
}

/**
 * fs-native-extensions ships no types. On Linux `tryLock` is an open-file-description lock
 * (fcntl F_OFD_SETLK over the whole file; flock on macOS): exclusive, held by the open file
 * description, so a second `open()` of the same file — even in this process — cannot take it,
 * and the kernel drops it when the last descriptor closes, including when the process dies.
 */
const fsx = createRequire(import.meta.url)('fs-native-extensions') as {
  tryLock(fd: number, offset?: number, length?: number, opts?: { shared?: boolean }): boolean;
  unlock(fd: number, offset?: number, length?: number): void;
};

/**
 * One process owns a journal directory: two writers appending to the same files would
 * interleave frames and corrupt each other.
 *
 * The lock is an OS file lock on `journal.lock`, held through a descriptor kept open for the
 * life of the journal. Nothing about it depends on pids: a process killed with -9 loses it at
 * once, and a restarted container whose node runs with the same pid as before (PID 1) is not
 * mistaken for the old owner. The file's content (pid, host, since) only names the owner in
 * the STRATA_ERR_JOURNAL_LOCKED message. The file is never deleted: unlinking a lock file lets a
 * third process lock a new inode while a second one still holds the old.
 *
 * Returns the release function (unlock, close). Idempotent.
 */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  // 'a+': create if missing, never truncate before the lock is ours (the owner's content stays readable).
  const fh = await open(path, 'a+', 0o644);
  let locked: boolean;
  try {
    locked = fsx.tryLock(fh.fd);
  } catch (err) {
    await fh.close();
    throw new StrataError('STRATA_ERR_JOURNAL_IO', `could not lock ${path} (${(err as Error).message})`, { cause: err, details: { dir } });
  }
  if (!locked) {
    const owner = await readOwner(fh);
    await fh.close();
    const who = owner === null ? 'another process' : owner.host === hostname() ? `process ${owner.pid} (since ${new Date(owner.since).toISOString()})` : `process ${owner.pid} on host ${owner.host}`;
    throw new StrataError('STRATA_ERR_JOURNAL_LOCKED', `journal directory ${dir} is locked by ${who} (lock file ${path}); give each running instance its own instanceId, or stop the other process`, {
      details: { dir, ...(owner ?? {}) },
    });
  }
  try {
    const mine: LockContent = { pid: process.pid, host: hostname(), since: Date.now() };
    await fh.truncate(0);
    // 'a+' appends whatever the position; the file is empty now, so this is the whole content.
    await fh.write(JSON.stringify(mine));
  } catch {
    // The content is informational; the lock itself is held.
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    try {
      fsx.unlock(fh.fd);
    } finally {
      await fh.close();
    }
  };
}

async function readOwner(fh: FileHandle): Promise<LockContent | null> {
  try {
    const buf = Buffer.alloc(1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const parsed = JSON.parse(buf.toString('utf8', 0, bytesRead)) as Partial<LockContent>;
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') return { pid: parsed.pid, host: parsed.host, since: Number(parsed.since) };
    return null;
  } catch {
    return null;
  }
}

/** The content of a journal directory's lock file (informational), or null. */
export async function readLockOwner(dir: string): Promise<LockContent | null> {
  try {
    const fh = await open(join(dir, LOCK_FILE), 'r');
    try {
      return await readOwner(fh);
    } finally {
      await fh.close();
    }
  } catch {
    return null;
  }
}
