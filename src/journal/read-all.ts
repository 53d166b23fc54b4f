import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decodePayload } from './format.js';
import { listWalFiles, readCheckpoint, walFileName } from './files.js';
import { FileScanner } from './scan.js';
import type { JournalDamage } from './scan.js';
import type { JournalRecord, Lsn } from './types.js';

export interface ScanJournalOptions {
  /**
   * Start at the directory's checkpoint (default true): records before it are already in the
   * archive. False reads every record still on disk.
   */
  fromCheckpoint?: boolean;
  /** Called for each damaged stretch (the records around it are still yielded). Default: ignore. */
  onDamage?(file: string, damage: JournalDamage): void;
}

/** A journal record with its position (file sequence number and frame offset). */
export interface ScannedRecord {
  lsn: Lsn;
  record: JournalRecord;
}

/**
 * Reads one instance's journal directory (`<dataDir>/journal/<instanceId>/`) read-only, without
 * taking its lock, while its owner may be running: yields every intact record in LSN order.
 *
 * Safe against a live writer because the writer only ever appends to its newest file and
 * replaces the checkpoint atomically: a torn tail of the newest file (a write in progress, or
 * one being truncated after a refused write) ends that file quietly; a file deleted after the
 * listing (the owner checkpointed past it) is skipped; a file that was already open stays
 * readable after its deletion. Damage elsewhere is passed to `onDamage` and skipped over.
 */
export async function* scanJournalDirWithLsn(dir: string, options: ScanJournalOptions = {}): AsyncGenerator<ScannedRecord> {
  let from: Lsn = { file: 0, offset: 0 };
  if (options.fromCheckpoint ?? true) {
    try {
      from = await readCheckpoint(dir);
    } catch (err) {
      // A damaged checkpoint: read everything rather than guess where archived records end.
      options.onDamage?.(join(dir, 'checkpoint'), { offset: 0, bytes: 0, why: (err as Error).message, recovered: false });
    }
  }
  const seqs = (await listWalFiles(dir)).filter((s) => s >= from.file);
  const last = seqs.at(-1);
  for (const seq of seqs) {
    const path = join(dir, walFileName(seq));
    const scanner = new FileScanner(path, seq, { isLast: seq === last, from: seq === from.file ? from.offset : undefined, live: true });
    try {
      for await (const frames of scanner.frames()) {
        for (const f of frames) {
          let records: JournalRecord[];
          try {
            records = decodePayload(f.payload, path, f.offset);
          } catch (err) {
            options.onDamage?.(path, { offset: f.offset, bytes: f.payload.length, why: (err as Error).message, recovered: false });
            continue;
          }
          const lsn = { file: seq, offset: f.offset };
          for (const record of records) yield { lsn, record };
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const d of scanner.result?.damage ?? []) options.onDamage?.(path, d);
  }
}

/** `scanJournalDirWithLsn` without positions. */
export async function* scanJournalDir(dir: string, options: ScanJournalOptions = {}): AsyncGenerator<JournalRecord> {
  for await (const { record } of scanJournalDirWithLsn(dir, options)) yield record;
}

/**
 * Every instance's journal under `root` (`<dataDir>/journal`), read as `scanJournalDir` does,
 * instances in name order. A missing root has no instances.
 */
export async function readAllJournals(root: string, options: ScanJournalOptions = {}): Promise<Array<{ instance: string; records: JournalRecord[] }>> {
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: Array<{ instance: string; records: JournalRecord[] }> = [];
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const records: JournalRecord[] = [];
    for await (const record of scanJournalDir(join(root, entry.name), options)) records.push(record);
    out.push({ instance: entry.name, records });
  }
  return out;
}

/** The journal root of a data directory: one subdirectory per instance. */
export function journalRoot(dataDir: string): string {
  return join(dataDir, 'journal');
}
