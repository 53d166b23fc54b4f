import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import { registerBenchHttp } from './bench-http.js';
import { registerChaos } from './chaos.js';
import { registerCompact } from './compact.js';
import { registerContext } from './context.js';
import { registerCopy } from './copy.js';
import { registerExport } from './export.js';
import { registerGc } from './gc.js';
import { registerImport } from './import.js';
import { registerInspect } from './inspect.js';
import { registerReindex } from './reindex.js';
import { registerSearch } from './search.js';
import { registerMcp } from './mcp.js';
import { registerMigrate } from './migrate.js';
import { registerServe } from './serve.js';
import { registerStats } from './stats.js';
import { registerVerify } from './verify.js';
import { registerBenchArchive } from './bench-archive.js';
import { registerBenchCodec } from './bench-codec.js';
import { registerBenchHot } from './bench-hot.js';
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
export const commands: RegisterCommand[] = [registerServe, registerMcp, registerImport, registerExport, registerInspect, registerVerify, registerSearch, registerContext, registerGc, registerCompact, registerReindex, registerStats, registerChaos, registerMigrate, registerCopy];

/** `strata bench <name>` subcommands. */
export const benchCommands: RegisterCommand[] = [registerBenchHttp, registerBenchRetrieval, registerBenchJournal, registerBenchCodec, registerBenchHot, registerBenchArchive];

/** `strata eval <name>` subcommands. */
export const evalCommands: RegisterCommand[] = [registerEvalLocomo, registerEvalRetrieval];
