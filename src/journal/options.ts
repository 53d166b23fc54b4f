import { write, fdatasync } from 'node:fs';
import { hostname } from 'node:os';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import type { StrataMetrics } from '../metrics.js';
import type { Durability } from './types.js';

/**
 * The two system calls on the append path. Injectable so tests can count fsyncs or make a
 * write fail or tear; production uses `node:fs`.
 */
export interface JournalIo {
  /** Writes `buffer` at `position`; may write fewer bytes (the journal loops). */
  write(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
}

export const nodeJournalIo: JournalIo = Object.freeze({
  write: (fd: number, buffer: Buffer, offset: number, length: number, position: number) =>
    new Promise<number>((resolve, reject) => write(fd, buffer, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)))),
  fdatasync: (fd: number) => new Promise<void>((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve()))),
});

/** Timer functions for the 'batch' fsync interval, injectable so tests control time. */
export interface JournalTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const nodeJournalTimers: JournalTimers = Object.freeze({
  setTimeout: (fn: () => void, ms: number) => {
    const t = setTimeout(fn, ms);
    // The interval must not keep a process alive that has nothing else to do; close() syncs.
    t.unref();
    return t;
  },
  clearTimeout: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
});

export interface JournalOptions {
  /** Strata's data directory. The journal lives in `<dataDir>/journal/<instanceId>/`. Required. */
  dataDir: string;
  /**
   * Names this instance's journal directory. It must be stable across restarts, since a restarted
   * instance replays its own directory. Default: the host name with characters outside
   * `[A-Za-z0-9_.-]` replaced by `-` (one instance per host; set it explicitly when several
   * instances share a host or a data volume).
   */
  instanceId?: string;
  /**
   * When `append` resolves. `'fsync'` (default): after the fdatasync covering the record, so an
   * acknowledged record survives kill -9 and power loss. `'batch'`: after the write; an fsync
   * runs every `batchIntervalMs`, so a power loss (not a process crash: the data is in the page
   * cache) can lose up to that interval of acknowledged records. `'none'`: after the write, no
   * periodic fsync (only at rotation and close); survives a process crash, not a power loss.
   */
  durability?: Durability;
  /** Fsync interval of `durability: 'batch'`, in ms. Default 50. */
  batchIntervalMs?: number;
  /** A file is rotated before a batch would take it above this size. Default 64 MiB; 4 KiB to 1 GiB. A file exceeds it only by a batch larger than the limit itself. */
  maxFileBytes?: number;
  /** Fault injection and fsync counting. Default: node:fs. */
  io?: JournalIo;
  /** Timers for the 'batch' interval. Default: global timers, unref'd. */
  timers?: JournalTimers;
  metrics?: StrataMetrics;
}

export interface ResolvedJournalOptions {
  readonly dataDir: string;
  readonly instanceId: string;
  readonly durability: Durability;
  readonly batchIntervalMs: number;
  readonly maxFileBytes: number;
  readonly io: JournalIo;
  readonly timers: JournalTimers;
  readonly metrics: StrataMetrics;
}

export const JOURNAL_DEFAULTS = Object.freeze({ durability: 'fsync' as Durability, batchIntervalMs: 50, maxFileBytes: 64 * 1024 * 1024 });
const MIN_FILE_BYTES = 4096;
const MAX_FILE_BYTES = 1024 * 1024 * 1024;

function invalid(option: string, expected: string, received: unknown): StrataError {
  const shown = typeof received === 'string' ? JSON.stringify(received) : typeof received === 'object' ? (received === null ? 'null' : 'an object') : String(received);
  return new StrataError('STRATA_ERR_CONFIG_INVALID', `journal option ${option}: expected ${expected}, received ${shown}`, { details: { option, expected } });
}

/** A stable default instance id: the host name, reduced to the id alphabet. */
export function defaultInstanceId(host = hostname()): string {
  const cleaned = host.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^\.+/, '').slice(0, 128);
  return cleaned.length > 0 ? cleaned : 'default';
}

export function resolveJournalOptions(options: JournalOptions): ResolvedJournalOptions {
  if (options === null || typeof options !== 'object') throw invalid('options', 'an object', options);
  const { dataDir, instanceId, durability, batchIntervalMs, maxFileBytes, io, timers, metrics } = options;
  if (typeof dataDir !== 'string' || dataDir.length === 0) throw invalid('dataDir', 'a non-empty directory path', dataDir);
  if (instanceId !== undefined) {
    try {
      validateId('tenant', instanceId);
    } catch {
      throw invalid('instanceId', '1-128 characters of [A-Za-z0-9_.-], not starting with "."', instanceId);
    }
  }
  if (durability !== undefined && durability !== 'fsync' && durability !== 'batch' && durability !== 'none') throw invalid('durability', "'fsync', 'batch' or 'none'", durability);
  if (batchIntervalMs !== undefined && (!Number.isInteger(batchIntervalMs) || batchIntervalMs < 1 || batchIntervalMs > 60_000)) throw invalid('batchIntervalMs', 'an integer from 1 to 60000', batchIntervalMs);
  if (maxFileBytes !== undefined && (!Number.isInteger(maxFileBytes) || maxFileBytes < MIN_FILE_BYTES || maxFileBytes > MAX_FILE_BYTES)) throw invalid('maxFileBytes', `an integer from ${MIN_FILE_BYTES} to ${MAX_FILE_BYTES}`, maxFileBytes);
  if (io !== undefined && (typeof io?.write !== 'function' || typeof io?.fdatasync !== 'function')) throw invalid('io', 'an object with write and fdatasync functions', io);
  if (timers !== undefined && (typeof timers?.setTimeout !== 'function' || typeof timers?.clearTimeout !== 'function')) throw invalid('timers', 'an object with setTimeout and clearTimeout functions', timers);
  return Object.freeze({
    dataDir,
    instanceId: instanceId ?? defaultInstanceId(),
    durability: durability ?? JOURNAL_DEFAULTS.durability,
    batchIntervalMs: batchIntervalMs ?? JOURNAL_DEFAULTS.batchIntervalMs,
    maxFileBytes: maxFileBytes ?? JOURNAL_DEFAULTS.maxFileBytes,
    io: io ?? nodeJournalIo,
    timers: timers ?? nodeJournalTimers,
    metrics: metrics ?? {},
  });
}
