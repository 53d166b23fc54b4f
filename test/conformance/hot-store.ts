/**
 * The HotStore conformance suite: every driver runs it (test/conformance/hot-store.test.ts).
 * Each test gets a fresh, isolated store from the harness factory.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '../../src/errors.js';
import type { ErrorCode } from '../../src/errors.js';
import type { HotSeed, HotStore, NewHotTurn } from '../../src/hot/store.js';
import type { SessionRef, Turn } from '../../src/types.js';

export interface HotStoreHarness {
  store: HotStore;
  /** Another handle on the same data (for Redis: a second client); may return `store` itself. */
  twin(): Promise<HotStore>;
  /**
   * Lets `ms` of lease time pass. The memory driver expires leases by the `now` argument, Redis
   * by its own clock, so the Redis harness really waits (a few tens of ms).
   */
  elapse(ms: number): Promise<void>;
  cleanup(): Promise<void>;
}

const A: SessionRef = { tenant: 'acme', sessionId: 's1' };
const B: SessionRef = { tenant: 'acme', sessionId: 's2' };
const C: SessionRef = { tenant: 'other', sessionId: 's1' };
const T0 = 1_700_000_000_000;

function turn(i: number, extra: Partial<NewHotTurn> = {}): NewHotTurn {
  return { role: i % 2 === 0 ? 'assistant' : 'user', content: `message ${i}, with commas, and ünïcödé 🙂`, createdAt: T0 + i, ...extra };
}

function emptySeed(nextTurnId = 1, archivedUpTo = nextTurnId - 1): HotSeed {
  return { nextTurnId, archivedUpTo, turns: [] };
}

async function appendOk(store: HotStore, ref: SessionRef, t: NewHotTurn, now = t.createdAt): Promise<number> {
  const r = await store.append(ref, t, now);
  assert.ok('turnId' in r, 'append should assign an id');
  return r.turnId;
}

/** Seeds an empty session and appends `n` turns (ids 1..n). */
async function fill(store: HotStore, ref: SessionRef, n: number): Promise<void> {
  await store.seed(ref, emptySeed(), T0);
  for (let i = 1; i <= n; i++) await appendOk(store, ref, turn(i));
}

async function rejects(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => isStrataError(err, code) || assert.fail(`expected ${code}, got ${String(err)}`));
}

const ids = (turns: Turn[]): number[] => turns.map((t) => t.turnId);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export function hotStoreSuite(name: string, makeHarness: () => Promise<HotStoreHarness>): void {
  describe(`HotStore conformance: ${name}`, () => {
    async function withStore(fn: (h: HotStoreHarness) => Promise<void>): Promise<void> {
      const h = await makeHarness();
      try {
        await fn(h);
      } finally {
        await h.cleanup();
      }
    }

    test('append on an unknown session asks for a seed and creates nothing', () =>
      withStore(async ({ store }) => {
        assert.deepEqual(await store.append(A, turn(1), T0), { needsSeed: true });
        assert.equal(await store.meta(A), null);
        assert.deepEqual(await store.lruSessions(10), []);
        assert.equal(await store.totalBytes(), 0);
        assert.deepEqual(await store.recent(A, 5, T0), []);
        assert.deepEqual(await store.lruSessions(10), [], 'recent on an unknown session does not create it');
      }));

    test('seed creates state once; appends continue from nextTurnId', () =>
      withStore(async ({ store }) => {
        const seedTurns: Turn[] = [
          { turnId: 40, role: 'user', content: 'archived one', createdAt: T0 + 40 },
          { turnId: 41, role: 'assistant', content: 'unarchived one', createdAt: T0 + 41, tokens: 3, metadata: { k: [1, 'x'] } },
        ];
        assert.equal(await store.seed(A, { nextTurnId: 42, archivedUpTo: 40, turns: seedTurns, userId: 'u-1' }, T0 + 100), true);
        assert.equal(await store.seed(A, emptySeed(1), T0 + 200), false);
        const meta = await store.meta(A);
        assert.deepEqual(meta, {
          nextTurnId: 42, archivedUpTo: 40, turnCount: 2, unarchivedCount: 1, oldestUnarchivedAt: T0 + 41,
          bytes: meta?.bytes, lastAccess: T0 + 100, createdAt: T0 + 100, userId: 'u-1',
        });
        assert.ok((meta?.bytes ?? 0) > 0);
        assert.equal(await appendOk(store, A, turn(42)), 42);
        assert.deepEqual(await store.recent(A, 10, T0 + 300), [...seedTurns, { turnId: 42, ...stripUser(turn(42)) }]);
      }));

    test('turns round-trip exactly: roles, tokens, metadata, commas, unicode, empty content', () =>
      withStore(async ({ store }) => {
        await store.seed(A, emptySeed(), T0);
        const inputs: NewHotTurn[] = [
          { role: 'system', content: '', createdAt: 0 },
          { role: 'user', content: ',,,{"a":1},', createdAt: T0, tokens: 0, metadata: {} },
          { role: 'assistant', content: 'line\nbreak\ttab \u0000 nul', createdAt: T0 + 1, tokens: 123456, metadata: { nested: { deep: [1, 2, { x: 'é' }] }, s: ',' } },
          { role: 'tool', content: '日本語 🙂'.repeat(50), createdAt: T0 + 2, metadata: { tool: 'search' } },
        ];
        for (const t of inputs) await appendOk(store, A, t, T0);
        const back = await store.range(A, 1, 4);
        assert.deepEqual(back, inputs.map((t, i) => ({ turnId: i + 1, ...t })));
        back[0]!.content = 'mutated';
        assert.equal((await store.range(A, 1, 1))[0]!.content, '', 'returned turns are copies');
      }));

    test('userId is remembered on first sight only', () =>
      withStore(async ({ store }) => {
        await store.seed(A, emptySeed(), T0);
        await appendOk(store, A, turn(1));
        assert.equal((await store.meta(A))?.userId, null);
        await appendOk(store, A, turn(2, { userId: 'alice' }));
        await appendOk(store, A, turn(3, { userId: 'bob' }));
        assert.equal((await store.meta(A))?.userId, 'alice');
      }));

    test('recent returns the last N ascending and touches last access', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 30);
        assert.deepEqual(ids(await store.recent(A, 5, T0 + 1000)), range(26, 30));
        assert.deepEqual(ids(await store.recent(A, 100, T0 + 1001)), range(1, 30));
        assert.deepEqual(await store.recent(A, 0, T0 + 1002), []);
        assert.equal((await store.meta(A))?.lastAccess, T0 + 1002);
        await store.recent(A, 1, T0 + 5);
        assert.equal((await store.meta(A))?.lastAccess, T0 + 1002, 'last access never moves backwards');
      }));

    test('unarchived and range read what the hot tier holds, clamped', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 12);
        await store.markArchived(A, 5, 100);
        assert.deepEqual(ids(await store.unarchived(A, 100)), range(6, 12));
        assert.deepEqual(ids(await store.unarchived(A, 3)), [6, 7, 8]);
        assert.deepEqual(ids(await store.range(A, 3, 7)), range(3, 7));
        assert.deepEqual(ids(await store.range(A, 0, 1_000_000)), range(1, 12));
        assert.deepEqual(await store.range(A, 9, 3), []);
        assert.deepEqual(await store.range(B, 1, 5), []);
      }));

    test('markArchived is monotonic and keeps every unarchived turn plus the last keepRecent archived', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 50);
        const before = await store.meta(A);
        await store.markArchived(A, 40, 10);
        const meta = await store.meta(A);
        assert.deepEqual(ids(await store.range(A, 0, 100)), range(31, 50));
        assert.equal(meta?.archivedUpTo, 40);
        assert.equal(meta?.turnCount, 20);
        assert.equal(meta?.unarchivedCount, 10);
        assert.equal(meta?.oldestUnarchivedAt, T0 + 41);
        assert.equal(meta?.nextTurnId, 51);
        assert.ok((meta?.bytes ?? 0) < (before?.bytes ?? 0));
        assert.equal(await store.totalBytes(), meta?.bytes);
        await store.markArchived(A, 20, 0);
        assert.deepEqual(await store.meta(A), meta, 'a lower upTo changes nothing');
        await store.markArchived(A, 50, 0);
        assert.deepEqual(await store.range(A, 0, 100), []);
        const last = await store.meta(A);
        assert.equal(last?.unarchivedCount, 0);
        assert.equal(last?.oldestUnarchivedAt, null);
        assert.equal(last?.bytes, 0);
        assert.equal(await appendOk(store, A, turn(51)), 51, 'ids continue after a full trim');
        assert.deepEqual(ids(await store.recent(A, 5, T0)), [51]);
      }));

    test('markArchived keeps keepRecent held turns even across holes, and rejects an upTo beyond the last turn', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 10);
        assert.equal(await store.deleteTurns(A, [7, 8]), 2);
        await store.markArchived(A, 9, 3);
        assert.deepEqual(ids(await store.range(A, 0, 20)), [5, 6, 9, 10]);
        const meta = await store.meta(A);
        await rejects(store.markArchived(A, 11, 0), 'STRATA_ERR_VALIDATION');
        assert.deepEqual(await store.meta(A), meta);
        await store.markArchived(B, 3, 0);
        assert.equal(await store.meta(B), null, 'unknown session: no-op');
      }));

    test('dropIfArchived refuses while any turn is unarchived, then drops everything', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 5);
        await fill(store, B, 2);
        assert.equal(await store.dropIfArchived(A), false);
        await store.markArchived(A, 4, 20);
        assert.equal(await store.dropIfArchived(A), false);
        assert.equal((await store.recent(A, 10, T0)).length, 5);
        await store.markArchived(A, 5, 20);
        assert.equal(await store.dropIfArchived(A), true);
        assert.equal(await store.meta(A), null);
        assert.deepEqual((await store.lruSessions(10)).map((e) => e.ref), [B]);
        assert.equal(await store.totalBytes(), (await store.meta(B))?.bytes);
        assert.deepEqual(await store.append(A, turn(6), T0), { needsSeed: true });
        assert.equal(await store.dropIfArchived(C), false);
      }));

    test('deleteSession removes all hot state and reports the turns removed', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 7);
        await fill(store, B, 1);
        assert.deepEqual(await store.deleteSession(A), { turns: 7, lastTurnId: 7 });
        assert.equal(await store.meta(A), null);
        assert.deepEqual(await store.sessionsToCompact(1, T0 + 10_000, 10), [B]);
        assert.equal(await store.totalBytes(), (await store.meta(B))?.bytes);
        assert.deepEqual(await store.deleteSession(A), { turns: 0, lastTurnId: 7 }, 'the floor stays');
        assert.equal(await store.floor(A), 7);
        // Deleted ids never come back and are never handed out again.
        assert.equal(await store.seed(A, { nextTurnId: 8, archivedUpTo: 0, turns: [{ turnId: 7, role: 'user', content: 'x', createdAt: T0 }] }, T0), 'conflict');
        assert.equal(await store.seed(A, { nextTurnId: 7, archivedUpTo: 0, turns: [] }, T0), 'conflict');
        assert.equal(await store.seed(A, { nextTurnId: 8, archivedUpTo: 7, turns: [] }, T0), true);
        assert.deepEqual(await store.append(A, { role: 'user', content: 'again', createdAt: T0 }, T0), { turnId: 8 });
      }));

    test('deleteTurns removes held ids only, keeps the next id, and updates unarchived state', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 6);
        await store.markArchived(A, 2, 10);
        const before = await store.meta(A);
        assert.equal(await store.deleteTurns(A, [1, 3, 3, 99]), 2);
        assert.deepEqual(await store.deleteTurns(A, []), 0);
        const meta = await store.meta(A);
        assert.deepEqual(ids(await store.recent(A, 10, T0)), [2, 4, 5, 6]);
        assert.deepEqual(ids(await store.recent(A, 2, T0)), [5, 6]);
        assert.deepEqual(ids(await store.unarchived(A, 10)), [4, 5, 6]);
        assert.equal(meta?.turnCount, 4);
        assert.equal(meta?.unarchivedCount, 3);
        assert.equal(meta?.oldestUnarchivedAt, T0 + 4);
        assert.equal(meta?.nextTurnId, 7);
        assert.ok((meta?.bytes ?? 0) < (before?.bytes ?? 0));
        assert.equal(await appendOk(store, A, turn(7)), 7);
        await store.deleteTurns(A, [4, 5, 6, 7]);
        assert.equal((await store.meta(A))?.oldestUnarchivedAt, null);
        assert.deepEqual(await store.sessionsToCompact(1, T0 + 1e6, 10), []);
        assert.equal(await store.dropIfArchived(A), true);
      }));

    test('LRU and idle sessions follow last access', () =>
      withStore(async ({ store }) => {
        await store.seed(A, emptySeed(), T0 + 10);
        await store.seed(B, emptySeed(), T0 + 20);
        await store.seed(C, emptySeed(), T0 + 30);
        assert.deepEqual((await store.lruSessions(10)).map((e) => e.ref), [A, B, C]);
        await store.recent(A, 1, T0 + 40);
        await appendOk(store, B, turn(1), T0 + 50);
        assert.deepEqual(await store.lruSessions(10), [
          { ref: C, lastAccess: T0 + 30 },
          { ref: A, lastAccess: T0 + 40 },
          { ref: B, lastAccess: T0 + 50 },
        ]);
        assert.deepEqual((await store.lruSessions(1)).map((e) => e.ref), [C]);
        assert.deepEqual(await store.lruSessions(0), []);
        assert.deepEqual(await store.idleSessions(T0 + 45, 10), [C, A]);
        assert.deepEqual(await store.idleSessions(T0 + 45, 1), [C]);
        assert.deepEqual(await store.idleSessions(T0 + 30, 10), []);
      }));

    test('sessionsToCompact finds sessions by unarchived count and by age', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 5); // oldest unarchived at T0+1
        await store.seed(B, emptySeed(), T0);
        for (let i = 1; i <= 3; i++) await appendOk(store, B, turn(100 + i));
        await store.seed(C, emptySeed(), T0); // nothing unarchived
        assert.deepEqual(await store.sessionsToCompact(5, 0, 10), [A]);
        assert.deepEqual(await store.sessionsToCompact(3, 0, 10), [A, B], 'biggest backlog first');
        assert.deepEqual(await store.sessionsToCompact(100, T0 + 50, 10), [A]);
        assert.deepEqual(await store.sessionsToCompact(100, T0 + 102, 10), [A, B], 'oldest first');
        assert.deepEqual(await store.sessionsToCompact(1, T0 + 1e6, 1), [A]);
        await store.markArchived(A, 5, 0);
        assert.deepEqual(await store.sessionsToCompact(1, T0 + 1e6, 10), [B]);
        await store.markArchived(B, 2, 0);
        assert.deepEqual(await store.sessionsToCompact(2, 0, 10), []);
        assert.deepEqual(await store.sessionsToCompact(1, T0 + 104, 10), [B]);
        assert.deepEqual(await store.sessionsToCompact(1, T0 + 103, 10), [B]);
        assert.deepEqual(await store.sessionsToCompact(2, T0 + 103, 10), [], 'oldest unarchived is now turn 3 (T0+103)');
      }));

    test('bytes: per session and in total, maintained through every update', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 10);
        await fill(store, B, 3);
        const sum = async (): Promise<number> => ((await store.meta(A))?.bytes ?? 0) + ((await store.meta(B))?.bytes ?? 0);
        assert.equal(await store.totalBytes(), await sum());
        const a = (await store.meta(A))?.bytes ?? 0;
        await appendOk(store, A, turn(11, { content: 'x'.repeat(1000) }));
        assert.ok(((await store.meta(A))?.bytes ?? 0) >= a + 1000);
        await store.markArchived(A, 8, 2);
        await store.deleteTurns(B, [2]);
        assert.equal(await store.totalBytes(), await sum());
        await store.deleteSession(B);
        assert.equal(await store.totalBytes(), (await store.meta(A))?.bytes);
      }));

    test('setTokens counts a turn held with its append key and no count, and nothing else', () =>
      withStore(async ({ store, twin }) => {
        await store.seed(A, emptySeed(), T0);
        await store.seed(B, emptySeed(), T0);
        const ops = { role: 'assistant' as const, content: null, tool_calls: [{ id: 'c1', type: 'function' as const, function: { name: 'f', arguments: '{"a":1}' } }], createdAt: T0 + 3 };
        await appendOk(store, A, turn(1, { key: 'n:one', metadata: { a: [1, ','] } }));
        await appendOk(store, A, turn(2, { key: 'n:two', tokens: 7 }));
        await appendOk(store, A, { ...ops, key: 'n:three' });
        await appendOk(store, A, turn(4));
        await appendOk(store, B, turn(1, { key: 'n:b1' }));
        const before = await store.meta(A);
        const totalBefore = await store.totalBytes();
        const other = await twin();
        // Both sessions' calls of one tick may share a script call: each gets its own answer.
        const [a, b] = await Promise.all([
          store.setTokens(A, [
            { turnId: 1, key: 'n:one', tokens: 1234 },
            { turnId: 2, key: 'n:two', tokens: 99 }, // counted already
            { turnId: 3, key: 'n:three', tokens: 12 },
            { turnId: 4, key: 'n:four', tokens: 5 }, // stored without a key
            { turnId: 5, key: 'n:five', tokens: 5 }, // not held
          ]),
          other.setTokens(B, [{ turnId: 1, key: 'n:other', tokens: 3 }]), // another turn's key
        ]);
        assert.equal(a, 2);
        assert.equal(b, 0);
        const got = await store.range(A, 1, 4);
        assert.deepEqual(got.map((t) => t.tokens), [1234, 7, 12, undefined]);
        assert.deepEqual(got[0]!.metadata, { a: [1, ','] });
        assert.equal(got[0]!.content, turn(1).content);
        assert.deepEqual(got[2]!.tool_calls, ops.tool_calls);
        assert.equal(got[2]!.content, null);
        assert.deepEqual((await store.unarchived(A, 10)).map((t) => [t.turnId, t.key, t.tokens]), [[1, 'n:one', 1234], [2, 'n:two', 7], [3, 'n:three', 12], [4, undefined, undefined]]);
        assert.equal((await store.range(B, 1, 1))[0]!.tokens, undefined);
        // The byte totals grow by the count's length ('ya' and 'c' in base 36).
        const after = await store.meta(A);
        assert.equal(after!.bytes, before!.bytes + 3);
        assert.deepEqual({ ...after, bytes: 0 }, { ...before, bytes: 0 });
        assert.equal(await store.totalBytes(), totalBefore + 3);
        // A second count of the same turn changes nothing.
        assert.equal(await store.setTokens(A, [{ turnId: 1, key: 'n:one', tokens: 1 }]), 0);
        assert.equal((await store.range(A, 1, 1))[0]!.tokens, 1234);
        await rejects(store.setTokens(A, [{ turnId: 4, key: 'n:four', tokens: -1 }]), 'STRATA_ERR_VALIDATION');
        await rejects(store.setTokens(A, [{ turnId: 0, key: 'n:four', tokens: 1 }]), 'STRATA_ERR_VALIDATION');
        await rejects(store.setTokens(A, [{ turnId: 4, key: 'has space', tokens: 1 }]), 'STRATA_ERR_VALIDATION');
        assert.equal(await store.totalBytes(), totalBefore + 3);
        // A deleted session is not brought back by a late count.
        await store.deleteSession(B);
        assert.equal(await store.setTokens(B, [{ turnId: 1, key: 'n:b1', tokens: 3 }]), 0);
        assert.equal(await store.meta(B), null);
      }));

    test('leases: exclusive, renewable, expiring, released only by their token', () =>
      withStore(async ({ store, elapse }) => {
        // TTLs are generous where a lease must still be held (a loaded machine may stall a few
        // tens of ms between calls) and short only where the test waits for expiry.
        let now = T0;
        const t1 = (await store.acquireLease(A, 'i1', 300, now))?.token;
        assert.ok(t1);
        assert.equal(await store.acquireLease(A, 'i2', 60, now + 1), null);
        assert.ok(await store.acquireLease(B, 'i2', 60, now + 1), 'leases are per session');
        await store.releaseLease(A, 'i2:not-the-token');
        assert.equal(await store.acquireLease(A, 'i2', 60, now + 2), null, 'a wrong token releases nothing');
        assert.equal(await store.renewLease(A, t1!, 10_000, now + 3), true);
        await elapse(400);
        now += 400;
        assert.equal(await store.acquireLease(A, 'i2', 60, now), null, 'renewed lease still held past its first TTL');
        await store.releaseLease(A, t1!);
        const t2 = (await store.acquireLease(A, 'i2', 40, now))?.token;
        assert.ok(t2 && t2 !== t1);
        assert.equal(await store.renewLease(A, t1!, 60, now), false, 'a released token cannot renew');
        await elapse(80);
        now += 80;
        assert.equal(await store.renewLease(A, t2!, 60, now), false, 'an expired lease cannot be renewed');
        const t3 = await store.acquireLease(A, 'i3', 10_000, now);
        assert.ok(t3);
        await store.releaseLease(A, t2!);
        assert.equal(await store.acquireLease(A, 'i4', 60, now), null, 'the expired holder cannot release the new lease');
      }));

    test('releaseOwnerLease deletes only a lease issued to that owner', () =>
      withStore(async ({ store }) => {
        const t1 = await store.acquireLease(A, 'inst-1', 60_000, T0);
        assert.ok(t1);
        assert.equal(await store.releaseOwnerLease(A, 'inst'), false, 'a prefix of the owner name is another owner');
        assert.equal(await store.releaseOwnerLease(A, 'inst-2'), false);
        assert.equal(await store.releaseOwnerLease(B, 'inst-1'), false, 'no lease on that session');
        assert.equal(await store.acquireLease(A, 'inst-2', 60_000, T0), null, 'still held');
        assert.equal(await store.releaseOwnerLease(A, 'inst-1'), true);
        assert.ok(await store.acquireLease(A, 'inst-2', 60_000, T0), 'free after the release');
      }));

    test('epoch is stable while the store keeps its data', () =>
      withStore(async ({ store, twin }) => {
        assert.equal(await store.initEpoch(7), 7);
        assert.equal(await store.initEpoch(9), 7, 'an epoch in force is kept');
        const e = await store.epoch();
        assert.equal(e, 7);
        assert.equal(await store.epoch(), e);
        assert.equal(await (await twin()).epoch(), e);
      }));

    test('parallel appends from two handles give dense, strictly increasing ids with no loss', () =>
      withStore(async ({ store, twin }) => {
        const other = await twin();
        await store.seed(A, emptySeed(), T0);
        const n = 150;
        const results = await Promise.all(
          range(1, 2 * n).map((i) => (i % 2 === 0 ? store : other).append(A, turn(i, { content: `from ${i}` }), T0 + i)),
        );
        const got = results.map((r) => ('turnId' in r ? r.turnId : -1)).sort((x, y) => x - y);
        assert.deepEqual(got, range(1, 2 * n));
        const all = await store.range(A, 1, 2 * n);
        assert.deepEqual(ids(all), range(1, 2 * n));
        assert.deepEqual(all.map((t) => t.content).sort(), range(1, 2 * n).map((i) => `from ${i}`).sort());
        assert.equal((await store.meta(A))?.unarchivedCount, 2 * n);
      }));

    test('tool calls, tool results, parts and odd session ids round-trip through append, range, recent and seed', () =>
      withStore(async ({ store }) => {
        const odd: SessionRef = { tenant: 'acme', sessionId: 'user@example.com/{x}:1 🦀' };
        const kinds: NewHotTurn[] = [
          { role: 'user', name: 'ada', content: [{ type: 'text', text: 'hi, there' }, { type: 'image_url', image_url: { url: 'https://x.test/a.png' } }], createdAt: T0, metadata: { a: 1 } },
          { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":",,"}' } }], createdAt: T0, key: 'k:x#0/2' },
          { role: 'tool', tool_call_id: 'c1', name: 'f', content: '', createdAt: T0, key: 'n:abc' },
        ];
        await store.seed(odd, emptySeed(), T0);
        for (const k of kinds) assert.ok('turnId' in (await store.append(odd, k, T0)));
        const strip = ({ key: _k, ...t }: NewHotTurn, i: number) => ({ turnId: i + 1, ...t });
        const expected = kinds.map(strip);
        const noTokens = (ts: Array<Record<string, unknown>>) => ts.map(({ tokens: _t, ...t }) => t);
        assert.deepEqual(noTokens(await store.range(odd, 1, 3) as never), expected);
        assert.deepEqual(noTokens(await store.recent(odd, 3, T0) as never), expected);
        const other: SessionRef = { tenant: 'acme', sessionId: 'seeded' };
        assert.equal(await store.seed(other, { nextTurnId: 4, archivedUpTo: 0, turns: expected }, T0), true);
        assert.deepEqual(noTokens(await store.range(other, 1, 3) as never), expected);
      }));

    test('bad arguments are rejected with coded errors and change nothing', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 3);
        const meta = await store.meta(A);
        const total = await store.totalBytes();
        const bad = { tenant: 'acme', sessionId: 'a\u0000b' };
        await rejects(store.append(bad, turn(1), T0), 'STRATA_ERR_INVALID_ID');
        await rejects(store.append({ tenant: 'a{b}', sessionId: 'x' }, turn(1), T0), 'STRATA_ERR_INVALID_ID');
        await rejects(store.append(A, { ...turn(1), role: 'robot' as never }, T0), 'STRATA_ERR_INVALID_ROLE');
        await rejects(store.append(A, { ...turn(1), content: 5 as never }, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.append(A, { ...turn(1), createdAt: -1 }, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.append(A, { ...turn(1), tokens: 1.5 }, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.append(A, { ...turn(1), metadata: [] as never }, T0), 'STRATA_ERR_METADATA_INVALID');
        await rejects(store.append(A, { ...turn(1), userId: 'no\ncontrol' }, T0), 'STRATA_ERR_INVALID_ID');
        await rejects(store.append(A, turn(1), Number.NaN), 'STRATA_ERR_VALIDATION');
        await rejects(store.recent(A, -1, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.recent(A, 2.5, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.unarchived(A, -5), 'STRATA_ERR_VALIDATION');
        await rejects(store.range(A, -1, 5), 'STRATA_ERR_VALIDATION');
        await rejects(store.markArchived(A, -1, 0), 'STRATA_ERR_VALIDATION');
        await rejects(store.markArchived(A, 1, -1), 'STRATA_ERR_VALIDATION');
        await rejects(store.deleteTurns(A, [1, 0]), 'STRATA_ERR_VALIDATION');
        await rejects(store.deleteTurns(A, [Number.NaN]), 'STRATA_ERR_VALIDATION');
        await rejects(store.lruSessions(-1), 'STRATA_ERR_VALIDATION');
        await rejects(store.sessionsToCompact(0, T0, 10), 'STRATA_ERR_VALIDATION');
        await rejects(store.acquireLease(A, '', 100, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.acquireLease(A, 'me', 0, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.renewLease(A, '', 100, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.seed(B, { nextTurnId: 0, archivedUpTo: 0, turns: [] }, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.seed(B, { nextTurnId: 5, archivedUpTo: 5, turns: [] }, T0), 'STRATA_ERR_VALIDATION');
        const t = (turnId: number): Turn => ({ turnId, role: 'user', content: 'x', createdAt: T0 });
        await rejects(store.seed(B, { nextTurnId: 5, archivedUpTo: 0, turns: [t(2), t(1)] }, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.seed(B, { nextTurnId: 5, archivedUpTo: 0, turns: [t(1), t(5)] }, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.seed(B, { nextTurnId: 5, archivedUpTo: 0, turns: [t(0)] }, T0), 'STRATA_ERR_VALIDATION');
        await rejects(store.seed(B, { nextTurnId: 1_000_000, archivedUpTo: 0, turns: [t(1), t(999_999)] }, T0), 'STRATA_ERR_VALIDATION');
        assert.deepEqual(await store.meta(A), meta);
        assert.equal(await store.meta(B), null);
        assert.equal(await store.totalBytes(), total);
        assert.deepEqual(ids(await store.recent(A, 10, T0)), [1, 2, 3]);
      }));

    test('tenants are separate: same session id in two tenants never mixes', () =>
      withStore(async ({ store }) => {
        await fill(store, A, 2);
        await store.seed(C, emptySeed(), T0);
        await appendOk(store, C, turn(1, { content: 'other tenant' }));
        assert.deepEqual((await store.recent(C, 10, T0)).map((x) => x.content), ['other tenant']);
        assert.equal((await store.recent(A, 10, T0)).length, 2);
        await store.deleteSession(C);
        assert.equal((await store.recent(A, 10, T0)).length, 2);
      }));

    test('close makes further calls fail with STRATA_ERR_CLOSED', () =>
      withStore(async ({ store }) => {
        await store.ping();
        await store.close();
        await rejects(store.ping(), 'STRATA_ERR_CLOSED');
        await rejects(store.append(A, turn(1), T0), 'STRATA_ERR_CLOSED');
      }));
  });
}

function stripUser(t: NewHotTurn): Omit<NewHotTurn, 'userId'> {
  const { userId: _userId, ...rest } = t;
  return rest;
}
