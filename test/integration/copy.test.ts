/**
 * `strata copy` between the fs store and PostgreSQL (the machine's server, a schema of its own
 * per test): every session arrives message for message, a second run is a no-op, an interrupted
 * run continues, a different session of the same id in the target is refused and left alone,
 * unarchived journal records are refused or (with includePending) archived into the target,
 * and bad input fails with a coded error before anything is written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConversationMemory, NewMessage } from '../../src/cache/api.js';
import { loadConfig, coreConfig } from '../../src/config.js';
import type { CoreConfig } from '../../src/config.js';
import { copyStores } from '../../src/copy/copy.js';
import type { CopyOptions, CopyReport } from '../../src/copy/copy.js';
import { digestSession } from '../../src/copy/digest.js';
import { isStrataError } from '../../src/errors.js';
import { createStrata } from '../../src/strata.js';
import { openStores } from '../../src/stores.js';
import { systemClock } from '../../src/types.js';
import type { SessionRef } from '../../src/types.js';
import { SOURCE_CLI } from '../helpers/serve.js';
import { freePort, sql, tempSchema } from '../helpers/postgres.js';
import { closeAfter, tempDir } from '../helpers/strata.js';

const isCode = (code: string) => (err: unknown) => isStrataError(err) && err.code === code;

/** Base options of both sides (the store settings are replaced per side). */
const BASE: CoreConfig = coreConfig(loadConfig({ file: null, env: {}, flags: { embedder: { provider: 'hash' }, instanceId: 'copy-test' } }));

const copy = (from: string, to: string, options: Partial<CopyOptions> = {}): Promise<CopyReport> => copyStores({ from, to, config: BASE, ...options });

const fsCore = (dataDir: string, options: { readOnly?: boolean } = {}) =>
  createStrata({ dataDir, embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000, maxUnarchivedTurns: 100_000 }, instanceId: 'writer', ...options });
const pgCore = (url: string) => createStrata({ store: { driver: 'postgres', postgresUrl: url }, embedder: { provider: 'hash' }, readOnly: true });

const SUMMARY = { fromTurn: 1, toTurn: 2, text: 'Ana asked about sourdough; the starter needs feeding.', createdAt: 1_767_225_600_000 };

/** Sessions of the source: text, tool calls, content parts, several users and tenants, ids the fs layout has to encode. */
const SESSIONS: Array<{ tenant: string; sessionId: string; userId?: string; messages: NewMessage[] }> = [
  {
    tenant: 'default',
    sessionId: 'bread',
    userId: 'ana',
    messages: [
      { role: 'system', content: 'You are a baking assistant.' },
      { role: 'user', content: 'I want to bake sourdough bread this weekend', metadata: { channel: 'web', n: 1 } },
      { role: 'assistant', content: 'Feed the starter the night before. Ünïcödé and emoji 🍞 too.' },
    ],
  },
  {
    tenant: 'default',
    sessionId: 'weather',
    userId: 'ana',
    messages: [
      { role: 'user', content: 'What is the weather in Lisbon?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon","unit":"c"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temp":21,"sky":"clear"}' },
      { role: 'assistant', content: 'It is 21 °C and clear in Lisbon.' },
    ],
  },
  {
    tenant: 'default',
    sessionId: 'photo',
    userId: 'bob',
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'What is in this picture?' }, { type: 'image_url', image_url: { url: 'https://example.com/cat.png', detail: 'low' } }] },
      { role: 'assistant', content: [{ type: 'text', text: 'A cat on a windowsill.' }], name: 'vision' },
    ],
  },
  { tenant: 'default', sessionId: 'anonymous', messages: [{ role: 'user', content: 'no owner here' }, { role: 'assistant', content: 'fine' }] },
  { tenant: 'default', sessionId: 'id with spaces/and ✓ unicode', userId: 'bob', messages: [{ role: 'user', content: 'an id the fs layout encodes' }] },
  { tenant: 'acme', sessionId: 'long', userId: 'carol', messages: Array.from({ length: 60 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `acme message ${i + 1}: ${'lorem ipsum '.repeat(i % 7)}` }) as NewMessage) },
];

/** A source data directory holding SESSIONS (archived, in several segments), one summary, and a deleted session. */
async function buildSource(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dataDir = await tempDir(t, 'strata-copy-src-');
  const core = await fsCore(dataDir);
  for (const s of SESSIONS) {
    // Two flushes: the archive holds the session in more than one segment.
    const half = Math.ceil(s.messages.length / 2);
    for (const part of [s.messages.slice(0, half), s.messages.slice(half)]) {
      if (part.length === 0) continue;
      await core.addMessages(s.sessionId, part, { tenant: s.tenant, ...(s.userId ? { userId: s.userId } : {}) });
      await core.flush(s.sessionId, { tenant: s.tenant });
    }
  }
  await core.addMessages('gone', [{ role: 'user', content: 'delete me' }], { userId: 'ana' });
  await core.flush('gone');
  await core.deleteSession('gone');
  await core.close();
  const stores = await openStores(coreConfig(loadConfig({ file: null, env: {}, flags: { dataDir } })), { clock: systemClock, readOnly: true });
  await stores.archive.saveSummary({ tenant: 'default', sessionId: 'bread' }, SUMMARY);
  await stores.archive.close();
  return dataDir;
}

/** Every message of a session as the library answers it (JSON), and its owner. */
async function readAll(core: ConversationMemory, ref: SessionRef): Promise<{ messages: string; userId: string | null }> {
  const messages = [];
  for (let after: number | null = 0; after !== null; ) {
    const page = await core.getMessages(ref.sessionId, { tenant: ref.tenant, after, limit: 1000 });
    messages.push(...page.messages);
    after = page.nextAfter;
  }
  return { messages: JSON.stringify(messages), userId: (await core.getSession(ref.sessionId, { tenant: ref.tenant })).userId };
}

/** Compares what both cores answer for every session, plus summaries and the user index through the archives. */
async function assertSameSessions(a: ConversationMemory, b: ConversationMemory, refs: readonly SessionRef[]): Promise<void> {
  for (const ref of refs) {
    const [x, y] = await Promise.all([readAll(a, ref), readAll(b, ref)]);
    assert.equal(y.messages, x.messages, `messages of ${ref.tenant}/${ref.sessionId}`);
    assert.equal(y.userId, x.userId, `owner of ${ref.tenant}/${ref.sessionId}`);
  }
}

/** The archive of one side, opened read-only through the store factory. */
async function archiveOf(t: Parameters<typeof tempDir>[0], side: { dataDir: string } | { url: string }) {
  const flags = 'url' in side ? { store: { driver: 'postgres' as const, postgresUrl: side.url } } : { dataDir: side.dataDir };
  const stores = await openStores(coreConfig(loadConfig({ file: null, env: {}, flags })), { clock: systemClock, readOnly: true });
  closeAfter(t, () => stores.archive.close());
  return stores.archive;
}

const REFS: SessionRef[] = SESSIONS.map((s) => ({ tenant: s.tenant, sessionId: s.sessionId }));

/** Every file under `dir` with size and mtime (a change of any is a write). */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const st = await stat(path);
    out.push(`${path.slice(dir.length)} ${entry.isFile() ? `${st.size}:${st.mtimeMs}` : 'dir'}`);
  }
  return out.sort();
}

test('fs → PostgreSQL → fs: every session message for message, verified; a second run is a no-op', async (t) => {
  const src = await buildSource(t);
  const pg = tempSchema('strata_copy');
  t.after(pg.drop);

  const dry = await copy(`fs:${src}`, pg.url, { dryRun: true });
  assert.equal(dry.copied, SESSIONS.length);
  assert.equal(dry.refusal, null);
  assert.deepEqual(dry.plan!.map((p) => `${p.action} ${p.tenant}/${p.sessionId}`).sort(), REFS.map((r) => `copy ${r.tenant}/${r.sessionId}`).sort());
  assert.deepEqual(await sql(pg.url.replace(/\?.*$/, ''), 'SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [pg.schema]), [], 'a dry run creates no schema');

  const report = await copy(`fs:${src}`, pg.url);
  const total = SESSIONS.reduce((n, s) => n + s.messages.length, 0);
  assert.deepEqual([report.sessions, report.copied, report.skipped, report.messages, report.mismatches], [SESSIONS.length, SESSIONS.length, 0, total, 0]);
  assert.ok(report.bytes > 0);

  // Through the library on both sides: messages, owners, summaries, user index, embeddings.
  const source = await fsCore(src, { readOnly: true });
  closeAfter(t, () => source.close());
  const target = await pgCore(pg.url);
  closeAfter(t, () => target.close());
  await assertSameSessions(source, target, REFS);
  await assert.rejects(target.getSession('gone'), isCode('STRATA_ERR_NOT_FOUND'), 'a deleted session is not copied');
  const [srcArchive, pgArchive] = [await archiveOf(t, { dataDir: src }), await archiveOf(t, { url: pg.url })];
  for (const ref of REFS) assert.deepEqual(await pgArchive.read(ref), await srcArchive.read(ref), `archived turns (with embeddings) of ${ref.sessionId}`);
  assert.deepEqual(await pgArchive.loadSummaries({ tenant: 'default', sessionId: 'bread' }), [SUMMARY]);
  assert.deepEqual(await pgArchive.listUserSessions('default', 'ana'), ['bread', 'weather']);
  assert.deepEqual(await pgArchive.listUserSessions('default', 'bob'), ['id with spaces/and ✓ unicode', 'photo']);
  assert.deepEqual(await pgArchive.listUserSessions('acme', 'carol'), ['long']);

  const again = await copy(`fs:${src}`, pg.url);
  assert.deepEqual([again.copied, again.skipped, again.bytes, again.mismatches, again.messages], [0, SESSIONS.length, 0, 0, total], 'a second run verifies and skips everything');

  // And back into a new directory: the same sessions as the original.
  const back = join(await tempDir(t, 'strata-copy-back-'), 'data');
  const round = await copy(pg.url, `fs:${back}`);
  assert.deepEqual([round.copied, round.mismatches], [SESSIONS.length, 0]);
  const returned = await fsCore(back, { readOnly: true });
  closeAfter(t, () => returned.close());
  await assertSameSessions(source, returned, REFS);
  const backArchive = await archiveOf(t, { dataDir: back });
  for (const ref of REFS) assert.deepEqual(await backArchive.read(ref), await srcArchive.read(ref));
  assert.deepEqual(await backArchive.loadSummaries({ tenant: 'default', sessionId: 'bread' }), [SUMMARY]);
  assert.deepEqual(await backArchive.listUserSessions('default', 'ana'), ['bread', 'weather']);
});

test('an interrupted copy continues where it stopped; a different session of the same id is refused and left alone', async (t) => {
  const src = await buildSource(t);
  const pg = tempSchema('strata_copy');
  t.after(pg.drop);

  // Interrupted after two sessions (the hook throws as a kill would stop the run there).
  const stop = new Error('interrupted');
  await assert.rejects(
    copy(`fs:${src}`, pg.url, {
      onProgress: (e) => {
        if (e.phase === 'copy' && e.done === 2) throw stop;
      },
    }),
    (err) => err === stop,
  );
  // Sessions already in flight when it stopped finished (4 at once): at least 2, not all.
  const [{ n }] = (await sql<{ n: number }>(pg.url, 'SELECT count(*)::int AS n FROM archive_sessions WHERE live')) as [{ n: number }];
  assert.ok(n >= 2 && n < SESSIONS.length, `${n} sessions copied before the interruption`);
  const resumed = await copy(`fs:${src}`, pg.url);
  assert.deepEqual([resumed.copied, resumed.skipped, resumed.mismatches], [SESSIONS.length - n, n, 0]);
  const source = await fsCore(src, { readOnly: true });
  closeAfter(t, () => source.close());
  const target = await pgCore(pg.url);
  closeAfter(t, () => target.close());
  await assertSameSessions(source, target, REFS);

  // A target holding another session 'bread': the whole run is refused, nothing is written.
  const other = await tempDir(t, 'strata-copy-other-');
  const core = await fsCore(other);
  await core.addMessages('bread', [{ role: 'user', content: 'a different conversation' }], { userId: 'ana' });
  await core.close();
  const before = await tree(other);
  const dry = await copy(`fs:${src}`, `fs:${other}`, { dryRun: true });
  assert.equal(dry.refusal?.code, 'STRATA_ERR_COPY_CONFLICT');
  assert.deepEqual(dry.conflicts.map((c) => c.sessionId), ['bread']);
  await assert.rejects(copy(`fs:${src}`, `fs:${other}`), (err: unknown) => isCode('STRATA_ERR_COPY_CONFLICT')(err) && /default\/bread/.test((err as Error).message));
  assert.deepEqual(await tree(other), before, 'the target is unchanged');

  // Same for PostgreSQL: a target session that differs in one message.
  const pg2 = tempSchema('strata_copy');
  t.after(pg2.drop);
  await copy(`fs:${src}`, pg2.url);
  await sql(pg2.url, "UPDATE archive_summaries SET text = 'edited' WHERE session_id = 'bread'");
  const rows = await sql(pg2.url, 'SELECT tenant, session_id, seq, length(record) AS l FROM archive_segments ORDER BY 1, 2, 3');
  await assert.rejects(copy(`fs:${src}`, pg2.url), isCode('STRATA_ERR_COPY_CONFLICT'));
  assert.deepEqual(await sql(pg2.url, 'SELECT tenant, session_id, seq, length(record) AS l FROM archive_segments ORDER BY 1, 2, 3'), rows);
});

test('unarchived journal records: refused by default, archived into the target with --include-pending', async (t) => {
  const src = await tempDir(t, 'strata-copy-live-');
  // A writer that keeps running: 2 archived + 2 unarchived turns in 's', 2 turns only in the journal in 'j'.
  const writer = await fsCore(src);
  closeAfter(t, () => writer.close());
  await writer.addMessages('s', [{ role: 'user', content: 'archived one' }, { role: 'assistant', content: 'archived two' }], { userId: 'ana' });
  await writer.flush('s');
  await writer.addMessages('s', [{ role: 'user', content: 'unarchived three', metadata: { k: 3 } }, { role: 'assistant', content: 'unarchived four' }]);
  await writer.addMessages('j', [{ role: 'user', content: 'journal only one' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }], { userId: 'dan', tenant: 'other' });

  const target = join(await tempDir(t, 'strata-copy-dst-'), 'data');
  await assert.rejects(copy(`fs:${src}`, `fs:${target}`), (err: unknown) => isCode('STRATA_ERR_COPY_PENDING')(err) && /4 unarchived turn\(s\) of 2 session\(s\)/.test((err as Error).message));
  await assert.rejects(stat(target), { code: 'ENOENT' }, 'a refused copy creates no target directory');

  const report = await copy(`fs:${src}`, `fs:${target}`, { includePending: true });
  assert.deepEqual([report.copied, report.messages, report.pending.turns, report.mismatches], [2, 6, 4, 0]);
  const source = await fsCore(src, { readOnly: true });
  closeAfter(t, () => source.close());
  const copied = await fsCore(target, { readOnly: true });
  closeAfter(t, () => copied.close());
  const refs = [{ tenant: 'default', sessionId: 's' }, { tenant: 'other', sessionId: 'j' }];
  await assertSameSessions(source, copied, refs);
  const info = await copied.getSession('s');
  assert.deepEqual([info.turns, info.archivedTurns, info.unarchivedTurns, info.userId], [4, 4, 0, 'ana'], 'archived in the target, nothing pending there');
  assert.equal((await copied.getSession('j', { tenant: 'other' })).userId, 'dan');
  // The writer still owns its journal: the copy changed nothing in the source.
  assert.equal((await writer.getSession('s')).unarchivedTurns, 2);

  // The same from PostgreSQL, whose journal is rows: a writer there with unarchived turns.
  const pg = tempSchema('strata_copy');
  t.after(pg.drop);
  const pgWriter = await createStrata({ store: { driver: 'postgres', postgresUrl: pg.url }, embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000, maxUnarchivedTurns: 100_000 }, instanceId: 'pg-writer' });
  closeAfter(t, () => pgWriter.close());
  await pgWriter.addMessages('p', [{ role: 'user', content: 'archived in postgres' }], { userId: 'eve' });
  await pgWriter.flush('p');
  await pgWriter.addMessages('p', [{ role: 'assistant', content: 'only in the journal rows' }]);
  const fromPg = join(await tempDir(t, 'strata-copy-dst-'), 'data');
  await assert.rejects(copy(pg.url, `fs:${fromPg}`), isCode('STRATA_ERR_COPY_PENDING'));
  const pgReport = await copy(pg.url, `fs:${fromPg}`, { includePending: true });
  assert.deepEqual([pgReport.copied, pgReport.messages, pgReport.pending.turns, pgReport.mismatches], [1, 2, 1, 0]);
  const pgSource = await pgCore(pg.url);
  closeAfter(t, () => pgSource.close());
  const pgCopied = await fsCore(fromPg, { readOnly: true });
  closeAfter(t, () => pgCopied.close());
  await assertSameSessions(pgSource, pgCopied, [{ tenant: 'default', sessionId: 'p' }]);
});

test('the checksum covers every stored field and embedding bit, not the key order of objects', () => {
  const turn = { turnId: 1, role: 'user' as const, content: 'hi', createdAt: 1, metadata: { a: 1, b: [1, { c: 2, d: 3 }] }, embedding: new Float32Array([0.5, -1]) };
  const session = (t: typeof turn) => digestSession({ turns: [t], userId: 'u', highWater: 1, summaries: [] }).checksum;
  const base = session(turn);
  assert.equal(session({ ...turn, metadata: { b: [1, { d: 3, c: 2 }], a: 1 } }), base, 'key order does not matter');
  assert.notEqual(session({ ...turn, embedding: new Float32Array([0.5, -1.0000001]) }), base);
  assert.notEqual(session({ ...turn, metadata: { a: 1, b: [{ c: 2, d: 3 }, 1] } }), base, 'array order does');
  assert.notEqual(session({ ...turn, content: 'hi ' }), base);
  assert.notEqual(digestSession({ turns: [turn], userId: null, highWater: 1, summaries: [] }).checksum, base);
  assert.notEqual(digestSession({ turns: [turn], userId: 'u', highWater: 2, summaries: [] }).checksum, base);
  assert.notEqual(digestSession({ turns: [turn], userId: 'u', highWater: 1, summaries: [{ fromTurn: 1, toTurn: 1, text: 's', createdAt: 1 }] }).checksum, base);
});

/** Runs the CLI through its entry point in a child process (no build needed: tsx). */
function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...SOURCE_CLI, ...argv], { env: { ...process.env, STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

test('strata copy through the binary: --json summary, --dry-run, and coded errors for bad input that change nothing', async (t) => {
  const src = await buildSource(t);
  const pg = tempSchema('strata_copy');
  t.after(pg.drop);

  const dry = await cli(['copy', '--from', `fs:${src}`, '--to', pg.url, '--dry-run']);
  assert.equal(dry.code, 0, dry.err);
  assert.match(dry.out, /dry run, nothing written: 6 session\(s\) would be copied/);
  assert.match(dry.out, /\| copy +\| acme\/long +\| 60 /);

  const run = await cli(['copy', '--from', `fs:${src}`, '--to', pg.url, '--json']);
  assert.equal(run.code, 0, run.err);
  const report = JSON.parse(run.out) as CopyReport;
  assert.deepEqual([report.sessions, report.copied, report.mismatches], [SESSIONS.length, SESSIONS.length, 0]);
  assert.match(report.to, new RegExp(`schema ${pg.schema}`));

  const again = await cli(['copy', '--from', `fs:${src}`, '--to', pg.url]);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, /6 session\(s\): 0 copied, 6 already in the target and identical; 72 message\(s\) verified, 0 bytes written, mismatches 0/);

  const dst = join(await tempDir(t, 'strata-copy-bad-'), 'data');
  const port = await freePort();
  const bad: Array<[string[], RegExp]> = [
    [['--from', 's3://bucket/x', '--to', `fs:${dst}`], /^STRATA_ERR_VALIDATION: --from: .*unknown scheme "s3:"/m],
    [['--from', `fs:${src}`, '--to', dst], /^STRATA_ERR_VALIDATION: --to: expected fs:<dir> or a postgres:\/\/ URL/m],
    [['--from', `fs:${join(src, 'missing')}`, '--to', `fs:${dst}`], /^STRATA_ERR_NOT_FOUND: --from fs:.*missing: no such directory/m],
    [['--from', `postgres://postgres@127.0.0.1:${port}/postgres?connect_timeout_ms=2000`, '--to', `fs:${dst}`], /^STRATA_ERR_DB_UNAVAILABLE: /m],
    [['--from', `fs:${src}`, '--to', `postgres://postgres@127.0.0.1:${port}/postgres?connect_timeout_ms=2000`], /^STRATA_ERR_DB_UNAVAILABLE: /m],
    [['--from', `fs:${src}`, '--to', `fs:${src}`], /^STRATA_ERR_VALIDATION: --from and --to name the same store/m],
  ];
  for (const [argv, message] of bad) {
    const r = await cli(['copy', ...argv]);
    assert.equal(r.code, 1, `${argv.join(' ')}: ${r.out}`);
    assert.match(r.err, message);
  }
  await assert.rejects(stat(dst), { code: 'ENOENT' }, 'no failed run created the target');
});
