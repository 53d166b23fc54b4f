import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isStrataError } from '../../src/errors.js';
import { Journal } from '../../src/journal/journal.js';
import { isProcessAlive, LOCK_FILE } from '../../src/journal/lock.js';
import { tempDir, turn } from '../helpers/journal.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const child = join(root, 'test', 'fixtures', 'journal-lock-child.ts');

function runChild(dataDir: string, mode: 'try'): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', child, dataDir, 'a', mode], { cwd: root, encoding: 'utf8', timeout: 20_000 });
  return r.stdout.trim();
}

test('a second open of the same directory in this process fails with STRATA_ERR_JOURNAL_LOCKED; close releases it', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_LOCKED') && e.message.includes(String(process.pid)));
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

test('another process cannot open a locked directory; a killed owner leaves a stale lock that is taken over', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    assert.equal(runChild(dir, 'try'), 'STRATA_ERR_JOURNAL_LOCKED');
    await journal.close();
    assert.equal(runChild(dir, 'try'), 'opened');

    const holder = spawn(process.execPath, ['--import', 'tsx', child, dir, 'a', 'hold'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => (d.toString().includes('ready') ? resolve() : reject(new Error(d.toString()))));
        holder.on('exit', () => reject(new Error('holder exited early')));
      });
      await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_LOCKED') && e.message.includes(String(holder.pid)));
    } finally {
      const exited = new Promise((resolve) => holder.on('exit', resolve));
      holder.kill('SIGKILL');
      await exited;
    }
    const lock = JSON.parse(await readFile(join(dir, 'journal', 'a', LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(lock.pid, holder.pid, 'kill -9 left the lock behind');
    const taken = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const now = JSON.parse(await readFile(join(dir, 'journal', 'a', LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(now.pid, process.pid);
    await taken.close();
  } finally {
    await cleanup();
  }
});

test('a lock naming a dead pid is taken over; one from another host is not', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(dead.stdout);
    assert.equal(isProcessAlive(pid), false);
    const lockDir = join(dir, 'journal', 'a');
    await mkdir(lockDir, { recursive: true });
    await writeFile(join(lockDir, LOCK_FILE), JSON.stringify({ pid, host: hostname(), since: 0 }));
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await journal.close();

    await writeFile(join(lockDir, LOCK_FILE), JSON.stringify({ pid, host: `${hostname()}-elsewhere`, since: 0 }));
    await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_LOCKED') && e.message.includes('elsewhere'));
  } finally {
    await cleanup();
  }
});
