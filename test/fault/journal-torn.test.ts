import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStrataError } from '../../src/errors.js';
import { encodeFileHeader } from '../../src/journal/format.js';
import { Journal, walFileName } from '../../src/journal/journal.js';
import type { TurnRecord } from '../../src/journal/types.js';
import { tempDir, turn } from '../helpers/journal.js';

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

async function openAndReplay(dataDir: string): Promise<{ ids: number[]; torn: Journal['recovery']['tornTail'] }> {
  const journal = await Journal.open({ dataDir, instanceId: 'a' });
  try {
    const ids: number[] = [];
    for await (const { record } of journal.replay()) ids.push((record as TurnRecord).turnId);
    return { ids, torn: journal.recovery.tornTail };
  } finally {
    await journal.close();
  }
}

test('a torn last record is cut at every byte length, reported once, and the journal keeps working', async () => {
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
      assert.equal((await stat(join(jdir, walFileName(1)))).size, last, 'the torn bytes were cut off the file');
      const second = await openAndReplay(dir);
      assert.deepEqual(second, { ids: all.slice(0, n - 1), torn: null }, 'after the cut the file is clean');
    }
  } finally {
    await cleanup();
  }
});

test('every flipped bit of the last record is a torn tail; in an earlier record it is STRATA_ERR_JOURNAL_CORRUPT naming file and offset', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const n = 3;
    const { bytes, offsets } = await buildJournal(dir, n);
    const deadline = Date.now() + 2500;
    for (let pos = offsets[0]!; pos < bytes.length && Date.now() < deadline; pos += 3) {
      const bad = Buffer.from(bytes);
      bad[pos]! ^= 1 << pos % 8;
      const jdir = await install(dir, bad);
      if (pos >= offsets[n - 1]!) {
        const r = await openAndReplay(dir);
        assert.deepEqual(r.ids, [1, 2], `flip at ${pos}`);
        assert.equal(r.torn?.offset, offsets[n - 1]);
      } else {
        const recordStart = pos >= offsets[1]! ? offsets[1]! : offsets[0]!;
        await assert.rejects(openAndReplay(dir), (e) => {
          return isStrataError(e, 'STRATA_ERR_JOURNAL_CORRUPT') && e.details?.file === join(jdir, walFileName(1)) && e.details?.offset === recordStart;
        }, `flip at ${pos}`);
      }
    }
  } finally {
    await cleanup();
  }
});

test('damage in a file that is not the last one is corruption even at its end', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const { bytes, offsets } = await buildJournal(dir, 3);
    // File 2 exists, so file 1 was complete and fsynced when it was rotated: a short file 1 is damage.
    const second = Buffer.from(bytes);
    encodeFileHeader(2).copy(second, 0);
    await install(dir, bytes.subarray(0, bytes.length - 1), second);
    await assert.rejects(openAndReplay(dir), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_CORRUPT') && e.details?.offset === offsets[2]);
    // A missing file in the sequence is refused too.
    const jdir = join(dir, 'journal', 'a');
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
