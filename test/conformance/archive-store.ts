import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ArchiveStore } from '../../src/archive/store.js';
import { isStrataError } from '../../src/errors.js';
import type { ErrorCode } from '../../src/errors.js';
import type { ArchivedTurn, Clock, Role } from '../../src/types.js';

/**
 * The `ArchiveStore` conformance suite. Every driver must pass it. `makeStore` gets a controllable
 * clock (retention is tested without sleeping) and returns a fresh, empty store.
 */
export interface FakeClock extends Clock {
  set(ms: number): void;
}

export function fakeClock(start = Date.UTC(2025, 0, 1)): FakeClock {
  let now = start;
  return { now: () => now, set: (ms) => (now = ms) };
}

const DAY = 86_400_000;
const ROLES: Role[] = ['user', 'assistant', 'system', 'tool'];

/** Deterministic turns: text with multi-byte characters, some metadata, 16-dim unit-ish vectors. */
export function makeTurns(from: number, to: number, options: { dims?: number; at?: number; seed?: number } = {}): ArchivedTurn[] {
  const dims = options.dims ?? 16;
  const out: ArchivedTurn[] = [];
  for (let id = from; id <= to; id++) {
    const t: ArchivedTurn = {
      turnId: id,
      role: ROLES[id % 4]!,
      content: id % 7 === 0 ? '' : `turn ${id} of seed ${options.seed ?? 0}: héllo wörld 你好 🎉 ${'lorem ipsum '.repeat(id % 5)}`,
      createdAt: (options.at ?? Date.UTC(2024, 5, 1)) + id * 1000,
    };
    if (id % 3 === 0) t.metadata = { tool: 'search', n: id, nested: { ok: true } };
    if (id % 4 !== 1) t.tokens = id * 3;
    if (dims > 0) t.embedding = Float32Array.from({ length: dims }, (_, j) => Math.sin((id + 1) * (j + 1) * 0.37 + (options.seed ?? 0)));
    out.push(t);
  }
  return out;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return d / Math.sqrt(na * nb);
}

/** Same turn, ignoring embedding precision (quantized storage) but requiring the vector to point the same way. */
export function assertSameTurns(actual: ArchivedTurn[], expected: ArchivedTurn[]): void {
  assert.deepEqual(
    actual.map(({ embedding: _e, ...rest }) => rest),
    expected.map(({ embedding: _e, ...rest }) => rest),
  );
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!.embedding;
    const a = actual[i]!.embedding;
    if (!e) continue;
    assert.ok(a, `turn ${expected[i]!.turnId} lost its embedding`);
    assert.equal(a.length, e.length);
    assert.ok(cosine(a, e) > 0.999, `turn ${expected[i]!.turnId} embedding drifted`);
  }
}

async function rejects(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => isStrataError(e, code));
}

export function archiveStoreSuite(name: string, makeStore: (ctx: { clock: FakeClock }) => Promise<ArchiveStore> | ArchiveStore): void {
  describe(`ArchiveStore conformance: ${name}`, () => {
    const setup = async () => {
      const clock = fakeClock();
      return { clock, store: await makeStore({ clock }) };
    };
    const ref = { tenant: 'acme', sessionId: 'sess-1' };

    test('append then read returns the turns, in order, with metadata, tokens and embeddings', async () => {
      const { store } = await setup();
      const turns = makeTurns(1, 40);
      const r = await store.append(ref, turns, { userId: 'u1', embedderId: 'test-embedder' });
      assert.deepEqual(r, { appended: 40, skipped: 0, highWater: 40 });
      assertSameTurns(await store.read(ref), turns);
      assertSameTurns(await store.read(ref, { fromTurn: 10, toTurn: 12 }), turns.slice(9, 12));
      assertSameTurns(await store.read(ref, { fromTurn: 39 }), turns.slice(38));
      assert.deepEqual(await store.read(ref, { fromTurn: 41 }), []);
      const info = await store.info(ref);
      assert.equal(info?.turnCount, 40);
      assert.equal(info?.highWater, 40);
      assert.equal(info?.userId, 'u1');
      assert.equal(info?.embedderId, 'test-embedder');
      assert.equal(info?.firstTurnAt, turns[0]!.createdAt);
      assert.equal(info?.lastTurnAt, turns[39]!.createdAt);
      await store.close();
    });

    test('session ids with quotes, backslashes and SQL text are stored and read as given', async () => {
      const { store } = await setup();
      const odd = [`it's \\ "quoted"'); DROP TABLE x; --`, "E'\\x00'", 'user@example.com', '名前 \\\\ ends with a backslash \\'];
      for (const [i, sessionId] of odd.entries()) {
        const r = { tenant: 'acme', sessionId };
        const turns = makeTurns(1, 3 + i, { seed: i });
        await store.append(r, turns, { embedderId: 'test-embedder' });
        assertSameTurns(await store.read(r), turns);
        assertSameTurns(await store.read(r, { fromTurn: 2, toTurn: 2 }), turns.slice(1, 2));
        assert.equal((await store.info(r))?.turnCount, turns.length);
      }
      await store.close();
    });

    test('reading a session without an archive returns nothing', async () => {
      const { store } = await setup();
      assert.deepEqual(await store.read(ref), []);
      assert.equal(await store.info(ref), null);
      assert.deepEqual(await store.loadSummaries(ref), []);
      await store.close();
    });

    test('append is idempotent, and deleted turns are never resurrected by a replay', async () => {
      const { store } = await setup();
      const turns = makeTurns(1, 10);
      await store.append(ref, turns.slice(0, 6));
      assert.deepEqual(await store.append(ref, turns), { appended: 4, skipped: 6, highWater: 10 });
      assert.deepEqual(await store.append(ref, turns), { appended: 0, skipped: 10, highWater: 10 });
      const receipt = await store.deleteTurns(ref, [10, 3]);
      assert.equal(receipt.turns, 2);
      assert.deepEqual(await store.append(ref, turns), { appended: 0, skipped: 10, highWater: 10 });
      assert.deepEqual((await store.read(ref)).map((t) => t.turnId), [1, 2, 4, 5, 6, 7, 8, 9]);
      assert.equal((await store.info(ref))?.highWater, 10);
      await Promise.all([store.append(ref, makeTurns(11, 15)), store.append(ref, makeTurns(11, 15)), store.append(ref, makeTurns(11, 15))]);
      assert.deepEqual((await store.read(ref, { fromTurn: 11 })).map((t) => t.turnId), [11, 12, 13, 14, 15]);
      await store.close();
    });

    test('bad input is rejected with coded errors and changes nothing', async () => {
      const { store } = await setup();
      await store.append(ref, makeTurns(1, 3));
      const before = await store.exportSession(ref);
      await rejects(store.append(ref, [...makeTurns(4, 5), ...makeTurns(5, 5)]), 'STRATA_ERR_VALIDATION');
      await rejects(store.append(ref, [{ ...makeTurns(4, 4)[0]!, role: 'robot' as Role }]), 'STRATA_ERR_INVALID_ROLE');
      await rejects(store.append(ref, [{ ...makeTurns(4, 4)[0]!, metadata: [] as unknown as Record<string, unknown> }]), 'STRATA_ERR_METADATA_INVALID');
      await rejects(store.append(ref, [{ ...makeTurns(4, 4)[0]!, turnId: 0 }]), 'STRATA_ERR_VALIDATION');
      await rejects(store.append(ref, [...makeTurns(4, 4), ...makeTurns(5, 5, { dims: 8 })]), 'STRATA_ERR_EMBEDDING_DIMENSION');
      await rejects(store.append(ref, makeTurns(4, 4, { dims: 8 })), 'STRATA_ERR_EMBEDDING_DIMENSION');
      await rejects(store.append({ tenant: 'acme', sessionId: 'a\u0000b' }, makeTurns(1, 1)), 'STRATA_ERR_INVALID_ID');
      await rejects(store.append({ tenant: '../acme', sessionId: 'x' }, makeTurns(1, 1)), 'STRATA_ERR_INVALID_ID');
      await rejects(store.append(ref, makeTurns(4, 4), { userId: 'bad\nuser' }), 'STRATA_ERR_INVALID_ID');
      await rejects(store.read(ref, { fromTurn: -1 }), 'STRATA_ERR_VALIDATION');
      assert.deepEqual(await store.exportSession(ref), before);
      await store.close();
    });

    test('a session belongs to one user: a different userId is a conflict', async () => {
      const { store } = await setup();
      await store.append(ref, makeTurns(1, 2), { userId: 'u1' });
      await rejects(store.append(ref, makeTurns(3, 4), { userId: 'u2' }), 'STRATA_ERR_CONFLICT');
      assert.equal((await store.info(ref))?.highWater, 2);
      await store.close();
    });

    test('listSessions pages through every session of one tenant only', async () => {
      const { store } = await setup();
      const ids = Array.from({ length: 7 }, (_, i) => `s${i}`);
      for (const sessionId of ids) await store.append({ tenant: 'acme', sessionId }, makeTurns(1, 2));
      await store.append({ tenant: 'other', sessionId: 'hidden' }, makeTurns(1, 2));
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: { sessions: { sessionId: string; tenant: string }[]; nextCursor: string | null } = await store.listSessions('acme', { cursor, limit: 3 });
        assert.ok(page.sessions.length <= 3);
        for (const s of page.sessions) assert.equal(s.tenant, 'acme');
        seen.push(...page.sessions.map((s) => s.sessionId));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== null && pages < 10);
      assert.deepEqual([...seen].sort(), ids);
      assert.equal(pages, 3);
      assert.deepEqual((await store.listSessions('nobody')).sessions, []);
      await rejects(store.listSessions('acme', { limit: 0 }), 'STRATA_ERR_VALIDATION');
      await store.close();
    });

    test('user index: listUserSessions and deleteUser stay inside one tenant', async () => {
      const { store } = await setup();
      await store.append({ tenant: 'acme', sessionId: 'a1' }, makeTurns(1, 3), { userId: 'alice' });
      await store.append({ tenant: 'acme', sessionId: 'a2' }, makeTurns(1, 3), { userId: 'alice' });
      await store.append({ tenant: 'acme', sessionId: 'b1' }, makeTurns(1, 3), { userId: 'bob' });
      await store.append({ tenant: 'other', sessionId: 'a9' }, makeTurns(1, 3), { userId: 'alice' });
      assert.deepEqual(await store.listUserSessions('acme', 'alice'), ['a1', 'a2']);
      const receipt = await store.deleteUser('acme', 'alice');
      assert.equal(receipt.sessions, 2);
      assert.equal(receipt.turns, 6);
      assert.equal(receipt.vectors, 6);
      assert.deepEqual(await store.listUserSessions('acme', 'alice'), []);
      assert.deepEqual(await store.listUserSessions('other', 'alice'), ['a9']);
      assert.equal((await store.read({ tenant: 'acme', sessionId: 'b1' })).length, 3);
      await store.close();
    });

    test('searchByEmbedding ranks by cosine within the scope, and checks the dimension', async () => {
      const { store } = await setup();
      const a = makeTurns(1, 30, { seed: 1 });
      const b = makeTurns(1, 30, { seed: 2 });
      await store.append({ tenant: 'acme', sessionId: 'a' }, a, { userId: 'alice', embedderId: 'e' });
      await store.append({ tenant: 'acme', sessionId: 'b' }, b, { userId: 'bob', embedderId: 'e' });
      await store.append({ tenant: 'other', sessionId: 'a' }, a, { userId: 'alice', embedderId: 'e' });
      const q = a[16]!.embedding!;
      const hits = await store.searchByEmbedding(q, 5, { tenant: 'acme', sessionIds: ['a', 'b'] });
      assert.equal(hits.length, 5);
      assert.deepEqual({ sessionId: hits[0]!.sessionId, turnId: hits[0]!.turnId }, { sessionId: 'a', turnId: 17 });
      assert.ok(hits[0]!.score > 0.99);
      for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1]!.score >= hits[i]!.score);
      const onlyB = await store.searchByEmbedding(q, 3, { tenant: 'acme', userId: 'bob' });
      assert.ok(onlyB.length === 3 && onlyB.every((h) => h.sessionId === 'b'));
      const other = await store.searchByEmbedding(q, 50, { tenant: 'other', sessionIds: ['a', 'b'] });
      assert.ok(other.every((h) => h.sessionId === 'a'));
      await rejects(store.searchByEmbedding(new Float32Array(8).fill(1), 3, { tenant: 'acme', sessionIds: ['a'] }), 'STRATA_ERR_EMBEDDING_DIMENSION');
      await rejects(store.searchByEmbedding(q, 0, { tenant: 'acme', sessionIds: ['a'] }), 'STRATA_ERR_VALIDATION');
      assert.deepEqual(await store.searchByEmbedding(q, 3, { tenant: 'acme', sessionIds: ['missing'] }), []);
      await store.close();
    });

    test('summaries: saved, replaced by range, dropped when a covered turn is deleted', async () => {
      const { store } = await setup();
      await store.append(ref, makeTurns(1, 20));
      await store.saveSummary(ref, { fromTurn: 1, toTurn: 10, text: 'first', createdAt: 1 });
      await store.saveSummary(ref, { fromTurn: 11, toTurn: 20, text: 'second', createdAt: 2 });
      await store.saveSummary(ref, { fromTurn: 1, toTurn: 10, text: 'first, again', createdAt: 3 });
      assert.deepEqual((await store.loadSummaries(ref)).map((s) => s.text), ['first, again', 'second']);
      await rejects(store.saveSummary(ref, { fromTurn: 5, toTurn: 2, text: 'x', createdAt: 1 }), 'STRATA_ERR_VALIDATION');
      const receipt = await store.deleteTurns(ref, [15]);
      assert.equal(receipt.summaries, 1);
      assert.deepEqual((await store.loadSummaries(ref)).map((s) => s.text), ['first, again']);
      await store.close();
    });

    test('deleteSession removes everything and returns a receipt; deleting again is a no-op', async () => {
      const { store } = await setup();
      await store.append(ref, makeTurns(1, 12), { userId: 'u1' });
      await store.saveSummary(ref, { fromTurn: 1, toTurn: 12, text: 's', createdAt: 1 });
      const receipt = await store.deleteSession(ref);
      assert.equal(receipt.sessions, 1);
      assert.equal(receipt.turns, 12);
      assert.equal(receipt.vectors, 12);
      assert.equal(receipt.summaries, 1);
      assert.ok(receipt.bytes > 0);
      assert.deepEqual(await store.read(ref), []);
      assert.equal(await store.info(ref), null);
      assert.deepEqual(await store.listUserSessions('acme', 'u1'), []);
      assert.equal((await store.deleteSession(ref)).sessions, 0);
      await store.close();
    });

    test('cleanupExpiredSessions deletes sessions whose last turn is older than the limit (by the clock)', async () => {
      const { store, clock } = await setup();
      const now = Date.UTC(2025, 0, 1);
      clock.set(now);
      await store.append({ tenant: 'acme', sessionId: 'old' }, makeTurns(1, 2, { at: now - 40 * DAY }));
      await store.append({ tenant: 'b', sessionId: 'old2' }, makeTurns(1, 2, { at: now - 31 * DAY }));
      await store.append({ tenant: 'acme', sessionId: 'new' }, makeTurns(1, 2, { at: now - 2 * DAY }));
      assert.equal(await store.cleanupExpiredSessions(30), 2);
      assert.deepEqual((await store.listSessions('acme')).sessions.map((s) => s.sessionId), ['new']);
      assert.equal(await store.cleanupExpiredSessions(30), 0);
      clock.set(now + 40 * DAY);
      assert.equal(await store.cleanupExpiredSessions(30), 1);
      await rejects(store.cleanupExpiredSessions(-1), 'STRATA_ERR_VALIDATION');
      await store.close();
    });

    test('compact merges many segments into one and keeps every turn and summary', async () => {
      const { store } = await setup();
      const turns = makeTurns(1, 30);
      for (let i = 0; i < 30; i += 3) await store.append(ref, turns.slice(i, i + 3));
      await store.saveSummary(ref, { fromTurn: 1, toTurn: 30, text: 'all', createdAt: 1 });
      const before = await store.info(ref);
      await store.compact(ref);
      const after = await store.info(ref);
      assert.ok(after!.segments < before!.segments);
      assertSameTurns(await store.read(ref), turns);
      assert.equal((await store.loadSummaries(ref))[0]?.text, 'all');
      await store.close();
    });

    test('export and import round-trip; import never overwrites and rejects damaged files', async () => {
      const { store } = await setup();
      const turns = makeTurns(1, 8);
      await store.append(ref, turns, { userId: 'u1' });
      const file = await store.exportSession(ref);
      const target = { tenant: 'acme', sessionId: 'copy' };
      const info = await store.importSession(target, file, { userId: 'u2' });
      assert.equal(info.turnCount, 8);
      assertSameTurns(await store.read(target), turns);
      assert.deepEqual(await store.listUserSessions('acme', 'u2'), ['copy']);
      await rejects(store.importSession(target, file), 'STRATA_ERR_CONFLICT');
      const bad = file.slice();
      bad[bad.length - 10]! ^= 0x40;
      await rejects(store.importSession({ tenant: 'acme', sessionId: 'bad' }, bad), 'STRATA_ERR_ARCHIVE_CORRUPT');
      await rejects(store.importSession({ tenant: 'acme', sessionId: 'bad' }, file.subarray(0, file.length - 3)), 'STRATA_ERR_ARCHIVE_CORRUPT');
      assert.equal(await store.info({ tenant: 'acme', sessionId: 'bad' }), null);
      await rejects(store.exportSession({ tenant: 'acme', sessionId: 'none' }), 'STRATA_ERR_NOT_FOUND');
      await store.close();
    });

    test('fencing: a commit or deletion below the highest committed fencing number is refused and changes nothing', async () => {
      const { store } = await setup();
      await store.append(ref, makeTurns(1, 4), { fence: 10 });
      await store.append(ref, makeTurns(5, 6), { fence: 12 });
      const before = await store.exportSession(ref);
      await rejects(store.append(ref, makeTurns(7, 9), { fence: 11 }), 'STRATA_ERR_FENCED');
      await rejects(store.deleteSession(ref, { fence: 11, upTo: 9 }), 'STRATA_ERR_FENCED');
      assert.deepEqual(await store.exportSession(ref), before);
      assert.equal(await store.deletedUpTo(ref), 0);
      // A precommit that throws (a lease lost) commits nothing either.
      await assert.rejects(store.append(ref, makeTurns(7, 9), { fence: 12, precommit: () => Promise.reject(new Error('lease lost')) }), /lease lost/);
      assert.equal((await store.info(ref))?.highWater, 6);
      assert.deepEqual(await store.append(ref, makeTurns(7, 9), { fence: 12 }), { appended: 3, skipped: 0, highWater: 9 });
      const receipt = await store.deleteSession(ref, { fence: 13, upTo: 20 });
      assert.equal(receipt.turns, 9);
      assert.equal(await store.deletedUpTo(ref), 20, 'the deletion floor covers ids not archived yet');
      // Turns at or below the floor are never archived again; later ones start the session anew.
      const after = await store.append(ref, makeTurns(18, 22), { fence: 13 });
      assert.deepEqual([after.appended, after.highWater], [2, 22]);
      assert.deepEqual((await store.read(ref)).map((t) => t.turnId), [21, 22]);
      await store.close();
    });

    test('idempotency keys are kept with archived turns, forgotten after their window, and outlive a deletion', async () => {
      const { store } = await setup();
      const key = (k: string, turnId: number, createdAt: number) => ({ key: `k:${k}#0`, turnId, hash: `h${turnId}`, createdAt });
      await store.append(ref, makeTurns(1, 2), { idempotency: [key('a', 1, 100), key('b', 2, 200)], keysSince: 0 });
      await store.append(ref, makeTurns(3, 3), { idempotency: [key('c', 3, 300)], keysSince: 150 });
      const keys = (await store.idempotencyKeys(ref)).sort((x, y) => x.turnId - y.turnId);
      assert.deepEqual(keys, [key('b', 2, 200), key('c', 3, 300)]);
      await store.deleteSession(ref);
      assert.deepEqual((await store.idempotencyKeys(ref)).map((k) => k.turnId).sort(), [2, 3]);
      assert.equal(await store.committedTurn(ref, 2), null);
      await store.close();
    });

    test('stats count sessions, turns, bytes and segments per tenant and overall', async () => {
      const { store } = await setup();
      await store.append({ tenant: 'acme', sessionId: 'x' }, makeTurns(1, 5));
      await store.append({ tenant: 'acme', sessionId: 'y' }, makeTurns(1, 3));
      await store.append({ tenant: 'zeta', sessionId: 'x' }, makeTurns(1, 2));
      const acme = await store.stats('acme');
      assert.equal(acme.sessions, 2);
      assert.equal(acme.turns, 8);
      assert.ok(acme.bytes > 0 && acme.segments === 2);
      assert.equal((await store.stats()).turns, 10);
      await store.close();
    });
  });
}
