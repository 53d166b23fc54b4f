/**
 * `@strata-memory/strata/client` against a real server on a loopback socket (a real core in a temp
 * directory, two tenants): every `/v1` route through its method, answers checked against what was
 * written, and every failure a StrataError with the service's code, status and request id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StrataClient, StrataHttpError } from '../../src/client/index.js';
import { StrataError, isStrataError } from '../../src/errors.js';
import { freePort } from '../helpers/serve.js';
import { KEY_A, KEY_B, startHarness } from './http-harness.js';

async function serve(t: Parameters<typeof startHarness>[0]): Promise<string> {
  // A recent window of 2 turns: session search leaves the window out, so older turns are found.
  const { app } = await startHarness(t, { flags: { recentTurns: 2 } });
  return app.listen({ host: '127.0.0.1', port: 0 });
}

function rejectsWith(code: string, status: number | null): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof StrataError, `not a StrataError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (status !== null) {
      assert.ok(err instanceof StrataHttpError);
      assert.equal(err.httpStatus, status);
      assert.ok(err.requestId, 'the answer carried a request id');
    }
    return true;
  };
}

test('every /v1 route through the typed client, over HTTP', async (t) => {
  const base = await serve(t);
  const a = new StrataClient({ baseUrl: base, apiKey: KEY_A });
  const b = new StrataClient({ baseUrl: base, apiKey: KEY_B });

  // Appends: role form (metadata, owner, idempotency key), message form, batch.
  const first = await a.addMessage('trip-1', 'user', 'I am planning a trip to Lisbon in May', { userId: 'ana', metadata: { channel: 'web' }, idempotencyKey: 'k-1' });
  assert.deepEqual(first, { turnId: 1 });
  assert.deepEqual(await a.addMessage('trip-1', 'user', 'I am planning a trip to Lisbon in May', { userId: 'ana', metadata: { channel: 'web' }, idempotencyKey: 'k-1' }), { turnId: 1 }, 'a retry answers the first id');
  assert.deepEqual(await a.addMessage('trip-1', { role: 'assistant', content: 'May is a fine month for Lisbon: walk Alfama early.' }), { turnId: 2 });
  const batch = await a.addMessages('trip-1', [
    { role: 'user', content: 'Which neighbourhood for food?' },
    { role: 'assistant', content: 'Try Campo de Ourique and its market.' },
  ]);
  assert.deepEqual(batch, { turnIds: [3, 4] });
  await a.addMessages('notes', [{ role: 'user', content: 'My cat is called Biscuit' }], { userId: 'ana' });

  // Reads.
  const page1 = await a.getMessages('trip-1', { limit: 3 });
  assert.deepEqual(page1.messages.map((m) => m.turnId), [1, 2, 3]);
  assert.equal(page1.messages[0]!.content, 'I am planning a trip to Lisbon in May');
  assert.deepEqual(page1.messages[0]!.metadata, { channel: 'web' });
  assert.equal(page1.nextAfter, 3);
  const page2 = await a.getMessages('trip-1', { after: page1.nextAfter!, limit: 3 });
  assert.deepEqual([page2.messages.map((m) => m.turnId), page2.nextAfter], [[4], null]);
  const recent = await a.getContext('trip-1', { type: 'recent', limit: 2 });
  assert.deepEqual(recent.messages.map((m) => m.turnId), [3, 4]);
  const session = await a.getSession('trip-1');
  assert.deepEqual([session.sessionId, session.userId, session.turns, session.lastTurnId], ['trip-1', 'ana', 4, 4]);
  const listed = await a.listSessions({ limit: 1 });
  assert.equal(listed.sessions.length, 1);
  assert.ok(listed.nextCursor);
  const rest = await a.listSessions({ cursor: listed.nextCursor, limit: 10 });
  assert.deepEqual([...listed.sessions, ...rest.sessions].map((s) => s.sessionId).sort(), ['notes', 'trip-1']);
  assert.deepEqual((await a.listSessions({ userId: 'ana' })).sessions.map((s) => s.sessionId).sort(), ['notes', 'trip-1']);

  // Archive, search, smart context.
  assert.deepEqual(await a.flush('trip-1'), { sessions: 1, turns: 4 });
  await a.flush('notes');
  const inSession = await a.searchDiskHistory('trip to Lisbon in May', 2, { sessionId: 'trip-1' });
  // Turns 3 and 4 are the recent window, which session search leaves out.
  assert.deepEqual(inSession.map((hit) => [hit.turnId, hit.content]).sort(), [[1, 'I am planning a trip to Lisbon in May'], [2, 'May is a fine month for Lisbon: walk Alfama early.']]);
  const forUser = await a.searchDiskHistory('Biscuit', 3, { userId: 'ana' });
  assert.equal(forUser[0]?.sessionId, 'notes');
  const smart = await a.getContext('trip-1', { type: 'smart', query: 'food market', maxTokens: 500 });
  assert.ok(smart.tokens <= 500 && smart.messages.some((m) => m.turnId === 4), JSON.stringify(smart.explain));

  // Export and import.
  const file = await a.exportSession('trip-1');
  assert.equal(Buffer.from(file.subarray(0, 4)).toString('latin1'), 'STRA');
  const imported = await a.importSession('trip-copy', file, { userId: 'ana' });
  assert.deepEqual([imported.sessionId, imported.turns], ['trip-copy', 4]);
  assert.deepEqual((await a.getMessages('trip-copy')).messages.map((m) => m.content), (await a.getMessages('trip-1')).messages.map((m) => m.content));

  // Tenants: b sees nothing of a.
  await assert.rejects(b.getSession('trip-1'), rejectsWith('STRATA_ERR_NOT_FOUND', 404));
  assert.deepEqual((await b.listSessions()).sessions, []);

  // Deletion.
  const receipt = await a.deleteSession('trip-copy');
  assert.deepEqual(receipt.sessionIds, ['trip-copy']);
  const userReceipt = await a.deleteUser('ana');
  assert.deepEqual([...userReceipt.sessionIds].sort(), ['notes', 'trip-1']);
  await assert.rejects(a.getSession('notes'), rejectsWith('STRATA_ERR_NOT_FOUND', 404));

  // Operations routes.
  assert.deepEqual(await a.health(), { ok: true });
  const ready = await a.ready();
  assert.equal(ready.ok, true);
  assert.match(await a.metrics(), /^strata_http_request_duration_seconds_count\{/m);
});

test('errors: the service code, status and request id; no answer is STRATA_ERR_UNREACHABLE', async (t) => {
  const base = await serve(t);
  const a = new StrataClient({ baseUrl: base, apiKey: KEY_A });
  await assert.rejects(new StrataClient({ baseUrl: base }).listSessions(), rejectsWith('STRATA_ERR_UNAUTHORIZED', 401));
  await assert.rejects(new StrataClient({ baseUrl: base, apiKey: 'not-a-key' }).listSessions(), rejectsWith('STRATA_ERR_UNAUTHORIZED', 401));
  await assert.rejects(a.getMessages('s', { limit: 5000 }), rejectsWith('STRATA_ERR_VALIDATION', 400));
  await assert.rejects(a.addMessage('s', 'user', ''), (err: unknown) => isStrataError(err) && err.status === 400);
  await a.addMessage('s', 'user', 'once', { idempotencyKey: 'same' });
  await assert.rejects(a.addMessage('s', 'user', 'other text', { idempotencyKey: 'same' }), rejectsWith('STRATA_ERR_IDEMPOTENCY_MISMATCH', 422));
  const file = await a.exportSession('s');
  await assert.rejects(a.importSession('s', file), rejectsWith('STRATA_ERR_CONFLICT', 409));
  const traced = await a.getSession('nope', { requestId: 'trace-42' }).catch((err: unknown) => err);
  assert.ok(traced instanceof StrataHttpError && traced.requestId === 'trace-42', 'the caller\'s request id comes back on the error');
  const invalid = await a.getMessages('s', { limit: 0 }).catch((err: unknown) => err);
  assert.ok(invalid instanceof StrataHttpError);
  assert.ok(Array.isArray((invalid.details as { issues?: unknown }).issues), 'the service details (validation issues) are kept');

  // Nothing listens on this port: no answer at all.
  const closed = new StrataClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, timeoutMs: 2_000 });
  await assert.rejects(closed.health(), rejectsWith('STRATA_ERR_UNREACHABLE', null));
  // A caller's own cancellation is passed through unchanged.
  const controller = new AbortController();
  controller.abort(new Error('caller gave up'));
  await assert.rejects(a.health({ signal: controller.signal }), /caller gave up/);
  // A base URL that is not http(s) is refused at construction.
  assert.throws(() => new StrataClient({ baseUrl: 'ftp://example.org' }), rejectsWith('STRATA_ERR_VALIDATION', null));
});
