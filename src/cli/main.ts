import { Command, CommanderError } from 'commander';
import { isDiskFull } from '../archive/io.js';
import { StrataError } from '../errors.js';
import type { CliIo } from './io.js';
import { benchCommands, commands, evalCommands } from './commands/index.js';

export type { CliIo } from './io.js';

/**
 * The CLI entry point: parses `argv` (without node and script), runs the command and returns
 * the exit code. Errors print their coded message on stderr, never a stack trace.
 */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const program = new Command()
    .name('strata')
    .description('Tiered conversation memory for LLM applications')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  for (const register of commands) register(program, io);
  const bench = program.command('bench').description('benchmarks, each against a baseline measured in the same run');
  for (const register of benchCommands) register(bench, io);
  const evaluate = program.command('eval').description('retrieval quality evaluations');
  for (const register of evalCommands) register(evaluate, io);
  for (const group of [bench, evaluate]) group.exitOverride().configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return io.exitCode ?? 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through exitOverride with exit code 0.
      return err.exitCode;
    }
    if (err instanceof StrataError) {
      io.stderr.write(`${err.message}\n`);
      return 1;
    }
    // A full disk that no module mapped itself (a directory created on the way) still says so.
    io.stderr.write(`${isDiskFull(err) ? 'STRATA_ERR_STORAGE_FULL' : 'STRATA_ERR_INTERNAL'}: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}
