import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { FsArchiveStore } from '../../src/archive/fs-store.js';
import type { WriteStep } from '../../src/archive/io.js';
import { isStrataError } from '../../src/errors.js';
import { assertSameTurns, makeTurns } from '../conformance/archive-store.js';

/*
 * Simulated crashes: a write hook throws at one step of a durable write, which leaves the files
 * as a crash at that point would. A fresh store on the same directory must then see either the
 * complete old file or the complete new one.
 */

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const ref = { tenant: 't', sessionId: 's' };

class Crash extends Error {}

async function scenario(step: WriteStep, op: (s: FsArchiveStore) => Promise<unknown>) {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-atomic-'));
  dirs.push(dataDir);
  const turns = makeTurns(1, 12);
  const setup = new FsArchiveStore({ dataDir });
  for (let i = 0; i < 12; i += 4) await setup.append(ref, turns.slice(i, i + 4));
  await setup.saveSummary(ref, { fromTurn: 1, toTurn: 4, text: 'first four', createdAt: 1 });
  let armed = true;
  const crashing = new FsArchiveStore({
    dataDir,
    writeHook: (s) => {
      if (armed && s === step) {
        armed = false;
        throw new Crash(`crash at ${s}`);
      }
    },
  });
  const outcome = await op(crashing).then(
    () => 'completed',
    (e: unknown) => (e instanceof Crash || (isStrataError(e) && e.cause instanceof Crash) ? 'crashed' : Promise.reject(e)),
  );
  const fresh = new FsArchiveStore({ dataDir });
  return { outcome, turns, fresh, dir: dirname(fresh.pathOf(ref)), fired: !armed };
}

for (const step of ['write-temp', 'fsync-temp', 'rename', 'fsync-dir'] as const) {
  test(`deleteTurns crashing at ${step} leaves the old file or the new one, complete`, async () => {
    const { outcome, turns, fresh, dir, fired } = await scenario(step, (s) => s.deleteTurns(ref, [2, 3]));
    assert.ok(fired);
    assert.equal(outcome, 'crashed');
    const got = await fresh.read(ref);
    const renamed = step === 'fsync-dir';
    assertSameTurns(got, renamed ? turns.filter((t) => t.turnId !== 2 && t.turnId !== 3) : turns);
    assert.deepEqual((await fresh.loadSummaries(ref)).length, renamed ? 0 : 1);
    assert.equal((await fresh.info(ref))?.highWater, 12);
    assert.deepEqual(readdirSync(dir).filter((n) => !n.endsWith('.ctl') && !n.endsWith('.lck')), ['s.strata'], 'no temp file left behind (the control and lock files are not ones)');
    assert.equal((await fresh.verify()).ok, 1);
  });

  test(`compact crashing at ${step} leaves every turn readable`, async () => {
    const { outcome, turns, fresh, fired } = await scenario(step, (s) => s.compact(ref));
    assert.ok(fired && outcome === 'crashed');
    assertSameTurns(await fresh.read(ref), turns);
    assert.equal((await fresh.info(ref))?.segments, step === 'fsync-dir' ? 1 : 3);
  });
}

for (const step of ['append', 'fsync-append'] as const) {
  test(`append crashing at ${step} leaves the file readable and a retry archives the turns once`, async () => {
    const { outcome, turns, fresh } = await scenario(step, (s) => s.append(ref, makeTurns(13, 15)));
    assert.equal(outcome, 'crashed');
    const before = await fresh.read(ref);
    assert.ok(before.length === 12 || before.length === 15);
    await fresh.append(ref, makeTurns(13, 15));
    assertSameTurns(await fresh.read(ref), [...turns, ...makeTurns(13, 15)]);
  });
}

test('a temp file left by a real crash is invisible to readers and removed by verify --repair once stale', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'strata-atomic-'));
  dirs.push(dataDir);
  let now = Date.now();
  const store = new FsArchiveStore({ dataDir, clock: { now: () => now } });
  await store.append(ref, makeTurns(1, 3));
  const dir = dirname(store.pathOf(ref));
  writeFileSync(join(dir, '.s.strata.999-1.tmp'), 'half a rewrite');
  assert.deepEqual((await store.listSessions('t')).sessions.map((s) => s.sessionId), ['s']);
  await store.verify({ repair: true });
  assert.equal(readdirSync(dir).filter((n) => !n.endsWith('.ctl') && !n.endsWith('.lck')).length, 2, 'a fresh temp file may belong to a live writer');
  now += 2 * 3_600_000;
  await store.verify({ repair: true });
  assert.deepEqual(readdirSync(dir).filter((n) => !n.endsWith('.ctl') && !n.endsWith('.lck')), ['s.strata']);
});
