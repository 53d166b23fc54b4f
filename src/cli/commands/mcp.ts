import type { Command } from 'commander';
import { pino } from 'pino';
import type { StrataConfig } from '../../config.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, configFromFlags, openMemory } from './common.js';

interface McpFlags extends CommonFlags {
  tenant: string;
  logLevel?: StrataConfig['server']['logLevel'];
}

/**
 * `strata mcp`: an MCP server on stdio over the configured core (the configuration of `strata
 * serve`: file, environment, flags; the embedded defaults without any), acting for `--tenant`.
 * stdout carries the protocol and nothing else: logs go to stderr. Ends when the client closes
 * stdin, or on SIGTERM / SIGINT; then it closes the core (which flushes) and returns.
 *
 * The process owns its data directory like `strata serve` does (journal lock); to share a data
 * directory with a running service, point the MCP client at the service's `/mcp` instead, or
 * share a Redis and give each process its own `STRATA_INSTANCE_ID`.
 */
export async function mcp(io: CliIo, flags: McpFlags, options: { stdin?: NodeJS.ReadableStream & { pause(): unknown }; stdout?: NodeJS.WritableStream; signal?: AbortSignal } = {}): Promise<void> {
  const config = configFromFlags(io, flags, flags.logLevel !== undefined ? { server: { logLevel: flags.logLevel } } : {});
  const logger = pino({ level: config.server.logLevel }, pino.destination(2));
  const [{ createMcpServer }, { StdioServerTransport }] = await Promise.all([import('../../mcp/server.js'), import('@modelcontextprotocol/sdk/server/stdio.js')]);
  const memory = await openMemory(config, { logger });
  const stdin = options.stdin ?? process.stdin;
  let server: Awaited<ReturnType<typeof createMcpServer>>;
  try {
    server = createMcpServer({ memory, tenant: flags.tenant, onUnexpectedError: (err, tool) => logger.error({ err, tool }, 'unexpected error in an MCP tool') });
    await server.connect(new StdioServerTransport(stdin as NodeJS.ReadStream, (options.stdout ?? process.stdout) as NodeJS.WriteStream));
  } catch (err) {
    await memory.close();
    throw err;
  }
  logger.info({ tenant: flags.tenant, hot: config.hot.driver, dataDir: config.dataDir }, 'strata mcp ready on stdio');

  // The stdio transport does not watch for the end of its input: a client that goes away closes
  // our stdin, and that is the signal to flush and exit.
  const reason = await new Promise<string>((resolve) => {
    const onEnd = () => finish('stdin closed');
    const onSignal = (signal: NodeJS.Signals) => finish(signal);
    const onAbort = () => finish('aborted');
    const finish = (why: string) => {
      stdin.off('end', onEnd);
      stdin.off('close', onEnd);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(why);
    };
    stdin.once('end', onEnd);
    stdin.once('close', onEnd);
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  logger.info({ reason }, 'shutting down: flushing');
  try {
    await server.close();
  } finally {
    await memory.close();
  }
  logger.info('stopped');
}

export function registerMcp(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('mcp').description('run an MCP server on stdio (tools: add_messages, get_context, search_history, list_sessions, get_session, delete_session)')))
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (logs go to stderr)')
    .action(async (flags: McpFlags) => mcp(io, flags));
}
