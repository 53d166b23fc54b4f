import type { Command } from 'commander';
import type { DeepPartial, StrataConfig } from '../../config.js';
import { buildServer, createServerLogger } from '../../server/app.js';
import { createServerMetrics } from '../../server/metrics.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, configFromFlags, openMemory, parseNonNegativeInt } from './common.js';

/** How long a graceful shutdown waits for requests in flight before closing their connections. */
const SHUTDOWN_GRACE_MS = 10_000;

interface ServeFlags extends CommonFlags {
  host?: string;
  port?: number;
  logLevel?: StrataConfig['server']['logLevel'];
}

/**
 * `strata serve`: loads the configuration, opens the core and serves HTTP until SIGTERM or
 * SIGINT; then it stops accepting connections, closes the core (which flushes) and returns 0.
 * `options.signal` lets an embedding process (and tests) stop it without a signal.
 */
export async function serve(io: CliIo, flags: ServeFlags, options: { signal?: AbortSignal; onListening?: (url: string) => void } = {}): Promise<void> {
  const server: DeepPartial<StrataConfig['server']> = {};
  if (flags.host !== undefined) server.host = flags.host;
  if (flags.port !== undefined) server.port = flags.port;
  if (flags.logLevel !== undefined) server.logLevel = flags.logLevel;
  const config = configFromFlags(io, flags, { server });
  // stdout carries only the logger's JSON lines (the start banner included), so a log shipper
  // parses every line; stderr gets the human warning below as well.
  const logger = createServerLogger(config.server.logLevel);
  const metrics = createServerMetrics();
  const memory = await openMemory(config, { metrics: metrics.hooks, logger });
  const app = buildServer({ memory, config, logger, metrics });

  if (config.server.apiKeys === null) {
    const warning = 'AUTH IS OFF: no API keys configured (server.apiKeys / STRATA_API_KEYS), every request acts for the "default" tenant. Set STRATA_API_KEYS=key:tenant,... before exposing this server.';
    logger.warn(warning);
    io.stderr.write(`WARNING: ${warning}\n`);
  }

  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info({ reason }, 'shutting down: closing the listener, then flushing');
      // Requests in flight get SHUTDOWN_GRACE_MS to finish; then their connections are cut.
      const force = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      force.unref();
      try {
        await app.close();
      } finally {
        clearTimeout(force);
        await memory.close();
      }
      logger.info('stopped');
    })();
    return stopping;
  };

  try {
    const address = await app.listen({ host: config.server.host, port: config.server.port });
    logger.info({ address, hot: config.hot.driver, dataDir: config.dataDir, durability: config.durability, auth: config.server.apiKeys !== null }, 'strata listening');
    options.onListening?.(address);
  } catch (err) {
    await memory.close();
    throw err;
  }

  await new Promise<void>((resolve, reject) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      stop(signal).then(resolve, reject);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    options.signal?.addEventListener('abort', () => onSignal('SIGTERM'), { once: true });
  });
}

export function registerServe(parent: Command, io: CliIo): void {
  addCommonOptions(parent.command('serve').description('run the HTTP service (stops gracefully on SIGTERM/SIGINT)'))
    .option('-H, --host <host>', 'listen address')
    .option('-p, --port <port>', 'listen port (0: any free port)', parseNonNegativeInt('--port'))
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent')
    .action(async (flags: ServeFlags) => serve(io, flags));
}
