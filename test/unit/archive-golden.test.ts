import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { indexFile, inspectBytes, readTurns } from '../../src/archive/file.js';
import '../../src/archive/options.js';
import { GOLDEN_CASES, goldenTurnsOf } from '../fixtures/archive/golden.js';
import { assertSameTurns } from '../conformance/archive-store.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'archive');

for (const c of GOLDEN_CASES) {
  test(`golden ${c.file}: format v${c.version} stays readable, turn for turn`, async () => {
    const bytes = new Uint8Array(readFileSync(join(dir, c.file)));
    const index = indexFile(c.file, bytes);
    assert.equal(bytes[4], c.version, 'the first record carries the format version');
    assert.deepEqual(index.damage, []);
    assert.equal(index.tornBytes, 0);
    assert.equal(index.highWater, 7);
    assert.equal(index.meta.userId, 'user-1');
    const turns = await readTurns(index, {}, async (s) => bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength));
    const expected = goldenTurnsOf(c.version);
    if (c.encoding === 'none') for (const t of expected) delete t.embedding;
    assertSameTurns(turns, expected);
    assert.deepEqual(index.summaries, [{ fromTurn: 1, toTurn: 6, text: 'A greeting and a question about Strata.', createdAt: 1_735_689_600_000 }]);
    const report = inspectBytes(bytes);
    assert.ok(report.ok);
    assert.deepEqual(report.records.map((r) => r.type), ['meta', 'segment', 'segment', 'summary']);
    assert.equal(report.records[1]!.segment!.codec, c.codec);
    assert.equal(report.records[1]!.segment!.textLayout, c.layout);
    assert.equal(report.records[1]!.segment!.embedderId, c.encoding === 'none' ? null : 'golden-embedder');
  });
}

test('golden raw file: the writer still produces the v2 bytes (format changes are deliberate)', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { FsArchiveStore } = await import('../../src/archive/fs-store.js');
  const tmp = mkdtempSync(join(tmpdir(), 'strata-golden-'));
  try {
    const store = new FsArchiveStore({ dataDir: tmp, clock: { now: () => 1_735_689_600_000 }, textCodec: 'raw', textLayout: 'block', embeddingEncoding: 'none' });
    const ref = { tenant: 'golden', sessionId: 'session-1' };
    const turns = goldenTurnsOf(2);
    await store.append(ref, turns.slice(0, 4), { userId: 'user-1', embedderId: 'golden-embedder' });
    await store.append(ref, turns.slice(4), { embedderId: 'golden-embedder' });
    await store.saveSummary(ref, { fromTurn: 1, toTurn: 6, text: 'A greeting and a question about Strata.', createdAt: 1_735_689_600_000 });
    assert.deepEqual(new Uint8Array(readFileSync(store.pathOf(ref))), new Uint8Array(readFileSync(join(dir, 'v2-raw-block-none.strata'))));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
