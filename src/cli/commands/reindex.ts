import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, progress, withMemory } from './common.js';

/** The optional core capability `reindex` uses; a core without it answers STRATA_ERR_NOT_AVAILABLE. */
interface Reindexable {
  reindex(options: { tenant?: string; onProgress?: (done: number, total: number) => void }): Promise<{ sessions: number; turns: number }>;
}

export function registerReindex(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('reindex').description('re-embed archived turns with the configured embedder (after a model change)')))
    .option('--json', 'print JSON')
    .action(async (flags: CommonFlags) => {
      const result = await withMemory(io, flags, async (memory) => {
        const core = memory as unknown as Partial<Reindexable>;
        if (typeof core.reindex !== 'function') throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'this build of the core cannot re-embed archives');
        let bar: ReturnType<typeof progress> | null = null;
        let last = 0;
        try {
          return await core.reindex({
            tenant: flags.tenant ?? 'default',
            onProgress: (done, total) => {
              bar ??= progress(io, total, 'reindex');
              bar.increment(done - last);
              last = done;
            },
          });
        } finally {
          (bar as ReturnType<typeof progress> | null)?.stop();
        }
      });
      if (flags.json) printJson(io, result);
      else io.stdout.write(`re-embedded ${result.turns} turn(s) of ${result.sessions} session(s)\n`);
    });
}
