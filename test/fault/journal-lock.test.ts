import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isStrataError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';
import { LOCK_FILE } from '../../src/journal/lock.js';
import { tempDir, turn } from '../helpers/journal.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const child = join(root, 'test', 'fixtures', 'journal-lock-child.ts');

function runChild(dataDir: string, mode: 'try'): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, dataDir, 'a', mode], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  return r.stdout.trim();
}

async function startHolder(dataDir: string): Promise<ChildProcess> {
  const holder = spawn(process.execPath, ['--import', 'tsx', child, dataDir, 'a', 'hold'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.on('data', (d: Buffer) => (d.toString().includes('ready') ? resolve() : reject(new Error(d.toString()))));
    holder.on('exit', () => reject(new Error('holder exited early')));
  });
  return holder;
}

async function kill9(p: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => p.on('exit', resolve));
  p.kill('SIGKILL');
  await exited;
}

test('a second open of the same directory in this process fails with STRATA_ERR_JOURNAL_LOCKED naming the directory; close releases it', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const jdir = join(dir, 'journal', 'a');
    await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_LOCKED') && e.message.includes(jdir) && e.message.includes(String(process.pid)));
    const other = await Journal.open({ dataDir: dir, instanceId: 'b' });
    await other.close();
    await journal.append(turn('s', 1));
    await journal.close();
    const again = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await again.close();
  } finally {
    await cleanup();
  }
});

test('a restarted process with the same pid as the previous owner takes the lock (container restart, node as PID 1)', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    // What a container restarted after kill -9 sees: a lock file naming its own pid, no holder.
    const jdir = join(dir, 'journal', 'a');
    await mkdir(jdir, { recursive: true });
    await writeFile(join(jdir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: hostname(), since: 1 }));
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await journal.append(turn('s', 1));
    const content = JSON.parse(await readFile(join(jdir, LOCK_FILE), 'utf8')) as { pid: number; since: number };
    assert.equal(content.pid, process.pid);
    assert.ok(content.since > 1, 'the lock file names the new owner');
    await journal.close();
    // Content from another host means nothing either: only the OS lock decides.
    await writeFile(join(jdir, LOCK_FILE), JSON.stringify({ pid: 1, host: `${hostname()}-elsewhere`, since: 1 }));
    const again = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await again.close();
  } finally {
    await cleanup();
  }
});

test('a live other process holding the lock makes open fail with LOCKED naming it; after its SIGKILL the lock is free at once', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    assert.equal(runChild(dir, 'try'), 'STRATA_ERR_JOURNAL_LOCKED');
    await journal.close();
    assert.equal(runChild(dir, 'try'), 'opened');

    const holder = await startHolder(dir);
    try {
      await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_LOCKED') && e.message.includes(String(holder.pid)));
    } finally {
      await kill9(holder);
    }
    const lock = JSON.parse(await readFile(join(dir, 'journal', 'a', LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(lock.pid, holder.pid, 'kill -9 left the lock file behind');
    // No wait, no staleness check: the kernel released the lock with the process.
    const t0 = performance.now();
    const taken = await Journal.open({ dataDir: dir, instanceId: 'a' });
    assert.ok(performance.now() - t0 < 1000);
    const now = JSON.parse(await readFile(join(dir, 'journal', 'a', LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(now.pid, process.pid);
    // And the other way round: a child cannot take it from this process.
    assert.equal(runChild(dir, 'try'), 'STRATA_ERR_JOURNAL_LOCKED');
    await taken.close();
  } finally {
    await cleanup();
  }
});
