import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authA, authB, startHarness } from './http-harness.js';

/**
 * Tenant isolation across every route: tenant B, knowing tenant A's session and user ids, can
 * neither read, search, list, flush, export nor delete them; the same ids under B are B's own.
 */
test('a key only ever sees its own tenant: every route, two tenants', async (t) => {
  const { app } = await startHarness(t);
  const post = (url: string, headers: Record<string, string>, payload: unknown) => app.inject({ method: 'POST', url, headers, payload: payload as string });
  assert.equal((await post('/v1/sessions/secret/messages', authA, { messages: [{ role: 'user', content: 'tenant A private alpaca fact' }, { role: 'assistant', content: 'noted alpaca' }], userId: 'alice' })).statusCode, 201);
  assert.equal((await app.inject({ method: 'POST', url: '/v1/sessions/secret/flush', headers: authA })).statusCode, 200);

  const notFound = async (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) => {
    const res = await app.inject({ method, url, headers: authB, ...(payload !== undefined ? { payload: payload as string } : {}) });
    assert.equal(res.statusCode, 404, `${method} ${url} as tenant B: ${res.statusCode} ${res.body}`);
    assert.equal((JSON.parse(res.body) as { error: { code: string } }).error.code, 'STRATA_ERR_NOT_FOUND');
  };
  /** Reads of messages, context and search answer as for a session that does not exist: empty. */
  const empty = async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const res = await app.inject({ method, url, headers: authB, ...(payload !== undefined ? { payload: payload as string } : {}) });
    assert.equal(res.statusCode, 200, `${method} ${url} as tenant B: ${res.statusCode} ${res.body}`);
    const body = JSON.parse(res.body) as { messages?: unknown[]; hits?: unknown[] };
    assert.deepEqual(body.messages ?? body.hits, [], `${method} ${url} as tenant B: ${res.body}`);
    assert.ok(!res.body.includes('alpaca'));
  };
  await notFound('GET', '/v1/sessions/secret');
  await empty('GET', '/v1/sessions/secret/messages');
  await empty('POST', '/v1/sessions/secret/context', { type: 'full' });
  await empty('POST', '/v1/sessions/secret/context', { type: 'smart', query: 'alpaca' });
  await empty('POST', '/v1/sessions/secret/search', { query: 'alpaca' });
  await notFound('POST', '/v1/sessions/secret/flush');
  await notFound('GET', '/v1/sessions/secret/export');
  await notFound('DELETE', '/v1/sessions/secret');

  const listB = JSON.parse((await app.inject({ method: 'GET', url: '/v1/sessions', headers: authB })).body) as { sessions: unknown[] };
  assert.deepEqual(listB.sessions, []);
  const listByUser = JSON.parse((await app.inject({ method: 'GET', url: '/v1/sessions?userId=alice', headers: authB })).body) as { sessions: unknown[] };
  assert.deepEqual(listByUser.sessions, []);
  const searchB = JSON.parse((await post('/v1/search', authB, { query: 'alpaca', userId: 'alice' })).body) as { hits: unknown[] };
  assert.deepEqual(searchB.hits, []);
  const deleteUserB = await app.inject({ method: 'DELETE', url: '/v1/users/alice', headers: authB });
  assert.ok([200, 404].includes(deleteUserB.statusCode), deleteUserB.body);
  if (deleteUserB.statusCode === 200) assert.deepEqual((JSON.parse(deleteUserB.body) as { sessionIds: string[] }).sessionIds, []);

  // The same session id under tenant B is a different session.
  assert.equal((await post('/v1/sessions/secret/messages', authB, { role: 'user', content: 'tenant B message' })).statusCode, 201);
  const exported = await app.inject({ method: 'GET', url: '/v1/sessions/secret/export', headers: authA });
  assert.equal(exported.statusCode, 200);
  const importB = await app.inject({ method: 'POST', url: '/v1/import?sessionId=stolen', headers: { ...authB, 'content-type': 'application/octet-stream' }, payload: exported.rawPayload });
  assert.equal(importB.statusCode, 201, 'B may import a file it holds, into its own tenant');
  assert.equal((JSON.parse(importB.body) as { tenant: string }).tenant, 'tenantB');
  assert.equal((await app.inject({ method: 'GET', url: '/v1/sessions/stolen', headers: authA })).statusCode, 404, 'the import landed in B, not A');

  // A's data is intact after everything B did.
  const a = JSON.parse((await app.inject({ method: 'GET', url: '/v1/sessions/secret/messages', headers: authA })).body) as { messages: Array<{ content: string }> };
  assert.deepEqual(a.messages.map((m) => m.content), ['tenant A private alpaca fact', 'noted alpaca']);
  const listA = JSON.parse((await app.inject({ method: 'GET', url: '/v1/sessions', headers: authA })).body) as { sessions: Array<{ sessionId: string }> };
  assert.deepEqual(listA.sessions.map((s) => s.sessionId), ['secret']);
  const searchA = JSON.parse((await post('/v1/search', authA, { query: 'alpaca', userId: 'alice' })).body) as { hits: unknown[] };
  assert.ok(searchA.hits.length > 0);
});
