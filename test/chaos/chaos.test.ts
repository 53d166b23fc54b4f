/**
 * The acceptance test of "nothing acknowledged is ever lost, duplicated or resurrected",
 * black-box: three real `strata serve` processes (from the sources, through tsx) on one
 * private redis-server and one data directory, 16 writers with idempotency keys and retries,
 * deletes under fire and a hostile-request stream, while a seeded schedule SIGKILLs and
 * SIGSTOPs instances, FLUSHes and restarts Redis. Then every session is read back, once after
 * a flush and once after restarting every instance with Redis flushed while they were down.
 * The same harness is `strata chaos`; this is its CI profile, compressed to about four minutes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChaos } from '../../src/chaos/run.js';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers/io.js';

// A fixed seed: the same plan runs with
// `strata chaos --entry sources --seed 20261124 --seconds 100 --kills 22 --pauses 6 --flushes 4 --redis-restarts 4 --hostile 2200`.
const SEED = 20261124;

test('chaos: 3 instances under SIGKILL, SIGSTOP, FLUSHALL, Redis restarts, deletes and hostile requests lose, duplicate and resurrect nothing acknowledged', { timeout: 295_000 }, async () => {
  const { report, text } = await runChaos({
    seed: SEED,
    instances: 3,
    durationMs: 100_000,
    entry: 'sources',
    faults: { sigkill: 22, sigstop: 6, flushall: 4, redisRestart: 4 },
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
  assert.ok(report.hostile.sent >= 2_000, text);
  assert.ok(report.acknowledged >= 500, text);
  assert.ok(report.deletes >= 10, text);

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
});

test('strata chaos refuses contradictory or unknown options before starting anything', async () => {
  for (const argv of [
    ['chaos', '--minutes', '1', '--seconds', '30'],
    ['chaos', '--seconds', '30', '--entry', 'docker'],
    ['chaos', '--seconds', '0'],
    ['chaos', '--instances', 'three'],
  ]) {
    const io = captureIo();
    assert.equal(await main(argv, io), 1, argv.join(' '));
    assert.match(io.err(), /STRATA_ERR_VALIDATION/, argv.join(' '));
  }
});
