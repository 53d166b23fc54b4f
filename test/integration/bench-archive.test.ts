import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runArchiveBench } from '../../bench/archive.js';
import { tempDir } from '../helpers/strata.js';

test('bench archive on a tiny file: sizes against the JSON baselines, loads in a child process, appends and replay', async (t) => {
  const dir = await tempDir(t);
  const input = join(dir, 'sessions.json');
  const sessions = Array.from({ length: 3 }, (_, s) => ({
    session_id: `s${s}`,
    turns: Array.from({ length: 40 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `session ${s} turn ${i}: ${'the quick brown fox jumps over the lazy dog '.repeat(1 + (i % 5))}` })),
  }));
  await writeFile(input, JSON.stringify(sessions));
  const r = await runArchiveBench({ input, dims: 16, loads: 3, appendCount: 50, replayRecords: 500 });
  assert.equal(r.input.turns, 120);
  assert.ok(r.archiveBytes > 0 && r.archiveBytes < r.jsonGzipBytes, 'the archive is smaller than the gzipped JSON archive');
  assert.equal(r.bytesPerTurn, r.archiveBytes / 120);
  assert.equal(r.loadTurns, 120, 'the timed load read the whole long session back');
  for (const v of [r.loadP50Ms, r.loadP99Ms, r.loadFirstMs, r.jsonGzipLoadP50Ms, r.appendsPerSec['1'], r.appendsPerSec['64'], r.replayMBps]) assert.ok(Number.isFinite(v) && v > 0);
  assert.ok(r.loadP50Ms <= r.loadP99Ms);
});
