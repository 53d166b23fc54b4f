/** `strata verify` over journals, through the CLI's `main(argv, io)`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { Journal, walFileName } from '../../src/journal/journal.js';
import type { TurnRecord } from '../../src/journal/types.js';
import { captureIo } from '../helpers/io.js';
import { tempDir, turn } from '../helpers/journal.js';

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  io.env = { STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'error' };
  const code = await main(argv, io);
  return { code, out: io.out(), err: io.err() };
}

async function write(dataDir: string, instanceId: string, n: number): Promise<number[]> {
  const journal = await Journal.open({ dataDir, instanceId });
  const offsets = [];
  for (let i = 1; i <= n; i++) offsets.push((await journal.append(turn('s', i))).offset);
  await journal.close();
  return offsets;
}

async function replayIds(dataDir: string, instanceId: string): Promise<{ ids: number[]; corrupt: number }> {
  const journal = await Journal.open({ dataDir, instanceId });
  try {
    const ids: number[] = [];
    for await (const { record } of journal.replay()) ids.push((record as TurnRecord).turnId);
    return { ids, corrupt: journal.recovery.corrupt.length };
  } finally {
    await journal.close();
  }
}

test('strata verify reports journal damage in every instance with file and offset (exit 2); --repair keeps every intact record, atomically, and keeps the original', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    await write(dir, 'a', 5);
    const offsets = await write(dir, 'b', 10);
    const clean = await cli(['verify', '--data-dir', dir]);
    assert.equal(clean.code, 0, clean.out + clean.err);
    assert.match(clean.out, /2 journal file\(s\) checked, 0 damaged/);

    const file = join(dir, 'journal', 'b', walFileName(1));
    const bytes = await readFile(file);
    bytes[offsets[3]! + 12]! ^= 0x04; // inside record 4's payload
    await writeFile(file, bytes);

    const found = await cli(['verify', '--data-dir', dir]);
    assert.equal(found.code, 2);
    assert.ok(found.out.includes(`${file} @${offsets[3]}: STRATA_ERR_JOURNAL_CORRUPT`), found.out);
    assert.match(found.out, /2 journal file\(s\) checked, 1 damaged/);
    const json = JSON.parse((await cli(['verify', '--data-dir', dir, '--json'])).out) as { damagedJournals: number; journals: Array<{ file: string; damage: Array<{ offset: number }> }> };
    assert.equal(json.damagedJournals, 1);
    assert.deepEqual(json.journals.find((j) => j.file === file)?.damage.map((d) => d.offset), [offsets[3]]);

    // A running owner holds the lock: repair refuses to rewrite under it.
    const running = await Journal.open({ dataDir: dir, instanceId: 'b' });
    const refused = await cli(['verify', '--data-dir', dir, '--repair']);
    await running.close();
    assert.equal(refused.code, 2);
    assert.match(refused.out, /in use by a running instance, not repaired/);

    const repaired = await cli(['verify', '--data-dir', dir, '--repair']);
    assert.equal(repaired.code, 0, repaired.out);
    assert.match(repaired.out, /repaired, original kept as .*\.corrupt-\d+/);
    const names = await readdir(join(dir, 'journal', 'b'));
    const copy = names.find((n) => n.startsWith(`${walFileName(1)}.corrupt-`));
    assert.ok(copy, names.join(', '));
    assert.ok((await readFile(join(dir, 'journal', 'b', copy))).equals(bytes), 'the damaged original is kept byte for byte');
    assert.ok(!names.some((n) => n.endsWith('.tmp')), 'no temp file left');

    assert.equal((await cli(['verify', '--data-dir', dir])).code, 0, 'clean after repair');
    assert.deepEqual(await replayIds(dir, 'b'), { ids: [1, 2, 3, 5, 6, 7, 8, 9, 10], corrupt: 0 }, 'every intact record survives the rewrite; open finds no damage');
    assert.deepEqual(await replayIds(dir, 'a'), { ids: [1, 2, 3, 4, 5], corrupt: 0 });
  } finally {
    await cleanup();
  }
});

test('strata verify --repair cuts a torn journal tail; a torn tail alone is not damage', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const offsets = await write(dir, 'a', 4);
    const file = join(dir, 'journal', 'a', walFileName(1));
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, offsets[3]! + 5));
    const found = await cli(['verify', '--data-dir', dir]);
    assert.equal(found.code, 0, found.out);
    assert.match(found.out, /torn tail 5 B/);
    const repaired = await cli(['verify', '--data-dir', dir, '--repair']);
    assert.equal(repaired.code, 0);
    assert.equal((await readFile(file)).length, offsets[3]);
    assert.deepEqual(await replayIds(dir, 'a'), { ids: [1, 2, 3], corrupt: 0 });
  } finally {
    await cleanup();
  }
});
