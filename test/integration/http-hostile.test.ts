import assert from 'node:assert/strict';
import test from 'node:test';
import { acceptableHostileStatus, hostileRequests } from '../helpers/hostile.js';
import { authA, authB, startHarness } from './http-harness.js';
import type { Harness } from './http-harness.js';

const PREFIX = 'hostile-';
/** A small body limit keeps the oversized requests cheap; the generator sizes them to it. */
const BODY_LIMIT = 1024 * 1024;
const COUNT = 2_000;
/** A request taking longer than this means super-linear work on input (a 256 KiB run took a minute). */
const SLOW_MS = 10_000;

interface Snapshot {
  sessions: Record<string, string[]>;
  messages: Record<string, unknown>;
}

/** Everything the hostile requests could change: both tenants' session lists and the known sessions' turns. */
async function snapshot(h: Harness): Promise<Snapshot> {
  const sessions: Record<string, string[]> = {};
  for (const tenant of ['tenantA', 'tenantB']) {
    const page = await h.memory.listSessions({ tenant, limit: 1000 });
    sessions[tenant] = page.sessions.map((s) => s.sessionId).filter((id) => !id.startsWith(`${PREFIX}ok-`));
  }
  const messages: Record<string, unknown> = {};
  for (const id of [`${PREFIX}0`, `${PREFIX}1`]) messages[id] = (await h.memory.getMessages(id, { tenant: 'tenantA', limit: 1000 })).messages;
  return { sessions, messages };
}

test(`${COUNT} hostile requests: no 5xx, every 4xx coded, nothing stored changes`, async (t) => {
  const h = await startHarness(t, { flags: { server: { bodyLimitBytes: BODY_LIMIT } } });
  // Two known sessions the hostile requests aim at: one archived (flushed), one only in the hot tier.
  await h.memory.addMessages(`${PREFIX}0`, [{ role: 'user', content: 'archived turn with an emoji 🦀' }, { role: 'assistant', content: 'second archived turn' }], { tenant: 'tenantA', userId: 'owner' });
  await h.memory.flush(`${PREFIX}0`, { tenant: 'tenantA' });
  await h.memory.addMessage(`${PREFIX}1`, 'user', 'hot turn', { tenant: 'tenantA', metadata: { k: 'v' } });
  const before = await snapshot(h);

  const requests = hostileRequests(20_240_611, COUNT, { sessionPrefix: PREFIX, authHeader: authA, otherTenantAuthHeader: authB, bodyLimitBytes: BODY_LIMIT });
  const kinds = new Map<string, number>();
  const failures: string[] = [];
  for (const [i, r] of requests.entries()) {
    kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
    const started = performance.now();
    const res = await h.app.inject({ method: r.method, url: r.url, headers: r.headers, ...(r.body !== undefined ? { payload: r.body } : {}) });
    const ms = performance.now() - started;
    const where = `#${i} ${r.kind} ${r.method} ${r.url.slice(0, 80)} → ${res.statusCode}`;
    if (!acceptableHostileStatus(res.statusCode)) failures.push(`${where}: ${res.body.slice(0, 300)}`);
    if (res.statusCode >= 400 && res.statusCode < 500) {
      let code: unknown;
      try {
        code = (JSON.parse(res.body) as { error?: { code?: unknown } }).error?.code;
      } catch {
        code = undefined;
      }
      if (typeof code !== 'string' || !code.startsWith('STRATA_ERR_')) failures.push(`${where}: 4xx without a STRATA_ERR_* code: ${res.body.slice(0, 200)}`);
    }
    if (ms > SLOW_MS) failures.push(`${where}: took ${Math.round(ms)} ms`);
  }
  assert.deepEqual(failures, []);
  // The generator really mixes its kinds: a seed that produced only one kind would prove little.
  assert.ok(kinds.size >= 15, `only ${kinds.size} kinds: ${[...kinds.keys()].join(', ')}`);

  const after = await snapshot(h);
  assert.deepEqual(JSON.parse(JSON.stringify(after)), JSON.parse(JSON.stringify(before)));
  assert.equal((await h.memory.getSession(`${PREFIX}0`, { tenant: 'tenantA' })).turns, 2);
});

test('the generator is deterministic and its 5xx check is strict', () => {
  const a = hostileRequests(7, 300, { sessionPrefix: 'p-', bodyLimitBytes: 4096 });
  const b = hostileRequests(7, 300, { sessionPrefix: 'p-', bodyLimitBytes: 4096 });
  const c = hostileRequests(8, 300, { sessionPrefix: 'p-', bodyLimitBytes: 4096 });
  const show = (rs: typeof a) => rs.map((r) => `${r.kind} ${r.method} ${r.url} ${JSON.stringify(r.headers)} ${r.body === undefined ? '' : Buffer.from(r.body).toString('base64')}`);
  assert.deepEqual(show(a), show(b));
  assert.notDeepEqual(show(a), show(c));
  assert.ok(a.filter((r) => r.kind === 'oversized-body').every((r) => Buffer.byteLength(r.body ?? '') > 4096));
  assert.deepEqual([200, 201, 204, 400, 404, 413, 499, 500, 502, 503, 599, 302].map(acceptableHostileStatus), [true, true, true, true, true, true, true, false, false, false, false, false]);
});

test('strict types over HTTP: numbers, booleans, arrays and objects are not text; lone surrogates are refused; query integers still parse', async (t) => {
  const h = await startHarness(t);
  const post = (url: string, payload: string) => h.app.inject({ method: 'POST', url, headers: { ...authA, 'content-type': 'application/json' }, payload });
  const expectError = (res: { statusCode: number; body: string }, status: number, code: string, mention: string) => {
    assert.equal(res.statusCode, status, res.body);
    const body = JSON.parse(res.body) as { error: { code: string; message: string } };
    assert.equal(body.error.code, code);
    assert.match(body.error.message, new RegExp(mention));
  };
  for (const content of ['123', 'true', '["hi"]', '{"type":"text","text":"hi"}']) {
    expectError(await post('/v1/sessions/strict/messages', `{"role":"user","content":${content}}`), 400, 'STRATA_ERR_VALIDATION', 'content');
    expectError(await post('/v1/sessions/strict/messages', `{"messages":[{"role":"user","content":${content}}]}`), 400, 'STRATA_ERR_VALIDATION', 'content');
  }
  // null content is no content: valid only with tool calls.
  expectError(await post('/v1/sessions/strict/messages', '{"role":"user","content":null}'), 400, 'STRATA_ERR_CONTENT_EMPTY', 'content');
  expectError(await post('/v1/sessions/strict/context', '{"type":"smart","maxTokens":"10"}'), 400, 'STRATA_ERR_VALIDATION', 'maxTokens');
  expectError(await post('/v1/sessions/strict/messages', '{"role":"user","content":"a\\ud800"}'), 400, 'STRATA_ERR_TEXT_INVALID', 'content');
  expectError(await post('/v1/sessions/strict/messages', '{"role":"user","content":"ok","metadata":{"\\udc00":1}}'), 400, 'STRATA_ERR_TEXT_INVALID', 'metadata');
  expectError(await post('/v1/sessions/strict/messages', '{"role":"user","content":"ok","userId":"\\ud800"}'), 400, 'STRATA_ERR_TEXT_INVALID', 'user id');
  expectError(await post('/v1/sessions/strict/messages', '{"role":"user","content":"ok","metadata":{"k":"\\udbff"}}'), 400, 'STRATA_ERR_TEXT_INVALID', 'metadata.k');
  assert.equal((await h.memory.listSessions({ tenant: 'tenantA' })).sessions.length, 0);

  const added = await post('/v1/sessions/strict/messages', '{"messages":[{"role":"user","content":"one 🦀"},{"role":"assistant","content":"two"},{"role":"user","content":"three"}]}');
  assert.equal(added.statusCode, 201, added.body);
  const page = await h.app.inject({ method: 'GET', url: '/v1/sessions/strict/messages?after=1&limit=1', headers: authA });
  assert.equal(page.statusCode, 200, page.body);
  assert.deepEqual((JSON.parse(page.body) as { messages: Array<{ content: string }> }).messages.map((m) => m.content), ['two']);
  for (const query of ['after=abc', 'limit=1e2', 'limit=0', 'after=-1', 'limit=1&limit=2']) {
    const res = await h.app.inject({ method: 'GET', url: `/v1/sessions/strict/messages?${query}`, headers: authA });
    expectError(res, 400, 'STRATA_ERR_VALIDATION', query.startsWith('after') ? 'after' : 'limit');
  }
});

test('POST /v1/import: empty, garbage and JSON uploads are coded 400s and create no session', async (t) => {
  const h = await startHarness(t);
  await h.memory.addMessage('source', 'user', 'to export', { tenant: 'tenantA' });
  const exported = await h.app.inject({ method: 'GET', url: '/v1/sessions/source/export', headers: authA });
  const file = exported.rawPayload;
  const bodies: Array<[string, Buffer | string, string]> = [
    ['empty', Buffer.alloc(0), 'application/octet-stream'],
    ['magic only', Buffer.from('STRA'), 'application/octet-stream'],
    ['truncated export', file.subarray(0, Math.floor(file.length / 2)), 'application/octet-stream'],
    ['flipped byte', Buffer.from(file.map((b, i) => (i === file.length - 5 ? b ^ 0xff : b))), 'application/octet-stream'],
    ['random bytes', Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 131 + 7) & 255)), 'application/octet-stream'],
    ['sessions JSON', '[{"session_id":"x","turns":[{"role":"user","content":"hi"}]}]', 'application/json'],
    ['openai JSONL', '{"messages":[{"role":"user","content":"hi"}]}', 'application/x-ndjson'],
  ];
  for (const [name, payload, type] of bodies) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/import?sessionId=imported', headers: { ...authA, 'content-type': type }, payload });
    assert.equal(res.statusCode, 400, `${name}: ${res.body}`);
    assert.match((JSON.parse(res.body) as { error: { code: string } }).error.code, /^STRATA_ERR_(INPUT_FORMAT|VALIDATION)$/, name);
  }
  assert.deepEqual((await h.memory.listSessions({ tenant: 'tenantA' })).sessions.map((s) => s.sessionId), ['source']);
  // The intact export still imports: the checks refuse damage, not archives.
  const ok = await h.app.inject({ method: 'POST', url: '/v1/import?sessionId=imported', headers: { ...authA, 'content-type': 'application/octet-stream' }, payload: file });
  assert.equal(ok.statusCode, 201, ok.body);
});
