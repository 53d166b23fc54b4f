import { hostname } from 'node:os';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';

export const LOCK_FILE = 'journal.lock';

interface LockContent {
  pid: number;
  host: string;
  since: number;
}

/** True when `pid` names a live process on this host (EPERM: alive but owned by someone else). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One process owns a journal directory: two writers appending to the same files would
 * interleave frames and corrupt each other. The lock file holds the owner's pid and host.
 *
 * Created with 'wx' (fails if it exists). An existing lock whose pid is alive on this host —
 * including this very process, so a second `Journal.open` in one process fails too — is
 * STRATA_ERR_JOURNAL_LOCKED. A lock from a dead pid is stale (the owner was killed) and is taken
 * over. A lock written on another host cannot be checked for liveness and is never taken over.
 */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  const mine: LockContent = { pid: process.pid, host: hostname(), since: Date.now() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx');
      try {
        await fh.writeFile(JSON.stringify(mine));
        await fh.sync();
      } finally {
        await fh.close();
      }
      return async () => {
        // Only remove the lock if it is still ours.
        const current = await readLock(path);
        if (current?.pid === mine.pid && current.host === mine.host) await unlink(path).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await readLock(path);
    if (owner !== null && (owner.host !== mine.host || isProcessAlive(owner.pid))) {
      const where = owner.host === mine.host ? `process ${owner.pid}` : `process ${owner.pid} on host ${owner.host}`;
      throw new StrataError('STRATA_ERR_JOURNAL_LOCKED', `journal directory ${dir} is owned by ${where} (lock file ${path}); give each running instance its own instanceId, or stop the other process`, {
        details: { dir, pid: owner.pid, host: owner.host },
      });
    }
    if (owner === null && (await isFresh(path))) {
      throw new StrataError('STRATA_ERR_JOURNAL_LOCKED', `journal directory ${dir} is being locked by another process right now (lock file ${path})`, { details: { dir } });
    }
    // Stale (dead owner) or unreadable (crash while the lock was being written): move it aside
    // atomically, then retry the exclusive create. If another process took it over meanwhile,
    // the retry sees its live pid.
    await rename(path, `${path}.stale-${process.pid}`).then(
      () => unlink(`${path}.stale-${process.pid}`),
      (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      },
    );
  }
  throw new StrataError('STRATA_ERR_JOURNAL_LOCKED', `could not take the lock ${path}: it keeps changing owner`, { details: { dir } });
}

async function readLock(path: string): Promise<LockContent | null> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockContent>;
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') return { pid: parsed.pid, host: parsed.host, since: Number(parsed.since) };
    return null;
  } catch {
    return null;
  }
}

/** An unreadable lock younger than this is another process between its create and its write. */
const UNREADABLE_LOCK_GRACE_MS = 5000;

async function isFresh(path: string): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs < UNREADABLE_LOCK_GRACE_MS;
  } catch {
    return false;
  }
}
