import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import { registerBenchArchive } from './bench-archive.js';
import { registerBenchCodec } from './bench-codec.js';
import { registerBenchJournal } from './bench-journal.js';
import { registerBenchRetrieval } from './bench-retrieval.js';
import { registerEvalLocomo } from './eval-locomo.js';
import { registerEvalRetrieval } from './eval-retrieval.js';

/**
 * A CLI command module: adds its command to `parent` (the program, or the `bench` / `eval`
 * group). The action sets `process.exitCode`-free results through the returned promise of
 * commander; errors propagate to `main`, which prints the coded message.
 */
export type RegisterCommand = (parent: Command, io: CliIo) => void;

/** Top-level commands (`strata <name>`). */
export const commands: RegisterCommand[] = [];

/** `strata bench <name>` subcommands. */
export const benchCommands: RegisterCommand[] = [registerBenchRetrieval, registerBenchJournal, registerBenchCodec, registerBenchArchive];

/** `strata eval <name>` subcommands. */
export const evalCommands: RegisterCommand[] = [registerEvalLocomo, registerEvalRetrieval];
