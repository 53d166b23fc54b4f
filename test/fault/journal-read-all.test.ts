/** Reading other instances' journals without their lock, while they write. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Journal } from '../../src/journal/journal.js';
import { journalRoot, readAllJournals, scanJournalDir } from '../../src/journal/read-all.js';
import type { TurnRecord } from '../../src/journal/types.js';
import { tempDir, turn } from '../helpers/journal.js';

const ids = (records: Array<{ type: string }>): number[] => records.map((r) => (r as TurnRecord).turnId);

test('readAllJournals reads every live instance, tolerating a torn tail being written and files deleted under it', async () => {
  const { dir, cleanup } = await tempDir();
  const a = await Journal.open({ dataDir: dir, instanceId: 'a', maxFileBytes: 4096 });
  const b = await Journal.open({ dataDir: dir, instanceId: 'b' });
  try {
    for (let i = 1; i <= 300; i++) await a.append(turn('s', i));
    for (let i = 1; i <= 3; i++) await b.append(turn('s', i, `b${i}`));
    // A write in progress in b's newest file: half a frame header.
    const bFiles = (await readdir(join(dir, 'journal', 'b'))).filter((f) => f.endsWith('.wal')).sort();
    await appendFile(join(dir, 'journal', 'b', bFiles.at(-1)!), Buffer.from([0x40, 0, 0]));

    const all = await readAllJournals(journalRoot(dir));
    assert.deepEqual(all.map((j) => j.instance), ['a', 'b']);
    assert.deepEqual(ids(all[0]!.records), Array.from({ length: 300 }, (_, i) => i + 1));
    assert.deepEqual(ids(all[1]!.records), [1, 2, 3]);

    // The owner checkpoints past its older files while a reader is between them.
    const damage: string[] = [];
    const seen: number[] = [];
    const reader = scanJournalDir(join(dir, 'journal', 'a'), { onDamage: (file, d) => damage.push(`${file}@${d.offset}`) });
    const first = await reader.next();
    seen.push((first.value as TurnRecord).turnId);
    const aFiles = (await readdir(join(dir, 'journal', 'a'))).filter((f) => f.endsWith('.wal')).sort();
    assert.ok(aFiles.length >= 3);
    await unlink(join(dir, 'journal', 'a', aFiles[1]!)); // as a checkpoint would
    for await (const r of reader) seen.push((r as TurnRecord).turnId);
    assert.equal(seen[0], 1);
    assert.ok(seen.length < 300 && seen.at(-1) === 300, `the deleted file is skipped, the rest is read (${seen.length} records)`);
    assert.deepEqual(damage, []);

    // Appends continue meanwhile and are seen by the next scan.
    await b.append(turn('s', 4));
    const again = await readAllJournals(journalRoot(dir));
    assert.ok(ids(again[1]!.records).includes(1));
  } finally {
    await a.close();
    await b.close();
    await cleanup();
  }
});
