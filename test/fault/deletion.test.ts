/**
 * Crash-safe deletion (docs/consistency.md, "Deletion"): once `deleteSession` is acknowledged
 * nothing brings the session's turns back — not a restart, not a replay of this or another
 * instance's journal, not a loss of Redis — and new turns of the same session id get ids above
 * every deleted one. A process killed inside the deletion, at each of its steps, leaves either
 * the deletion (from the durable floor on) or every acknowledged turn (before it).
 *
 * Killed instances are real child processes (SIGKILL at a chosen step, by fault injection in the
 * child); the rest runs in-process against real files and a private redis-server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { fileURLToPath } from 'node:url';
import { FsArchiveStore } from '../../src/archive/fs-store.js';
import { isStrataError } from '../../src/errors.js';
import { journalRoot, readAllJournals } from '../../src/journal/read-all.js';
import type { CreateStrataOptions, Strata } from '../../src/strata.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';
import { startRedis } from '../helpers/redis.js';
import type { TestRedis } from '../helpers/redis.js';

const SRC = pathToFileURL(fileURLToPath(new URL('../../src/', import.meta.url))).href;
const isNotFound = (err: unknown): boolean => isStrataError(err) && err.code === 'STRATA_ERR_NOT_FOUND';
/** No compaction unless a test asks: turns stay unarchived in the journal and the hot tier. */
const HOLD = { compaction: { maxUnarchivedTurns: 100_000, maxUnarchivedAgeMs: 24 * 3_600_000, intervalMs: 3_600_000 } };

/**
 * Every read path shows no turn (messages and context read as empty, session info says the
 * session does not exist), and nothing lists it. Problems are collected (not thrown) so that one
 * failing test reports every path and phase that shows deleted turns.
 */
async function assertGone(s: Strata, sessionId: string, label: string, problems: string[]): Promise<void> {
  const reads: Array<[string, () => Promise<{ messages: unknown[] } | unknown>]> = [
    ['getMessages', () => s.getMessages(sessionId)],
    ['getSession', () => s.getSession(sessionId)],
    ['recent context', () => s.getContext(sessionId, { type: 'recent' })],
    ['full context', () => s.getContext(sessionId, { type: 'full' })],
  ];
  for (const [name, read] of reads) {
    try {
      const got = await read();
      const empty = name !== 'getSession' && (got as { messages: unknown[] }).messages.length === 0;
      if (!empty) problems.push(`${label}: ${name} answered ${JSON.stringify(got, (k, v: unknown) => (k === 'explain' ? undefined : v))}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  const listed = (await s.listSessions()).sessions.map((x) => x.sessionId);
  if (listed.includes(sessionId)) problems.push(`${label}: listSessions lists it`);
}

async function contents(s: Strata, sessionId: string): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  let after = 0;
  for (;;) {
    const page = await s.getMessages(sessionId, { after, limit: 1000 });
    out.push(...page.messages.map((m): [number, string] => [m.turnId, m.content as string]));
    if (page.nextAfter === null) return out;
    after = page.nextAfter;
  }
}

/** Highest turn id any journal under the data directory holds for the session. */
async function maxJournaledId(dataDir: string, sessionId: string): Promise<number> {
  let max = 0;
  for (const { records } of await readAllJournals(journalRoot(dataDir))) for (const r of records) if (r.type === 'turn' && r.sessionId === sessionId) max = Math.max(max, r.turnId);
  return max;
}

/*
 * Kill at every step of a deletion. The child (instance `x`) writes 5 archived and 3 unarchived
 * turns to session `s`, then deletes it and is SIGKILLed at STEP:
 *   before     deleteSession never ran (nothing was deleted, nothing acknowledged)
 *   after-hot  the hot tier dropped the session and raised its floor; the archive is untouched
 *   after-floor  the archive floor is durable in `<file>.ctl`; the file is not unlinked yet
 *   after-unlink the file is unlinked; the journal's delete record is not written yet
 *   after-ack  deleteSession resolved
 * Then the test restarts instance `x` (its journal replays) on the same Redis, and again after
 * FLUSHALL.
 */
const CHILD_SOURCE = `
const env = process.env;
const { createStrata } = await import(env.SRC + 'strata.js');
const { FsArchiveStore } = await import(env.SRC + 'archive/fs-store.js');
const { RedisHotStore } = await import(env.SRC + 'hot/redis/redis-store.js');
const die = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => {}); };
const step = env.STEP;
if (step === 'after-hot') {
  const original = RedisHotStore.prototype.deleteSession;
  RedisHotStore.prototype.deleteSession = async function (ref) { await original.call(this, ref); return die(); };
}
if (step === 'after-floor') FsArchiveStore.prototype.deleteSessionLocked = function () { return die(); };
if (step === 'after-unlink') {
  const original = FsArchiveStore.prototype.deleteSessionLocked;
  FsArchiveStore.prototype.deleteSessionLocked = async function (...args) { await original.apply(this, args); return die(); };
}
const strata = await createStrata({
  dataDir: env.DATA_DIR, instanceId: env.INSTANCE_ID,
  hot: { driver: 'redis', redisUrl: env.REDIS_URL, keyPrefix: env.KEY_PREFIX },
  embedder: { provider: 'hash' },
  compaction: { maxUnarchivedTurns: 100000, maxUnarchivedAgeMs: 86400000, intervalMs: 3600000 },
});
for (let i = 0; i < Number(env.ARCHIVED); i++) {
  const { turnId } = await strata.addMessage('s', 'user', 'archived ' + i);
  process.stdout.write('ack ' + turnId + '\\n');
}
if (Number(env.ARCHIVED) > 0) await strata.flush('s');
for (let i = 0; i < Number(env.UNARCHIVED); i++) {
  const { turnId } = await strata.addMessage('s', 'user', 'unarchived ' + i);
  process.stdout.write('ack ' + turnId + '\\n');
}
if (step === 'hold' || step === 'before') await die();
await strata.deleteSession('s');
process.stdout.write('deleted\\n');
await die();
`;

async function runChild(env: Record<string, string>): Promise<{ acks: number[]; deleted: boolean; killed: boolean }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD_SOURCE], { env: { ...process.env, SRC, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const acks: number[] = [];
  let deleted = false;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = /^ack (\d+)$/.exec(line);
    if (m) acks.push(Number(m[1]));
    if (line === 'deleted') deleted = true;
  });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (signal !== 'SIGKILL') throw new Error(`child exited with ${code ?? signal}: ${stderr}`);
  // Let readline deliver the last lines.
  await new Promise((resolve) => setImmediate(resolve));
  return { acks, deleted, killed: true };
}

/*
 * Killed children, started in parallel before any test (each start loads the whole core, which
 * dominates the run time): one private Redis and data directory each. `hold` writes 6 unarchived
 * turns and is killed; the STEPS write 5 archived and 3 unarchived turns and are killed inside
 * their deletion.
 */
type Crash = { dir: string; redis: TestRedis; acks: number[]; deleted: boolean };
const crashed = new Map<string, Crash>();
before(async () => {
  await Promise.all(
    ['hold', 'before', 'after-hot', 'after-floor', 'after-unlink', 'after-ack'].map(async (step) => {
      const redis = await startRedis({ private: true });
      const dir = await mkdtemp(join(tmpdir(), `strata-delete-${step}-`));
      crashed.set(step, { dir, redis, acks: [], deleted: false });
      const counts = step === 'hold' ? { ARCHIVED: '0', UNARCHIVED: '6' } : { ARCHIVED: '5', UNARCHIVED: '3' };
      const child = await runChild({ DATA_DIR: dir, REDIS_URL: redis.url, KEY_PREFIX: redis.prefix('d'), INSTANCE_ID: step === 'hold' ? 'b' : 'x', STEP: step, ...counts });
      crashed.set(step, { dir, redis, acks: child.acks, deleted: child.deleted });
    }),
  );
});
after(async () => {
  for (const { dir, redis } of crashed.values()) {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('memory hot tier: an acknowledged deletion survives close and reopen; ids are not reused', async (t) => {
  const problems: string[] = [];
  const dir = await tempDir(t);
  let s = await openStrata(dir, HOLD);
  await s.addMessages('s', Array.from({ length: 5 }, (_, i) => ({ role: 'user' as const, content: `archived ${i + 1}` })), { userId: 'u' });
  await s.flush('s');
  await s.addMessages('s', Array.from({ length: 3 }, (_, i) => ({ role: 'user' as const, content: `unarchived ${i + 6}` })));
  await s.addMessage('keep', 'user', 'other session');
  const receipt = await s.deleteSession('s');
  assert.deepEqual(receipt.sessionIds, ['s']);
  assert.equal(receipt.turns, 5, 'the archived turns were deleted from the file');
  await assertGone(s, 's', 'same instance', problems);
  await s.close();

  s = await openStrata(dir, HOLD);
  closeAfter(t, () => s.close());
  await assertGone(s, 's', 'after reopen', problems);
  assert.deepEqual(await contents(s, 'keep'), [[1, 'other session']]);
  const files = (await readdir(dir, { recursive: true })).map(String);
  assert.ok(!files.some((f) => basename(f) === 's.strata'), `archive file removed: ${files.join(',')}`);
  const ctl = files.find((f) => basename(f) === 's.strata.ctl');
  assert.ok(ctl, 'the control file keeps the floor');
  assert.equal((JSON.parse(await readFile(join(dir, ctl), 'utf8')) as { deletedUpTo: number }).deletedUpTo, 8);

  assert.deepEqual(await s.addMessage('s', 'user', 'reborn'), { turnId: 9 }, 'new ids start above the deleted ones');
  await s.close();
  s = await openStrata(dir, HOLD);
  assert.deepEqual(await contents(s, 's'), [[9, 'reborn']]);
  await s.flush();
  assert.deepEqual(await contents(s, 's'), [[9, 'reborn']]);
  assert.deepEqual(problems, []);
});

describe('Redis hot tier shared by two instances', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis({ private: true });
  });
  after(() => redis.stop());

  const open = (dir: string, instanceId: string, options: CreateStrataOptions = {}): Promise<Strata> =>
    openStrata(dir, { ...HOLD, ...options, instanceId, hot: { driver: 'redis', redisUrl: redis.url, keyPrefix: redis.prefix(basename(dir)) } });

  test('B holds unarchived turns, A deletes: B never shows them again (live, reopened, after FLUSHALL)', async (t) => {
    const problems: string[] = [];
    const dir = await tempDir(t);
    let a = await open(dir, 'a');
    closeAfter(t, () => a.close());
    let b = await open(dir, 'b');
    closeAfter(t, () => b.close());
    await a.addMessages('s', [{ role: 'user', content: 'a1' }, { role: 'assistant', content: 'a2' }, { role: 'user', content: 'a3' }]);
    await a.flush('s');
    for (let i = 4; i <= 9; i++) assert.deepEqual(await b.addMessage('s', 'user', `b${i}`), { turnId: i });
    assert.equal(b.pendingTurns, 6, 'B holds six unarchived turns in its journal');
    assert.equal((await a.getSession('s')).unarchivedTurns, 6);
    const highest = await maxJournaledId(dir, 's');
    assert.equal(highest, 9);

    await a.deleteSession('s');
    await assertGone(a, 's', 'A after the delete', problems);
    await assertGone(b, 's', 'B (live, holding the turns in its journal)', problems);
    await b.runMaintenance();
    await assertGone(b, 's', 'B after maintenance', problems);

    await b.close();
    b = await open(dir, 'b');
    await assertGone(b, 's', 'B reopened (journal replayed)', problems);
    await redis.flushall();
    await assertGone(a, 's', 'A after FLUSHALL', problems);
    await assertGone(b, 's', 'B after FLUSHALL', problems);
    await b.close();
    await a.close();
    b = await open(dir, 'b');
    a = await open(dir, 'a');
    await assertGone(b, 's', 'B reopened after FLUSHALL', problems);
    await assertGone(a, 's', 'A reopened after FLUSHALL', problems);

    const { turnId } = await b.addMessage('s', 'user', 'new life');
    assert.ok(turnId > highest, `new id ${turnId} above every deleted one (${highest})`);
    assert.deepEqual(await contents(a, 's'), [[turnId, 'new life']]);
    await a.flush();
    await b.flush();
    assert.deepEqual(await contents(b, 's'), [[turnId, 'new life']]);
    assert.deepEqual(problems, [], 'deleted turns shown again');
  });

  test('a seed that read the floors while a deletion was half done deletes nothing the deleter finished: turns written after the deletion survive', async (t) => {
    const dir = await tempDir(t);
    const a = await open(dir, 'a');
    closeAfter(t, () => a.close());
    const b = await open(dir, 'b');
    closeAfter(t, () => b.close());
    await a.addMessages('s', [{ role: 'user', content: 'old 1' }, { role: 'assistant', content: 'old 2' }, { role: 'user', content: 'old 3' }]);
    await a.flush('s');
    await a.deleteSession('s');
    assert.deepEqual(await a.addMessage('s', 'user', 'new 4'), { turnId: 4 });
    assert.deepEqual(await a.addMessage('s', 'assistant', 'new 5'), { turnId: 5 });
    await a.flush('s');
    await a.evictToDiskLru('s');
    // Fault injection: B's seed plan reads the archive's floor as it was before A's deletion
    // reached the archive (the hot tier's floor already raised); only the first plan's read is stale.
    const real = FsArchiveStore.prototype.deletedUpTo;
    let staleReads = 0;
    FsArchiveStore.prototype.deletedUpTo = function (this: FsArchiveStore, ref) {
      const stack = new Error().stack ?? '';
      if (staleReads === 0 && stack.includes('planSeed') && !stack.includes('finishDeletion')) {
        staleReads++;
        return Promise.resolve(0);
      }
      return real.call(this, ref);
    };
    try {
      assert.deepEqual(await contents(b, 's'), [[4, 'new 4'], [5, 'new 5']]);
    } finally {
      FsArchiveStore.prototype.deletedUpTo = real;
    }
    assert.ok(staleReads > 0, 'the seed plan read the stale floor');
    assert.deepEqual(await contents(a, 's'), [[4, 'new 4'], [5, 'new 5']]);
    assert.deepEqual(await contents(b, 's'), [[4, 'new 4'], [5, 'new 5']]);
  });

  test('B killed holding unarchived turns; A deletes; B restarts (replay) and Redis is flushed: nothing returns', async (t) => {
    const problems: string[] = [];
    const { dir, redis: own, acks } = crashed.get('hold')!;
    assert.deepEqual(acks, [1, 2, 3, 4, 5, 6]);
    assert.equal(await maxJournaledId(dir, 's'), 6, "B's journal holds its unarchived turns");
    const hot = { driver: 'redis' as const, redisUrl: own.url, keyPrefix: own.prefix('d') };
    const reopen = (instanceId: string): Promise<Strata> => openStrata(dir, { ...HOLD, instanceId, hot });
    const a = await reopen('a');
    closeAfter(t, () => a.close());
    assert.equal((await a.getSession('s')).unarchivedTurns, 6, 'A sees the turns B left in the hot tier');
    await a.deleteSession('s');
    await assertGone(a, 's', 'A after the delete', problems);
    let b = await reopen('b');
    await assertGone(b, 's', 'B restarted (its journal replayed)', problems);
    await own.flushall();
    await assertGone(b, 's', 'B after FLUSHALL', problems);
    await assertGone(a, 's', 'A after FLUSHALL', problems);
    await b.close();
    b = await reopen('b');
    closeAfter(t, () => b.close());
    await assertGone(b, 's', 'B restarted after FLUSHALL', problems);
    const { turnId } = await a.addMessage('s', 'user', 'after');
    assert.ok(turnId > 6, `new id ${turnId} above the deleted ones`);
    assert.deepEqual(await contents(b, 's'), [[turnId, 'after']]);
    assert.deepEqual(problems, [], 'deleted turns shown again');
  });
});

type Step = 'before' | 'after-hot' | 'after-floor' | 'after-unlink' | 'after-ack';

describe('kill at every step of a deletion', () => {
  const expected: Array<[number, string]> = [
    ...Array.from({ length: 5 }, (_, i): [number, string] => [i + 1, `archived ${i}`]),
    ...Array.from({ length: 3 }, (_, i): [number, string] => [i + 6, `unarchived ${i}`]),
  ];

  function crashAt(step: Step): { dir: string; redis: TestRedis; deleted: boolean; open: (instanceId?: string) => Promise<Strata> } {
    const c = crashed.get(step)!;
    assert.deepEqual(c.acks, [1, 2, 3, 4, 5, 6, 7, 8], `${step}: every write acknowledged`);
    const hot = { driver: 'redis' as const, redisUrl: c.redis.url, keyPrefix: c.redis.prefix('d') };
    return { ...c, open: (instanceId = 'x') => openStrata(c.dir, { ...HOLD, instanceId, hot }) };
  }

  test('killed before the deletion started: every acknowledged turn is intact, also after FLUSHALL', async (t) => {
    const { open, redis, deleted } = crashAt('before');
    assert.equal(deleted, false);
    let s = await open();
    assert.deepEqual(await contents(s, 's'), expected);
    await s.close();
    await redis.flushall();
    s = await open();
    closeAfter(t, () => s.close());
    assert.deepEqual(await contents(s, 's'), expected);
    assert.deepEqual(await s.addMessage('s', 'user', 'next'), { turnId: 9 });
  });

  test('killed after the hot tier dropped the session, before the archive floor: all or nothing, and a retried delete completes', async (t) => {
    const problems: string[] = [];
    const { open, deleted } = crashAt('after-hot');
    assert.equal(deleted, false, 'the deletion was not acknowledged');
    const s = await open();
    closeAfter(t, () => s.close());
    const seen = await contents(s, 's').catch((err: unknown) => (isNotFound(err) ? [] : Promise.reject(err)));
    // Not acknowledged: the deletion may have happened or not, but never in part.
    assert.ok(seen.length === 0 || JSON.stringify(seen) === JSON.stringify(expected), `after a crash inside an unacknowledged delete the session shows ${JSON.stringify(seen)}`);
    await s.deleteSession('s').catch((err: unknown) => (isNotFound(err) ? null : Promise.reject(err)));
    await assertGone(s, 's', 'after the retried delete', problems);
    const { turnId } = await s.addMessage('s', 'user', 'next');
    assert.ok(turnId > 8, `new id ${turnId}`);
    assert.deepEqual(problems, []);
  });

  for (const step of ['after-floor', 'after-unlink', 'after-ack'] as const) {
    test(`killed ${step.replace('-', ' ')}: the deletion holds through restart, replay and FLUSHALL`, async (t) => {
      const problems: string[] = [];
      const { dir, open, redis, deleted } = crashAt(step);
      assert.equal(deleted, step === 'after-ack');
      let s = await open();
      await assertGone(s, 's', `${step}: restart with Redis intact`, problems);
      await s.close();
      await redis.flushall();
      s = await open();
      await assertGone(s, 's', `${step}: restart after FLUSHALL`, problems);
      // A second instance that never saw the session reads every journal: nothing either.
      const other = await open('y');
      await assertGone(other, 's', `${step}: other instance`, problems);
      const { turnId } = await s.addMessage('s', 'user', 'new');
      assert.ok(turnId > 8, `${step}: new id ${turnId} above the deleted ones`);
      assert.deepEqual(await contents(other, 's'), [[turnId, 'new']]);
      await other.close();
      await s.close();
      await redis.flushall();
      s = await open();
      closeAfter(t, () => s.close());
      assert.deepEqual(await contents(s, 's'), [[turnId, 'new']], `${step}: stays deleted after another restart and FLUSHALL`);
      const files = (await readdir(dir, { recursive: true })).map(String).filter((f) => basename(f) === 's.strata');
      assert.equal(files.length, 1, 'one archive file: the new one');
      assert.deepEqual(problems, [], 'deleted turns shown again');
    });
  }
});
