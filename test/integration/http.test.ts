import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { ERROR_CATALOG, StrataError } from '../../src/errors.js';
import type { ConversationMemory } from '../../src/cache/api.js';
import { authA, authB, startHarness } from './http-harness.js';

function json(res: LightMyRequestResponse): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}

function assertError(res: LightMyRequestResponse, status: number, code: string): void {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode} ${res.body}`);
  const body = json(res) as { error: { code: string; message: string; details: unknown } };
  assert.equal(body.error.code, code);
  assert.equal(ERROR_CATALOG[body.error.code as keyof typeof ERROR_CATALOG][0], status, 'status matches the catalog');
  assert.ok(body.error.message.length > 0);
  assert.ok('details' in body.error);
}

test('messages: single and batch appends, then paginated reads in order', async (t) => {
  const { app } = await startHarness(t);
  const one = await app.inject({ method: 'POST', url: '/v1/sessions/s1/messages', headers: authA, payload: { role: 'user', content: 'hello there', metadata: { lang: 'en' }, userId: 'u1' } });
  assert.equal(one.statusCode, 201, one.body);
  assert.deepEqual(json(one), { turnId: 1 });
  const batch = await app.inject({ method: 'POST', url: '/v1/sessions/s1/messages', headers: authA, payload: { messages: [{ role: 'assistant', content: 'hi!' }, { role: 'user', content: 'third' }, { role: 'assistant', content: 'fourth' }] } });
  assert.equal(batch.statusCode, 201, batch.body);
  assert.deepEqual(json(batch), { turnIds: [2, 3, 4] });

  const page = await app.inject({ method: 'GET', url: '/v1/sessions/s1/messages?after=1&limit=2', headers: authA });
  assert.equal(page.statusCode, 200, page.body);
  const body = json(page) as { messages: Array<{ turnId: number; content: string }>; nextAfter: number | null };
  assert.deepEqual(body.messages.map((m) => [m.turnId, m.content]), [[2, 'hi!'], [3, 'third']]);
  assert.equal(body.nextAfter, 3);
  const all = json(await app.inject({ method: 'GET', url: '/v1/sessions/s1/messages', headers: authA })) as { messages: Array<{ turnId: number; metadata?: unknown }> };
  assert.deepEqual(all.messages.map((m) => m.turnId), [1, 2, 3, 4]);
  assert.deepEqual(all.messages[0]!.metadata, { lang: 'en' });

  assertError(await app.inject({ method: 'GET', url: '/v1/sessions/s1/messages?limit=1001', headers: authA }), 400, 'STRATA_ERR_VALIDATION');
  assertError(await app.inject({ method: 'GET', url: '/v1/sessions/s1/messages?after=-1', headers: authA }), 400, 'STRATA_ERR_VALIDATION');
});

test('context: recent, full and smart; search in a session and across a user', async (t) => {
  // Search skips the recent window (the caller already has those turns): keep it to one turn.
  const { app } = await startHarness(t, { flags: { recentTurns: 1 } });
  const turns = [
    { role: 'user', content: 'I am planning a trip to Lisbon in May.' },
    { role: 'assistant', content: 'Lisbon in May is lovely; try Alfama for walking.' },
    { role: 'user', content: 'What about a good recipe for sourdough bread?' },
    { role: 'assistant', content: 'Feed the starter, autolyse, stretch and fold, bake hot.' },
  ];
  assert.equal((await app.inject({ method: 'POST', url: '/v1/sessions/trip/messages', headers: authA, payload: { messages: turns, userId: 'ana' } })).statusCode, 201);
  assert.equal((await app.inject({ method: 'POST', url: '/v1/sessions/other/messages', headers: authA, payload: { role: 'user', content: 'Lisbon trams are yellow', userId: 'ana' } })).statusCode, 201);

  const recent = json(await app.inject({ method: 'POST', url: '/v1/sessions/trip/context', headers: authA, payload: { type: 'recent', limit: 2 } })) as { type: string; messages: Array<{ turnId: number }> };
  assert.equal(recent.type, 'recent');
  assert.deepEqual(recent.messages.map((m) => m.turnId), [3, 4]);
  const full = json(await app.inject({ method: 'POST', url: '/v1/sessions/trip/context', headers: authA, payload: { type: 'full' } })) as { messages: unknown[] };
  assert.equal(full.messages.length, 4);
  const smart = await app.inject({ method: 'POST', url: '/v1/sessions/trip/context', headers: authA, payload: { type: 'smart', query: 'sourdough', maxTokens: 2000 } });
  assert.equal(smart.statusCode, 200, smart.body);
  const smartBody = json(smart) as { messages: Array<{ content: string }>; tokens: number; explain: unknown[] };
  assert.ok(smartBody.messages.length > 0 && smartBody.tokens <= 2000);
  assert.ok(Array.isArray(smartBody.explain));
  assertError(await app.inject({ method: 'POST', url: '/v1/sessions/trip/context', headers: authA, payload: { type: 'clever' } }), 400, 'STRATA_ERR_VALIDATION');

  const flushed = await app.inject({ method: 'POST', url: '/v1/sessions/trip/flush', headers: authA });
  assert.equal(flushed.statusCode, 200, flushed.body);
  await app.inject({ method: 'POST', url: '/v1/sessions/other/flush', headers: authA });
  const inSession = await app.inject({ method: 'POST', url: '/v1/sessions/trip/search', headers: authA, payload: { query: 'sourdough bread recipe', k: 2 } });
  assert.equal(inSession.statusCode, 200, inSession.body);
  const hits = (json(inSession) as { hits: Array<{ sessionId: string; content: string }> }).hits;
  assert.ok(hits.length > 0 && hits.every((h) => h.sessionId === 'trip'), inSession.body);
  assert.match(hits[0]!.content, /sourdough/i);
  const byUser = (json(await app.inject({ method: 'POST', url: '/v1/search', headers: authA, payload: { query: 'Lisbon trams', userId: 'ana', k: 10 } })) as { hits: Array<{ sessionId: string }> }).hits;
  assert.ok(new Set(byUser.map((h) => h.sessionId)).has('other'), 'user scope spans the user\'s sessions');
  assertError(await app.inject({ method: 'POST', url: '/v1/search', headers: authA, payload: { query: 'x' } }), 400, 'STRATA_ERR_VALIDATION');
});

test('sessions: list with pagination, details, flush, delete with receipts', async (t) => {
  const { app } = await startHarness(t);
  for (const id of ['a1', 'a2', 'a3']) await app.inject({ method: 'POST', url: `/v1/sessions/${id}/messages`, headers: authA, payload: { role: 'user', content: `message of ${id}`, userId: id === 'a3' ? 'bob' : 'carol' } });
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const res: Awaited<ReturnType<typeof app.inject>> = await app.inject({ method: 'GET', url: `/v1/sessions?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, headers: authA });
    assert.equal(res.statusCode, 200, res.body);
    const page = json(res) as { sessions: Array<{ sessionId: string }>; nextCursor: string | null };
    assert.ok(page.sessions.length <= 2);
    seen.push(...page.sessions.map((s) => s.sessionId));
    cursor = page.nextCursor;
  } while (cursor !== null);
  assert.deepEqual(seen.sort(), ['a1', 'a2', 'a3']);

  const info = json(await app.inject({ method: 'GET', url: '/v1/sessions/a1', headers: authA })) as { sessionId: string; turns: number; tenant: string; bytes: { hot: number } };
  assert.equal(info.sessionId, 'a1');
  assert.equal(info.tenant, 'tenantA');
  assert.equal(info.turns, 1);
  const flush = json(await app.inject({ method: 'POST', url: '/v1/sessions/a1/flush', headers: authA })) as { turns: number };
  assert.equal(flush.turns, 1);

  const receipt = await app.inject({ method: 'DELETE', url: '/v1/sessions/a1', headers: authA });
  assert.equal(receipt.statusCode, 200, receipt.body);
  assert.deepEqual((json(receipt) as { sessionIds: string[] }).sessionIds, ['a1']);
  assertError(await app.inject({ method: 'GET', url: '/v1/sessions/a1', headers: authA }), 404, 'STRATA_ERR_NOT_FOUND');
  const user = json(await app.inject({ method: 'DELETE', url: '/v1/users/bob', headers: authA })) as { sessionIds: string[]; sessions: number };
  assert.deepEqual(user.sessionIds, ['a3']);
  assertError(await app.inject({ method: 'GET', url: '/v1/sessions/a3', headers: authA }), 404, 'STRATA_ERR_NOT_FOUND');
  // A deleted (or never written) session reads as empty, not as an error.
  assert.deepEqual(json(await app.inject({ method: 'GET', url: '/v1/sessions/a3/messages', headers: authA })), { messages: [], nextAfter: null });
  assert.equal((await app.inject({ method: 'GET', url: '/v1/sessions/a2', headers: authA })).statusCode, 200, 'other sessions stay');
});

test('export returns the archive file; import creates a session from it; a second import conflicts', async (t) => {
  const { app } = await startHarness(t);
  await app.inject({ method: 'POST', url: '/v1/sessions/src/messages', headers: authA, payload: { messages: [{ role: 'user', content: 'one' }, { role: 'assistant', content: 'two' }] } });
  const exported = await app.inject({ method: 'GET', url: '/v1/sessions/src/export', headers: authA });
  assert.equal(exported.statusCode, 200, exported.body);
  assert.equal(exported.headers['content-type'], 'application/octet-stream');
  const file = exported.rawPayload;
  assert.deepEqual([...file.subarray(0, 4)], [0x53, 0x54, 0x52, 0x41]);

  const octet = { ...authA, 'content-type': 'application/octet-stream' };
  const imported = await app.inject({ method: 'POST', url: '/v1/import?sessionId=copy', headers: octet, payload: file });
  assert.equal(imported.statusCode, 201, imported.body);
  assert.equal((json(imported) as { turns: number }).turns, 2);
  const copy = json(await app.inject({ method: 'GET', url: '/v1/sessions/copy/messages', headers: authA })) as { messages: Array<{ content: string }> };
  assert.deepEqual(copy.messages.map((m) => m.content), ['one', 'two']);
  const viaHeader = await app.inject({ method: 'POST', url: '/v1/import', headers: { ...octet, 'x-strata-session-id': 'copy2' }, payload: file });
  assert.equal(viaHeader.statusCode, 201, viaHeader.body);
  assertError(await app.inject({ method: 'POST', url: '/v1/import?sessionId=copy', headers: octet, payload: file }), 409, 'STRATA_ERR_CONFLICT');
  assertError(await app.inject({ method: 'POST', url: '/v1/import', headers: octet, payload: file }), 400, 'STRATA_ERR_VALIDATION');
  assertError(await app.inject({ method: 'POST', url: '/v1/import?sessionId=x', headers: { ...authA, 'content-type': 'text/plain' }, payload: 'hello' }), 400, 'STRATA_ERR_INPUT_FORMAT');
  const garbage = await app.inject({ method: 'POST', url: '/v1/import?sessionId=junk', headers: octet, payload: Buffer.from('definitely not an archive') });
  assert.ok(garbage.statusCode >= 400, garbage.body);
  assertError(garbage, garbage.statusCode, (json(garbage) as { error: { code: string } }).error.code);
  assertError(await app.inject({ method: 'GET', url: '/v1/sessions/junk', headers: authA }), 404, 'STRATA_ERR_NOT_FOUND');
});

test('error statuses: 400, 401, 404, 413 (body and message), malformed JSON', async (t) => {
  const { app } = await startHarness(t, { flags: { maxMessageBytes: 64, server: { bodyLimitBytes: 4096 } } });
  const post = (payload: unknown, headers: Record<string, string> = authA) => app.inject({ method: 'POST', url: '/v1/sessions/e1/messages', headers, payload: payload as string });
  assertError(await post({ role: 'user', content: 'x' }, {}), 401, 'STRATA_ERR_UNAUTHORIZED');
  assertError(await post({ role: 'user', content: 'x' }, { authorization: 'Bearer not-a-key-at-all' }), 401, 'STRATA_ERR_UNAUTHORIZED');
  assertError(await post({ role: 'user', content: 'x' }, { authorization: 'Basic abc' }), 401, 'STRATA_ERR_UNAUTHORIZED');
  const badRole = await post({ role: 'robot', content: 'x' });
  assertError(badRole, 400, 'STRATA_ERR_INVALID_ROLE');
  assert.match((json(badRole) as { error: { message: string } }).error.message, /role/);
  assertError(await post({ role: 'user', content: 'x', surprise: true }), 400, 'STRATA_ERR_VALIDATION');
  assertError(await post({ messages: [] }), 400, 'STRATA_ERR_VALIDATION');
  assertError(await app.inject({ method: 'POST', url: '/v1/sessions/e1/messages', headers: { ...authA, 'content-type': 'application/json' }, payload: '{"role": "user", ' }), 400, 'STRATA_ERR_INPUT_FORMAT');
  assertError(await post({ role: 'user', content: 'y'.repeat(10_000) }), 413, 'STRATA_ERR_PAYLOAD_TOO_LARGE');
  assertError(await post({ role: 'user', content: 'z'.repeat(65) }), 413, 'STRATA_ERR_CONTENT_TOO_LARGE');
  assertError(await app.inject({ method: 'POST', url: '/v1/sessions/bad%0Aid/messages', headers: authA, payload: { role: 'user', content: 'x' } }), 400, 'STRATA_ERR_INVALID_ID');
  assertError(await app.inject({ method: 'GET', url: `/v1/sessions/${'x'.repeat(257)}`, headers: authA }), 400, 'STRATA_ERR_INVALID_ID');
  assertError(await app.inject({ method: 'GET', url: '/v1/sessions/never', headers: authA }), 404, 'STRATA_ERR_NOT_FOUND');
  assertError(await app.inject({ method: 'GET', url: '/v1/nothing-here', headers: authA }), 404, 'STRATA_ERR_NOT_FOUND');
  // Nothing was stored by any rejected request.
  assertError(await app.inject({ method: 'GET', url: '/v1/sessions/e1', headers: authA }), 404, 'STRATA_ERR_NOT_FOUND');
});

test('429 when the core reports backpressure, 503 readiness when a tier is down', async (t) => {
  const wrap = (real: ConversationMemory): ConversationMemory =>
    new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'addMessage') return async () => Promise.reject(new StrataError('STRATA_ERR_BACKPRESSURE', 'compaction is behind'));
        if (prop === 'health') return async () => ({ ...(await target.health()), ok: false, hot: { ok: false, driver: 'redis', error: 'ECONNREFUSED' } });
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  const { app } = await startHarness(t, { wrap });
  assertError(await app.inject({ method: 'POST', url: '/v1/sessions/p/messages', headers: authA, payload: { role: 'user', content: 'x' } }), 429, 'STRATA_ERR_BACKPRESSURE');
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  assert.equal(ready.statusCode, 503);
  assert.equal((json(ready) as { hot: { ok: boolean } }).hot.ok, false);
});

test('health, readiness, metrics, OpenAPI and docs need no key', async (t) => {
  const { app } = await startHarness(t);
  assert.deepEqual(json(await app.inject({ method: 'GET', url: '/healthz' })), { ok: true });
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  assert.equal(ready.statusCode, 200, ready.body);
  assert.equal((json(ready) as { dataDir: { ok: boolean } }).dataDir.ok, true);
  await app.inject({ method: 'POST', url: '/v1/sessions/m/messages', headers: authA, payload: { role: 'user', content: 'count me' } });
  await app.inject({ method: 'POST', url: '/v1/sessions/m/context', headers: authA, payload: { type: 'recent' } });
  const metrics = await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(metrics.statusCode, 200);
  assert.match(metrics.headers['content-type'] as string, /text\/plain/);
  assert.match(metrics.body, /strata_http_request_duration_seconds_count\{method="POST",route="\/v1\/sessions\/:id\/messages",status="201"\} 1/);
  for (const name of ['strata_hot_hit_ratio', 'strata_rehydrations_total', 'strata_compaction_duration_seconds', 'strata_compaction_lag_seconds', 'strata_journal_fsync_duration_seconds', 'strata_tier_bytes', 'strata_compression_ratio', 'strata_evictions_total', 'strata_embedding_batch_duration_seconds', 'strata_token_counts_skipped_total']) {
    assert.match(metrics.body, new RegExp(`# TYPE ${name} `), name);
  }
  const openapi = json(await app.inject({ method: 'GET', url: '/openapi.json' })) as { openapi: string; paths: Record<string, unknown> };
  assert.match(openapi.openapi, /^3\./);
  for (const path of ['/v1/sessions/{id}/messages', '/v1/sessions/{id}/context', '/v1/sessions/{id}/search', '/v1/search', '/v1/sessions', '/v1/sessions/{id}', '/v1/sessions/{id}/flush', '/v1/users/{id}', '/v1/sessions/{id}/export', '/v1/import', '/healthz', '/readyz', '/metrics']) {
    assert.ok(path in openapi.paths, `OpenAPI documents ${path}`);
  }
  const docs = await app.inject({ method: 'GET', url: '/docs' });
  assert.ok([200, 302].includes(docs.statusCode));
});

test('auth off: requests without a key act for the default tenant', async (t) => {
  const { app } = await startHarness(t, { flags: { server: { apiKeys: null } } });
  assert.equal((await app.inject({ method: 'POST', url: '/v1/sessions/open/messages', payload: { role: 'user', content: 'hi' } })).statusCode, 201);
  assert.equal((json(await app.inject({ method: 'GET', url: '/v1/sessions/open' })) as { tenant: string }).tenant, 'default');
});

test('over a real socket: append and read back with fetch', async (t) => {
  // A 1 MiB body limit (the default is 64 MiB) keeps the oversized request below small.
  const { app } = await startHarness(t, { flags: { server: { bodyLimitBytes: 1024 * 1024 } } });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const added = await fetch(`${base}/v1/sessions/net/messages`, { method: 'POST', headers: { ...authA, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'user', content: 'over tcp' }) });
  assert.equal(added.status, 201);
  const read = (await (await fetch(`${base}/v1/sessions/net/messages`, { headers: authA })).json()) as { messages: Array<{ content: string }> };
  assert.deepEqual(read.messages.map((m) => m.content), ['over tcp']);
  // Another tenant's key sees nothing of it: the session does not exist in that tenant.
  const denied = await fetch(`${base}/v1/sessions/net/messages`, { headers: authB });
  assert.deepEqual(await denied.json(), { messages: [], nextAfter: null });
  assert.equal((await fetch(`${base}/v1/sessions/net`, { headers: authB })).status, 404);
  const tooBig = await fetch(`${base}/v1/sessions/net/messages`, { method: 'POST', headers: { ...authA, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }) });
  assert.equal(tooBig.status, 413);
});

test('tool calls, tool results and parts over HTTP; errors name the field; ids of any text in the path', async (t) => {
  const { app } = await startHarness(t);
  const id = encodeURIComponent('user@example.com/trip 🦀');
  const batch = [
    { role: 'user', content: [{ type: 'text', text: 'weather?' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temp":-3}' },
    { role: 'assistant', content: 'It is -3 °C in Oslo.' },
  ];
  const added = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/messages`, headers: authA, payload: { messages: batch, userId: 'user:42' } });
  assert.equal(added.statusCode, 201, added.body);
  const single = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/messages`, headers: authA, payload: { role: 'assistant', content: '', tool_calls: [{ id: 'c2', type: 'function', function: { name: 'noop', arguments: '{}' } }] } });
  assert.equal(single.statusCode, 201, single.body);
  const read = json(await app.inject({ method: 'GET', url: `/v1/sessions/${id}/messages`, headers: authA })) as { messages: Array<Record<string, unknown>> };
  assert.deepEqual(
    read.messages.map(({ turnId: _i, createdAt: _c, tokens: _t, ...m }) => m),
    [...batch, { role: 'assistant', content: '', tool_calls: [{ id: 'c2', type: 'function', function: { name: 'noop', arguments: '{}' } }] }],
  );
  const info = json(await app.inject({ method: 'GET', url: `/v1/sessions/${id}`, headers: authA })) as { sessionId: string; userId: string };
  assert.deepEqual([info.sessionId, info.userId], ['user@example.com/trip 🦀', 'user:42']);

  const bad = async (payload: unknown, status: number, code: string, field: string) => {
    const res = await app.inject({ method: 'POST', url: `/v1/sessions/${id}/messages`, headers: authA, payload: payload as string });
    assertError(res, status, code);
    const body = json(res) as { error: { message: string; details: { field?: string } } };
    assert.equal(body.error.details.field, field, body.error.message);
    assert.ok(body.error.message.includes(field), body.error.message);
  };
  await bad({ role: 'assistant', content: null }, 400, 'STRATA_ERR_CONTENT_EMPTY', 'content');
  await bad({ role: 'tool', content: 'x' }, 400, 'STRATA_ERR_VALIDATION', 'tool_call_id');
  await bad({ messages: [{ role: 'user', content: 'ok' }, { role: 'tool', content: 'x' }] }, 400, 'STRATA_ERR_VALIDATION', 'messages[1].tool_call_id');
  await bad({ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f' } }] }] }, 400, 'STRATA_ERR_VALIDATION', 'messages[0].tool_calls[0].function.arguments');
  await bad({ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(11 * 1024 * 1024)}` } }] }, 413, 'STRATA_ERR_CONTENT_TOO_LARGE', 'content[0].image_url.url');
  await bad({ messages: [{ role: 'user', content: 'ok' }], extra: 1 }, 400, 'STRATA_ERR_VALIDATION', 'extra');
  // Nothing was stored by the rejected requests.
  assert.equal((json(await app.inject({ method: 'GET', url: `/v1/sessions/${id}/messages`, headers: authA })) as { messages: unknown[] }).messages.length, 5);

  // A new session's context is empty, not 404.
  const ctx = await app.inject({ method: 'POST', url: '/v1/sessions/brand-new/context', headers: authA, payload: { type: 'recent' } });
  assert.equal(ctx.statusCode, 200, ctx.body);
  assert.deepEqual((json(ctx) as { messages: unknown[] }).messages, []);
});
