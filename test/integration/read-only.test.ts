/**
 * Read-only open (`createStrata({ readOnly: true })`): while a writing core holds the data
 * directory (its journal lock), a read-only core opens without the lock, sees the writer's
 * unarchived turns through its journal, refuses every write with STRATA_ERR_NOT_AVAILABLE and
 * changes no file. The CLI's read commands run against the live directory the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { indexFile, readTurns } from '../../src/archive/file.js';
import { main } from '../../src/cli/main.js';
import { isStrataError } from '../../src/errors.js';
import { createStrata } from '../../src/strata.js';
import type { Strata } from '../../src/strata.js';
import { captureIo } from '../helpers/io.js';
import { closeAfter, tempDir } from '../helpers/strata.js';

const isCode = (code: string) => (err: unknown) => isStrataError(err) && err.code === code;

/** Every file under `dir` with its size and mtime: a change of any of them is a write. */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const st = await stat(path);
    out.set(path.slice(dir.length), entry.isFile() ? `${st.size}:${st.mtimeMs}` : 'dir');
  }
  return out;
}

function diff(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [path, v] of after) if (before.get(path) !== v) changes.push(`${before.has(path) ? 'changed' : 'created'} ${path}`);
  for (const path of before.keys()) if (!after.has(path)) changes.push(`removed ${path}`);
  return changes;
}

async function cli(dataDir: string, argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  io.env = { STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'error' };
  const code = await main([...argv, '--data-dir', dataDir], io);
  return { code, out: io.out(), err: io.err() };
}

/** A writing core (memory hot tier, default instance id) with 4 archived and 3 unarchived turns in `s`, 2 unarchived in `j`. */
async function writer(t: Parameters<typeof tempDir>[0], dataDir: string): Promise<Strata> {
  const core = await createStrata({ dataDir, embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000, maxUnarchivedTurns: 100_000 } });
  closeAfter(t, () => core.close());
  await core.addMessages('s', [
    { role: 'user', content: 'I want to bake sourdough bread this weekend' },
    { role: 'assistant', content: 'Feed the starter the night before' },
    { role: 'user', content: 'How long should the dough proof?' },
    { role: 'assistant', content: 'About four hours at room temperature' },
  ], { userId: 'ana' });
  await core.flush('s');
  await core.addMessages('s', [
    { role: 'user', content: 'unarchived five' },
    { role: 'assistant', content: 'unarchived six' },
    { role: 'user', content: 'unarchived seven', metadata: { k: 7 } },
  ], { userId: 'ana' });
  await core.addMessages('j', [
    { role: 'user', content: 'journal only one' },
    { role: 'assistant', content: 'journal only two' },
  ]);
  const info = await core.getSession('s');
  assert.equal(info.archivedTurns, 4);
  assert.equal(info.unarchivedTurns, 3);
  return core;
}

test('a read-only core opens beside a writer, sees its unarchived turns and refuses writes', async (t) => {
  const dataDir = await tempDir(t);
  const core = await writer(t, dataDir);

  const ro = await createStrata({ dataDir, embedder: { provider: 'hash' }, readOnly: true });
  closeAfter(t, () => ro.close());

  const messages = (await ro.getMessages('s')).messages;
  assert.deepEqual(messages.map((m) => [m.turnId, m.content]), [
    [1, 'I want to bake sourdough bread this weekend'],
    [2, 'Feed the starter the night before'],
    [3, 'How long should the dough proof?'],
    [4, 'About four hours at room temperature'],
    [5, 'unarchived five'],
    [6, 'unarchived six'],
    [7, 'unarchived seven'],
  ]);
  assert.deepEqual(messages[6]!.metadata, { k: 7 });
  const info = await ro.getSession('s');
  assert.equal(info.turns, 7);
  assert.equal(info.lastTurnId, 7);
  assert.equal(info.archivedTurns, 4);
  assert.equal(info.unarchivedTurns, 3);
  assert.equal(info.userId, 'ana');
  const j = await ro.getSession('j');
  assert.equal(j.turns, 2);
  const recent = await ro.getContext('j', { type: 'recent' });
  assert.deepEqual(recent.messages.map((m) => m.content), ['journal only one', 'journal only two']);
  await assert.rejects(() => ro.getSession('nope'), isCode('STRATA_ERR_NOT_FOUND'));

  const writes: Array<[string, () => Promise<unknown>]> = [
    ['addMessage', () => ro.addMessage('s', 'user', 'x')],
    ['addMessage, new session', () => ro.addMessage('new', 'user', 'x')],
    ['addMessages', () => ro.addMessages('s', [{ role: 'user', content: 'x' }])],
    ['addMessage with a key', () => ro.addMessage('s', 'user', 'x', { idempotencyKey: 'k1' })],
    ['deleteSession', () => ro.deleteSession('s')],
    ['reindex', () => ro.reindex()],
  ];
  for (const [name, call] of writes) await assert.rejects(call, isCode('STRATA_ERR_NOT_AVAILABLE'), name);
  // Maintenance and flush of a read-only core do nothing (no compaction, no checkpoint).
  await ro.runMaintenance();
  await ro.flush();
  assert.equal((await core.getSession('s')).unarchivedTurns, 3, 'the writer still owns its unarchived turns');
  assert.deepEqual(await ro.getMessages('new'), { messages: [], nextAfter: null });
  await assert.rejects(ro.getSession('new'), isCode('STRATA_ERR_NOT_FOUND'));
  await ro.close();

  // The writer is unaffected and keeps writing after the read-only core came and went.
  assert.deepEqual(await core.addMessage('s', 'user', 'eight'), { turnId: 8 });
});

test('the CLI read commands and verify run while a writer holds the directory', async (t) => {
  const dataDir = await tempDir(t);
  const core = await writer(t, dataDir);

  const stats = await cli(dataDir, ['stats', '--json']);
  assert.equal(stats.code, 0, stats.err);
  const totals = JSON.parse(stats.out) as { sessions: number; turns: number; archivedTurns: number; unarchivedTurns: number };
  assert.equal(totals.sessions, 2);
  assert.equal(totals.turns, 9, stats.out);
  assert.equal(totals.archivedTurns, 4);
  assert.equal(totals.unarchivedTurns, 5);

  const context = await cli(dataDir, ['context', 's', '--type', 'full', '--json']);
  assert.equal(context.code, 0, context.err);
  assert.deepEqual((JSON.parse(context.out) as { messages: Array<{ turnId: number }> }).messages.map((m) => m.turnId), [1, 2, 3, 4, 5, 6, 7]);

  const search = await cli(dataDir, ['search', 'sourdough starter', '--session', 's', '--json']);
  assert.equal(search.code, 0, search.err);
  const hits = JSON.parse(search.out) as { hits?: Array<{ content: string }> } | Array<{ content: string }>;
  const list = Array.isArray(hits) ? hits : (hits.hits ?? []);
  assert.ok(list.some((h) => /sourdough|starter/.test(h.content)), search.out);

  const exportPath = join(await tempDir(t, 'strata-export-'), 's.strata');
  const exported = await cli(dataDir, ['export', 's', '-o', exportPath]);
  assert.equal(exported.code, 0, exported.err);
  assert.ok(indexFile('export', new Uint8Array(await readFile(exportPath))).highWater >= 4);

  const verify = await cli(dataDir, ['verify', '--json']);
  assert.equal(verify.code, 0, verify.err);
  const report = JSON.parse(verify.out) as { files: number; damaged: number; journalFiles: number; damagedJournals: number };
  assert.equal(report.damaged, 0);
  assert.equal(report.damagedJournals, 0);
  assert.ok(report.files >= 2 && report.journalFiles >= 1, verify.out);

  // The writer still holds its turns and its lock: a writing command is refused.
  assert.equal((await core.getSession('s')).unarchivedTurns, 3);
  const compact = await cli(dataDir, ['compact']);
  assert.notEqual(compact.code, 0, 'a writing command still needs the journal lock');
  assert.match(compact.err, /STRATA_ERR_JOURNAL_LOCKED/);
});

test('export while a writer holds the directory holds every acknowledged turn, unarchived ones included', async (t) => {
  const dataDir = await tempDir(t);
  await writer(t, dataDir);
  const exportPath = join(await tempDir(t, 'strata-export-'), 's.strata');
  const exported = await cli(dataDir, ['export', 's', '-o', exportPath]);
  assert.equal(exported.code, 0, exported.err);
  const bytes = new Uint8Array(await readFile(exportPath));
  const index = indexFile('export', bytes);
  const turns = await readTurns(index, {}, async (seg) => bytes.subarray(seg.bodyOffset, seg.bodyOffset + seg.bodyLength));
  assert.deepEqual(turns.map((x) => x.turnId), [1, 2, 3, 4, 5, 6, 7], 'the export misses the writer\'s unarchived turns');
});

test('neither a read-only core nor the CLI read commands change a file of the data directory', async (t) => {
  const dataDir = await tempDir(t);
  await writer(t, dataDir);
  const before = await tree(dataDir);
  const ro = await createStrata({ dataDir, embedder: { provider: 'hash' }, readOnly: true });
  await ro.getMessages('s');
  await ro.getSession('j');
  await ro.close();
  for (const argv of [['stats'], ['context', 's', '--type', 'full'], ['search', 'bread', '--session', 's'], ['verify']]) {
    const run = await cli(dataDir, argv);
    assert.equal(run.code, 0, `${argv.join(' ')}: ${run.err}`);
  }
  assert.deepEqual(diff(before, await tree(dataDir)), []);
});

test('a second writing core without an instance id takes the next free journal name', async (t) => {
  const dataDir = await tempDir(t);
  const first = await writer(t, dataDir);
  const second = await createStrata({ dataDir, embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000 } });
  closeAfter(t, () => second.close());
  const names = (await readdir(join(dataDir, 'journal'))).sort();
  assert.equal(names.length, 2, names.join(','));
  assert.equal(names[1], `${names[0]}-2`);
  // Its journal is its own: it writes, and the first core's unarchived turns are visible to it.
  assert.deepEqual(await second.addMessage('k', 'user', 'from the second core'), { turnId: 1 });
  assert.equal((await second.getSession('j')).turns, 2);
  // An explicit id that is held is refused (no silent renaming).
  await assert.rejects(() => createStrata({ dataDir, embedder: { provider: 'hash' }, instanceId: names[0]! }), isCode('STRATA_ERR_JOURNAL_LOCKED'));
  assert.equal((await first.getSession('s')).turns, 7);
});
