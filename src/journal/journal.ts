import { close as closeFd, ftruncate, open as openFd } from 'node:fs';
import { mkdir, open, readdir, rename, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { isDiskFull } from '../archive/io.js';
import { decodePayload, encodeCheckpoint, encodeFileHeader, encodeFrame, FILE_HEADER_BYTES } from './format.js';
import { CHECKPOINT_FILE, fsyncDir, keepCopy, listWalFiles, readCheckpoint, walFileName } from './files.js';
import { acquireLock } from './lock.js';
import { nodeJournalIo, resolveJournalOptions } from './options.js';
import type { JournalOptions, ResolvedJournalOptions } from './options.js';
import { FileScanner } from './scan.js';
import { PendingLedger } from './ledger.js';
import type { JournalRecord, Lsn } from './types.js';
import { validateRecord } from './validate.js';
import { allocateEpoch } from './epochs.js';
import { journalRoot, readAllJournals } from './read-all.js';
import type { JournalHealth, JournalReader, JournalStore } from './store.js';

export interface ReplayEntry {
  lsn: Lsn;
  record: JournalRecord;
}

/** What `open` found and repaired. */
export interface JournalRecovery {
  /** Checkpoint read at open: every record before it was archived by a previous run. */
  checkpoint: Lsn;
  /** Files holding records of previous runs to replay. */
  filesToReplay: number;
  /**
   * A partial last record (a write torn by a crash) that open cut off. It was never
   * acknowledged with durability 'fsync': the fsync covering it had not returned.
   */
  tornTail: { file: string; offset: number; bytes: number } | null;
  /**
   * Damage found at open: bytes that are neither intact frames nor a torn tail (a bit flip, a
   * bad sector). Every intact record around it is still replayed; the damaged file was copied
   * to `copy` first. Non-empty means acknowledged records may be lost: log it at error level.
   */
  corrupt: JournalCorruption[];
}

export interface JournalCorruption {
  file: string;
  offset: number;
  bytes: number;
  why: string;
  /** Only the frame's length field was damaged and the record itself was recovered. */
  recovered: boolean;
  /** The copy of the damaged file, kept for inspection. */
  copy: string;
}

export type { JournalHealth };

interface QueuedFrame {
  frame: Buffer;
  records: readonly JournalRecord[];
  resolve: (lsn: Lsn) => void;
  reject: (err: unknown) => void;
}

export { walFileName };

/** ENOSPC / EDQUOT answer STRATA_ERR_STORAGE_FULL, anything else STRATA_ERR_JOURNAL_IO; both 503, both retried by the journal itself. */
function ioError(op: string, err: unknown): StrataError {
  if (err instanceof StrataError) return err;
  const why = (err as Error)?.message ?? String(err);
  if (isDiskFull(err)) return new StrataError('STRATA_ERR_STORAGE_FULL', `journal ${op} failed: the disk is full (${why}); nothing of this write was stored, appends succeed again once space is freed`, { cause: err });
  return new StrataError('STRATA_ERR_JOURNAL_IO', `journal ${op} failed (${why}); nothing of this write was acknowledged`, { cause: err });
}

const ftruncateFd = (fd: number, length: number): Promise<void> => new Promise((resolve, reject) => ftruncate(fd, length, (err) => (err ? reject(err) : resolve())));

/**
 * The write-ahead log: one per process, for all its sessions. See docs/format.md ("Journal")
 * for the bytes and the README's journal section for the contract.
 *
 * Group commit: `append` encodes the record and queues it synchronously (so records are
 * written in call order); a single writer loop takes everything queued, writes it with one
 * `write` and covers it with one `fdatasync`. While that fsync runs, new appends queue up for
 * the next batch, so the number of fsyncs per second stays bounded by the disk's fsync latency
 * while throughput grows with concurrency.
 */
export function compareLsn(a: Lsn, b: Lsn): number {
  return a.file - b.file || a.offset - b.offset;
}

export class Journal implements JournalStore {
  readonly options: ResolvedJournalOptions;
  readonly dir: string;
  /** What this instance journaled (or replayed) that the archive does not hold yet. */
  readonly pending = new PendingLedger<Lsn>(compareLsn);
  readonly recovery: JournalRecovery;

  private queue: QueuedFrame[] = [];
  private draining: Promise<void> | null = null;
  private closed = false;
  /** The error of the last failed append, until an append succeeds (`health()`). */
  private lastError: StrataError | null = null;
  /**
   * Set after a failed fsync (or a write whose undo failed): the current file's state on disk
   * is unknown, so the next append first moves to a fresh file (see `startFreshFile`).
   */
  private needsFreshFile = false;
  private dirty = false;
  private syncTimer: unknown = null;
  private syncing: Promise<void> | null = null;
  private checkpointing: Promise<void> = Promise.resolve();
  private current: Lsn;
  private lastCheckpoint: Lsn;
  private replayFiles: number[];
  /** Lowest sequence number that may still exist on disk. */
  private oldestFile: number;
  /** Until replay is done, records of previous runs are not in the ledger: never checkpoint past them. */
  private replayFloor: Lsn | null;

  private constructor(
    options: ResolvedJournalOptions,
    dir: string,
    private fd: number,
    seq: number,
    checkpoint: Lsn,
    replayFiles: number[],
    recovery: JournalRecovery,
    private readonly releaseLock: () => Promise<void>,
  ) {
    this.options = options;
    this.dir = dir;
    this.current = { file: seq, offset: FILE_HEADER_BYTES };
    this.lastCheckpoint = checkpoint;
    this.replayFiles = replayFiles;
    this.oldestFile = replayFiles[0] ?? seq;
    this.replayFloor = replayFiles.length > 0 ? checkpoint : null;
    this.recovery = recovery;
  }

  /**
   * Locks `<dataDir>/journal/<instanceId>/`, reads the checkpoint, cuts a torn tail off the
   * last file and starts a new file for this run. Records of previous runs are then available
   * through `replay()`; this run's appends are never part of its own replay.
   */
  static async open(options: JournalOptions): Promise<Journal> {
    const resolved = resolveJournalOptions(options);
    const dir = join(resolved.dataDir, 'journal', resolved.instanceId);
    await mkdir(dir, { recursive: true });
    const release = await acquireLock(dir);
    try {
      return await Journal.recover(resolved, dir, release);
    } catch (err) {
      await release();
      throw err;
    }
  }

  private static async recover(options: ResolvedJournalOptions, dir: string, release: () => Promise<void>): Promise<Journal> {
    const checkpoint = await readCheckpoint(dir);
    for (const name of await readdir(dir)) {
      // Leftovers of an interrupted checkpoint or `strata verify --repair`: the originals are intact.
      if (name === `${CHECKPOINT_FILE}.tmp` || name.endsWith('.wal.tmp')) await unlink(join(dir, name));
    }
    let seqs = await listWalFiles(dir);
    // Files wholly below the checkpoint: a crash came between the checkpoint and their deletion.
    for (const seq of seqs.filter((s) => s < checkpoint.file)) await unlink(join(dir, walFileName(seq)));
    seqs = seqs.filter((s) => s >= checkpoint.file);
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i] !== seqs[i - 1]! + 1) {
        throw new StrataError('STRATA_ERR_JOURNAL_CORRUPT', `journal file ${walFileName(seqs[i - 1]! + 1)} is missing in ${dir}: records after the checkpoint would be lost`, { details: { file: join(dir, walFileName(seqs[i - 1]! + 1)), offset: 0 } });
      }
    }

    // Every file still to replay is verified now, so damage is known (and reported) before the
    // first record is replayed, and the torn tail of the last file is told apart from damage.
    let tornTail: JournalRecovery['tornTail'] = null;
    const corrupt: JournalCorruption[] = [];
    const last = seqs.at(-1);
    for (const seq of [...seqs]) {
      const path = join(dir, walFileName(seq));
      const scanner = new FileScanner(path, seq, { isLast: seq === last, from: seq === checkpoint.file ? checkpoint.offset : FILE_HEADER_BYTES });
      for await (const _ of scanner.frames());
      const result = scanner.result!;
      if (result.damage.length > 0) {
        const copy = await keepCopy(dir, seq);
        for (const d of result.damage) corrupt.push({ file: path, offset: d.offset, bytes: d.bytes, why: d.why, recovered: d.recovered, copy });
      }
      if (seq !== last) continue;
      if (result.torn) tornTail = { file: path, offset: result.torn.offset, bytes: result.torn.bytes };
      if (!result.headerOk) {
        await unlink(path);
        seqs.pop();
      } else if (result.torn) {
        await truncate(path, result.validEnd);
        const fh = await open(path, 'r+');
        await fh.datasync().finally(() => fh.close());
      }
    }
    if (corrupt.length > 0) options.metrics.journalCorruption?.(corrupt.length);

    const seq = Math.max(seqs.at(-1) ?? 0, checkpoint.file) + 1;
    // A full disk at start: STRATA_ERR_STORAGE_FULL, and the start can be retried once space returns.
    const fd = await Journal.createFile(dir, seq).catch((err: unknown) => Promise.reject(ioError('start (new file)', err)));
    await fsyncDir(dir).catch((err: unknown) => Promise.reject(ioError('directory fsync', err)));
    return new Journal(options, dir, fd, seq, checkpoint, seqs, { checkpoint, filesToReplay: seqs.length, tornTail, corrupt }, release);
  }

  /** A new file with its header, fsynced before any record goes in, so only the last file can ever be torn. */
  private static async createFile(dir: string, seq: number): Promise<number> {
    const fd = await new Promise<number>((resolve, reject) => openFd(join(dir, walFileName(seq)), 'wx', 0o644, (err, n) => (err ? reject(err) : resolve(n))));
    try {
      const header = encodeFileHeader(seq);
      await nodeJournalIo.write(fd, header, 0, header.length, 0);
      await nodeJournalIo.fdatasync(fd);
    } catch (err) {
      closeFd(fd, () => undefined);
      // A half-created file (disk full) must not block the next attempt's exclusive create.
      await unlink(join(dir, walFileName(seq))).catch(() => undefined);
      throw err;
    }
    return fd;
  }

  /** Appends one record; resolves with its LSN once it is as durable as `durability` promises. */
  append(record: JournalRecord): Promise<Lsn> {
    return this.appendMany([record]);
  }

  /**
   * Appends records as one frame: after a crash either all of them replay or none. They share
   * one LSN. Use it for a multi-message request.
   */
  appendMany(records: readonly JournalRecord[]): Promise<Lsn> {
    try {
      this.checkOpen();
      if (!Array.isArray(records) || records.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'appendMany needs a non-empty array of records');
      for (const r of records) validateRecord(r);
      let frame: Buffer;
      try {
        frame = encodeFrame(records);
      } catch (err) {
        if (err instanceof StrataError) throw err;
        throw new StrataError('STRATA_ERR_METADATA_INVALID', `journal record metadata is not serialisable as JSON: ${(err as Error).message}`, { cause: err });
      }
      return new Promise<Lsn>((resolve, reject) => {
        this.queue.push({ frame, records, resolve, reject });
        if (this.draining === null) this.draining = this.drain();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StrataError('STRATA_ERR_JOURNAL_CLOSED', `journal ${this.dir} is closed`);
  }

  /** Not ok while the last append failed and no append has succeeded since (wired into /readyz). */
  health(): JournalHealth {
    if (this.lastError) return { ok: false, error: this.lastError.message, code: this.lastError.code };
    if (this.closed) return { ok: false, error: `journal ${this.dir} is closed`, code: 'STRATA_ERR_JOURNAL_CLOSED' };
    return { ok: true };
  }

  /**
   * A failed batch is refused (its appends reject, nothing of it stays in the file) and the
   * loop goes on: the journal never stops for good, each new batch tries again.
   */
  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.writeBatch(batch);
        } catch (err) {
          this.lastError = ioError('write', err);
          for (const q of batch) q.reject(this.lastError);
        }
      }
    } finally {
      this.draining = null;
    }
  }

  /**
   * Takes a failed write back: truncates the file to the last acknowledged frame and fsyncs, so
   * no byte of the refused batch can be replayed (a complete frame of it would otherwise pass
   * its CRC after a crash). If that succeeds the file is in a known state and stays in use —
   * the full-disk case: the next append after space returns simply works. If it fails, the
   * file is abandoned (`needsFreshFile`).
   */
  private async undoWrite(start: number, failedFsync: boolean): Promise<void> {
    try {
      await ftruncateFd(this.fd, start);
      await this.options.io.fdatasync(this.fd);
      this.dirty = false;
    } catch {
      this.needsFreshFile = true;
      return;
    }
    // After a failed fsync the descriptor's error state has been consumed: Linux reports a
    // writeback error once per file description and may already have dropped the dirty pages,
    // so a later fsync returning 0 would prove nothing about data written before it (the
    // PostgreSQL "fsyncgate" lesson). Refusing forever would turn a transient I/O error into an
    // outage; continuing on a fresh file gives every later append a descriptor whose fsync
    // result is trustworthy again. Acknowledged frames before `start` were covered by earlier
    // successful fsyncs (durability 'fsync'), so the abandoned file keeps them.
    if (failedFsync) this.needsFreshFile = true;
  }

  /**
   * Moves to a fresh file after the current one was abandoned. The new file's header is written
   * and fdatasynced and the directory fsynced before any record goes in: that re-verifies that
   * the disk takes durable writes again before an append is acknowledged. Until it succeeds
   * (disk still full, device still failing) every append is refused with that error.
   */
  private async startFreshFile(): Promise<void> {
    const old = this.fd;
    const seq = this.current.file + 1;
    this.fd = await Journal.createFile(this.dir, seq).catch((err: unknown) => Promise.reject(ioError('rotation', err)));
    await fsyncDir(this.dir).catch((err: unknown) => Promise.reject(ioError('directory fsync', err)));
    this.current = { file: seq, offset: FILE_HEADER_BYTES };
    this.needsFreshFile = false;
    this.dirty = false;
    await new Promise<void>((resolve) => closeFd(old, () => resolve()));
  }

  private async writeBatch(batch: QueuedFrame[]): Promise<void> {
    let bytes = 0;
    for (const q of batch) bytes += q.frame.length;
    if (this.needsFreshFile) await this.startFreshFile();
    else if (this.current.offset > FILE_HEADER_BYTES && this.current.offset + bytes > this.options.maxFileBytes) await this.rotate();
    const buffer = batch.length === 1 ? batch[0]!.frame : Buffer.concat(batch.map((q) => q.frame), bytes);
    const { file } = this.current;
    const start = this.current.offset;
    const { io, durability, metrics } = this.options;
    try {
      for (let done = 0; done < bytes; ) {
        const n = await io.write(this.fd, buffer, done, bytes - done, start + done);
        if (n <= 0) throw new Error(`wrote ${n} bytes`);
        done += n;
      }
    } catch (err) {
      // ENOSPC mid-batch leaves a partial (or even a complete first) frame of the refused batch.
      await this.undoWrite(start, false);
      if (!isDiskFull(err)) this.needsFreshFile = true;
      throw ioError('write', err);
    }
    if (durability === 'fsync') {
      const t0 = performance.now();
      try {
        await io.fdatasync(this.fd);
      } catch (err) {
        await this.undoWrite(start, true);
        throw ioError('fdatasync', err);
      }
      metrics.journalFsync?.((performance.now() - t0) / 1000, batch.length);
    } else {
      this.dirty = true;
      if (durability === 'batch' && this.syncTimer === null) {
        this.syncTimer = this.options.timers.setTimeout(() => {
          this.syncTimer = null;
          this.sync().catch(() => undefined);
        }, this.options.batchIntervalMs);
      }
    }
    let offset = start;
    const lsns: Lsn[] = [];
    for (const q of batch) {
      const lsn = { file, offset };
      lsns.push(lsn);
      for (const r of q.records) this.pending.add(r, lsn);
      offset += q.frame.length;
    }
    this.current = { file, offset };
    // Healthy again before anyone hears of the success.
    this.lastError = null;
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(lsns[i]!);
  }

  /** Fsyncs everything written so far (the 'batch' timer calls this; callers may too). */
  async sync(): Promise<void> {
    if (this.syncing) await this.syncing;
    if (!this.dirty || this.needsFreshFile) return;
    this.dirty = false;
    const t0 = performance.now();
    this.syncing = this.options.io.fdatasync(this.fd).then(
      () => this.options.metrics.journalFsync?.((performance.now() - t0) / 1000, 0),
      (err: unknown) => {
        // Records written since the last fsync were acknowledged under 'batch' or 'none'
        // durability and may be lost; later appends go to a fresh file (see undoWrite).
        this.lastError = ioError('fdatasync', err);
        this.needsFreshFile = true;
        throw this.lastError;
      },
    );
    try {
      await this.syncing;
    } finally {
      this.syncing = null;
    }
  }

  /** Finishes the current file (fsynced, so a non-last file is never torn) and starts the next. */
  private async rotate(): Promise<void> {
    if (this.syncing) await this.syncing;
    if (this.dirty) {
      await this.options.io.fdatasync(this.fd).catch((err: unknown) => {
        this.needsFreshFile = true;
        return Promise.reject(ioError('fdatasync', err));
      });
      this.dirty = false;
    }
    const old = this.fd;
    const seq = this.current.file + 1;
    // A full disk refuses the new file; the current one stays in use and the next batch retries.
    this.fd = await Journal.createFile(this.dir, seq).catch((err: unknown) => Promise.reject(ioError('rotation', err)));
    await fsyncDir(this.dir);
    this.current = { file: seq, offset: FILE_HEADER_BYTES };
    await new Promise<void>((resolve) => closeFd(old, () => resolve()));
  }

  get instanceId(): string {
    return this.options.instanceId;
  }

  /** Every instance's journal in the shared data directory, from each one's checkpoint (read-all.ts). */
  readPending(): Promise<JournalRecord[]> {
    return fsJournalReader(this.options.dataDir).readPending();
  }

  /** From the shared data directory's `epochs/` (epochs.ts). */
  allocateEpoch(): Promise<number> {
    return allocateEpoch(this.options.dataDir);
  }

  /** The LSN the next record will get at the earliest: everything before it is written. */
  endLsn(): Lsn {
    return { ...this.current };
  }

  /** The checkpoint that is durably recorded. */
  checkpointLsn(): Lsn {
    return { ...this.lastCheckpoint };
  }

  markArchived(tenant: string, sessionId: string, upToTurnId: number): void {
    this.pending.markArchived({ tenant, sessionId }, upToTurnId);
  }

  markDeleteApplied(tenant: string, sessionId: string): void {
    this.pending.markDeleteApplied({ tenant, sessionId });
  }

  /** Records of previous runs are in the archive (replayInto calls this when it finishes). */
  markReplayed(): void {
    this.replayFloor = null;
    this.pending.forgetReplayed();
  }

  /**
   * The highest LSN that is safe to checkpoint: the oldest record not yet marked archived, or
   * the end of the journal when every record is. Before `markReplayed()` it never passes the
   * records of previous runs.
   */
  safeCheckpoint(): Lsn {
    let lsn = this.pending.lowest() ?? this.endLsn();
    if (this.replayFloor && compareLsn(this.replayFloor, lsn) < 0) lsn = this.replayFloor;
    return { ...lsn };
  }

  /**
   * Durably records that every record before `lsn` is archived (checkpoint file written to a
   * temp file, fsynced, renamed, directory fsynced), then deletes journal files that lie wholly
   * below it. A checkpoint below the current one is a no-op. Without `lsn`: `safeCheckpoint()`.
   */
  checkpoint(lsn?: Lsn): Promise<void> {
    const run = this.checkpointing.then(() => this.writeCheckpoint(lsn ?? this.safeCheckpoint()));
    this.checkpointing = run.catch(() => undefined);
    return run;
  }

  private async writeCheckpoint(lsn: Lsn): Promise<void> {
    if (this.closed) throw new StrataError('STRATA_ERR_JOURNAL_CLOSED', `journal ${this.dir} is closed`);
    if (lsn === null || typeof lsn !== 'object' || !Number.isSafeInteger(lsn.file) || !Number.isSafeInteger(lsn.offset) || lsn.file < 0 || lsn.offset < 0) {
      throw new StrataError('STRATA_ERR_VALIDATION', `checkpoint needs an Lsn {file, offset} of non-negative integers, received ${JSON.stringify(lsn)}`);
    }
    if (compareLsn(lsn, this.current) > 0) throw new StrataError('STRATA_ERR_VALIDATION', `checkpoint ${lsn.file}:${lsn.offset} is past the end of the journal (${this.current.file}:${this.current.offset})`);
    if (compareLsn(lsn, this.lastCheckpoint) <= 0) return;
    const path = join(this.dir, CHECKPOINT_FILE);
    const fh = await open(`${path}.tmp`, 'w');
    try {
      await fh.writeFile(encodeCheckpoint(lsn.file, lsn.offset));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(`${path}.tmp`, path);
    await fsyncDir(this.dir);
    this.lastCheckpoint = { file: lsn.file, offset: lsn.offset };
    if (this.replayFloor && compareLsn(this.replayFloor, lsn) < 0) this.replayFloor = null;
    this.replayFiles = this.replayFiles.filter((s) => s >= lsn.file);
    const upTo = Math.min(lsn.file, this.current.file);
    for (let seq = this.oldestFile; seq < upTo; seq++) {
      await unlink(join(this.dir, walFileName(seq))).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    this.oldestFile = Math.max(this.oldestFile, upTo);
  }

  /**
   * Records of previous runs from the checkpoint on, in LSN order, in batches (one per chunk
   * read). A frame written by `appendMany` yields all its records with the same LSN. Every frame
   * is verified; damaged stretches (reported at open in `recovery.corrupt`) are skipped.
   */
  async *replayBatches(): AsyncGenerator<ReplayEntry[]> {
    const from = this.recovery.checkpoint;
    for (const seq of [...this.replayFiles]) {
      const path = join(this.dir, walFileName(seq));
      // Open cut the torn tail of the last file and reported the damage; the scanner skips it again.
      const scanner = new FileScanner(path, seq, { isLast: seq === this.replayFiles.at(-1), from: seq === from.file ? from.offset : FILE_HEADER_BYTES });
      for await (const frames of scanner.frames()) {
        const out: ReplayEntry[] = [];
        for (const f of frames) {
          const lsn = { file: seq, offset: f.offset };
          for (const record of decodePayload(f.payload, path, f.offset)) {
            this.pending.add(record, lsn, true);
            out.push({ lsn, record });
          }
        }
        yield out;
      }
    }
  }

  /** `replayBatches()` one record at a time. */
  async *replay(): AsyncGenerator<ReplayEntry> {
    for await (const batch of this.replayBatches()) yield* batch;
  }

  /** Writes what is queued, fsyncs, closes the file and releases the directory lock. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.draining) await this.draining;
    if (this.syncTimer !== null) {
      this.options.timers.clearTimeout(this.syncTimer);
      this.syncTimer = null;
    }
    await this.checkpointing;
    try {
      if (!this.needsFreshFile) await this.sync();
    } finally {
      await new Promise<void>((resolve) => closeFd(this.fd, () => resolve()));
      await this.releaseLock();
    }
  }
}

/** Every instance's journal and the epochs of a shared data directory, read without any lock. */
export function fsJournalReader(dataDir: string): JournalReader {
  return {
    readPending: async () => {
      const out: JournalRecord[] = [];
      for (const { records } of await readAllJournals(journalRoot(dataDir))) for (const r of records) out.push(r);
      return out;
    },
    allocateEpoch: () => allocateEpoch(dataDir),
  };
}
