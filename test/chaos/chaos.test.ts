/**
 * The acceptance test of "nothing acknowledged is ever lost, duplicated or resurrected",
 * black-box: three real `strata serve` processes (from the sources, through tsx) on one
 * private redis-server and one data directory, 16 writers with idempotency keys and retries,
 * deletes under fire and a hostile-request stream, while a seeded schedule SIGKILLs and
 * SIGSTOPs instances, FLUSHes and restarts Redis, and fills the data directory's disk (a tmpfs
 * of the run's: the test runs as root, like the other full-disk tests). Then every session is read back, once after
 * a flush and once after restarting every instance with Redis flushed while they were down.
 * The same harness is `strata chaos`; this is its CI profile, compressed to about four minutes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChaos } from '../../src/chaos/run.js';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers/io.js';
import { SHARED_URL } from '../helpers/postgres.js';
import type { ChaosReport } from '../../src/chaos/report.js';

// A fixed seed: the same plan runs with
// `strata chaos --entry sources --seed 20261124 --seconds 100 --kills 22 --pauses 6 --flushes 4 --redis-restarts 4 --disk-fulls 2 --hostile 2200`.
const SEED = 20261124;

test('chaos: 3 instances under SIGKILL, SIGSTOP, FLUSHALL, Redis restarts, a full disk, deletes and hostile requests lose, duplicate and resurrect nothing acknowledged', { timeout: 295_000 }, async () => {
  const { report, text } = await runChaos({
    seed: SEED,
    instances: 3,
    durationMs: 100_000,
    entry: 'sources',
    faults: { sigkill: 22, sigstop: 6, flushall: 4, redisRestart: 4, diskFull: 2 },
    hostile: 2_200,
    // Phase changes on stderr: a slow CI machine shows where the time went.
    progress: (line) => process.stderr.write(`chaos: ${line}\n`),
    // Every request and fault as JSONL, for a post-mortem of a failed CI run.
    ...(process.env.STRATA_CHAOS_LOG ? { logPath: process.env.STRATA_CHAOS_LOG } : {}),
  });

  // The faults really happened, and the workload really ran through them.
  assert.ok(report.faults.sigkill! >= 20, text);
  assert.ok(report.faults.sigstop! >= 5, text);
  assert.ok(report.faults.flushall! + report.faults.flushallWhileDown! >= 3, text);
  assert.ok(report.faults.flushallWhileDown! >= 1, text);
  assert.ok(report.faults.redisRestart! >= 3, text);
  assert.equal(report.faults.diskFull, 2, text);
  assert.ok(report.storageFullAnswers >= 1, `a full disk was answered with STRATA_ERR_STORAGE_FULL:\n${text}`);
  assert.ok(report.hostile.sent >= 2_000, text);
  assert.ok(report.acknowledged >= 500, text);
  assert.ok(report.deletes >= 10, text);

  assertClean(report, text);
});

test('strata chaos refuses contradictory or unknown options before starting anything', async () => {
  for (const argv of [
    ['chaos', '--minutes', '1', '--seconds', '30'],
    ['chaos', '--seconds', '30', '--entry', 'docker'],
    ['chaos', '--seconds', '0'],
    ['chaos', '--instances', 'three'],
    ['chaos', '--seconds', '30', '--store', 'mysql'],
    ['chaos', '--seconds', '30', '--pg-terminations', '2'],
    ['chaos', '--seconds', '30', '--store', 'postgres', '--postgres-url', SHARED_URL, '--disk-fulls', '1'],
    ['chaos', '--seconds', '30', '--store', 'postgres', '--postgres-url', 'mysql://x'],
    ['chaos', '--seconds', '30', '--store', 'postgres', '--postgres-url', SHARED_URL, '--instances', '3', '--kill-for-good', '2'],
  ]) {
    const io = captureIo();
    assert.equal(await main(argv, io), 1, argv.join(' '));
    assert.match(io.err(), /STRATA_ERR_VALIDATION/, argv.join(' '));
  }
});

// Three instances with STRATA_STORE=postgres and no data directory, on a schema of the run's own
// in the machine's PostgreSQL: one instance is SIGKILLed for good (its journal rows must be
// archived by the others) and followed by a FLUSHALL, every connection of the instances is
// terminated mid-load, besides the kills, pauses, flushes and Redis restarts of the fs profile.
// The same plan: `strata chaos --store postgres --postgres-url URL --entry sources --seed 20261201
// --seconds 60 --kills 9 --pauses 3 --flushes 2 --redis-restarts 2 --kill-for-good 1 --pg-terminations 3 --hostile 900`.
test('chaos on the postgres store: 3 instances, one killed for good, Redis flushed, connections terminated: nothing acknowledged lost, duplicated or resurrected', { timeout: 295_000 }, async () => {
  const { report, text } = await runChaos({
    seed: 20261201,
    instances: 3,
    durationMs: 60_000,
    entry: 'sources',
    store: { driver: 'postgres', url: SHARED_URL },
    faults: { sigkill: 9, sigstop: 3, flushall: 2, redisRestart: 2, retire: 1, pgTerminate: 3 },
    hostile: 900,
    progress: (line) => process.stderr.write(`chaos(postgres): ${line}\n`),
  });
  assert.equal(report.store, 'postgres');
  assert.equal(report.faults.retire, 1, text);
  assert.ok(report.faults.pgTerminate! >= 3, text);
  assert.ok(report.faults.flushall! + report.faults.flushallWhileDown! >= 2, text);
  assert.ok(report.faults.sigkill! >= 8, text);
  assert.ok(report.acknowledged >= 300, text);
  // The instance killed for good held acknowledged, unarchived rows, and the others archived them.
  assert.equal(report.retired.length, 1, text);
  assert.ok(report.retired[0]!.pendingRowsAtKill! > 0, text);
  assert.equal(report.retired[0]!.rowsAfterFlush, 0, text);
  assert.deepEqual(report.strayFiles, [], 'an instance on the postgres store writes no files');
  assertClean(report, text);
});

function assertClean(report: ChaosReport, text: string): void {
  const counts = {
    rejectedWrites: report.rejectedWrites,
    lost: report.lost,
    duplicated: report.duplicated,
    conflicts: report.conflicts,
    resurrected: report.resurrected,
    gaps: report.gaps,
    foreign: report.foreign,
    readErrors: report.readErrors,
    serverErrors: report.serverErrors,
    hostileUnexpected: report.hostile.unexpected,
    startFailures: report.startFailures,
  };
  const zero = Object.fromEntries(Object.keys(counts).map((k) => [k, 0]));
  assert.deepEqual(counts, zero, text);
}
