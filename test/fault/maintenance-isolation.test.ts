/**
 * Per-session isolation of background maintenance: a session whose archive file is damaged
 * fails its compaction, the failure is counted by error code through the metrics hook and
 * retried with backoff, and every other session is still compacted in the same pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StrataMetrics } from '../../src/metrics.js';
import { FakeClock, closeAfter, openStrata, tempDir } from '../helpers/strata.js';

async function findFile(dir: string, name: string): Promise<string> {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name === name) return join(entry.parentPath, entry.name);
  }
  throw new Error(`${name} not found under ${dir}`);
}

test('a damaged session fails alone: counted by code, backed off, the healthy session is compacted', async (t) => {
  const dir = await tempDir(t);
  const clock = new FakeClock();
  const errors: string[] = [];
  const compactions: number[] = [];
  const metrics: StrataMetrics = {
    backgroundError: (code) => errors.push(code),
    compaction: (_seconds, turns) => compactions.push(turns),
  };
  // Sessions are compacted by age only (the count threshold is out of reach), so the pass under
  // test is the one that does it.
  const s = await openStrata(dir, { clock, metrics, compaction: { maxUnarchivedTurns: 100_000, maxUnarchivedAgeMs: 60_000 }, sessionIdleTtlMs: 24 * 3_600_000 });
  closeAfter(t, () => s.close());

  for (const id of ['healthy', 'damaged']) {
    for (let i = 1; i <= 5; i++) await s.addMessage(id, i % 2 ? 'user' : 'assistant', `${id} archived ${i}`);
    await s.flush(id);
    assert.equal((await s.getSession(id)).archivedTurns, 5);
  }
  // Damage the first record header of one file: the file becomes read-only (unknown loss).
  const path = await findFile(dir, 'damaged.strata');
  const bytes = await readFile(path);
  bytes[0]! ^= 0xff;
  await writeFile(path, bytes);
  await utimes(path, new Date(clock.now() + 5_000), new Date(clock.now() + 5_000));

  for (const id of ['healthy', 'damaged']) for (let i = 6; i <= 8; i++) await s.addMessage(id, 'user', `${id} unarchived ${i}`);
  // A session whose turns are younger than the damaged one's: compacted after it in the pass.
  clock.advance(1_000);
  for (let i = 1; i <= 4; i++) await s.addMessage('later', 'user', `later ${i}`);
  assert.equal((await s.getSession('healthy')).unarchivedTurns, 3);
  assert.equal((await s.getSession('damaged')).unarchivedTurns, 3);
  assert.deepEqual(errors, []);

  clock.advance(120_000);
  await s.runMaintenance();
  const healthy = await s.getSession('healthy');
  assert.equal(healthy.archivedTurns, 8, 'the healthy session was compacted in the same pass');
  assert.equal(healthy.unarchivedTurns, 0);
  assert.equal((await s.getSession('later')).archivedTurns, 4, 'a session after the damaged one was compacted too');
  assert.ok(compactions.includes(3), `compaction metric for the healthy session: ${JSON.stringify(compactions)}`);
  assert.deepEqual(errors, ['STRATA_ERR_ARCHIVE_CORRUPT'], 'the damaged session failed once, counted by code');
  const damaged = await s.getSession('damaged');
  assert.equal(damaged.unarchivedTurns, 3, 'its unarchived turns are kept (hot tier and journal)');
  const recent = await s.getContext('damaged', { type: 'recent', limit: 3 });
  assert.deepEqual(recent.messages.map((m) => m.content), ['damaged unarchived 6', 'damaged unarchived 7', 'damaged unarchived 8']);

  // Right away: backoff, no retry of the damaged session, no throw, no new error.
  await s.addMessage('healthy', 'user', 'healthy unarchived 9');
  await s.runMaintenance();
  assert.deepEqual(errors, ['STRATA_ERR_ARCHIVE_CORRUPT'], 'not retried inside its backoff');

  // After the backoff (1 s after the first failure) it is retried, fails again and is counted again;
  // the healthy session's new turn (now old enough) is compacted in that same pass.
  clock.advance(120_000);
  await s.runMaintenance();
  assert.deepEqual(errors, ['STRATA_ERR_ARCHIVE_CORRUPT', 'STRATA_ERR_ARCHIVE_CORRUPT']);
  assert.equal((await s.getSession('healthy')).archivedTurns, 9);
  assert.equal((await s.getSession('damaged')).unarchivedTurns, 3);

  const health = await s.health();
  assert.equal(health.journal.ok, true, JSON.stringify(health));
  assert.equal(health.hot.ok, true);
  assert.equal(health.dataDir.ok, true);
  assert.equal(health.ok, true, 'one damaged session does not make the instance unready');
});
