import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStrataError } from '../../src/errors.js';
import { encodeFileHeader } from '../../src/journal/format.js';
import { Journal, walFileName } from '../../src/journal/journal.js';
import type { TurnRecord } from '../../src/journal/types.js';
import { tempDir, turn } from '../helpers/journal.js';
import { prng } from '../helpers/strata.js';

/** Writes a journal of `n` turns in file 1 and returns its bytes and each record's offset. */
async function buildJournal(dir: string, n: number): Promise<{ bytes: Buffer; offsets: number[] }> {
  const journal = await Journal.open({ dataDir: dir, instanceId: 'src' });
  const offsets = [];
  for (let i = 1; i <= n; i++) offsets.push((await journal.append({ ...turn('s', i), metadata: { i } })).offset);
  await journal.close();
  return { bytes: await readFile(join(dir, 'journal', 'src', walFileName(1))), offsets };
}

/** A fresh journal directory whose only file holds `bytes`. */
async function install(dataDir: string, bytes: Buffer, extraFile?: Buffer): Promise<string> {
  const jdir = join(dataDir, 'journal', 'a');
  await rm(jdir, { recursive: true, force: true });
  await mkdir(jdir, { recursive: true });
  await writeFile(join(jdir, walFileName(1)), bytes);
  if (extraFile) await writeFile(join(jdir, walFileName(2)), extraFile);
  return jdir;
}

async function openAndReplay(dataDir: string): Promise<{ ids: number[]; torn: Journal['recovery']['tornTail']; corrupt: Journal['recovery']['corrupt'] }> {
  let reported = 0;
  const journal = await Journal.open({ dataDir, instanceId: 'a', metrics: { journalCorruption: (n) => (reported += n) } });
  try {
    const ids: number[] = [];
    for await (const { record } of journal.replay()) ids.push((record as TurnRecord).turnId);
    assert.equal(reported, journal.recovery.corrupt.length, 'every damaged stretch is counted');
    return { ids, torn: journal.recovery.tornTail, corrupt: journal.recovery.corrupt };
  } finally {
    await journal.close();
  }
}

/** Writes `batches` appendMany frames of `per` turns each (ids 1..batches*per); returns the bytes and each frame's offset. */
async function buildBatches(dir: string, batches: number, per: number): Promise<{ bytes: Buffer; offsets: number[] }> {
  const journal = await Journal.open({ dataDir: dir, instanceId: 'src' });
  const offsets = [];
  for (let b = 0; b < batches; b++) {
    const records = Array.from({ length: per }, (_, i) => ({ ...turn('s', b * per + i + 1), metadata: { b } }));
    offsets.push((await journal.appendMany(records)).offset);
  }
  await journal.close();
  return { bytes: await readFile(join(dir, 'journal', 'src', walFileName(1))), offsets };
}

/** Index of the frame holding byte `pos`. */
function frameOf(offsets: number[], pos: number): number {
  let i = 0;
  while (i + 1 < offsets.length && offsets[i + 1]! <= pos) i++;
  return i;
}

test('a torn last record is cut at every byte length, quietly (never reported as damage), and the journal keeps working', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const n = 5;
    const { bytes, offsets } = await buildJournal(dir, n);
    const last = offsets[n - 1]!;
    const all = Array.from({ length: n }, (_, i) => i + 1);
    for (let keep = 0; keep < bytes.length - last; keep++) {
      const jdir = await install(dir, bytes.subarray(0, last + keep));
      const first = await openAndReplay(dir);
      assert.deepEqual(first.ids, all.slice(0, n - 1), `cut after ${keep} bytes of the last record`);
      assert.deepEqual(first.torn, keep === 0 ? null : { file: join(jdir, walFileName(1)), offset: last, bytes: keep });
      assert.deepEqual(first.corrupt, [], 'a torn write is not damage');
      assert.equal((await stat(join(jdir, walFileName(1)))).size, last, 'the torn bytes were cut off the file');
      const second = await openAndReplay(dir);
      assert.deepEqual(second, { ids: all.slice(0, n - 1), torn: null, corrupt: [] }, 'after the cut the file is clean');
    }
  } finally {
    await cleanup();
  }
});

/**
 * One flipped bit at `pos`: what must come back. Every record outside the damaged frame is
 * replayed; the damage is reported at that frame (a flip in the length field recovers the frame
 * whole); it is never taken for a torn tail; a copy of the damaged file is kept.
 */
async function assertFlip(dir: string, bytes: Buffer, offsets: number[], per: number, pos: number, bit: number): Promise<void> {
  const bad = Buffer.from(bytes);
  bad[pos]! ^= 1 << bit;
  const jdir = await install(dir, bad);
  const r = await openAndReplay(dir);
  const what = `flip of bit ${bit} at byte ${pos}`;
  const frame = frameOf(offsets, pos);
  const all = Array.from({ length: offsets.length * per }, (_, i) => i + 1);
  const lostIds = new Set(all.slice(frame * per, (frame + 1) * per));
  assert.equal(r.torn, null, `${what}: never a torn tail`);
  assert.equal(r.corrupt.length, 1, `${what}: damage reported once (${JSON.stringify(r.corrupt)})`);
  const d = r.corrupt[0]!;
  assert.equal(d.file, join(jdir, walFileName(1)));
  assert.equal(d.offset, offsets[frame], `${what}: reported at the damaged frame`);
  assert.ok((await readFile(d.copy)).equals(bad), `${what}: the damaged file was kept as ${d.copy}`);
  if (d.recovered) {
    assert.ok(pos - offsets[frame]! < 4, `${what}: only a length-field flip recovers the frame`);
    assert.deepEqual(r.ids, all, what);
  } else {
    assert.deepEqual(r.ids, all.filter((id) => !lostIds.has(id)), `${what}: every intact record is replayed`);
  }
}

test('a flipped bit in the last 2 KB of the newest file: every intact record is replayed, the damage is reported, never cut as a torn tail', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const per = 8;
    const { bytes, offsets } = await buildBatches(dir, 40, per);
    assert.ok(bytes.length - offsets.at(-1)! < 2048 && bytes.length > 4096, 'the last 2 KB span several frames');
    const rand = prng(0x5eed);
    // The length field of the last frame is the one a torn write and a bit flip could be confused on: always covered.
    const positions = [offsets.at(-1)!, offsets.at(-1)! + 2, offsets.at(-1)! + 5];
    while (positions.length < 11) positions.push(bytes.length - 1 - Math.floor(rand() * 2048));
    for (const pos of positions) await assertFlip(dir, bytes, offsets, per, pos, Math.floor(rand() * 8));
  } finally {
    await cleanup();
  }
});

test('every flipped bit of a small journal is recovered or reported at its frame, never a torn tail, never a refused start', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const per = 2;
    const { bytes, offsets } = await buildBatches(dir, 3, per);
    // Every byte of every frame header, and a fixed, evenly spread sample of the payload bytes
    // (a bounded count, not a time budget: the same positions on every run and machine).
    const positions = new Set<number>();
    for (const o of offsets) for (let i = 0; i < 8; i++) positions.add(o + i);
    const span = bytes.length - offsets[0]!;
    for (let i = 0; i < 96; i++) positions.add(offsets[0]! + Math.floor((i * span) / 96));
    for (const pos of positions) await assertFlip(dir, bytes, offsets, per, pos, pos % 8);
    assert.ok(positions.size > 100, `checked ${positions.size} positions`);
  } finally {
    await cleanup();
  }
});

test('a flip in the middle of a journal of several files: start succeeds, every other record is replayed, the damage is reported', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a', maxFileBytes: 4096 });
    for (let i = 1; i <= 300; i++) await journal.append(turn('s', i));
    await journal.close();
    const jdir = join(dir, 'journal', 'a');
    const files = (await readdir(jdir)).filter((f) => f.endsWith('.wal')).sort();
    assert.ok(files.length >= 4, `${files.length} files`);
    const target = join(jdir, files[1]!);
    const bytes = await readFile(target);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x20;
    await writeFile(target, bytes);
    const r = await openAndReplay(dir);
    assert.equal(r.corrupt.length, 1);
    assert.equal(r.corrupt[0]!.file, target);
    assert.equal(r.torn, null);
    assert.equal(r.ids.length, r.corrupt[0]!.recovered ? 300 : 299);
    assert.deepEqual(r.ids, [...r.ids].sort((a, b) => a - b));
    // Open again: still starts, still reports, keeps the single copy it made.
    const again = await openAndReplay(dir);
    assert.deepEqual(again.ids, r.ids);
    assert.equal(again.corrupt[0]!.copy, r.corrupt[0]!.copy);
    assert.equal((await readdir(jdir)).filter((f) => f.includes('.corrupt-')).length, 1);
  } finally {
    await cleanup();
  }
});

test('damage in a file that is not the last one is corruption even at its end; a missing file is refused', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const { bytes, offsets } = await buildJournal(dir, 3);
    // File 2 exists, so file 1 was complete and fsynced when it was rotated: a short file 1 is damage.
    const second = Buffer.from(bytes);
    encodeFileHeader(2).copy(second, 0);
    const jdir = await install(dir, bytes.subarray(0, bytes.length - 1), second);
    const r = await openAndReplay(dir);
    assert.equal(r.torn, null);
    assert.deepEqual(r.corrupt.map((c) => [c.file, c.offset]), [[join(jdir, walFileName(1)), offsets[2]]]);
    assert.deepEqual(r.ids, [1, 2, 1, 2, 3], 'file 1 without its damaged last record, then file 2');
    // A missing file in the sequence is refused: records after the checkpoint would be lost unseen.
    await rm(join(jdir, walFileName(2)));
    await writeFile(join(jdir, walFileName(3)), second);
    await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_CORRUPT') && e.message.includes('missing'));
  } finally {
    await cleanup();
  }
});

test('zeros after the last record (a file extended by a crash) are a torn tail; a file torn at creation is dropped', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const { bytes } = await buildJournal(dir, 2);
    await install(dir, Buffer.concat([bytes, Buffer.alloc(4096)]));
    const r = await openAndReplay(dir);
    assert.deepEqual(r.ids, [1, 2]);
    assert.equal(r.torn?.bytes, 4096);

    const jdir = await install(dir, bytes, Buffer.alloc(7));
    const r2 = await openAndReplay(dir);
    assert.deepEqual(r2.ids, [1, 2]);
    // The 7-byte file was removed and its sequence number reused for this run's new file.
    const files = await readdir(jdir);
    assert.deepEqual(files.filter((f) => f.endsWith('.wal')), [walFileName(1), walFileName(2)]);
    assert.equal((await readFile(join(jdir, walFileName(2)))).subarray(0, 4).toString('latin1'), 'STRJ');
  } finally {
    await cleanup();
  }
});

test('a damaged checkpoint file is refused rather than guessed', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const lsn = await journal.append(turn('s', 1));
    await journal.append(turn('s', 2));
    await journal.checkpoint(lsn);
    await journal.close();
    const cp = join(dir, 'journal', 'a', 'checkpoint');
    const bytes = await readFile(cp);
    bytes[12]! ^= 0x10;
    await writeFile(cp, bytes);
    await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_CORRUPT') && e.message.includes('checkpoint'));
  } finally {
    await cleanup();
  }
});
