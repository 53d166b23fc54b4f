/**
 * The journal on a real full filesystem: a 2 MiB tmpfs mounted for the test (we run as root;
 * without the privilege the test fails and says why, it does not skip).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStrataError } from '../../src/errors.js';
import { Journal, walFileName } from '../../src/journal/journal.js';
import type { TurnRecord } from '../../src/journal/types.js';
import { tempDir, turn } from '../helpers/journal.js';

async function withTmpfs(fn: (mnt: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = await tempDir('strata-diskfull-');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (r.status !== 0) {
    await cleanup();
    assert.fail(`this test needs a real small filesystem: "mount -t tmpfs -o size=2m tmpfs ${mnt}" failed (${(r.stderr || r.error?.message || '').trim()}); run it as root or with CAP_SYS_ADMIN`);
  }
  try {
    await fn(mnt);
  } finally {
    spawnSync('umount', [mnt]);
    await cleanup();
  }
}

const BODY = 'x'.repeat(3000);

test('a full disk answers STORAGE_FULL, stores nothing of the refused writes, and the journal recovers by itself when space returns', async () => {
  await withTmpfs(async (mnt) => {
    // Ballast to delete later: the way space "returns".
    await writeFile(join(mnt, 'ballast'), Buffer.alloc(256 * 1024, 1));
    // Freed before the reopen, which needs room for its own new file.
    await writeFile(join(mnt, 'ballast-2'), Buffer.alloc(64 * 1024, 1));
    const journal = await Journal.open({ dataDir: mnt, instanceId: 'a' });
    const acked: number[] = [];
    let id = 0;
    let refused = 0;
    try {
      // Fill the disk one append at a time.
      while (refused === 0) {
        id++;
        try {
          await journal.append(turn('s', id, BODY));
          acked.push(id);
        } catch (err) {
          assert.ok(isStrataError(err, 'STRATA_ERR_STORAGE_FULL'), `expected STORAGE_FULL, got ${String(err)}`);
          refused++;
        }
      }
      assert.ok(acked.length > 300, `${acked.length} appends fit before the disk was full`);
      const health = journal.health();
      assert.equal(health.ok, false);
      assert.equal(health.code, 'STRATA_ERR_STORAGE_FULL');
      const wal = join(mnt, 'journal', 'a', walFileName(1));
      const goodSize = journal.endLsn().offset;
      assert.equal((await stat(wal)).size, goodSize, 'no byte of the refused record stays in the file');

      // Concurrent appends form group-commit batches of several frames: on a full disk every one is refused.
      const burst = await Promise.allSettled(Array.from({ length: 12 }, () => journal.appendMany([turn('s', ++id, BODY), turn('s', ++id, BODY)])));
      assert.ok(burst.every((r) => r.status === 'rejected' && isStrataError(r.reason, 'STRATA_ERR_STORAGE_FULL')), 'every append is refused while the disk is full');
      assert.equal((await stat(wal)).size, goodSize);
      assert.equal(journal.health().ok, false);

      // Space returns: the next append succeeds, no restart, no reopen.
      await unlink(join(mnt, 'ballast'));
      const lsn = await journal.append(turn('s', ++id, BODY));
      acked.push(id);
      assert.deepEqual(lsn, { file: 1, offset: goodSize }, 'a refused write leaves the file in a known state: the journal continues in it, right after the last acknowledged frame');
      assert.deepEqual(journal.health(), { ok: true });

      // Fill it again with bursts: a batch that fits partly is refused whole; the acknowledged ones are exactly the fulfilled ones.
      for (let round = 0; round < 40 && journal.health().ok; round++) {
        const ids = Array.from({ length: 10 }, () => ++id);
        const results = await Promise.allSettled(ids.map((i) => journal.append(turn('s', i, BODY))));
        results.forEach((r, k) => {
          if (r.status === 'fulfilled') acked.push(ids[k]!);
          else assert.ok(isStrataError(r.reason, 'STRATA_ERR_STORAGE_FULL'), String(r.reason));
        });
      }
      assert.equal(journal.health().ok, false, 'the disk filled up again');
    } finally {
      await journal.close();
    }

    await unlink(join(mnt, 'ballast-2'));
    const reopened = await Journal.open({ dataDir: mnt, instanceId: 'a' });
    try {
      const replayed: number[] = [];
      for await (const { record } of reopened.replay()) replayed.push((record as TurnRecord).turnId);
      assert.deepEqual(replayed, acked, 'replay holds exactly the acknowledged records, none of the refused ones');
      assert.equal(reopened.recovery.tornTail, null);
      assert.deepEqual(reopened.recovery.corrupt, []);
    } finally {
      await reopened.close();
    }
  });
});
