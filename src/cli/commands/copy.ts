import type { Command } from 'commander';
import { coreConfig } from '../../config.js';
import { StrataError } from '../../errors.js';
import { formatTable, printJson } from '../io.js';
import type { CliIo } from '../io.js';
import { configFromFlags, parsePositiveInt, progress } from './common.js';

interface CopyFlags {
  config?: string;
  from: string;
  to: string;
  includePending?: boolean;
  dryRun?: boolean;
  concurrency?: number;
  json?: boolean;
}

/**
 * `strata copy --from <store> --to <store>`: every session from one store to another, verified
 * (src/copy/copy.ts holds the behaviour; docs/postgres.md, "Moving data").
 */
export function registerCopy(parent: Command, io: CliIo): void {
  parent
    .command('copy')
    .description('copy every session from one store to another (fs:DIR or postgres://…), verified; resumable, never overwrites')
    .requiredOption('--from <store>', 'source: fs:<data dir> or postgres://…[?schema=name]')
    .requiredOption('--to <store>', 'target: fs:<data dir> (created when missing) or postgres://…[?schema=name] (migrated)')
    .option('-c, --config <path>', 'config file for codec and archive options (default: strata.config.json in the working directory)')
    .option('--include-pending', "archive the source journals' unarchived turns into the target (default: refuse when there are any)")
    .option('--dry-run', 'list what would be copied, skipped or refused; write nothing')
    .option('--concurrency <n>', 'sessions checked or copied at once (default 4)', parsePositiveInt('--concurrency'))
    .option('--json', 'print JSON')
    .action(async (flags: CopyFlags) => {
      const config = configFromFlags(io, flags.config !== undefined ? { config: flags.config } : {});
      const { copyStores } = await import('../../copy/copy.js');
      let bar: ReturnType<typeof progress> | null = null;
      let phase = '';
      const report = await copyStores({
        from: flags.from,
        to: flags.to,
        config: coreConfig(config),
        includePending: flags.includePending === true,
        dryRun: flags.dryRun === true,
        ...(flags.concurrency !== undefined ? { concurrency: flags.concurrency } : {}),
        onProgress: (event) => {
          if (event.phase !== phase) {
            bar?.stop();
            phase = event.phase;
            bar = progress(io, event.total, event.phase === 'check' ? 'check' : 'copy ');
          }
          bar!.increment();
        },
      }).finally(() => (bar as ReturnType<typeof progress> | null)?.stop());

      if (flags.json) printJson(io, report);
      else if (report.dryRun) {
        const rows = report.plan!.map((p) => [p.action, `${p.tenant}/${p.sessionId}`, p.messages, p.bytes, p.pendingTurns, p.reason ?? '']);
        if (rows.length > 0) io.stdout.write(formatTable(['action', 'session', 'messages', 'bytes', 'unarchived', 'reason'], rows));
        io.stdout.write(`dry run, nothing written: ${report.copied} session(s) would be copied, ${report.skipped} already in the target and identical, ${report.conflicts.length} conflicting; ${report.messages} message(s), ${report.bytes} bytes, ${report.pending.turns} unarchived turn(s) in ${report.pending.sessions} session(s)\n`);
      } else {
        io.stdout.write(
          `${report.sessions} session(s): ${report.copied} copied, ${report.skipped} already in the target and identical; ${report.messages} message(s) verified, ${report.bytes} bytes written, ${report.pending.included ? `${report.pending.turns} unarchived turn(s) archived, ` : ''}mismatches ${report.mismatches}\n`,
        );
      }
      if (report.dryRun && report.refusal) {
        io.stderr.write(`${report.refusal.message}\n`);
        io.exitCode = 1;
      }
      if (report.mismatches > 0) {
        throw new StrataError('STRATA_ERR_COPY_MISMATCH', `${report.mismatches} session(s) read back from the target differ from the source: ${report.mismatched.slice(0, 5).map((m) => `${m.tenant}/${m.sessionId} (${m.reason})`).join(', ')}`, { details: { mismatched: report.mismatched } });
      }
    });
}
