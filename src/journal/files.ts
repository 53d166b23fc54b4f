import { copyFile, open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeCheckpoint } from './format.js';
import type { Lsn } from './types.js';

/** Directory layout shared by the writer, replay, `strata verify` and lock-free readers. */
export const CHECKPOINT_FILE = 'checkpoint';
export const WAL_PATTERN = /^(\d{12})\.wal$/;
/** Where `Journal.open` and `strata verify --repair` keep a copy of a damaged file before working around it. */
export const CORRUPT_SUFFIX = '.corrupt-';

export function walFileName(seq: number): string {
  return `${String(seq).padStart(12, '0')}.wal`;
}

/** Sequence numbers of the journal files in `dir`, ascending. A missing directory has none. */
export async function listWalFiles(dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const seqs: number[] = [];
  for (const name of names) {
    const m = WAL_PATTERN.exec(name);
    if (m) seqs.push(Number(m[1]));
  }
  return seqs.sort((a, b) => a - b);
}

/** The durable checkpoint of `dir`, or {0, 0} when none was written. A damaged one throws STRATA_ERR_JOURNAL_CORRUPT. */
export async function readCheckpoint(dir: string): Promise<Lsn> {
  const path = join(dir, CHECKPOINT_FILE);
  try {
    return decodeCheckpoint(await readFile(path), path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { file: 0, offset: 0 };
    throw err;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Copies a damaged journal file to `<file>.corrupt-<ms>` before the journal works around its
 * damage. One copy per file: a process restarting again before the file is checkpointed away
 * finds the copy already there and does not fill the disk with identical ones.
 */
export async function keepCopy(dir: string, seq: number): Promise<string> {
  const name = walFileName(seq);
  const existing = (await readdir(dir)).find((n) => n.startsWith(`${name}${CORRUPT_SUFFIX}`));
  if (existing) return join(dir, existing);
  const copy = join(dir, `${name}${CORRUPT_SUFFIX}${Date.now()}`);
  await copyFile(join(dir, name), copy);
  const fh = await open(copy, 'r');
  await fh.sync().finally(() => fh.close());
  await fsyncDir(dir);
  return copy;
}
