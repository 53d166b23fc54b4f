import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { printJson } from '../io.js';
import type { CliIo } from '../io.js';
import { parseNonNegativeInt, parsePositiveInt, parsePositiveNumber } from './common.js';

interface ChaosFlags {
  instances: number;
  minutes?: number;
  seconds?: number;
  seed: number;
  entry: string;
  log?: string;
  json?: boolean;
  kills?: number;
  pauses?: number;
  flushes?: number;
  redisRestarts?: number;
  killForGood?: number;
  pgTerminations?: number;
  diskFulls?: number;
  hostile?: number;
  store: string;
  postgresUrl?: string;
}

/** Violations printed in full in --json (each with its events); the counts cover all of them. */
const JSON_VIOLATIONS = 100;

export function registerChaos(parent: Command, io: CliIo): void {
  parent
    .command('chaos')
    .description('black-box durability test: real instances, a private Redis, SIGKILL/SIGSTOP/FLUSHALL/Redis restarts, a full disk (fs store, as root; postgres store: also an instance killed for good and PostgreSQL connections terminated) under concurrent writes, deletes and hostile requests; checks that nothing acknowledged is lost, duplicated or resurrected')
    .option('--instances <n>', 'strata serve processes', parsePositiveInt('--instances'), 3)
    .option('--minutes <n>', 'minutes of faults (default: 10)', parsePositiveNumber('--minutes'))
    .option('--seconds <n>', 'seconds of faults (short runs)', parsePositiveNumber('--seconds'))
    .option('--seed <n>', 'seed of every random choice', parseNonNegativeInt('--seed'), 1)
    .option('--store <driver>', 'where journals and archive live: fs (one shared data directory) or postgres (no data directory; needs --postgres-url)', 'fs')
    .option('--postgres-url <url>', 'postgres store: a database where the run creates a schema of its own and drops it afterwards (default: $STRATA_POSTGRES_URL)')
    .option('--entry <kind>', 'how instances start: auto (like this CLI: built from dist/, or the sources through tsx), built, sources', 'auto')
    .option('--kills <n>', 'SIGKILL + restart faults (default: one per 6.5 s)', parseNonNegativeInt('--kills'))
    .option('--pauses <n>', 'SIGSTOP longer than the lease TTL, then SIGCONT (default: one per 25 s)', parseNonNegativeInt('--pauses'))
    .option('--flushes <n>', 'Redis FLUSHALL faults (default: one per 40 s)', parseNonNegativeInt('--flushes'))
    .option('--redis-restarts <n>', 'redis-server SIGKILL + restart faults (default: one per 40 s)', parseNonNegativeInt('--redis-restarts'))
    .option('--kill-for-good <n>', 'instances SIGKILLed and never restarted, each followed by a FLUSHALL (default: 1 on postgres, 0 on fs; at most --instances minus 2)', parseNonNegativeInt('--kill-for-good'))
    .option('--pg-terminations <n>', 'postgres store: pg_terminate_backend of every instance connection (default: one per 20 s)', parseNonNegativeInt('--pg-terminations'))
    .option('--disk-fulls <n>', 'fs store: the data directory (a tmpfs of the run\'s; needs root) filled for 1-3 s, then freed (default: one per 50 s as root, else 0)', parseNonNegativeInt('--disk-fulls'))
    .option('--hostile <n>', 'hostile requests over the run (default: 15 per second)', parseNonNegativeInt('--hostile'))
    .option('--log <file>', 'write every request and fault as JSONL')
    .option('--json', 'print one JSON object')
    .action(async (flags: ChaosFlags) => {
      if (flags.minutes !== undefined && flags.seconds !== undefined) throw new StrataError('STRATA_ERR_VALIDATION', '--minutes and --seconds: give one of them');
      if (!['auto', 'built', 'sources'].includes(flags.entry)) throw new StrataError('STRATA_ERR_VALIDATION', `--entry: expected auto, built or sources, received ${JSON.stringify(flags.entry)}`);
      if (flags.store !== 'fs' && flags.store !== 'postgres') throw new StrataError('STRATA_ERR_VALIDATION', `--store: expected fs or postgres, received ${JSON.stringify(flags.store)}`);
      const postgresUrl = flags.postgresUrl ?? (flags.store === 'postgres' ? process.env.STRATA_POSTGRES_URL : undefined);
      if (flags.store === 'fs' && flags.postgresUrl !== undefined) throw new StrataError('STRATA_ERR_VALIDATION', '--postgres-url: only with --store postgres');
      if (flags.store === 'postgres' && flags.diskFulls) throw new StrataError('STRATA_ERR_VALIDATION', '--disk-fulls: only with --store fs (the postgres store has no data directory)');
      if (flags.store === 'fs' && flags.pgTerminations) throw new StrataError('STRATA_ERR_VALIDATION', '--pg-terminations: only with --store postgres');
      if (flags.store === 'postgres' && !postgresUrl) throw new StrataError('STRATA_ERR_VALIDATION', '--store postgres: expected --postgres-url (or STRATA_POSTGRES_URL), received nothing');
      if (postgresUrl !== undefined && !/^postgres(ql)?:\/\//.test(postgresUrl)) throw new StrataError('STRATA_ERR_VALIDATION', `--postgres-url: expected a postgres:// URL, received ${JSON.stringify(postgresUrl.replace(/\/\/[^@/]*@/, '//…@'))}`);
      // Kills and pauses need an instance left serving besides their target.
      if ((flags.killForGood ?? 0) > flags.instances - 2) throw new StrataError('STRATA_ERR_VALIDATION', `--kill-for-good: expected at most --instances minus 2 (${Math.max(0, flags.instances - 2)}), received ${flags.killForGood}`);
      const { canMountDisk, defaultFaultCounts, runChaos } = await import('../../chaos/run.js');
      const { detectEntry } = await import('../../chaos/cluster.js');
      const durationMs = Math.round(flags.seconds !== undefined ? flags.seconds * 1000 : (flags.minutes ?? 10) * 60_000);
      const entry = flags.entry === 'auto' ? detectEntry() : (flags.entry as 'built' | 'sources');
      const planned = defaultFaultCounts(durationMs, flags.store);
      // The default retirement needs an instance to spare, too.
      const retire = flags.killForGood ?? (flags.instances >= 3 ? (planned.retire ?? 0) : 0);
      const faults = {
        sigkill: flags.kills ?? planned.sigkill,
        sigstop: flags.pauses ?? planned.sigstop,
        flushall: flags.flushes ?? planned.flushall,
        redisRestart: flags.redisRestarts ?? planned.redisRestart,
        retire,
        pgTerminate: flags.pgTerminations ?? planned.pgTerminate ?? 0,
        diskFull: flags.diskFulls ?? planned.diskFull ?? 0,
      };
      if (flags.store === 'fs' && flags.diskFulls === undefined && !canMountDisk()) io.stderr.write('chaos: no full-disk faults: they need root to mount a tmpfs on the data directory (--disk-fulls N insists)\n');
      // Ctrl-C: exit through process.exit so the run's exit hook SIGKILLs every child it started
      // (a paused instance would otherwise stay stopped forever).
      const interrupt = (): never => process.exit(130);
      process.once('SIGINT', interrupt);
      const { report, text } = await runChaos({
        seed: flags.seed,
        instances: flags.instances,
        durationMs,
        entry,
        store: postgresUrl !== undefined ? { driver: 'postgres', url: postgresUrl } : { driver: 'fs' },
        faults,
        ...(flags.hostile !== undefined ? { hostile: flags.hostile } : {}),
        ...(flags.log !== undefined ? { logPath: flags.log } : {}),
        progress: (line) => io.stderr.write(`chaos: ${line}\n`),
      });
      process.off('SIGINT', interrupt);
      if (flags.json) printJson(io, { ...report, violations: report.violations.slice(0, JSON_VIOLATIONS), violationsOmitted: Math.max(0, report.violations.length - JSON_VIOLATIONS) });
      else io.stdout.write(text);
      if (!report.ok) io.exitCode = 1;
    });
}
