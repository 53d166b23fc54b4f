import { after, before, describe, test } from 'node:test';
import { basename } from 'node:path';
import assert from 'node:assert/strict';
import { isStrataError } from '../../src/errors.js';
import type { Strata } from '../../src/strata.js';
import { FakeClock, closeAfter, openStrata as openWith, tempDir } from '../helpers/strata.js';
import type { CreateStrataOptions } from '../../src/strata.js';
import { startRedis } from '../helpers/redis.js';
import type { TestRedis } from '../helpers/redis.js';

async function all(s: Strata, sessionId: string, tenant = 'default'): Promise<Array<{ turnId: number; content: string }>> {
  const out: Array<{ turnId: number; content: string }> = [];
  let after = 0;
  for (;;) {
    const page = await s.getMessages(sessionId, { tenant, after, limit: 1000 });
    out.push(...page.messages.map((m) => ({ turnId: m.turnId, content: m.content as string })));
    if (page.nextAfter === null) return out;
    after = page.nextAfter;
  }
}

function assertDense(turns: Array<{ turnId: number }>, n: number): void {
  assert.deepEqual(
    turns.map((t) => t.turnId),
    Array.from({ length: n }, (_, i) => i + 1),
  );
}


/*
 * Every test runs twice: with the in-process hot tier and with Redis (a private redis-server,
 * or REDIS_URL under a unique key prefix). The prefix is derived from the test's data directory,
 * so a reopened instance finds the same keys.
 */
for (const driver of ['memory', 'redis'] as const) {
  describe(`hot tier: ${driver}`, () => {
    let redis: TestRedis | null = null;
    if (driver === 'redis') {
      before(async () => {
        redis = await startRedis();
      });
      after(() => redis?.stop());
    }
    const openStrata = (dir: string, options: CreateStrataOptions = {}) =>
      openWith(dir, redis ? { ...options, hot: { driver: 'redis', redisUrl: redis.url, keyPrefix: redis.prefix(basename(dir)) } } : options);

    test('bad input is rejected with a coded error and changes nothing', async (t) => {
      const s = await openStrata(await tempDir(t), { maxMessageBytes: 1000, maxMetadataBytes: 100 });
      closeAfter(t, () => s.close());
      await s.addMessage('s1', 'user', 'first');
      const cases: Array<[string, () => Promise<unknown>, string]> = [
        ['empty content', () => s.addMessage('s1', 'user', ''), 'STRATA_ERR_CONTENT_EMPTY'],
        ['oversized content', () => s.addMessage('s1', 'user', 'x'.repeat(1001)), 'STRATA_ERR_CONTENT_TOO_LARGE'],
        ['oversized multibyte content', () => s.addMessage('s1', 'user', 'é'.repeat(501)), 'STRATA_ERR_CONTENT_TOO_LARGE'],
        ['unknown role', () => s.addMessage('s1', 'robot' as never, 'hi'), 'STRATA_ERR_INVALID_ROLE'],
        ['non-string content', () => s.addMessage('s1', 'user', 42 as never), 'STRATA_ERR_VALIDATION'],
        ['control character in id', () => s.addMessage('a\nb', 'user', 'hi'), 'STRATA_ERR_INVALID_ID'],
        ['NUL in id', () => s.addMessage('a\0b', 'user', 'hi'), 'STRATA_ERR_INVALID_ID'],
        ['overlong id', () => s.addMessage('x'.repeat(300), 'user', 'hi'), 'STRATA_ERR_INVALID_ID'],
        ['bad tenant', () => s.addMessage('s1', 'user', 'hi', { tenant: 'a/b' }), 'STRATA_ERR_INVALID_ID'],
        ['bad user', () => s.addMessage('s1', 'user', 'hi', { userId: '' }), 'STRATA_ERR_INVALID_ID'],
        ['oversized metadata', () => s.addMessage('s1', 'user', 'hi', { metadata: { a: 'y'.repeat(200) } }), 'STRATA_ERR_METADATA_TOO_LARGE'],
        ['array metadata', () => s.addMessage('s1', 'user', 'hi', { metadata: [] as never }), 'STRATA_ERR_METADATA_INVALID'],
        ['one bad message in a batch', () => s.addMessages('s1', [{ role: 'user', content: 'ok' }, { role: 'user', content: '' }]), 'STRATA_ERR_CONTENT_EMPTY'],
        ['empty batch', () => s.addMessages('s1', []), 'STRATA_ERR_VALIDATION'],
      ];
      for (const [name, call, code] of cases) {
        await assert.rejects(call, (err) => isStrataError(err) && err.code === code, name);
      }
      assert.deepEqual(await all(s, 's1'), [{ turnId: 1, content: 'first' }]);
      await assert.rejects(() => s.getSession('etc'), (err) => isStrataError(err, 'STRATA_ERR_NOT_FOUND'));
      assert.equal((await s.listSessions()).sessions.length, 1);
    });

    test('turn ids are dense per session; recent, full pagination and batches read in order', async (t) => {
      const s = await openStrata(await tempDir(t), { compaction: { maxUnarchivedTurns: 7 } });
      closeAfter(t, () => s.close());
      for (let i = 1; i <= 25; i++) assert.deepEqual(await s.addMessage('s1', i % 2 ? 'user' : 'assistant', `m${i}`), { turnId: i });
      assert.deepEqual(await s.addMessages('s1', [{ role: 'user', content: 'b1' }, { role: 'assistant', content: 'b2', metadata: { k: 1 } }]), { turnIds: [26, 27] });
      assert.deepEqual(await s.addMessage('other', 'user', 'x'), { turnId: 1 });
      await s.flush();
      const recent = await s.getContext('s1', { type: 'recent', limit: 5 });
      assert.deepEqual(recent.messages.map((m) => m.content), ['m23', 'm24', 'm25', 'b1', 'b2']);
      assert.deepEqual(recent.messages.at(-1)!.metadata, { k: 1 });
      assert.ok(recent.tokens > 0);
      const page1 = await s.getContext('s1', { type: 'full', limit: 10 });
      assert.deepEqual(page1.messages.map((m) => m.turnId), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(page1.nextAfter, 10);
      const rest = await s.getMessages('s1', { after: 20, limit: 100 });
      assert.deepEqual(rest.messages.map((m) => m.turnId), [21, 22, 23, 24, 25, 26, 27]);
      assert.equal(rest.nextAfter, null);
      assertDense(await all(s, 's1'), 27);
      // More than the hot tier holds: the older part comes from the archive.
      const long = await s.getContext('s1', { type: 'recent', limit: 27 });
      assert.deepEqual(long.messages.map((m) => m.turnId), Array.from({ length: 27 }, (_, i) => i + 1));
      const info = await s.getSession('s1');
      assert.equal(info.turns, 27);
      assert.equal(info.unarchivedTurns, 0);
      assert.equal(info.archivedTurns, 27);
    });

    test('idle expiry compacts and drops a session with unarchived turns, and nothing is lost', async (t) => {
      const clock = new FakeClock();
      const s = await openStrata(await tempDir(t), { clock, sessionIdleTtlMs: 60_000, compaction: { maxUnarchivedTurns: 1000, maxUnarchivedAgeMs: 10 * 3_600_000 } });
      closeAfter(t, () => s.close());
      for (let i = 1; i <= 30; i++) await s.addMessage('idle', 'user', `turn ${i}`);
      await s.addMessage('busy', 'user', 'hello');
      clock.advance(59_000);
      await s.addMessage('busy', 'user', 'still here');
      clock.advance(2_000);
      await s.runMaintenance();
      let idle = await s.getSession('idle');
      assert.equal(idle.hotTurns, 0, 'idle session dropped from the hot tier');
      assert.equal(idle.archivedTurns, 30);
      assert.equal((await s.getSession('busy')).hotTurns, 2, 'active session stays hot');
      // The next read rehydrates from the archive.
      const recent = await s.getContext('idle', { type: 'recent' });
      assert.deepEqual(recent.messages.map((m) => m.turnId), Array.from({ length: 20 }, (_, i) => i + 11));
      assertDense(await all(s, 'idle'), 30);
      assert.deepEqual(await s.addMessage('idle', 'user', 'back'), { turnId: 31 });
      idle = await s.getSession('idle');
      assert.equal(idle.turns, 31);
    });

    test('age threshold compacts unarchived turns without dropping the session', async (t) => {
      const clock = new FakeClock();
      const s = await openStrata(await tempDir(t), { clock, compaction: { maxUnarchivedTurns: 1000, maxUnarchivedAgeMs: 60_000 } });
      closeAfter(t, () => s.close());
      for (let i = 1; i <= 5; i++) await s.addMessage('a', 'user', `t${i}`);
      await s.runMaintenance();
      assert.equal((await s.getSession('a')).unarchivedTurns, 5, 'young turns stay unarchived');
      clock.advance(61_000);
      await s.runMaintenance();
      const info = await s.getSession('a');
      assert.equal(info.unarchivedTurns, 0);
      assert.equal(info.hotTurns, 5);
    });

    test('LRU eviction under a byte budget compacts least-recently-used sessions first and loses nothing', async (t) => {
      const clock = new FakeClock();
      const s = await openStrata(await tempDir(t), { clock, hotBudgetBytes: 20_000, compaction: { maxUnarchivedTurns: 1000 } });
      closeAfter(t, () => s.close());
      const text = 'lorem ipsum dolor sit amet '.repeat(20);
      for (let k = 0; k < 6; k++) {
        for (let i = 0; i < 10; i++) await s.addMessage(`s${k}`, 'user', `${k}:${i} ${text}`);
        clock.advance(1000);
      }
      // Touch s0 so it is the most recently used.
      await s.getContext('s0', { type: 'recent', limit: 1 });
      const { evicted } = await s.evictToDiskLru();
      assert.ok(evicted >= 1);
      assert.equal((await s.getSession('s0')).hotTurns, 10, 's0 was used last and stays');
      assert.equal((await s.getSession('s1')).hotTurns, 0, 's1 is least recently used and goes first');
      for (let k = 0; k < 6; k++) {
        const turns = await all(s, `s${k}`);
        assertDense(turns, 10);
        assert.ok(turns.every((tt, i) => tt.content.startsWith(`${k}:${i} `)));
      }
    });

    test('evictToDiskLru(session) and a restart: every turn survives, and the journal replays nothing twice', async (t) => {
      const dir = await tempDir(t);
      let s = await openStrata(dir);
      for (let i = 1; i <= 12; i++) await s.addMessage('e', 'user', `e${i}`, { userId: 'u1' });
      assert.deepEqual(await s.evictToDiskLru('e'), { evicted: 1 });
      assert.equal((await s.getSession('e')).hotTurns, 0);
      for (let i = 13; i <= 15; i++) await s.addMessage('e', 'user', `e${i}`);
      await s.close();
      // The memory hot tier is gone after a restart; the archive and journal hold everything.
      s = await openStrata(dir);
      closeAfter(t, () => s.close());
      const turns = await all(s, 'e');
      assertDense(turns, 15);
      assert.deepEqual(turns.map((x) => x.content), Array.from({ length: 15 }, (_, i) => `e${i + 1}`));
      assert.equal((await s.getSession('e')).userId, 'u1');
    });

    test('a crash without close: the journal replays unarchived turns into the archive exactly once', async (t) => {
      const dir = await tempDir(t);
      const first = await openStrata(dir, { instanceId: 'crashy' });
      for (let i = 1; i <= 9; i++) await first.addMessage('c', 'user', `c${i}`);
      await first.flush('c');
      for (let i = 10; i <= 14; i++) await first.addMessage('c', 'user', `c${i}`);
      // Simulate the crash: drop the journal lock as a dead process would, without flushing.
      const crashed = (first as unknown as { core: { journal: { close(): Promise<void> }; hot: { close(): Promise<void> } } }).core;
      await crashed.journal.close();
      // A dead process's connections die with it: close the crashed instance's Redis client too.
      closeAfter(t, () => crashed.hot.close());
      const second = await openStrata(dir, { instanceId: 'crashy' });
      closeAfter(t, () => second.close());
      const turns = await all(second, 'c');
      assertDense(turns, 14);
      assert.equal((await second.getSession('c')).archivedTurns, 14);
    });

    test('deleting a session or a user cascades through every tier and returns a receipt', async (t) => {
      const dir = await tempDir(t);
      const s = await openStrata(dir);
      closeAfter(t, () => s.close());
      for (let i = 0; i < 30; i++) await s.addMessage('d1', 'user', `one ${i}`, { userId: 'alice' });
      await s.flush('d1');
      for (let i = 0; i < 3; i++) await s.addMessage('d1', 'user', `more ${i}`, { userId: 'alice' });
      await s.addMessage('d2', 'user', 'two', { userId: 'alice' });
      await s.addMessage('d3', 'user', 'three', { userId: 'bob' });
      await s.addMessage('d1', 'user', 'same id, other tenant', { tenant: 'other', userId: 'alice' });
      const receipt = await s.deleteSession('d1');
      assert.deepEqual(receipt.sessionIds, ['d1']);
      assert.equal(receipt.journalTombstones, 1);
      assert.equal(receipt.turns, 30);
      assert.equal(receipt.vectors, 30);
      assert.ok(receipt.hotTurns >= 3);
      await assert.rejects(() => s.getSession('d1'), (err) => isStrataError(err, 'STRATA_ERR_NOT_FOUND'));
      await assert.rejects(() => s.deleteSession('d1'), (err) => isStrataError(err, 'STRATA_ERR_NOT_FOUND'));
      const user = await s.deleteUser('alice');
      assert.deepEqual(user.sessionIds, ['d2']);
      await assert.rejects(() => s.getSession('d2'), (err) => isStrataError(err, 'STRATA_ERR_NOT_FOUND'));
      assert.equal((await s.getSession('d3')).turns, 1, 'another user is untouched');
      assert.equal((await s.getSession('d1', { tenant: 'other' })).turns, 1, 'another tenant is untouched');
      // A new message starts a fresh session; its ids continue above the deleted ones, so an id
      // never names two messages (docs/consistency.md, "Deletion").
      assert.deepEqual(await s.addMessage('d1', 'user', 'new life'), { turnId: 34 });
      assert.deepEqual((await s.getMessages('d1')).messages.map((m) => [m.turnId, m.content]), [[34, 'new life']]);
    });

    test('search covers every turn, or leaves out the recent window on request; smart context finds older turns', async (t) => {
      const s = await openStrata(await tempDir(t), { recentTurns: 5, compaction: { maxUnarchivedTurns: 10 } });
      closeAfter(t, () => s.close());
      for (let i = 1; i <= 60; i++) await s.addMessage('k', i % 2 ? 'user' : 'assistant', i === 7 ? 'my cat is called Biscuit and loves tuna' : `filler message number ${i} about the weather today`);
      const hits = await s.searchDiskHistory('what is my cat called', 3, { sessionId: 'k' });
      assert.equal(hits[0]?.turnId, 7);
      assert.match(hits[0]!.content as string, /Biscuit/);
      const recentIds = new Set((await s.getContext('k', { type: 'recent' })).messages.map((m) => m.turnId));
      for (const h of await s.searchDiskHistory('filler message weather', 10, { sessionId: 'k', excludeRecent: true })) assert.ok(!recentIds.has(h.turnId), `hit ${h.turnId} is in the recent window`);
      // By default a search covers every turn, the recent ones included.
      await s.addMessage('k', 'user', 'the newest turn mentions a zeppelin');
      assert.equal((await s.searchDiskHistory('zeppelin', 3, { sessionId: 'k' }))[0]?.turnId, 61);
      assert.ok(!(await s.searchDiskHistory('zeppelin', 3, { sessionId: 'k', excludeRecent: true })).some((h) => h.turnId === 61));
      await assert.rejects(s.searchDiskHistory('zeppelin', 3, { sessionId: 'k', excludeRecent: 'yes' as never }), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
      const smart = await s.getContext('k', { type: 'smart', query: 'cat name Biscuit', maxTokens: 150 });
      assert.ok(smart.tokens <= 150);
      assert.ok(smart.messages.some((m) => m.turnId === 7), 'the relevant old turn is included');
      assert.ok(smart.messages.some((m) => m.turnId === 61), 'the latest turn is included');
      const ids = smart.messages.map((m) => m.turnId);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'chronological');
      assert.equal(new Set(ids).size, ids.length, 'no turn twice');
      assert.ok(smart.explain.some((e) => e.turnId === 7 && e.source === 'archive'));
    });

    test('a closed instance refuses writes with STRATA_ERR_CLOSED', async (t) => {
      const s = await openStrata(await tempDir(t));
      await s.addMessage('z', 'user', 'x');
      await s.close();
      await assert.rejects(() => s.addMessage('z', 'user', 'y'), (err) => isStrataError(err, 'STRATA_ERR_CLOSED'));
    });

    test('search and smart context see unarchived turns outside the recent window', async (t) => {
      const s = await openStrata(await tempDir(t), { recentTurns: 5, compaction: { maxUnarchivedTurns: 1000 } });
      closeAfter(t, () => s.close());
      for (let i = 1; i <= 40; i++) await s.addMessage('u', 'user', i === 3 ? 'the wifi password is hunter2' : `small talk number ${i}`);
      assert.equal((await s.getSession('u')).archivedTurns, 0);
      const smart = await s.getContext('u', { type: 'smart', query: 'wifi password', maxTokens: 80 });
      assert.ok(smart.messages.some((m) => m.turnId === 3), 'the old unarchived turn is found');
      assert.equal((await s.searchDiskHistory('wifi password', 1, { sessionId: 'u' }))[0]?.turnId, 3);
    });

    test('a changed embedder is detected on search, and reindex re-embeds the archive', async (t) => {
      const dir = await tempDir(t);
      let s = await openStrata(dir, { embedder: { provider: 'hash', dimensions: 64 } });
      for (let i = 1; i <= 30; i++) await s.addMessage('r', 'user', i === 4 ? 'the boat is named Seagull' : `line ${i} of the story`);
      await s.close();
      s = await openStrata(dir, { embedder: { provider: 'hash', dimensions: 32 } });
      closeAfter(t, () => s.close());
      await assert.rejects(() => s.searchDiskHistory('boat name', 3, { sessionId: 'r' }), (err) => isStrataError(err, 'STRATA_ERR_EMBEDDER_MISMATCH'));
      const progress: number[] = [];
      assert.deepEqual(await s.reindex({ onProgress: (done) => progress.push(done) }), { sessions: 1, turns: 30 });
      assert.deepEqual(progress, [1]);
      assert.equal((await s.searchDiskHistory('boat name Seagull', 1, { sessionId: 'r' }))[0]?.turnId, 4);
      assert.deepEqual(await s.reindex(), { sessions: 0, turns: 0 }, 'nothing left to re-embed');
      assert.equal((await s.getMessages('r')).messages.length, 30);
    });
  });
}
