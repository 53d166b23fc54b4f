import { mkdir, open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { StrataError } from '../errors.js';
import { atomicWrite, ioError } from './io.js';

/**
 * The control file of a session's archive (`<session file>.ctl`): the one place where writers
 * of that session meet, whichever process they run in.
 *
 * - **Commit lock.** Every change of the session's archive file (segment append, rewrite,
 *   deletion) happens while holding an OS lock (flock) on the session's lock file
 *   (`<session file>.lck`, empty, never replaced), so a rewrite that read the file can never
 *   rename its result over a segment appended meanwhile. The kernel drops the lock when its
 *   process dies; a paused process keeps it, and writers wait for it with a bounded retry
 *   instead of blocking a libuv thread.
 * - **Fencing.** The highest lease fencing number that committed. A commit carrying a lower
 *   number comes from a holder whose lease expired (a paused process): it is refused with
 *   STRATA_ERR_FENCED and changes nothing (docs/consistency.md).
 * - **Deletion floor.** Turn ids at or below `deletedUpTo` belong to a deleted session: they are
 *   never read, listed or archived again, whoever still holds them in a journal.
 *
 * Content of `<session file>.ctl`: JSON `{"fence": n, "deletedUpTo": n, "keys": {…}}`, replaced
 * atomically (temp file, rename; with fsyncs of the file and the directory once it holds a floor
 * or keys) under the lock, so a crash, a
 * reader or a full disk sees the old state or the new one, never a torn mix: a durable floor is
 * never lost. The lock lives in its own file because a rename gives the state a new inode, and
 * a lock on the old inode would no longer exclude a process that opened the new one.
 */
export interface ControlState {
  fence: number;
  deletedUpTo: number;
  /**
   * Client idempotency keys of archived turns still inside their window: entry → [turn id,
   * createdAt, message hash]. A re-seed after a loss of the hot tier registers them again, so a
   * late retry of an archived message is still answered with its id.
   */
  keys?: Record<string, [number, number, string]>;
}

// fs-native-extensions ships no types: the two calls used here, typed.
const fsx = createRequire(import.meta.url)('fs-native-extensions') as { tryLock(fd: number): boolean; unlock(fd: number): void };

export const CONTROL_EXTENSION = '.ctl';
export const LOCK_EXTENSION = '.lck';
const EMPTY: ControlState = Object.freeze({ fence: 0, deletedUpTo: 0 });
const LOCK_RETRY_MS = 5;

export function controlPath(sessionPath: string): string {
  return sessionPath + CONTROL_EXTENSION;
}

/** The file the commit lock is taken on: created once, never written or replaced, so every process locks the same inode. */
export function lockPath(sessionPath: string): string {
  return sessionPath + LOCK_EXTENSION;
}

function parse(text: string): ControlState {
  if (text.length === 0) return { ...EMPTY };
  try {
    const v = JSON.parse(text) as Partial<ControlState>;
    const keys = v.keys !== null && typeof v.keys === 'object' ? v.keys : undefined;
    return { fence: Number(v.fence) || 0, deletedUpTo: Number(v.deletedUpTo) || 0, ...(keys ? { keys } : {}) };
  } catch {
    // The state is replaced by rename, never written in place, so a torn JSON can only be a
    // file left by an earlier version's in-place write; it is read as no fence, no floor.
    return { ...EMPTY };
  }
}

/** The control state without locking (readers). */
export async function readControl(sessionPath: string): Promise<ControlState> {
  try {
    return parse(await readFile(controlPath(sessionPath), 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY };
    throw ioError(err, 'reading', controlPath(sessionPath));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function lockFile(fh: FileHandle, path: string, waitMs: number): Promise<void> {
  const started = performance.now();
  while (!fsx.tryLock(fh.fd)) {
    if (performance.now() - started > waitMs) {
      throw new StrataError('STRATA_ERR_LEASE_BUSY', `the archive of ${path} is being written by another process (waited ${waitMs} ms for its commit lock)`);
    }
    await sleep(LOCK_RETRY_MS);
  }
}

/**
 * Runs `fn` holding the session's commit lock. `fence` (null = unfenced, single process) is
 * compared with the highest committed one first; `fn` returns the result and the state to
 * store (null: unchanged).
 */
export async function withCommit<T>(
  sessionPath: string,
  fence: number | null,
  waitMs: number,
  fn: (state: ControlState, save: (next: ControlState) => Promise<void>) => Promise<{ result: T; next?: ControlState | null }>,
): Promise<T> {
  const path = controlPath(sessionPath);
  const lock = lockPath(sessionPath);
  await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
    throw ioError(err, 'creating the directory of', path);
  });
  const fh = await open(lock, 'a+').catch((err: unknown) => {
    throw ioError(err, 'opening', lock);
  });
  try {
    await lockFile(fh, path, waitMs);
    const state = await readControl(sessionPath);
    if (fence !== null && fence < state.fence) {
      throw new StrataError('STRATA_ERR_FENCED', `a commit to ${sessionPath} carries fencing number ${fence}, below ${state.fence} already committed: its lease expired and another holder took over`, {
        details: { fence, committed: state.fence },
      });
    }
    let stored = state;
    const save = async (next: ControlState): Promise<void> => {
      const keys = next.keys ?? stored.keys;
      const target: ControlState = { fence: Math.max(stored.fence, fence ?? 0, next.fence), deletedUpTo: Math.max(stored.deletedUpTo, next.deletedUpTo), ...(keys && Object.keys(keys).length > 0 ? { keys } : {}) };
      const keysChanged = next.keys !== undefined && next.keys !== stored.keys;
      if (target.fence === stored.fence && target.deletedUpTo === stored.deletedUpTo && !keysChanged) return;
      // A new file renamed over the old one: a reader, a crash or a full disk sees the old
      // state or the new one, never a torn mix (the lock is on the separate lock file).
      // Fsynced once it holds a floor or keys (an acknowledged deletion, and the idempotency of
      // archived turns, must survive a power loss); a fencing number alone is not: losing it
      // needs a power loss and a paused stale holder at once, and the hot tier's lease check
      // still guards the trim.
      const durable = target.deletedUpTo > 0 || Object.keys(target.keys ?? {}).length > 0;
      await atomicWrite(path, Buffer.from(JSON.stringify(target), 'utf8'), undefined, { durable });
      stored = target;
    };
    const { result, next } = await fn(state, save);
    await save(next ?? stored);
    return result;
  } finally {
    try {
      fsx.unlock(fh.fd);
    } catch {
      // closing the descriptor releases the lock as well
    }
    await fh.close();
  }
}
