/**
 * The logs of a real `strata serve` process: every stdout line is one JSON object (the start
 * banner too), a well-formed `x-request-id` is kept and echoed, anything else is replaced by a
 * generated UUID, every request gets one info line with route, status, tenant and duration, and
 * no line carries message text, metadata or an API key.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildServer, SOURCE_CLI, freePort, serveEnv } from '../helpers/serve.js';

const KEY = 'SECRET-KEY-5d1e0a77';
const CONTENT = 'SECRET-CONTENT-7f3a: my passport number is X123';
const METADATA = 'SECRET-META-91c2';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface RequestLine {
  level: number;
  msg: string;
  reqId: string;
  method: string;
  route: string;
  status: number;
  tenant: string | null;
  durationMs: number;
}

test('strata serve logs JSON lines only, one per request, with the request id it echoes', { timeout: 60_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-logs-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const serve = new ChildServer(process.execPath, [...SOURCE_CLI, 'serve'], {
    cwd: dataDir,
    env: serveEnv({ STRATA_DATA_DIR: dataDir, STRATA_PORT: String(port), STRATA_API_KEYS: `${KEY}:tenantL`, STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'info', STRATA_INSTANCE_ID: 'logs-test' }),
  });
  t.after(async () => {
    await serve.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  await serve.waitReady(base);
  const readiness = serve.stdout().split('\n').filter(Boolean).length; // lines so far (banner, polls)

  const auth = { authorization: `Bearer ${KEY}` };
  const sent: Array<{ id: string; route: string; status: number; tenant: string | null }> = [];
  const call = async (path: string, init: RequestInit & { headers?: Record<string, string> }, expect: { route: string; status: number; tenant: string | null }): Promise<string> => {
    const res = await fetch(`${base}${path}`, init);
    await res.arrayBuffer();
    assert.equal(res.status, expect.status, `${init.method ?? 'GET'} ${path}`);
    const id = res.headers.get('x-request-id');
    assert.ok(id, `${path}: x-request-id echoed`);
    sent.push({ id, ...expect });
    return id;
  };

  const kept = await call(
    '/v1/sessions/chat-1/messages',
    { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'x-request-id': 'abc-123' }, body: JSON.stringify({ role: 'user', content: CONTENT, metadata: { note: METADATA } }) },
    { route: '/v1/sessions/:id/messages', status: 201, tenant: 'tenantL' },
  );
  assert.equal(kept, 'abc-123');
  const spaced = await call('/v1/sessions/chat-1/messages', { headers: { ...auth, 'x-request-id': 'has a space' } }, { route: '/v1/sessions/:id/messages', status: 200, tenant: 'tenantL' });
  assert.match(spaced, UUID, 'an id with a space is replaced');
  const long = await call('/v1/sessions/chat-1', { headers: { ...auth, 'x-request-id': 'x'.repeat(129) } }, { route: '/v1/sessions/:id', status: 200, tenant: 'tenantL' });
  assert.match(long, UUID, 'an id of 129 characters is replaced');
  const colon = await call('/healthz', { headers: { 'x-request-id': 'lb:7.trace_id-0' } }, { route: '/healthz', status: 200, tenant: null });
  assert.equal(colon, 'lb:7.trace_id-0');
  const generated = await call('/healthz', {}, { route: '/healthz', status: 200, tenant: null });
  assert.match(generated, UUID);
  await call('/v1/sessions', { headers: { authorization: 'Bearer SECRET-WRONG-KEY-00' } }, { route: '/v1/sessions', status: 401, tenant: null });
  await call('/v1/sessions/chat-1/context', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'smart', query: CONTENT }) }, { route: '/v1/sessions/:id/context', status: 200, tenant: 'tenantL' });
  await call('/no/such/route', {}, { route: 'unmatched', status: 404, tenant: null });

  const stopped = await serve.stop();
  assert.equal(stopped.code, 0, serve.stderr());

  const lines = serve.stdout().split('\n').filter((line) => line !== '');
  assert.ok(lines.length > readiness, 'the requests were logged');
  const records = lines.map((line, i) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      return assert.fail(`stdout line ${i + 1} is not JSON: ${line}`);
    }
  });
  const banner = records.find((r) => r.msg === 'strata listening');
  assert.ok(banner, 'the start banner is a JSON line');
  assert.equal(banner.address, base);

  const requestLines = records.filter((r) => r.msg === 'request') as unknown as RequestLine[];
  for (const expected of sent) {
    const mine = requestLines.filter((r) => r.reqId === expected.id);
    assert.equal(mine.length, 1, `one line for request ${expected.id} (${expected.route})`);
    const line = mine[0]!;
    assert.deepEqual([line.level, line.route, line.status, line.tenant], [30, expected.route, expected.status, expected.tenant], JSON.stringify(line));
    assert.ok(typeof line.durationMs === 'number' && line.durationMs >= 0);
  }

  const everything = serve.stdout() + serve.stderr();
  for (const secret of [KEY, 'SECRET-WRONG-KEY-00', 'SECRET-CONTENT-7f3a', METADATA, 'passport']) assert.ok(!everything.includes(secret), `the output contains ${secret}`);
});
