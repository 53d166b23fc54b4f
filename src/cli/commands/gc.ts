import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, parsePositiveNumber, withMemory } from './common.js';

export function registerGc(parent: Command, io: CliIo): void {
  addCommonOptions(parent.command('gc').description('retention: delete sessions whose last message is older than the retention'))
    .option('--max-age-days <n>', 'retention in days (default: retentionDays from the config)', parsePositiveNumber('--max-age-days'))
    .option('--json', 'print JSON')
    .action(async (flags: CommonFlags & { maxAgeDays?: number }) => {
      const deleted = await withMemory(io, flags, async (memory, config) => {
        const days = flags.maxAgeDays ?? config.retentionDays;
        if (days === null) throw new StrataError('STRATA_ERR_VALIDATION', 'no retention: pass --max-age-days N or set retentionDays / STRATA_RETENTION_DAYS');
        return memory.cleanupExpiredSessions(days);
      });
      if (flags.json) printJson(io, { deletedSessions: deleted });
      else io.stdout.write(`deleted ${deleted} expired session(s)\n`);
    });
}
