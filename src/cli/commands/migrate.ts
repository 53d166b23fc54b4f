import type { Command } from 'commander';
import { coreConfig } from '../../config.js';
import { StrataError } from '../../errors.js';
import { printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, configFromFlags } from './common.js';

/**
 * `strata migrate [--dry-run]`: brings the PostgreSQL schema of `STRATA_POSTGRES_URL` to this
 * build's version (the service also does it at start, under the same advisory lock).
 */
export function registerMigrate(parent: Command, io: CliIo): void {
  addCommonOptions(parent.command('migrate').description('apply the PostgreSQL schema migrations (STRATA_STORE=postgres)'))
    .option('--postgres-url <url>', 'PostgreSQL URL (default: STRATA_POSTGRES_URL)')
    .option('--dry-run', 'list the migrations that would be applied, change nothing')
    .option('--json', 'print JSON')
    .action(async (flags: CommonFlags & { postgresUrl?: string; dryRun?: boolean }) => {
      const config = configFromFlags(io, flags, flags.postgresUrl ? { store: { driver: 'postgres', postgresUrl: flags.postgresUrl } } : {});
      if (!config.store.postgresUrl) throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'strata migrate needs a PostgreSQL URL: --postgres-url or STRATA_POSTGRES_URL', { details: { option: 'store.postgresUrl' } });
      const { openDb } = await import('../../stores.js');
      const { migrate } = await import('../../postgres/schema.js');
      const db = openDb(coreConfig(config)).acquire();
      try {
        const report = await migrate(db, { dryRun: flags.dryRun === true });
        if (flags.json) return printJson(io, report);
        const verb = report.dryRun ? 'would apply' : 'applied';
        if (report.applied.length === 0) io.stdout.write(`schema ${report.schema} is at version ${report.current}: nothing to apply\n`);
        for (const m of report.applied) io.stdout.write(`${verb} ${m.version} ${m.name}\n`);
        if (report.applied.length > 0) io.stdout.write(`schema ${report.schema}: version ${report.current} -> ${report.applied.at(-1)!.version}${report.dryRun ? ' (dry run, nothing changed)' : ''}\n`);
      } finally {
        await db.release();
      }
    });
}
