/**
 * Idempotency keys (docs/consistency.md, "Acknowledging a turn"): a retry with the same key, on
 * the same instance or on another one sharing the hot tier and the data directory, answers the
 * first call's turn ids and stores nothing twice; the same key with other messages is
 * STRATA_ERR_IDEMPOTENCY_MISMATCH; an invalid key is STRATA_ERR_VALIDATION and changes nothing;
 * a key whose turn is still unarchived survives the loss of Redis (the journal record carries
 * it and the re-seed registers it again). Real Redis, real files, real HTTP stack (inject).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { isStrataError } from '../../src/errors.js';
import type { CreateStrataOptions, Strata } from '../../src/strata.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';
import { startRedis } from '../helpers/redis.js';
import type { TestRedis } from '../helpers/redis.js';
import { authA, startHarness } from './http-harness.js';

type Msg = { turnId: number; role: string; content: string };

async function all(s: Strata, sessionId: string): Promise<Msg[]> {
  const out: Msg[] = [];
  let after = 0;
  for (;;) {
    const page = await s.getMessages(sessionId, { after, limit: 1000 });
    out.push(...page.messages.map((m) => ({ turnId: m.turnId, role: m.role, content: m.content as string })));
    if (page.nextAfter === null) return out;
    after = page.nextAfter;
  }
}

const isCode = (code: string) => (err: unknown) => isStrataError(err) && err.code === code;

/** Compaction only when a test asks for it: the retried turns stay unarchived (journal + hot tier). */
const NO_AUTO_COMPACTION = { compaction: { maxUnarchivedTurns: 100_000, maxUnarchivedAgeMs: 3_600_000 } };

describe('idempotency keys on a shared Redis hot tier', () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.stop());

  const open = (dir: string, instanceId: string, options: CreateStrataOptions = {}): Promise<Strata> =>
    openStrata(dir, { ...NO_AUTO_COMPACTION, ...options, instanceId, hot: { driver: 'redis', redisUrl: redis.url, keyPrefix: redis.prefix(basename(dir)) } });

  test('a retry on the same instance and on a second instance answers the first id and stores once', async (t) => {
    const dir = await tempDir(t);
    const a = await open(dir, 'a');
    closeAfter(t, () => a.close());
    const b = await open(dir, 'b');
    closeAfter(t, () => b.close());

    assert.deepEqual(await a.addMessage('s', 'user', 'before'), { turnId: 1 });
    const first = await a.addMessage('s', 'user', 'hello', { idempotencyKey: 'req-1', metadata: { n: 1 } });
    assert.deepEqual(first, { turnId: 2 });
    assert.deepEqual(await a.addMessage('s', 'user', 'hello', { idempotencyKey: 'req-1', metadata: { n: 1 } }), first, 'retry on the same instance');
    assert.deepEqual(await b.addMessage('s', 'user', 'hello', { idempotencyKey: 'req-1', metadata: { n: 1 } }), first, 'retry on another instance');
    // Concurrent retries all answer the same id.
    const concurrent = await Promise.all([a, b, a, b].map((s) => s.addMessage('s', 'user', 'hello', { idempotencyKey: 'req-1', metadata: { n: 1 } })));
    assert.deepEqual(concurrent, [first, first, first, first]);
    // A new key is a new turn, right after the first one (no id was consumed by the retries).
    assert.deepEqual(await b.addMessage('s', 'assistant', 'hi', { idempotencyKey: 'req-2' }), { turnId: 3 });
    const expected = [
      { turnId: 1, role: 'user', content: 'before' },
      { turnId: 2, role: 'user', content: 'hello' },
      { turnId: 3, role: 'assistant', content: 'hi' },
    ];
    assert.deepEqual(await all(a, 's'), expected);
    assert.deepEqual(await all(b, 's'), expected);
    // Still once after compaction, and a retry of an archived turn still answers its id.
    await a.flush();
    await b.flush();
    assert.equal((await a.getSession('s')).archivedTurns, 3);
    assert.deepEqual(await b.addMessage('s', 'user', 'hello', { idempotencyKey: 'req-1', metadata: { n: 1 } }), first, 'retry after the turn was archived');
    await a.flush();
    assert.deepEqual(await all(a, 's'), expected);
    assert.equal((await a.getSession('s')).turns, 3);
    // Keys are per session: the same key in another session is another message.
    assert.deepEqual(await a.addMessage('other', 'user', 'hello', { idempotencyKey: 'req-1', metadata: { n: 1 } }), { turnId: 1 });
  });

  test('batch retries answer every id of the first batch; other messages under the key are a mismatch', async (t) => {
    const dir = await tempDir(t);
    const a = await open(dir, 'a');
    closeAfter(t, () => a.close());
    const b = await open(dir, 'b');
    closeAfter(t, () => b.close());
    const batch = [
      { role: 'user' as const, content: 'one' },
      { role: 'assistant' as const, content: 'two', metadata: { k: 'v' } },
      { role: 'user' as const, content: 'three' },
    ];
    const first = await a.addMessages('s', batch, { idempotencyKey: 'batch-1', userId: 'u1' });
    assert.deepEqual(first, { turnIds: [1, 2, 3] });
    assert.deepEqual(await a.addMessages('s', batch, { idempotencyKey: 'batch-1', userId: 'u1' }), first);
    assert.deepEqual(await b.addMessages('s', batch, { idempotencyKey: 'batch-1', userId: 'u1' }), first);

    const mismatches: Array<[string, () => Promise<unknown>]> = [
      ['single message, other content', () => a.addMessage('s', 'user', 'changed', { idempotencyKey: 'batch-1', userId: 'u1' })],
      ['batch with one message changed', () => b.addMessages('s', [batch[0]!, { role: 'assistant', content: 'TWO', metadata: { k: 'v' } }, batch[2]!], { idempotencyKey: 'batch-1', userId: 'u1' })],
      ['batch with other metadata', () => a.addMessages('s', [batch[0]!, { role: 'assistant', content: 'two', metadata: { k: 'w' } }, batch[2]!], { idempotencyKey: 'batch-1', userId: 'u1' })],
      ['batch with another role', () => a.addMessages('s', [{ role: 'system', content: 'one' }, batch[1]!, batch[2]!], { idempotencyKey: 'batch-1', userId: 'u1' })],
      ['batch with another user', () => b.addMessages('s', batch, { idempotencyKey: 'batch-1', userId: 'u2' })],
    ];
    for (const [name, call] of mismatches) {
      await assert.rejects(call, (err) => {
        assert.ok(isStrataError(err), `${name}: ${String(err)}`);
        assert.equal(err.code, 'STRATA_ERR_IDEMPOTENCY_MISMATCH', `${name}: ${err.message}`);
        return true;
      }, name);
    }
    // Nothing of the mismatched calls was stored, and the next id is still 4.
    const expected = batch.map((m, i) => ({ turnId: i + 1, role: m.role, content: m.content }));
    assert.deepEqual(await all(a, 's'), expected);
    assert.deepEqual(await all(b, 's'), expected);
    assert.deepEqual(await b.addMessage('s', 'user', 'next'), { turnId: 4 });
  });

  test('a batch retried under its key with one message more or less is a mismatch and stores nothing', async (t) => {
    // The key names the whole batch (api.ts: "reusing a key for other messages is
    // STRATA_ERR_IDEMPOTENCY_MISMATCH"), so a longer or shorter batch is another request.
    const dir = await tempDir(t);
    const a = await open(dir, 'a');
    closeAfter(t, () => a.close());
    const batch = [
      { role: 'user' as const, content: 'one' },
      { role: 'assistant' as const, content: 'two' },
    ];
    assert.deepEqual(await a.addMessages('s', batch, { idempotencyKey: 'batch-1' }), { turnIds: [1, 2] });
    const outcomes: string[] = [];
    const attempt = async (name: string, call: () => Promise<unknown>): Promise<void> => {
      try {
        outcomes.push(`${name}: resolved ${JSON.stringify(await call())}`);
      } catch (err) {
        outcomes.push(`${name}: ${isStrataError(err) ? err.code : String(err)}`);
      }
    };
    await attempt('one message more', () => a.addMessages('s', [...batch, { role: 'user', content: 'three' }], { idempotencyKey: 'batch-1' }));
    await attempt('one message less', () => a.addMessages('s', batch.slice(0, 1), { idempotencyKey: 'batch-1' }));
    await attempt('first message alone', () => a.addMessage('s', 'user', 'one', { idempotencyKey: 'batch-1' }));
    assert.deepEqual(outcomes, [
      'one message more: STRATA_ERR_IDEMPOTENCY_MISMATCH',
      'one message less: STRATA_ERR_IDEMPOTENCY_MISMATCH',
      'first message alone: STRATA_ERR_IDEMPOTENCY_MISMATCH',
    ]);
    assert.deepEqual((await all(a, 's')).map((m) => m.content), ['one', 'two']);
  });

  test('an invalid key is a validation error and changes nothing', async (t) => {
    const dir = await tempDir(t);
    const a = await open(dir, 'a');
    closeAfter(t, () => a.close());
    await a.addMessage('s', 'user', 'first', { idempotencyKey: 'ok-key' });
    const invalid: Array<[string, unknown]> = [
      ['empty', ''],
      ['256 characters', 'k'.repeat(256)],
      ['a space', 'two words'],
      ['a tab', 'tab\there'],
      ['a newline', 'line\nbreak'],
      ['a NUL', 'nul\0key'],
      ['DEL', 'del\x7f'],
      ['non-ASCII', 'clé'],
      ['a number', 42],
      ['null', null],
    ];
    for (const [name, key] of invalid) {
      await assert.rejects(() => a.addMessage('s', 'user', 'second', { idempotencyKey: key as string }), isCode('STRATA_ERR_VALIDATION'), `addMessage, ${name}`);
      await assert.rejects(() => a.addMessages('s', [{ role: 'user', content: 'second' }], { idempotencyKey: key as string }), isCode('STRATA_ERR_VALIDATION'), `addMessages, ${name}`);
      // Also in a session that does not exist yet: it must not be created.
      await assert.rejects(() => a.addMessage('fresh', 'user', 'x', { idempotencyKey: key as string }), isCode('STRATA_ERR_VALIDATION'), `new session, ${name}`);
    }
    assert.deepEqual(await all(a, 's'), [{ turnId: 1, role: 'user', content: 'first' }]);
    await assert.rejects(() => a.getSession('fresh'), isCode('STRATA_ERR_NOT_FOUND'));
    assert.deepEqual((await a.listSessions()).sessions.map((x) => x.sessionId), ['s']);
    // The boundaries that are valid: 1 and 255 printable characters.
    assert.deepEqual(await a.addMessage('s', 'user', 'one char', { idempotencyKey: '~' }), { turnId: 2 });
    const longest = '!'.repeat(100) + 'z'.repeat(155);
    assert.deepEqual(await a.addMessage('s', 'user', 'longest', { idempotencyKey: longest }), { turnId: 3 });
    assert.deepEqual(await a.addMessage('s', 'user', 'longest', { idempotencyKey: longest }), { turnId: 3 });
    assert.equal((await a.getSession('s')).turns, 3);
  });
});

describe('idempotency keys across a loss of Redis', () => {
  let redis: TestRedis;
  before(async () => {
    // FLUSHALL: a private server (a shared REDIS_URL would only lose this helper's keys).
    redis = await startRedis({ private: true });
  });
  after(() => redis.stop());

  test('a key whose turn is unarchived survives FLUSHALL: the retry answers the same id, the session holds it once', async (t) => {
    const dir = await tempDir(t);
    const hot = { driver: 'redis' as const, redisUrl: redis.url, keyPrefix: redis.prefix(basename(dir)) };
    const a = await openStrata(dir, { ...NO_AUTO_COMPACTION, instanceId: 'a', hot });
    closeAfter(t, () => a.close());
    await a.addMessages('s', [
      { role: 'user', content: 'archived one' },
      { role: 'assistant', content: 'archived two' },
    ]);
    await a.flush();
    const single = await a.addMessage('s', 'user', 'unarchived', { idempotencyKey: 'k-single', metadata: { x: 1 } });
    const batch = await a.addMessages('s', [{ role: 'assistant', content: 'b0' }, { role: 'user', content: 'b1' }], { idempotencyKey: 'k-batch' });
    assert.deepEqual(single, { turnId: 3 });
    assert.deepEqual(batch, { turnIds: [4, 5] });
    assert.equal((await a.getSession('s')).unarchivedTurns, 3);

    await redis.flushall();

    assert.deepEqual(await a.addMessage('s', 'user', 'unarchived', { idempotencyKey: 'k-single', metadata: { x: 1 } }), single, 'retry after FLUSHALL, same instance');
    // A second instance opened after the loss knows the keys too (it reads every journal).
    const b = await openStrata(dir, { ...NO_AUTO_COMPACTION, instanceId: 'b', hot });
    closeAfter(t, () => b.close());
    assert.deepEqual(await b.addMessages('s', [{ role: 'assistant', content: 'b0' }, { role: 'user', content: 'b1' }], { idempotencyKey: 'k-batch' }), batch, 'batch retry after FLUSHALL, other instance');
    await assert.rejects(() => b.addMessage('s', 'user', 'not the same', { idempotencyKey: 'k-single' }), isCode('STRATA_ERR_IDEMPOTENCY_MISMATCH'));

    const expected = [
      { turnId: 1, role: 'user', content: 'archived one' },
      { turnId: 2, role: 'assistant', content: 'archived two' },
      { turnId: 3, role: 'user', content: 'unarchived' },
      { turnId: 4, role: 'assistant', content: 'b0' },
      { turnId: 5, role: 'user', content: 'b1' },
    ];
    assert.deepEqual(await all(a, 's'), expected);
    assert.deepEqual(await all(b, 's'), expected);
    assert.deepEqual(await a.addMessage('s', 'user', 'after'), { turnId: 6 });
    // Archived once, whoever compacts.
    await b.flush();
    await a.flush();
    const info = await a.getSession('s');
    assert.equal(info.archivedTurns, 6);
    assert.equal(info.turns, 6);
    assert.deepEqual((await all(b, 's')).map((m) => m.turnId), [1, 2, 3, 4, 5, 6]);
  });

  test('a key whose turn was archived survives FLUSHALL too: the archive keeps it for the window', async (t) => {
    const dir = await tempDir(t);
    const hot = { driver: 'redis' as const, redisUrl: redis.url, keyPrefix: redis.prefix(basename(dir)) };
    const a = await openStrata(dir, { ...NO_AUTO_COMPACTION, instanceId: 'a', hot });
    closeAfter(t, () => a.close());
    const first = await a.addMessages('s', [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }], { idempotencyKey: 'k-arch' });
    await a.flush();
    assert.equal((await a.getSession('s')).unarchivedTurns, 0, 'archived, and the journal no longer needs them');
    await redis.flushall();
    const b = await openStrata(dir, { ...NO_AUTO_COMPACTION, instanceId: 'b', hot });
    closeAfter(t, () => b.close());
    assert.deepEqual(await b.addMessages('s', [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }], { idempotencyKey: 'k-arch' }), first, 'late retry on another instance');
    await assert.rejects(() => b.addMessages('s', [{ role: 'user', content: 'other' }, { role: 'assistant', content: 'r' }], { idempotencyKey: 'k-arch' }), isCode('STRATA_ERR_IDEMPOTENCY_MISMATCH'));
    assert.deepEqual((await all(b, 's')).map((m) => m.content), ['q', 'r']);
    // Keys outlive a deletion: a late retry of a deleted message answers its old ids and does
    // not bring it back, also after a loss of Redis; a new key is a new message.
    await b.deleteSession('s');
    assert.deepEqual(await a.addMessages('s', [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }], { idempotencyKey: 'k-arch' }), first);
    await redis.flushall();
    assert.deepEqual(await a.addMessages('s', [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }], { idempotencyKey: 'k-arch' }), first);
    assert.deepEqual(await a.addMessage('s', 'user', 'new life', { idempotencyKey: 'k-new' }), { turnId: 3 });
    assert.deepEqual((await all(a, 's')).map((m) => m.content), ['new life']);
  });
});

describe('Idempotency-Key over HTTP', () => {
  function body(res: LightMyRequestResponse): Record<string, unknown> {
    return JSON.parse(res.body) as Record<string, unknown>;
  }

  test('a retried request answers 201 with the same ids; another message is 422; a bad header is 400', async (t) => {
    const { app } = await startHarness(t);
    const post = (payload: unknown, key?: string | string[]) =>
      app.inject({ method: 'POST', url: '/v1/sessions/h/messages', headers: { ...authA, ...(key === undefined ? {} : { 'idempotency-key': key }) }, payload: payload as Record<string, unknown> });

    const one = await post({ role: 'user', content: 'hello' }, 'h-1');
    assert.equal(one.statusCode, 201, one.body);
    assert.deepEqual(body(one), { turnId: 1 });
    const again = await post({ role: 'user', content: 'hello' }, 'h-1');
    assert.equal(again.statusCode, 201, again.body);
    assert.deepEqual(body(again), { turnId: 1 });

    const batch = { messages: [{ role: 'assistant', content: 'a' }, { role: 'user', content: 'b' }] };
    const first = await post(batch, 'h-2');
    assert.equal(first.statusCode, 201, first.body);
    assert.deepEqual(body(first), { turnIds: [2, 3] });
    const retried = await post(batch, 'h-2');
    assert.equal(retried.statusCode, 201, retried.body);
    assert.deepEqual(body(retried), { turnIds: [2, 3] });

    const mismatch = await post({ role: 'user', content: 'something else' }, 'h-1');
    assert.equal(mismatch.statusCode, 422, mismatch.body);
    assert.equal((body(mismatch).error as { code: string }).code, 'STRATA_ERR_IDEMPOTENCY_MISMATCH');
    const batchMismatch = await post({ messages: [{ role: 'assistant', content: 'a' }, { role: 'user', content: 'B' }] }, 'h-2');
    assert.equal(batchMismatch.statusCode, 422, batchMismatch.body);
    assert.equal((body(batchMismatch).error as { code: string }).code, 'STRATA_ERR_IDEMPOTENCY_MISMATCH');

    for (const bad of ['x'.repeat(256), 'has space', 'tab\tkey']) {
      const res = await post({ role: 'user', content: 'bad key' }, bad);
      assert.equal(res.statusCode, 400, `${JSON.stringify(bad)}: ${res.body}`);
      assert.equal((body(res).error as { code: string }).code, 'STRATA_ERR_VALIDATION');
    }

    const read = await app.inject({ method: 'GET', url: '/v1/sessions/h/messages', headers: authA });
    assert.equal(read.statusCode, 200, read.body);
    assert.deepEqual((body(read).messages as Msg[]).map((m) => [m.turnId, m.content]), [[1, 'hello'], [2, 'a'], [3, 'b']]);
    // Without a key, the same message is a new turn.
    const plain = await post({ role: 'user', content: 'hello' });
    assert.deepEqual(body(plain), { turnId: 4 });
  });
});
