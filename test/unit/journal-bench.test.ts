import { test } from 'node:test';
import assert from 'node:assert/strict';
import { measureAppends, measureBaselineAppends, measureReplay } from '../../bench/journal.js';
import { tempDir } from '../helpers/journal.js';

test('bench/journal measurements run on tiny inputs and report consistent shapes', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const grouped = await measureAppends({ dir, concurrency: 16, count: 160 });
    assert.ok(grouped.appendsPerSec > 0 && grouped.p99Ms >= grouped.p50Ms);
    assert.ok(grouped.fsyncs >= 1 && grouped.fsyncs < 160, `group commit used ${grouped.fsyncs} fsyncs for 160 appends`);
    const baseline = await measureBaselineAppends({ dir, concurrency: 4, count: 20 });
    assert.equal(baseline.fsyncs, 20);
    const replay = await measureReplay({ dir, records: 1500 });
    assert.equal(replay.records, 1500);
    assert.ok(replay.replayMBps > 0 && replay.recordsPerSec > 0);
  } finally {
    await cleanup();
  }
});
