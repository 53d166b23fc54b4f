/**
 * The OpenAPI document served at /openapi.json by a running server:
 * - it is OpenAPI 3.1 with servers, and Redocly's recommended rules find no error and no warning;
 * - every operation has a unique operationId, a documented success answer and examples;
 * - the real answer of every operation matches its documented schema (strict: an undocumented
 *   field fails);
 * - a client generated from it with openapi-typescript + openapi-fetch type-checks under strict
 *   TypeScript with no `never` success type, and runs a call to every operation against the server.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import openapiTS, { astToString } from 'openapi-typescript';
import type { z } from 'zod';
import { OPERATIONS } from '../../src/server/openapi.js';
import { ROOT, SOURCE_CLI } from '../helpers/serve.js';
import { KEY_A, authA, startHarness } from './http-harness.js';

const run = promisify(execFile);

interface OpenApiDoc {
  openapi: string;
  servers?: unknown[];
  paths: Record<string, Record<string, { operationId?: string; responses: Record<string, { content?: Record<string, { schema?: unknown; example?: unknown; examples?: unknown }> }>; requestBody?: { content: Record<string, { examples?: unknown; example?: unknown }> } }>>;
}

async function served(t: Parameters<typeof startHarness>[0]): Promise<{ base: string; doc: OpenApiDoc; dir: string }> {
  const { app } = await startHarness(t);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const res = await fetch(`${base}/openapi.json`);
  assert.equal(res.status, 200);
  const dir = await mkdtemp(join(tmpdir(), 'strata-openapi-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return { base, doc: (await res.json()) as OpenApiDoc, dir };
}

function operations(doc: OpenApiDoc): Array<{ method: string; path: string; operationId: string | undefined; op: OpenApiDoc['paths'][string][string] }> {
  return Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ method, path, operationId: op.operationId, op })));
}

test('the OpenAPI document is 3.1, lints clean, and documents every operation', async (t) => {
  const { doc, dir } = await served(t);
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.servers && doc.servers.length > 0, 'servers');
  const ops = operations(doc);
  assert.equal(ops.length, Object.keys(OPERATIONS).length, ops.map((o) => `${o.method} ${o.path}`).join(', '));
  const ids = ops.map((o) => o.operationId);
  assert.ok(ids.every((id) => typeof id === 'string' && id.length > 0), 'every operation has an operationId');
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  for (const { method, path, op } of ops) {
    const success = Object.entries(op.responses).filter(([status]) => status.startsWith('2'));
    assert.ok(success.length > 0 && success.every(([, r]) => r.content && Object.values(r.content).every((m) => m.schema)), `${method} ${path}: a 2xx answer with a schema`);
    const json = success.flatMap(([, r]) => Object.entries(r.content ?? {})).filter(([type]) => type === 'application/json');
    if (json.length > 0) assert.ok(json.some(([, m]) => m.example !== undefined || m.examples !== undefined), `${method} ${path}: an answer example`);
    const body = op.requestBody?.content['application/json'];
    if (body) assert.ok(body.examples !== undefined || body.example !== undefined, `${method} ${path}: a request example`);
  }
  assert.ok(doc.paths['/v1/import']?.post?.requestBody?.content['application/octet-stream'], 'the import body is an octet stream');

  // Redocly CLI, recommended rules, offline.
  const file = join(dir, 'openapi.json');
  await writeFile(file, JSON.stringify(doc));
  const lint = await run(process.execPath, [join(ROOT, 'node_modules/@redocly/cli/bin/cli.js'), 'lint', file, '--format=json'], { cwd: dir, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' }, maxBuffer: 16 * 1024 * 1024 }).catch((err: { stdout: string; stderr: string }) => err);
  const report = JSON.parse(lint.stdout) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string; location: Array<{ pointer: string }> }> };
  const problems = report.problems.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
  assert.deepEqual([report.totals.errors, report.totals.warnings], [0, 0], problems.join('\n'));
});

test('every operation answers what its OpenAPI schema says', async (t) => {
  const { base } = await served(t);
  const schemaOf = (key: string): z.ZodType => {
    const reply = OPERATIONS[key]!.reply;
    assert.ok(typeof reply !== 'string', key);
    return reply;
  };
  const checked = new Set<string>();
  const call = async (key: string, path: string, init: { body?: unknown; bytes?: Uint8Array } = {}): Promise<unknown> => {
    const [method] = key.split(' ');
    const headers: Record<string, string> = { ...authA };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.bytes !== undefined) headers['content-type'] = 'application/octet-stream';
    const res = await fetch(`${base}${path}`, { method, headers, ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : init.bytes !== undefined ? { body: init.bytes } : {}) });
    const operation = OPERATIONS[key]!;
    assert.equal(res.status, operation.status, `${key}: ${res.status}`);
    checked.add(key);
    if (operation.reply === 'binary') {
      assert.equal(res.headers.get('content-type'), 'application/octet-stream');
      return new Uint8Array(await res.arrayBuffer());
    }
    if (operation.reply === 'text') {
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      return res.text();
    }
    const json: unknown = await res.json();
    const parsed = schemaOf(key).safeParse(json);
    assert.ok(parsed.success, `${key} answered outside its schema: ${parsed.error?.message}\n${JSON.stringify(json)}`);
    return json;
  };

  await call('GET /healthz', '/healthz');
  await call('GET /readyz', '/readyz');
  await call('POST /v1/sessions/:id/messages', '/v1/sessions/chat-1/messages', { body: { role: 'user', content: 'I am planning a trip to Lisbon in May', userId: 'ana', metadata: { channel: 'web' } } });
  await call('POST /v1/sessions/:id/messages', '/v1/sessions/chat-1/messages', {
    body: {
      messages: [
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temperature":24}' },
        { role: 'user', content: [{ type: 'text', text: 'And this picture?' }, { type: 'image_url', image_url: { url: 'https://example.org/tram.jpg', detail: 'low' } }] },
      ],
    },
  });
  for (let i = 0; i < 24; i++) await call('POST /v1/sessions/:id/messages', '/v1/sessions/chat-1/messages', { body: { role: i % 2 ? 'assistant' : 'user', content: `turn ${i} about trams and pastries in Lisbon` } });
  await call('GET /v1/sessions/:id/messages', '/v1/sessions/chat-1/messages?after=0&limit=10');
  await call('GET /v1/sessions/:id/messages', '/v1/sessions/never-written/messages');
  await call('POST /v1/sessions/:id/flush', '/v1/sessions/chat-1/flush');
  for (const body of [{ type: 'recent' }, { type: 'full', after: 0, limit: 5 }, { type: 'smart', query: 'weather in Lisbon', maxTokens: 400 }]) await call('POST /v1/sessions/:id/context', '/v1/sessions/chat-1/context', { body });
  const inSession = (await call('POST /v1/sessions/:id/search', '/v1/sessions/chat-1/search', { body: { query: 'weather Lisbon trip', k: 5 } })) as { hits: unknown[] };
  assert.ok(inSession.hits.length > 0, 'hits to check against the schema');
  await call('POST /v1/search', '/v1/search', { body: { query: 'picture tram', userId: 'ana', k: 5 } });
  await call('GET /v1/sessions', '/v1/sessions?limit=10');
  await call('GET /v1/sessions/:id', '/v1/sessions/chat-1');
  const file = (await call('GET /v1/sessions/:id/export', '/v1/sessions/chat-1/export')) as Uint8Array;
  await call('POST /v1/import', '/v1/import?sessionId=chat-copy&userId=ana', { bytes: file });
  await call('GET /metrics', '/metrics');
  await call('DELETE /v1/sessions/:id', '/v1/sessions/chat-copy');
  await call('DELETE /v1/users/:id', '/v1/users/ana');
  assert.deepEqual([...checked].sort(), Object.keys(OPERATIONS).sort());
});

/** Strict TypeScript over the generated types: each call's success type must not be never. */
const CALLS = `import createClient from 'openapi-fetch';
import type { operations, paths } from './api.js';

type IsNever<T> = [T] extends [never] ? true : false;
type Success<K extends keyof operations> = {
  [S in keyof operations[K]['responses']]: S extends 200 | 201 | 204 ? operations[K]['responses'][S] extends { content: infer C } ? C[keyof C] : never : never;
}[keyof operations[K]['responses']];
/** Compiles only when every operation has a success type. */
type NoNever = { [K in keyof operations]: IsNever<Success<K>> extends true ? K : never }[keyof operations];
const noNever: [NoNever] extends [never] ? 'every success type is defined' : NoNever = 'every success type is defined';

const client = createClient<paths>({ baseUrl: process.env.STRATA_BASE, headers: { authorization: 'Bearer ' + process.env.STRATA_KEY } });
const seen: Array<{ op: string; status: number }> = [];
/** Records the status; fails to compile when the call's data type is never. */
function ok<T>(op: keyof operations, result: { data?: T; response: Response }, _typed: IsNever<Exclude<T, undefined>> extends true ? 'never' : 'typed'): Exclude<T, undefined> {
  seen.push({ op, status: result.response.status });
  if (!result.response.ok) throw new Error(op + ' answered ' + result.response.status);
  return result.data as Exclude<T, undefined>;
}
const id = { params: { path: { id: 'gen-1' } } };

ok('health', await client.GET('/healthz'), 'typed');
const ready = ok('ready', await client.GET('/readyz'), 'typed');
const one = ok('addMessages', await client.POST('/v1/sessions/{id}/messages', { params: { path: { id: 'gen-1' }, header: { 'Idempotency-Key': 'gen-key-1' } }, body: { role: 'user', content: 'hello from a generated client', userId: 'gen-user' } }), 'typed');
const turnId: number = 'turnId' in one ? one.turnId : one.turnIds[0]!;
ok('addMessages', await client.POST('/v1/sessions/{id}/messages', { ...id, body: { messages: [{ role: 'assistant', content: 'hello back' }] } }), 'typed');
const page = ok('getMessages', await client.GET('/v1/sessions/{id}/messages', { params: { path: { id: 'gen-1' }, query: { after: 0, limit: 10 } } }), 'typed');
const firstContent: string | unknown[] | null = page.messages[0]!.content;
const context = ok('getContext', await client.POST('/v1/sessions/{id}/context', { ...id, body: { type: 'smart', query: 'hello', maxTokens: 500 } }), 'typed');
const tokens: number = context.tokens;
ok('flushSession', await client.POST('/v1/sessions/{id}/flush', id), 'typed');
const hits = ok('searchSession', await client.POST('/v1/sessions/{id}/search', { ...id, body: { query: 'hello', k: 3 } }), 'typed').hits;
ok('searchUser', await client.POST('/v1/search', { body: { query: 'hello', userId: 'gen-user', k: 3 } }), 'typed');
const sessions = ok('listSessions', await client.GET('/v1/sessions', { params: { query: { limit: 5 } } }), 'typed').sessions;
const info = ok('getSession', await client.GET('/v1/sessions/{id}', id), 'typed');
const archiveBytes: number = info.bytes.archive;
const file = ok('exportSession', await client.GET('/v1/sessions/{id}/export', { ...id, parseAs: 'arrayBuffer' }), 'typed');
// The documented body is a binary string; fetch sends the bytes as they are.
ok('importSession', await client.POST('/v1/import', { params: { query: { sessionId: 'gen-copy' } }, body: new Uint8Array(file) as unknown as string, bodySerializer: (body) => body as unknown as BodyInit, headers: { 'content-type': 'application/octet-stream' } }), 'typed');
const metricsText = ok('metrics', await client.GET('/metrics', { parseAs: 'text' }), 'typed');
ok('deleteSession', await client.DELETE('/v1/sessions/{id}', { params: { path: { id: 'gen-copy' } } }), 'typed');
const receipt = ok('deleteUser', await client.DELETE('/v1/users/{id}', { params: { path: { id: 'gen-user' } } }), 'typed');
const deleted: string[] = receipt.sessionIds;

console.log(JSON.stringify({ noNever, seen, ready: ready.ok, turnId, firstContent, tokens, hits: hits.length, sessions: sessions.length, archiveBytes, metrics: metricsText.length > 0, deleted }));
`;

test('a client generated with openapi-typescript type-checks and runs a call to every operation', async (t) => {
  const { base, doc, dir } = await served(t);
  const file = join(dir, 'openapi.json');
  await writeFile(file, JSON.stringify(doc));
  await writeFile(join(dir, 'api.d.ts'), astToString(await openapiTS(new URL(`file://${file}`))));
  await writeFile(join(dir, 'calls.ts'), CALLS);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2023', 'DOM'], strict: true, noUncheckedIndexedAccess: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['calls.ts', 'api.d.ts'] }),
  );
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');

  const tsc = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir }).catch((err: { stdout: string }) => err);
  assert.equal(tsc.stdout.trim(), '', `the generated client does not type-check:\n${tsc.stdout}`);

  // The same calls, run against the server.
  const ran = await run(process.execPath, [SOURCE_CLI[0]!, SOURCE_CLI[1]!, join(dir, 'calls.ts')], { cwd: dir, env: { ...process.env, STRATA_BASE: base, STRATA_KEY: KEY_A } });
  const result = JSON.parse(ran.stdout) as { noNever: string; seen: Array<{ op: string; status: number }>; turnId: number; firstContent: unknown; deleted: string[] };
  assert.equal(result.noNever, 'every success type is defined');
  assert.deepEqual([...new Set(result.seen.map((s) => s.op))].sort(), operations(doc).map((o) => o.operationId!).sort(), 'a call to every operation');
  assert.ok(result.seen.every((s) => s.status >= 200 && s.status < 300), JSON.stringify(result.seen));
  assert.deepEqual([result.turnId, result.firstContent, result.deleted], [1, 'hello from a generated client', ['gen-1']]);
});
