/**
 * The MCP server through the official SDK client, over both transports: `strata mcp` as a real
 * child process on stdio (started with the arguments and environment of the stdio client
 * configuration in docs/integrations.md), and `/mcp` on a real listening `buildServer` with API
 * keys (Streamable HTTP). The same scenario runs on both: tools listed with the REST schemas, an
 * agent turn with a tool call and its result stored and read back JSON-equal, the tool result
 * found by its text, sessions listed / shown / deleted, bad input answered as a coded tool error
 * that names the field and stores nothing. Over HTTP also: unauthorised calls (no key, wrong
 * key) answer 401 and change nothing, each key acts for its own tenant, and the TypeScript
 * snippet of docs/integrations.md runs against the server.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { ConversationMemory } from '../../src/cache/api.js';
import { openStrata } from '../helpers/strata.js';
import { KEY_A, KEY_B, startHarness } from './http-harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = import.meta.resolve('tsx');
/** The CLI from the sources (tsx imported by absolute URL: the child runs in a temp directory). */
const SOURCE_CLI = ['--import', TSX, join(ROOT, 'src/cli/bin-dev.ts')];
const TOOL_NAMES = ['add_messages', 'delete_session', 'get_context', 'get_session', 'list_sessions', 'search_history'];

/** A code block of docs/integrations.md: the first ```lang block after `<!-- marker`. */
function docBlock(marker: string, lang: string): string {
  const doc = readFileSync(join(ROOT, 'docs/integrations.md'), 'utf8');
  const at = doc.indexOf(`<!-- ${marker}`);
  assert.ok(at >= 0, `docs/integrations.md has no <!-- ${marker} marker`);
  const match = new RegExp('```' + lang + '\\n([\\s\\S]*?)\\n```').exec(doc.slice(at));
  assert.ok(match, `no ${lang} block after <!-- ${marker}`);
  return match[1]!;
}

/** An agent's turn: a system prompt, a user message with parts, a tool call, its result, the answer. */
const CONVERSATION = [
  { role: 'system', content: 'You are a travel assistant.' },
  { role: 'user', name: 'ana', content: [{ type: 'text', text: 'Plan my trip to Lisbon, here is my ticket' }, { type: 'image_url', image_url: { url: 'https://example.com/ticket.png', detail: 'low' } }] },
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_w1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon","days":3}' } }] },
  { role: 'tool', tool_call_id: 'call_w1', name: 'get_weather', content: '{"forecast":"a zephyrine breeze, 23 C"}' },
  { role: 'assistant', content: 'Expect a light breeze and 23 °C.', metadata: { model: 'gpt-test' } },
];

/* eslint-disable @typescript-eslint/no-explicit-any -- tool results are JSON checked field by field */
type Json = any;

/** Calls a tool; checks the result is one JSON text equal to its structuredContent. */
async function call(client: Client, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; value: Json }> {
  const result = await client.callTool({ name, arguments: args });
  const content = result.content as Array<{ type: string; text?: string }>;
  assert.equal(content.length, 1, `${name}: one content item`);
  assert.equal(content[0]!.type, 'text');
  const value = JSON.parse(content[0]!.text!) as Json;
  assert.deepEqual(result.structuredContent, value, `${name}: structuredContent is the text's JSON`);
  return { isError: result.isError === true, value };
}

async function ok(client: Client, name: string, args: Record<string, unknown>): Promise<Json> {
  const { isError, value } = await call(client, name, args);
  assert.equal(isError, false, `${name} failed: ${JSON.stringify(value)}`);
  return value;
}

async function toolError(client: Client, name: string, args: Record<string, unknown>): Promise<{ code: string; message: string; details: Json }> {
  const { isError, value } = await call(client, name, args);
  assert.equal(isError, true, `${name} should have failed: ${JSON.stringify(value)}`);
  return value.error;
}

/** A stored turn without Strata's own fields: the message as it was sent. */
function sent(turn: Json): Json {
  const { turnId: _id, createdAt: _at, tokens: _tokens, ...message } = turn;
  return message;
}

/** The scenario both transports run, in one session of `userId`. */
async function exercise(client: Client, sessionId: string, userId: string): Promise<void> {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), TOOL_NAMES);
  for (const t of tools) assert.equal(t.inputSchema.type, 'object', t.name);
  const add = tools.find((t) => t.name === 'add_messages')!;
  assert.deepEqual([...(add.inputSchema.required ?? [])].sort(), ['messages', 'sessionId']);
  // The REST message schema: its roles and its tool call shape.
  const messageSchema = (add.inputSchema.properties as Json).messages.items;
  assert.deepEqual(messageSchema.properties.role.enum, ['system', 'user', 'assistant', 'tool']);
  assert.ok(messageSchema.properties.tool_calls && messageSchema.properties.tool_call_id);
  assert.equal(tools.find((t) => t.name === 'delete_session')!.annotations?.destructiveHint, true);

  // Bad input is a coded tool error naming the field, and stores nothing (all or nothing).
  const empty = await toolError(client, 'add_messages', { sessionId, userId, messages: [{ role: 'user', content: 'fine' }, { role: 'assistant', content: null }] });
  assert.equal(empty.code, 'STRATA_ERR_CONTENT_EMPTY');
  assert.equal(empty.details.field, 'messages[1].content');
  assert.match(empty.message, /messages\[1\]\.content/);
  const orphan = await toolError(client, 'add_messages', { sessionId, messages: [{ role: 'tool', content: '42' }] });
  assert.equal(orphan.code, 'STRATA_ERR_VALIDATION');
  assert.equal(orphan.details.field, 'messages[0].tool_call_id');
  const noType = await toolError(client, 'get_context', { sessionId });
  assert.equal(noType.code, 'STRATA_ERR_VALIDATION');
  assert.equal(noType.details.field, 'type');
  const unknownField = await toolError(client, 'get_session', { sessionId, tenant: 'other' });
  assert.equal(unknownField.details.field, 'tenant');
  assert.equal((await ok(client, 'get_context', { sessionId, type: 'full' })).messages.length, 0);

  assert.deepEqual(await ok(client, 'add_messages', { sessionId, userId, messages: CONVERSATION, idempotencyKey: 'turn-1' }), { turnIds: [1, 2, 3, 4, 5] });
  // A retry with the same key answers the same ids and stores nothing twice.
  assert.deepEqual(await ok(client, 'add_messages', { sessionId, userId, messages: CONVERSATION, idempotencyKey: 'turn-1' }), { turnIds: [1, 2, 3, 4, 5] });

  const full = await ok(client, 'get_context', { sessionId, type: 'full' });
  assert.deepEqual(full.messages.map((t: Json) => t.turnId), [1, 2, 3, 4, 5]);
  assert.deepEqual(full.messages.map(sent), CONVERSATION);
  const smart = await ok(client, 'get_context', { sessionId, type: 'smart', query: 'weather in Lisbon', maxTokens: 2000 });
  assert.deepEqual(smart.messages.map(sent), CONVERSATION);

  // The tool result is found by a word that only its content has: across the user's sessions
  // and in its session; leaving out the recent window hides it until it has left the window.
  const byUser = await ok(client, 'search_history', { userId, query: 'zephyrine' });
  assert.equal(byUser.hits[0]?.sessionId, sessionId, JSON.stringify(byUser.hits));
  assert.equal(byUser.hits[0].turnId, 4);
  assert.deepEqual({ role: byUser.hits[0].role, tool_call_id: byUser.hits[0].tool_call_id, name: byUser.hits[0].name, content: byUser.hits[0].content }, { role: 'tool', tool_call_id: 'call_w1', name: 'get_weather', content: CONVERSATION[3]!.content });
  assert.equal((await ok(client, 'search_history', { sessionId, query: 'zephyrine' })).hits[0]?.turnId, 4);
  assert.deepEqual((await ok(client, 'search_history', { sessionId, query: 'zephyrine', excludeRecent: true })).hits, []);
  const filler = Array.from({ length: 20 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: `small talk number ${i}` }));
  assert.equal((await ok(client, 'add_messages', { sessionId, messages: filler })).turnIds.length, 20);
  const inSession = await ok(client, 'search_history', { sessionId, query: 'zephyrine', k: 3, excludeRecent: true });
  assert.equal(inSession.hits[0]?.turnId, 4, JSON.stringify(inSession.hits));
  assert.equal(inSession.hits[0].tool_call_id, 'call_w1');
  const neither = await toolError(client, 'search_history', { query: 'zephyrine' });
  assert.equal(neither.code, 'STRATA_ERR_VALIDATION');

  // Sessions: listed, shown, deleted.
  const scratch = `${sessionId}/scratch`;
  await ok(client, 'add_messages', { sessionId: scratch, userId, messages: [{ role: 'user', content: 'to be deleted' }] });
  const listed = await ok(client, 'list_sessions', { userId });
  assert.deepEqual(listed.sessions.map((x: Json) => x.sessionId).sort(), [sessionId, scratch].sort());
  assert.equal(listed.nextCursor, null);
  const info = await ok(client, 'get_session', { sessionId });
  assert.equal(info.sessionId, sessionId);
  assert.equal(info.userId, userId);
  assert.equal(info.turns, 25);
  const receipt = await ok(client, 'delete_session', { sessionId: scratch });
  assert.deepEqual(receipt.sessionIds, [scratch]);
  assert.equal((await toolError(client, 'get_session', { sessionId: scratch })).code, 'STRATA_ERR_NOT_FOUND');
  assert.deepEqual((await ok(client, 'list_sessions', {})).sessions.map((x: Json) => x.sessionId), [sessionId]);
  assert.equal((await ok(client, 'get_session', { sessionId })).turns, 25);
}

async function httpClient(url: URL, key: string | null): Promise<Client> {
  const client = new Client({ name: 'strata-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(url, key === null ? {} : { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  return client;
}

/** A tools/call as one raw JSON-RPC POST (stateless: no initialize needed), as any HTTP client would send it. */
function rawToolCall(url: URL, headers: Record<string, string>, name: string, args: Record<string, unknown>): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args } }),
  });
}

async function sessionExists(memory: ConversationMemory, tenant: string, sessionId: string): Promise<boolean> {
  return memory.getSession(sessionId, { tenant }).then(
    () => true,
    (err: { code?: string }) => {
      assert.equal(err.code, 'STRATA_ERR_NOT_FOUND');
      return false;
    },
  );
}

test('MCP over Streamable HTTP: /mcp behind the API keys, one tenant per key', async (t) => {
  const { app, memory } = await startHarness(t);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const url = new URL('/mcp', base);

  const a = await httpClient(url, KEY_A);
  t.after(() => a.close());
  await exercise(a, 'trip@example.com', 'ana');
  // Every call acted for key A's tenant: the core has the session there, JSON-equal.
  const stored = await memory.getContext('trip@example.com', { tenant: 'tenantA', type: 'full', limit: 5 });
  assert.deepEqual(JSON.parse(JSON.stringify(stored.messages)).map(sent), CONVERSATION);

  await t.test('another key is another tenant', async () => {
    const b = await httpClient(url, KEY_B);
    try {
      assert.deepEqual((await ok(b, 'list_sessions', {})).sessions, []);
      assert.deepEqual((await ok(b, 'get_context', { sessionId: 'trip@example.com', type: 'full' })).messages, []);
      assert.equal((await toolError(b, 'delete_session', { sessionId: 'trip@example.com' })).code, 'STRATA_ERR_NOT_FOUND');
      assert.equal((await memory.getSession('trip@example.com', { tenant: 'tenantA' })).turns, 25);
    } finally {
      await b.close();
    }
  });

  await t.test('no key or a wrong key: 401 with the error body, and nothing changes', async () => {
    for (const key of [null, 'not-a-key-0000']) {
      await assert.rejects(httpClient(url, key), (err: unknown) => err instanceof StreamableHTTPError && err.code === 401 && /STRATA_ERR_UNAUTHORIZED/.test(err.message));
    }
    const write = { sessionId: 'intruder', messages: [{ role: 'user', content: 'hello' }] };
    for (const headers of [{}, { authorization: 'Bearer not-a-key-0000' }, { authorization: KEY_A }] as Array<Record<string, string>>) {
      const res = await rawToolCall(url, headers, 'add_messages', write);
      assert.equal(res.status, 401);
      const body = (await res.json()) as Json;
      assert.equal(body.error.code, 'STRATA_ERR_UNAUTHORIZED');
      assert.equal(typeof body.error.message, 'string');
      assert.equal(body.error.details, null);
      const del = await rawToolCall(url, headers, 'delete_session', { sessionId: 'trip@example.com' });
      assert.equal(del.status, 401);
      await del.arrayBuffer();
    }
    for (const tenant of ['tenantA', 'tenantB', 'default']) assert.equal(await sessionExists(memory, tenant, 'intruder'), false);
    assert.equal((await memory.getSession('trip@example.com', { tenant: 'tenantA' })).turns, 25);
    // The same request with the key is accepted: the 401 was the key, not the request.
    const res = await rawToolCall(url, { authorization: `Bearer ${KEY_A}` }, 'add_messages', write);
    assert.equal(res.status, 200);
    const rpc = (await res.json()) as Json;
    assert.deepEqual(rpc.result.structuredContent, { turnIds: [1] });
    assert.equal(await sessionExists(memory, 'tenantA', 'intruder'), true);
  });

  await t.test('stateless endpoint: GET and DELETE answer 405, /mcp is not in the OpenAPI document, requests are counted', async () => {
    for (const method of ['GET', 'DELETE']) {
      const res = await fetch(url, { method, headers: { authorization: `Bearer ${KEY_A}`, accept: 'text/event-stream' } });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.get('allow'), 'POST');
      await res.arrayBuffer();
    }
    const noKey = await fetch(url, { method: 'GET' });
    assert.equal(noKey.status, 401);
    await noKey.arrayBuffer();
    const openapi = (await (await fetch(new URL('/openapi.json', base))).json()) as Json;
    assert.ok(openapi.paths['/v1/sessions/{id}/messages']);
    assert.deepEqual(Object.keys(openapi.paths).filter((p) => p.startsWith('/mcp')), []);
    const metrics = await (await fetch(new URL('/metrics', base))).text();
    assert.match(metrics, /strata_http_request_duration_seconds_count\{method="POST",route="\/mcp",status="200"\} [1-9]/);
    assert.match(metrics, /strata_http_request_duration_seconds_count\{method="POST",route="\/mcp",status="401"\} [1-9]/);
  });

  await t.test('the TypeScript client snippet of docs/integrations.md runs against the server', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'strata-mcp-snippet-'));
    try {
      // The snippet as an application would have it: its own directory, the SDK resolvable from it.
      await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
      await writeFile(join(dir, 'agent.mts'), docBlock('mcp-snippet:client', 'ts'));
      const run = await runNode(['--import', TSX, join(dir, 'agent.mts')], { cwd: dir, env: { ...process.env, STRATA_URL: base, STRATA_API_KEY: KEY_A } });
      assert.equal(run.code, 0, run.err);
      assert.match(run.out, /^user: "What is the weather in Lisbon\?"$/m);
      assert.match(run.out, /^tool: "\{\\"temperature\\":23,\\"sky\\":\\"sunny\\"\}"$/m);
      const turns = (await memory.getContext('chat-1', { tenant: 'tenantA', type: 'full' })).messages;
      assert.deepEqual(turns.map((m) => m.role), ['user', 'assistant', 'tool', 'assistant']);
      assert.equal(turns[1]!.tool_calls?.[0]?.function.name, 'get_weather');
      assert.equal((await memory.getSession('chat-1', { tenant: 'tenantA' })).userId, 'ana');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

function runNode(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

test('MCP over stdio: `strata mcp` as a child process, configured as docs/integrations.md shows', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-mcp-stdio-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const config = (JSON.parse(docBlock('mcp-config:stdio', 'json')) as Json).mcpServers.strata as { command: string; args: string[]; env: Record<string, string> };
  // The documented command runs the published package; here the same CLI runs from the sources.
  assert.equal(config.command, 'npx');
  assert.deepEqual(config.args.slice(0, 2), ['-y', '@strata-memory/strata']);
  const [command, ...flags] = config.args.slice(2);
  assert.equal(command, 'mcp');
  assert.ok('STRATA_DATA_DIR' in config.env);
  const tenant = flags[flags.indexOf('--tenant') + 1]!;

  // Only the documented environment (plus PATH, the test's embedder, info logs to see why it
  // stopped): no STRATA_* of the developer's shell.
  const env = { PATH: process.env.PATH ?? '', ...config.env, STRATA_DATA_DIR: dataDir, STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'info' };
  const transport = new StdioClientTransport({ command: process.execPath, args: [...SOURCE_CLI, command!, ...flags], env, cwd: dataDir, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const client = new Client({ name: 'strata-test', version: '1.0.0' });
  const protocolErrors: Error[] = [];
  client.onerror = (err) => protocolErrors.push(err);
  await client.connect(transport);
  const pid = transport.pid!;
  try {
    assert.equal(client.getServerVersion()?.name, 'strata');
    await exercise(client, 'user:42/chat', 'user:42');
  } catch (err) {
    throw new Error(`${(err as Error).message}\nserver stderr:\n${stderr}`, { cause: err });
  } finally {
    await client.close();
  }
  // Every line the server wrote on stdout was a protocol message.
  assert.deepEqual(protocolErrors, [], stderr);

  // Closing stdin ends the process (it flushed and closed the core): the data directory is free
  // and holds the conversation for the tenant of --tenant.
  await waitForExit(pid);
  assert.match(stderr, /"reason":"stdin closed"/, stderr);
  assert.match(stderr, /"msg":"stopped"/, stderr);
  const reopened = await openStrata(dataDir);
  try {
    const turns = (await reopened.getContext('user:42/chat', { tenant, type: 'full', limit: 5 })).messages;
    assert.deepEqual(JSON.parse(JSON.stringify(turns)).map(sent), CONVERSATION);
  } finally {
    await reopened.close();
  }
});

async function waitForExit(pid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`strata mcp (pid ${pid}) did not exit after its client closed`);
}
