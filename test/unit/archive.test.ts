import type { HeldLock } from '../../src/types.js';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, test } from 'node:test';
import { ConversationArchive } from '../../src/archive/archive.js';
import { encodeMetaRecord, indexFile } from '../../src/archive/file.js';
import { RECORD_TYPES, encodeRecord } from '../../src/archive/format.js';
import { FsArchiveStore, shardOf } from '../../src/archive/fs-store.js';
import { InProcessSessionLock } from '../../src/archive/lock.js';
import { encodeSegment } from '../../src/archive/segment-encode.js';
import { fromHalf, toHalf } from '../../src/archive/vectors.js';
import { getCodec } from '../../src/codec/codec.js';
import { isStrataError } from '../../src/errors.js';
import { assertSameTurns, makeTurns } from '../conformance/archive-store.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'strata-archive-'));
  dirs.push(d);
  return d;
}
const ref = { tenant: 't', sessionId: 's' };

test('malformed ids are rejected before touching the disk; path-like session ids stay inside the archive', async () => {
  const dataDir = tempDir();
  const store = new FsArchiveStore({ dataDir });
  // Tenants keep the file-safe alphabet; session ids may be any text without control characters.
  const badTenants = ['../x', '..', '.', '/etc/passwd', 'a/b', 'a\\b', 'a\u0000b', 'x'.repeat(300), '', '.hidden', 'C:\\x'];
  const badSessions = ['a\u0000b', 'x'.repeat(300), '', 'a\nb', '\u0085'];
  const refs = [...badTenants.map((id) => ({ tenant: id, sessionId: 's' })), ...badSessions.map((id) => ({ tenant: 't', sessionId: id }))];
  for (const r of refs) {
    await assert.rejects(store.append(r, makeTurns(1, 1)), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'), JSON.stringify(r));
    await assert.rejects(store.read(r), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
    await assert.rejects(store.deleteSession(r), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
    await assert.rejects(store.importSession(r, new Uint8Array(0)), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
  }
  for (const id of badTenants) await assert.rejects(store.listSessions(id), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
  assert.deepEqual(readdirSync(dataDir), []);
  for (const id of ['../x', '..', '.', '/etc/passwd', 'a/b', 'a\\b', '.hidden', 'C:\\x', 'user@example.com', 'user:42', '{a}']) {
    const p = store.pathOf({ tenant: 't', sessionId: id });
    assert.ok(p.startsWith(join(dataDir, 'archive', 't', shardOf(id)) + sep), `${id} → ${p}`);
  }
  const path = store.pathOf({ tenant: 't', sessionId: 'a..b' });
  assert.ok(path.startsWith(join(dataDir, 'archive') + sep));
  assert.equal(path, join(dataDir, 'archive', 't', shardOf('a..b'), 'a..b.strata'));
});

test('shards spread session ids evenly over 256 directories', () => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 25_600; i++) counts.set(shardOf(`session-${i}`), (counts.get(shardOf(`session-${i}`)) ?? 0) + 1);
  assert.equal(counts.size, 256);
  for (const n of counts.values()) assert.ok(n > 50 && n < 170, `shard with ${n} sessions`);
});

test('options are validated eagerly, name the option, and are frozen', () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{}, 'dataDir'],
    [{ dataDir: 'x', textCodec: 'zstd-9' }, 'textCodec'],
    [{ dataDir: 'x', embeddingEncoding: 'int4' }, 'embeddingEncoding'],
    [{ dataDir: 'x', textLayout: 'row' }, 'textLayout'],
    [{ dataDir: 'x', maxDecodedBytes: 0 }, 'maxDecodedBytes'],
    [{ dataDir: 'x', compactAfterSegments: 1.5 }, 'compactAfterSegments'],
    [{ dataDir: 'x', clock: 5 }, 'clock'],
    [{ dataDir: 'x', lock: {} }, 'lock'],
    [{ dataDir: 'x', datadir: 'y' }, 'datadir'],
  ];
  for (const [options, name] of cases) {
    assert.throws(() => new FsArchiveStore(options as never), (e) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID') && e.message.includes(`\`${name}\``) && e.message.includes('expected'), name);
  }
  assert.throws(() => new ConversationArchive({ dataDir: 'x', tenant: '../t' }), (e) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID'));
  const store = new FsArchiveStore({ dataDir: 'x' });
  assert.ok(Object.isFrozen(store.options));
  assert.equal(store.options.textCodec.name, 'brotli');
  assert.equal(store.options.embeddingEncoding, 'int8');
});

test('float16 conversion round-trips representable values and rounds the rest closely', () => {
  for (const v of [0, 1, -1, 0.5, 65504, -2.5, 6.103515625e-5, 5.960464477539063e-8]) assert.equal(fromHalf(toHalf(v)), v);
  assert.equal(fromHalf(toHalf(1e6)), Infinity);
  for (let i = 0; i < 1000; i++) {
    const v = Math.sin(i) * 3;
    assert.ok(Math.abs(fromHalf(toHalf(v)) - v) <= Math.abs(v) * 2 ** -11 + 1e-7);
  }
});

test('overlapping segments are merged: ascending ids, no duplicates, the earliest copy wins', async () => {
  const store = new FsArchiveStore({ dataDir: tempDir() });
  const codec = getCodec('deflate');
  const first = makeTurns(1, 5, { seed: 1 });
  const second = makeTurns(3, 8, { seed: 2 });
  const seg = (turns: typeof first) => encodeRecord(RECORD_TYPES.segment, encodeSegment(turns, { codec, layout: 'block', encoding: 'int8', embedderId: 'e' }));
  const file = Buffer.concat([encodeMetaRecord({ userId: null, createdAt: 1 }), seg(second), seg(first)]);
  await store.importSession(ref, file);
  const turns = await store.read(ref);
  assert.deepEqual(turns.map((t) => t.turnId), [1, 2, 3, 4, 5, 6, 7, 8]);
  // `second` comes first in the file, so it wins for turns 3-5.
  assertSameTurns(turns, [first[0]!, first[1]!, ...second]);
  assert.equal((await store.info(ref))?.turnCount, 8);
  assert.equal((await store.searchByEmbedding(second[0]!.embedding!, 100, { tenant: 't', sessionIds: ['s'] })).length, 8);
  await store.compact(ref);
  const info = await store.info(ref);
  assert.equal(info?.segments, 1);
  assertSameTurns(await store.read(ref), turns);
});

test('a torn tail is ignored by readers, cut by the next append, and reported and cut by verify', async () => {
  const store = new FsArchiveStore({ dataDir: tempDir() });
  const turns = makeTurns(1, 10);
  await store.append(ref, turns.slice(0, 5));
  const path = store.pathOf(ref);
  const good = readFileSync(path);
  const partial = encodeRecord(RECORD_TYPES.segment, encodeSegment(turns.slice(5), { codec: getCodec('raw'), layout: 'block', encoding: 'int8', embedderId: null }));
  appendFileSync(path, partial.subarray(0, partial.length - 7));
  assertSameTurns(await store.read(ref), turns.slice(0, 5));
  const report = await store.verify();
  assert.equal(report.damaged, 1);
  assert.equal(report.reports[0]!.tornBytes, partial.length - 7);
  assert.equal(report.reports[0]!.repaired, false);
  const repaired = await store.verify({ repair: true });
  assert.equal(repaired.repaired, 1);
  assert.deepEqual(readFileSync(path), good);
  appendFileSync(path, partial.subarray(0, 20));
  await store.append(ref, turns.slice(5));
  assertSameTurns(await store.read(ref), turns);
  assert.equal((await store.verify()).ok, 1);
});

test('a corrupted block in the middle names file, segment and block; other segments stay readable', async () => {
  const store = new FsArchiveStore({ dataDir: tempDir(), textCodec: 'raw' });
  const turns = makeTurns(1, 9, { dims: 0 });
  await store.append(ref, turns.slice(0, 3));
  await store.append(ref, turns.slice(3, 6));
  await store.append(ref, turns.slice(6));
  const path = store.pathOf(ref);
  const bytes = readFileSync(path);
  const at = bytes.indexOf(Buffer.from('turn 5 of seed'));
  assert.ok(at > 0);
  bytes[at]! ^= 0x01;
  writeFileSync(path, bytes);
  await assert.rejects(store.read(ref), (e) => isStrataError(e, 'STRATA_ERR_ARCHIVE_CORRUPT') && e.message.includes(path) && e.details?.segment === 1 && e.details?.block === 'text');
  assertSameTurns(await store.read(ref, { toTurn: 3 }), turns.slice(0, 3));
  assertSameTurns(await store.read(ref, { fromTurn: 7 }), turns.slice(6));
  const report = await store.verify({ repair: true });
  assert.equal(report.damaged, 1);
  assert.deepEqual(report.reports[0]!.damage.map((d) => [d.segment, d.block]), [[1, 'text']]);
  assert.deepEqual(readFileSync(path), bytes, 'verify --repair never drops damaged data');
  await assert.rejects(store.compact(ref), (e) => isStrataError(e, 'STRATA_ERR_ARCHIVE_CORRUPT'));
  await assert.rejects(store.deleteTurns(ref, [1]), (e) => isStrataError(e, 'STRATA_ERR_ARCHIVE_CORRUPT'));
});

test('unknown format versions and codec ids are coded errors', async () => {
  const store = new FsArchiveStore({ dataDir: tempDir(), textCodec: 'raw' });
  await store.append(ref, makeTurns(1, 3));
  const path = store.pathOf(ref);
  const future = Buffer.from(encodeRecord(RECORD_TYPES.segment, new Uint8Array([1, 2, 3])));
  future[4] = 3;
  const { crc32c } = await import('@node-rs/crc32');
  future.writeUInt32LE(crc32c(future.subarray(0, 12)) >>> 0, 12);
  const original = readFileSync(path);
  appendFileSync(path, future);
  await assert.rejects(store.read(ref), (e) => isStrataError(e, 'STRATA_ERR_ARCHIVE_VERSION'));
  await assert.rejects(store.append(ref, makeTurns(4, 4)), (e) => isStrataError(e, 'STRATA_ERR_ARCHIVE_VERSION'));
  const unknownCodec = { id: 0x7e, name: 'test-unknown', compress: (b: Uint8Array) => b.slice(), decompress: (b: Uint8Array) => b.slice() };
  const seg = encodeRecord(RECORD_TYPES.segment, encodeSegment(makeTurns(4, 4), { codec: unknownCodec, layout: 'turn', encoding: 'none', embedderId: null }));
  writeFileSync(path, Buffer.concat([original, seg]));
  await assert.rejects(store.read(ref), (e) => isStrataError(e, 'STRATA_ERR_CODEC_UNKNOWN') && e.message.includes('segment 1'));
  assertSameTurns(await store.read(ref, { toTurn: 3 }), makeTurns(1, 3));
});

test('auto compaction runs when an append leaves too many segments', async () => {
  const store = new FsArchiveStore({ dataDir: tempDir(), compactAfterSegments: 3 });
  const turns = makeTurns(1, 12);
  for (let i = 0; i < 12; i += 2) await store.append(ref, turns.slice(i, i + 2));
  assert.ok((await store.info(ref))!.segments <= 3);
  assertSameTurns(await store.read(ref), turns);
});

test('the cache notices another writer: appends by a second store instance are seen', async () => {
  const dataDir = tempDir();
  const a = new FsArchiveStore({ dataDir });
  const b = new FsArchiveStore({ dataDir });
  await a.append(ref, makeTurns(1, 3));
  assert.equal((await b.read(ref)).length, 3);
  await b.append(ref, makeTurns(4, 6));
  assert.equal((await a.read(ref)).length, 6);
  assert.deepEqual(await a.append(ref, makeTurns(1, 6)), { appended: 0, skipped: 6, highWater: 6 });
  await b.deleteTurns(ref, [2]);
  assert.deepEqual((await a.read(ref)).map((t) => t.turnId), [1, 3, 4, 5, 6]);
});

test('writers go through the SessionLock given at construction', async () => {
  const calls: string[] = [];
  const inner = new InProcessSessionLock();
  const lock = { withLock: <T>(r: { tenant: string; sessionId: string }, fn: (held: HeldLock) => Promise<T>) => (calls.push(`${r.tenant}/${r.sessionId}`), inner.withLock(r, fn)) };
  const store = new FsArchiveStore({ dataDir: tempDir(), lock });
  await store.append(ref, makeTurns(1, 2));
  await store.saveSummary(ref, { fromTurn: 1, toTurn: 2, text: 'x', createdAt: 1 });
  await store.deleteTurns(ref, [1]);
  await store.compact(ref);
  await store.deleteSession(ref);
  assert.deepEqual(calls, ['t/s', 't/s', 't/s', 't/s', 't/s']);
  const order: number[] = [];
  await Promise.all([1, 2, 3].map((n) => inner.withLock(ref, async () => { order.push(n); await new Promise((r) => setImmediate(r)); order.push(n); })));
  assert.deepEqual(order, [1, 1, 2, 2, 3, 3]);
  assert.equal(inner.busy, 0);
});

test('ConversationArchive: the proposal API over the fs store, with bare ids in the default tenant', async () => {
  const archive = new ConversationArchive({ dataDir: tempDir(), embeddingEncoding: 'f16' });
  assert.ok(Object.isFrozen(archive));
  const turns = makeTurns(1, 20);
  assert.equal((await archive.save('chat-1', turns, { userId: 'ann' })).appended, 20);
  assertSameTurns(await archive.load('chat-1'), turns);
  assertSameTurns(await archive.load({ tenant: 'default', sessionId: 'chat-1' }, { fromTurn: 5, toTurn: 6 }), turns.slice(4, 6));
  const hits = await archive.searchByEmbedding(turns[7]!.embedding!, 2, 'chat-1');
  assert.equal(hits[0]!.turnId, 8);
  assert.equal((await archive.searchByEmbedding(turns[7]!.embedding!, 2, { userId: 'ann' }))[0]!.turnId, 8);
  assert.equal((await archive.searchByEmbedding(turns[7]!.embedding!, 2, ['chat-1', 'chat-2'])).length, 2);
  assert.equal((await archive.listSessions()).sessions.length, 1);
  assert.equal((await archive.stats()).turns, 20);
  const file = await archive.exportSession('chat-1');
  const report = archive.inspect(file);
  assert.ok(report.ok);
  assert.equal(report.records[1]!.segment!.embeddings, 'f16');
  assert.equal((await archive.verify()).ok, 1);
  assert.equal((await archive.deleteTurns('chat-1', [1, 2])).turns, 2);
  assert.equal((await archive.deleteSession('chat-1')).turns, 18);
  assert.equal(await archive.cleanupExpiredSessions(), 0);
  await archive.close();
  await assert.rejects(archive.load('chat-1'), (e) => isStrataError(e, 'STRATA_ERR_CLOSED'));
});

test('an index of a file with a damaged record header reports unknown loss instead of guessing', () => {
  const seg = encodeRecord(RECORD_TYPES.segment, encodeSegment(makeTurns(1, 2), { codec: getCodec('raw'), layout: 'block', encoding: 'none', embedderId: null }));
  const bytes = Buffer.concat([encodeMetaRecord({}), seg, seg]);
  bytes[encodeMetaRecord({}).length + 9]! ^= 0x10;
  const index = indexFile('f', bytes);
  assert.equal(index.unknownLoss, true);
  assert.equal(index.damage[0]!.kind, 'record-header');
  assert.equal(index.segments.length, 1, 'resynchronised on the next record');
});

test('user index: lines of ids with spaces, and lines written before ids could hold them, are both read', async () => {
  const { crc32c } = await import('@node-rs/crc32');
  const dataDir = tempDir();
  const store = new FsArchiveStore({ dataDir });
  await store.append({ tenant: 't', sessionId: 'old-session' }, makeTurns(1, 1), { userId: 'old-user' });
  await store.append({ tenant: 't', sessionId: 'new session' }, makeTurns(1, 1), { userId: 'a user' });
  const file = join(dataDir, 'archive', 't', 'users.idx');
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  assert.ok(lines.every((l) => /^[+-]\[/.test(l)), lines.join('\n'));
  // Rewrite the first entry as the old format had it ("+<user> <session> <crc>").
  const text = '+old-user old-session';
  writeFileSync(file, `${text} ${(crc32c(text) >>> 0).toString(16).padStart(8, '0')}\n${lines.slice(1).join('\n')}\n`);
  assert.deepEqual(await new FsArchiveStore({ dataDir }).listUserSessions('t', 'old-user'), ['old-session']);
  assert.deepEqual(await new FsArchiveStore({ dataDir }).listUserSessions('t', 'a user'), ['new session']);
});

test('user stamp: changes with every append, rewrite, deletion and import of the user\'s sessions, seen by another store on the same directory', async () => {
  const dataDir = tempDir();
  const a = new FsArchiveStore({ dataDir, compactAfterSegments: 2 });
  const b = new FsArchiveStore({ dataDir });
  const stamps: string[] = [await b.userStamp('t', 'ann')];
  assert.equal(stamps[0], 'none');
  const note = async () => {
    const s = await b.userStamp('t', 'ann');
    assert.ok(!stamps.includes(s), `stamp ${s} repeats`);
    stamps.push(s);
  };
  await a.append({ tenant: 't', sessionId: 's1' }, makeTurns(1, 2), { userId: 'ann' });
  await note();
  await a.append({ tenant: 't', sessionId: 's2' }, makeTurns(1, 1), { userId: 'ann' });
  await note();
  // Another user's change leaves ann's stamp alone; an append of nothing new too.
  const before = await b.userStamp('t', 'ann');
  await a.append({ tenant: 't', sessionId: 'x' }, makeTurns(1, 1), { userId: 'bob' });
  await a.append({ tenant: 't', sessionId: 's1' }, makeTurns(1, 2));
  assert.equal(await b.userStamp('t', 'ann'), before);
  await a.deleteTurns({ tenant: 't', sessionId: 's1' }, [1]);
  await note();
  const file = await a.exportSession({ tenant: 't', sessionId: 's2' });
  await a.importSession({ tenant: 't', sessionId: 's3' }, file);
  await note();
  await a.deleteSession({ tenant: 't', sessionId: 's2' });
  await note();
});
