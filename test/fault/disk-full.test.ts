/**
 * The journal on a real full filesystem: a 2 MiB tmpfs mounted for the test (we run as root;
 * without the privilege the test fails and says why, it does not skip).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, open, readFile, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FsArchiveStore } from '../../src/archive/fs-store.js';
import { writeUntilFull } from '../../src/chaos/cluster.js';
import { isStrataError } from '../../src/errors.js';
import { Journal, walFileName } from '../../src/journal/journal.js';
import type { TurnRecord } from '../../src/journal/types.js';
import { assertSameTurns, makeTurns } from '../conformance/archive-store.js';
import { tempDir, turn } from '../helpers/journal.js';

async function withTmpfs(fn: (mnt: string) => Promise<void>, size = '2m'): Promise<void> {
  const { dir, cleanup } = await tempDir('strata-diskfull-');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { encoding: 'utf8' });
  if (r.status !== 0) {
    await cleanup();
    assert.fail(`this test needs a real small filesystem: "mount -t tmpfs -o size=${size} tmpfs ${mnt}" failed (${(r.stderr || r.error?.message || '').trim()}); run it as root or with CAP_SYS_ADMIN`);
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

/** Writes a ballast until not one more page fits; returns its path (unlink it to free the space). */
async function fillUp(dir: string): Promise<string> {
  const path = join(dir, '.ballast');
  const fh = await open(path, 'a');
  try {
    await writeUntilFull(fh);
  } finally {
    await fh.close();
  }
  return path;
}

test('the archive on a full disk: appends, idempotency keys and deletions answer STORAGE_FULL and change nothing; all succeed once space returns', async () => {
  await withTmpfs(async (mnt) => {
    const store = new FsArchiveStore({ dataDir: mnt });
    const ref = { tenant: 't', sessionId: 's' };
    const first = makeTurns(1, 20);
    await store.append(ref, first, { fence: 3, idempotency: [{ key: 'k:a#0', turnId: 20, createdAt: 1, hash: 'h0' }], keysSince: 0 });
    const ctl = `${store.pathOf(ref)}.ctl`;
    const ctlBefore = await readFile(ctl, 'utf8');
    const ballast = await fillUp(mnt);

    // Turns with room for many pages of text, and new keys: the session file and the control file would both grow.
    const more = makeTurns(21, 400);
    const keys = more.map((t, i) => ({ key: `k:b${i}#0`, turnId: t.turnId, createdAt: 2, hash: `h${i}` }));
    await assert.rejects(store.append(ref, more, { fence: 4, idempotency: keys, keysSince: 0 }), (err) => isStrataError(err, 'STRATA_ERR_STORAGE_FULL'));
    await assert.rejects(store.append({ tenant: 't', sessionId: 'new' }, more), (err) => isStrataError(err, 'STRATA_ERR_STORAGE_FULL'));
    assertSameTurns(await store.read(ref), first);
    assert.equal(await readFile(ctl, 'utf8'), ctlBefore, 'the control file (fence, floor, keys) is as it was');
    // A deletion must make its floor durable before unlinking: with no room for it, nothing is deleted.
    await assert.rejects(store.deleteSession(ref, { upTo: 20, fence: 5 }), (err) => isStrataError(err, 'STRATA_ERR_STORAGE_FULL'));
    assertSameTurns(await store.read(ref), first);
    assert.equal(await readFile(ctl, 'utf8'), ctlBefore);
    assert.deepEqual((await readdir(mnt, { recursive: true })).map(String).filter((n) => n.endsWith('.tmp')), [], 'no temp file left behind');

    await unlink(ballast);
    const appended = await store.append(ref, more, { fence: 4, idempotency: keys, keysSince: 0 });
    assert.equal(appended.appended, more.length, 'every turn is archived once: a refused append left no half of itself');
    assertSameTurns(await store.read(ref), [...first, ...more]);
    const state = JSON.parse(await readFile(ctl, 'utf8')) as { fence: number; keys: Record<string, unknown> };
    assert.equal(state.fence, 4);
    assert.equal(Object.keys(state.keys).length, 1 + keys.length);
    await store.deleteSession(ref, { upTo: 400, fence: 5 });
    assert.deepEqual(await store.read(ref), []);
    assert.equal((JSON.parse(await readFile(ctl, 'utf8')) as { deletedUpTo: number }).deletedUpTo, 400);
  }, '4m');
});

test('an archive append whose segment fit on the full disk but whose keys could not be saved is cut back: no turn stays archived without its idempotency key', async () => {
  await withTmpfs(async (mnt) => {
    const store = new FsArchiveStore({ dataDir: mnt });
    const ref = { tenant: 't', sessionId: 's' };
    const first = makeTurns(1, 3);
    await store.append(ref, first, { idempotency: [{ key: 'k:a#0', turnId: 3, createdAt: 1, hash: 'h0' }], keysSince: 0 });
    const path = store.pathOf(ref);
    const size = (await stat(path)).size;
    // The last page of the session file has room for a small segment; the new control file needs a page of its own.
    assert.ok(4096 - (size % 4096) > 1024, `room left in the file's last page (${size} bytes)`);
    const ballast = await fillUp(mnt);
    const small = [{ turnId: 4, role: 'user' as const, content: 'hi', createdAt: 5 }];
    await assert.rejects(store.append(ref, small, { idempotency: [{ key: 'k:b#0', turnId: 4, createdAt: 2, hash: 'h1' }], keysSince: 0 }), (err) => {
      assert.ok(isStrataError(err, 'STRATA_ERR_STORAGE_FULL'), String(err));
      assert.match((err as Error).message, /\.ctl/, 'the control file was the write that failed: the segment had landed');
      return true;
    });
    assert.equal((await stat(path)).size, size, 'the landed segment was cut off again');
    assertSameTurns(await store.read(ref), first);
    assert.deepEqual((await store.idempotencyKeys(ref)).map((k) => k.key), ['k:a#0']);
    await unlink(ballast);
    await store.append(ref, small, { idempotency: [{ key: 'k:b#0', turnId: 4, createdAt: 2, hash: 'h1' }], keysSince: 0 });
    assert.deepEqual((await store.read(ref)).map((t) => t.turnId), [1, 2, 3, 4]);
    assert.deepEqual((await store.idempotencyKeys(ref)).map((k) => k.key).sort(), ['k:a#0', 'k:b#0']);
  }, '4m');
});
