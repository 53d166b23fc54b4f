import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { pino } from 'pino';
import type { Logger } from 'pino';
import type { ConversationMemory } from '../../cache/api.js';
import type { DeepPartial, StrataConfig } from '../../config.js';
import { coreConfig, loadConfig } from '../../config.js';
import { StrataError } from '../../errors.js';
import type { StrataMetrics } from '../../metrics.js';
import type { CliIo } from '../io.js';

/** Options every command that opens the data directory accepts. */
export interface CommonFlags {
  config?: string;
  dataDir?: string;
  redisUrl?: string;
  tenant?: string;
  json?: boolean;
}

export function addCommonOptions(command: Command): Command {
  return command
    .option('-c, --config <path>', 'config file (default: strata.config.json in the working directory)')
    .option('-d, --data-dir <dir>', 'data directory (archive, journal)')
    .option('--redis-url <url>', 'Redis URL; switches the hot tier to Redis');
}

export function addTenantOption(command: Command): Command {
  return command.option('-t, --tenant <id>', 'tenant', 'default');
}

/** Loads the configuration with the flags a command was given layered on top. */
export function configFromFlags(io: CliIo, flags: CommonFlags, extra: DeepPartial<StrataConfig> = {}): StrataConfig {
  const layered: DeepPartial<StrataConfig> = { ...extra };
  if (flags.dataDir !== undefined) layered.dataDir = flags.dataDir;
  if (flags.redisUrl !== undefined) layered.hot = { ...layered.hot, redisUrl: flags.redisUrl, driver: 'redis' };
  return loadConfig({ ...(flags.config !== undefined ? { file: flags.config } : {}), env: io.env ?? process.env, flags: layered });
}

/** The core factory, loaded on first use so `strata --help` stays fast. */
export async function openMemory(config: StrataConfig, options: { metrics?: StrataMetrics; logger?: Logger; readOnly?: boolean } = {}): Promise<ConversationMemory> {
  const { createStrataRetrying } = await import('../../strata.js');
  return createStrataRetrying({ ...coreConfig(config), ...options }, (err, attempt) => {
    options.logger?.warn({ code: err.code, attempt }, `opening the core: ${err.message}; opening again`);
  });
}

/** A logger for one-shot commands: warnings and errors only, on stderr. */
export function cliLogger(config: StrataConfig): Logger {
  const level = config.server.logLevel === 'info' ? 'warn' : config.server.logLevel;
  return pino({ level }, pino.destination(2));
}

/**
 * Opens the core, runs `fn`, and always closes (close flushes). `readOnly` commands take no
 * journal lock and write nothing, so they work while a server owns the data directory; they see
 * unarchived turns through every instance's journal.
 */
export async function withMemory<T>(io: CliIo, flags: CommonFlags, fn: (memory: ConversationMemory, config: StrataConfig) => Promise<T>, options: { readOnly?: boolean } = {}): Promise<T> {
  const config = configFromFlags(io, flags);
  const memory = await openMemory(config, { logger: cliLogger(config), ...(options.readOnly ? { readOnly: true } : {}) });
  try {
    return await fn(memory, config);
  } finally {
    await memory.close();
  }
}

/** A progress bar on stderr when it is a terminal; a no-op otherwise (tests, pipes, CI logs). */
export function progress(io: CliIo, total: number, label: string): { increment(by?: number): void; stop(): void } {
  if (!io.stderr.isTTY || total <= 0) return { increment() {}, stop() {} };
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} | eta {eta}s`, stream: io.stderr as unknown as NodeJS.WritableStream, hideCursor: true, clearOnComplete: false },
    undefined,
  );
  bar.start(total, 0);
  return { increment: (by = 1) => bar.increment(by), stop: () => bar.stop() };
}

export function parsePositiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new StrataError('STRATA_ERR_VALIDATION', `${name}: expected a positive integer, received ${JSON.stringify(value)}`);
    return n;
  };
}

export function parseNonNegativeInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || value.trim() === '') throw new StrataError('STRATA_ERR_VALIDATION', `${name}: expected a non-negative integer, received ${JSON.stringify(value)}`);
    return n;
  };
}

export function parsePositiveNumber(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0 || value.trim() === '') throw new StrataError('STRATA_ERR_VALIDATION', `${name}: expected a positive number, received ${JSON.stringify(value)}`);
    return n;
  };
}
