import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewMessage, SearchHit } from '../../src/cache/api.js';
import { addSession, EVAL_TENANT, openEvalStrata, type EvalStrata } from '../../src/eval/product.js';
import { FsArchiveStore } from '../../src/archive/fs-store.js';
import { InProcessSessionLock } from '../../src/archive/lock.js';
import { ArchiveRetrieval } from '../../src/retrieval/archive-retrieval.js';
import { HashEmbedder } from '../../src/retrieval/embedders/hash.js';
import { decodeSnapshot, SnapshotFiles } from '../../src/retrieval/index-snapshot.js';
import { isStrataError, type StrataError } from '../../src/errors.js';

/*
 * Persisted user indexes through the product: real archive files in a temporary data dir,
 * cores closed and reopened (a restart), results compared with an index built from the archive
 * (the index directory removed).
 */

const USER = 'u1';
const scope = { tenant: EVAL_TENANT, userId: USER };

const topics = ['the quarterly budget review', 'a trip to Lisbon in June', 'my sister and her red bicycle', 'fixing the kitchen sink', 'python list comprehensions', 'the garden tomatoes', 'a job interview on Monday', 'learning the violin'];
const verbs = ['we talked about', 'I keep thinking about', 'remind me of', 'what do you know about', 'tell me more on', 'my notes say'];

function session(seed: number, turns: number): NewMessage[] {
  return Array.from({ length: turns }, (_, i) => ({
    role: i % 2 === 0 ? 'user' : 'assistant',
    content: `${verbs[(seed + i) % verbs.length]} ${topics[(seed * 3 + i) % topics.length]} (${seed}-${i}) and ${topics[(seed + 2 * i) % topics.length]}`,
  }));
}

const queries = ['when is the budget review', 'Lisbon trip in June', 'red bicycle of my sister', 'kitchen sink repair', 'python comprehensions', 'violin lessons', 'job interview', 'tomatoes in the garden'];

async function load(sessions: number, turns = 12): Promise<EvalStrata> {
  // Not `strata-eval-*`: the eval tests check that evaluations leave no such directory behind.
  const ev = await openEvalStrata({ embedder: 'hash', dataDir: await mkdtemp(join(tmpdir(), 'strata-eval-test-persisted-')) });
  for (let s = 0; s < sessions; s++) await addSession(ev.strata, `s-${s}`, session(s, turns), USER);
  await ev.strata.flush();
  await ev.close();
  return ev;
}

async function searchAll(dataDir: string, extra: string[] = []): Promise<SearchHit[][]> {
  const run = await openEvalStrata({ embedder: 'hash', dataDir });
  try {
    const out: SearchHit[][] = [];
    for (const q of [...queries, ...extra]) out.push(await run.strata.searchDiskHistory(q, 10, scope));
    return out;
  } finally {
    await run.close();
  }
}

async function snapshotPath(dataDir: string): Promise<string | null> {
  const dir = join(dataDir, 'index', EVAL_TENANT);
  const names = await readdir(dir).catch(() => [] as string[]);
  const idx = names.filter((n) => n.endsWith('.idx'));
  return idx.length === 1 ? join(dir, idx[0]!) : null;
}

/** Results of the same data with no persisted index (built from the archive). */
async function fresh(dataDir: string, extra: string[] = []): Promise<SearchHit[][]> {
  await rm(join(dataDir, 'index'), { recursive: true, force: true });
  return searchAll(dataDir, extra);
}

test('a closed core leaves a current user index on disk; the next start uses it and ranks exactly like a build from the archive', async (t) => {
  const ev = await load(8);
  t.after(() => ev.dispose());
  const file = await snapshotPath(ev.dataDir);
  assert.ok(file, 'the index was written while sessions were archived');

  // The snapshot is what a start uses: it reflects the current stamp and lists the user's sessions.
  const archive = new FsArchiveStore({ dataDir: ev.dataDir, lock: new InProcessSessionLock() });
  const retrieval = new ArchiveRetrieval({ archive, embedder: new HashEmbedder(256), tokenizer: null as never, indexDir: join(ev.dataDir, 'index') });
  const stamp = await archive.userStamp(EVAL_TENANT, USER);
  assert.deepEqual((await retrieval.knownUserSessions(EVAL_TENANT, USER, stamp))?.sort(), Array.from({ length: 8 }, (_, s) => `s-${s}`).sort());
  await archive.close();

  const loaded = await searchAll(ev.dataDir);
  assert.ok(loaded.some((hits) => hits.length > 0));
  assert.deepEqual(loaded, await fresh(ev.dataDir));
});

test('a stale snapshot (a session grown, one deleted, one added since) gives current results, and is replaced by a current one', async (t) => {
  const ev = await load(6);
  t.after(() => ev.dispose());
  const file = (await snapshotPath(ev.dataDir))!;
  const stale = `${file}.stale`;
  await copyFile(file, stale);

  const run = await openEvalStrata({ embedder: 'hash', dataDir: ev.dataDir });
  await run.strata.addMessage('s-1', 'user', 'the zeppelin hangar smells of varnish', { tenant: EVAL_TENANT });
  await run.strata.deleteSession('s-2', { tenant: EVAL_TENANT });
  await addSession(run.strata, 's-new', [{ role: 'user', content: 'an aquarium full of axolotls' }], USER);
  await run.strata.flush();
  await run.close();
  // The start after finds the snapshot written before those changes.
  await copyFile(stale, file);

  const extra = ['zeppelin hangar varnish', 'axolotls aquarium'];
  const results = await searchAll(ev.dataDir, extra);
  for (const hits of results) assert.ok(hits.every((h) => h.sessionId !== 's-2'), 'a deleted session never comes back');
  const [zeppelin, axolotl] = results.slice(-2);
  assert.equal(zeppelin![0]!.sessionId, 's-1');
  assert.match(String(zeppelin![0]!.content), /zeppelin/);
  assert.equal(axolotl![0]!.sessionId, 's-new');
  // The start above wrote the current index: the next one ranks like a build from the archive.
  const data = decodeSnapshot(await readFile(file), { ...scope, embedderId: new HashEmbedder(256).id })!;
  assert.deepEqual([...data.sessionVersions.keys()].sort(), ['s-0', 's-1', 's-3', 's-4', 's-5', 's-new']);
  assert.deepEqual(await searchAll(ev.dataDir, extra), await fresh(ev.dataDir, extra));
});

test('a damaged snapshot (a flipped bit anywhere, a truncation, another format) is rebuilt from the archive with identical results', async (t) => {
  const ev = await load(5);
  t.after(() => ev.dispose());
  const file = (await snapshotPath(ev.dataDir))!;
  const good = await readFile(file);
  const expected = await fresh(ev.dataDir);
  const damaged: Array<[string, Buffer]> = [];
  for (const at of [0, 9, 13, 20, 25, 40, Math.floor(good.length / 2), good.length - 1]) {
    const b = Buffer.from(good);
    b[at] = b[at]! ^ 0x10;
    damaged.push([`bit flip at ${at}`, b]);
  }
  damaged.push(['truncated', good.subarray(0, good.length - 100)], ['header only', good.subarray(0, 200)], ['empty', Buffer.alloc(0)]);
  for (const [what, bytes] of damaged) {
    await rm(join(ev.dataDir, 'index'), { recursive: true, force: true });
    await searchAll(ev.dataDir); // writes the index dir again
    await writeFile((await snapshotPath(ev.dataDir))!, bytes);
    assert.deepEqual(await searchAll(ev.dataDir), expected, what);
    // The start replaced the damaged file with a good one.
    assert.ok(decodeSnapshot(await readFile((await snapshotPath(ev.dataDir))!), { ...scope, embedderId: new HashEmbedder(256).id }), what);
  }
});

test('damage in the message fields, read after loading, is found by checksum: the search drops the file and answers from the archive', async (t) => {
  const ev = await load(5);
  t.after(() => ev.dispose());
  const file = (await snapshotPath(ev.dataDir))!;
  const good = await readFile(file);
  const expected = await fresh(ev.dataDir);
  // A byte inside the stored fields of the first query's best hit (turn texts are unique).
  const top = expected[0]![0]!;
  const at = good.indexOf(Buffer.from(String(top.content), 'utf8'));
  assert.ok(at > 0);
  const bad = Buffer.from(good);
  bad[at + 3] = bad[at + 3]! ^ 0x01;

  // Loading reads and checks everything but the fields; the damage shows when they are read.
  const dir = await mkdtemp(join(tmpdir(), 'strata-test-snapshot-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = new SnapshotFiles(dir);
  await files.write(EVAL_TENANT, USER, bad);
  const damage: StrataError[] = [];
  const data = await files.load({ ...scope, embedderId: new HashEmbedder(256).id }, (err) => damage.push(err));
  assert.ok(data, 'the checked part is intact');
  const turn = data.turns.find((x) => x.sessionId === top.sessionId && x.turnId === top.turnId)!;
  await assert.rejects(turn.load!(), (e) => isStrataError(e, 'STRATA_ERR_INDEX_DAMAGED'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(damage.length, 1, 'the background check of the whole section reports it once');
  assert.ok(isStrataError(damage[0], 'STRATA_ERR_INDEX_DAMAGED'));

  // Through the product: the same results as a build from the archive, and a good file again.
  await writeFile(file, bad);
  assert.deepEqual(await searchAll(ev.dataDir), expected);
  assert.ok(decodeSnapshot(await readFile((await snapshotPath(ev.dataDir))!), { ...scope, embedderId: new HashEmbedder(256).id }));
});

test('deleting a session or the user removes its turns from the persisted index, also across a restart', async (t) => {
  const ev = await load(4);
  t.after(() => ev.dispose());
  const run = await openEvalStrata({ embedder: 'hash', dataDir: ev.dataDir });
  await addSession(run.strata, 's-secret', [{ role: 'user', content: 'my locker code is quetzalcoatl' }], USER);
  await run.strata.flush();
  await run.close();
  const file = (await snapshotPath(ev.dataDir))!;
  assert.ok((await readFile(file)).includes('quetzalcoatl'));

  const again = await openEvalStrata({ embedder: 'hash', dataDir: ev.dataDir });
  assert.equal((await again.strata.searchDiskHistory('locker code quetzalcoatl', 5, scope))[0]?.sessionId, 's-secret');
  await again.strata.deleteSession('s-secret', { tenant: EVAL_TENANT });
  // Removed before the deletion returns; written again without the session later.
  assert.equal(await snapshotPath(ev.dataDir), null);
  await again.close();
  const after = await readFile((await snapshotPath(ev.dataDir))!);
  assert.ok(!after.includes('quetzalcoatl'));
  for (const hits of await searchAll(ev.dataDir, ['locker code quetzalcoatl'])) assert.ok(hits.every((h) => h.sessionId !== 's-secret'));

  const last = await openEvalStrata({ embedder: 'hash', dataDir: ev.dataDir });
  await last.strata.deleteUser(USER, { tenant: EVAL_TENANT });
  assert.equal(await snapshotPath(ev.dataDir), null);
  assert.deepEqual(await last.strata.searchDiskHistory('budget review', 5, scope), []);
  await last.close();
  assert.deepEqual(await searchAll(ev.dataDir), queries.map(() => []));
});
