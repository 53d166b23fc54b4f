/**
 * End to end: `strata serve` as a real child process, Redis hot tier (a private redis-server),
 * a temp data directory. Imports conversations and an exported archive over HTTP, queries
 * context, SIGKILLs the process while appends are in flight, restarts it with the same
 * environment and finds every acknowledged message exactly once at its turn id, in order. Then
 * checks that SIGTERM ends the process with exit code 0 after flushing.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConversations } from '../../src/cli/importers.js';
import { startRedis } from '../helpers/redis.js';
import { sharedDataFile } from '../../bench/data.js';
import { freePort } from '../../src/net.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN_DEV = join(ROOT, 'src/cli/bin-dev.ts');
const TSX = import.meta.resolve('tsx');
const KEY = 'e2e-key-0000001';
const AUTH = { authorization: `Bearer ${KEY}` };

interface StoredTurn {
  turnId: number;
  role: string;
  content: string;
}
interface ContextReply {
  messages: StoredTurn[];
  tokens: number;
}

interface Sent {
  role: string;
  content: string;
}

/** One `strata serve` process; `output()` holds everything it wrote (for failure messages). */
class ServeProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private log = '';

  constructor(env: Record<string, string>, cwd: string) {
    // The data and config come from the environment only; cwd is a temp dir so no stray
    // strata.config.json is read. tsx is imported by absolute URL for the same reason.
    this.child = spawn(process.execPath, ['--import', TSX, BIN_DEV, 'serve'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.log += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  output(): string {
    return this.log;
  }

  async waitReady(base: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      if (exited) throw new Error(`strata serve exited before it was ready:\n${this.log}`);
      try {
        const res = await fetch(`${base}/readyz`);
        if (res.status === 200) return;
        await res.arrayBuffer();
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`strata serve not ready within ${timeoutMs} ms:\n${this.log}`);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...AUTH, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: (text === '' ? null : JSON.parse(text)) as T };
}

/** Every turn of a session, page by page through `after`. */
async function allMessages(base: string, sessionId: string): Promise<StoredTurn[]> {
  const out: StoredTurn[] = [];
  let after = 0;
  for (;;) {
    const page = await api<{ messages: StoredTurn[]; nextAfter: number | null }>(base, 'GET', `/v1/sessions/${sessionId}/messages?after=${after}&limit=7`);
    assert.equal(page.status, 200, `GET messages of ${sessionId}: ${JSON.stringify(page.json)}`);
    out.push(...page.json.messages);
    if (page.json.nextAfter === null) return out;
    after = page.json.nextAfter;
  }
}

test('strata serve: import, context, SIGKILL with appends in flight, restart finds every acknowledged message; SIGTERM exits 0', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis({ private: true });
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-e2e-'));
  const procs: ServeProcess[] = [];
  t.after(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await redis.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {};
  // A clean environment: no STRATA_* or REDIS_URL of the developer's shell leaks in.
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('STRATA_') && k !== 'REDIS_URL') env[k] = v;
  Object.assign(env, {
    STRATA_DATA_DIR: dataDir,
    STRATA_PORT: String(port),
    REDIS_URL: redis.url,
    STRATA_API_KEYS: `${KEY}:tenantE`,
    STRATA_EMBEDDER: 'hash',
    STRATA_INSTANCE_ID: 'e2e-instance',
    STRATA_LOG_LEVEL: 'warn',
    // Small compaction thresholds so that the kill also lands while turns move to the archive.
    STRATA_COMPACTION_MAX_UNARCHIVED_TURNS: '8',
    STRATA_COMPACTION_INTERVAL_MS: '100',
    STRATA_RECENT_TURNS: '4',
    // Default lease lifetime (30 s): the restart must release the leases its killed run left
    // behind instead of waiting for them to expire.
  });
  const start = async (): Promise<ServeProcess> => {
    const p = new ServeProcess(env, dataDir);
    procs.push(p);
    await p.waitReady(base);
    return p;
  };

  // sessionId → turnId → what was sent, for every acknowledged (2xx) append.
  const acked = new Map<string, Map<number, Sent>>();
  const ack = (sessionId: string, turnIds: number[], sent: Sent[]): void => {
    assert.equal(turnIds.length, sent.length);
    const turns = acked.get(sessionId) ?? new Map<number, Sent>();
    acked.set(sessionId, turns);
    turnIds.forEach((id, i) => {
      assert.ok(!turns.has(id), `turn id ${id} of ${sessionId} acknowledged twice`);
      turns.set(id, sent[i]!);
    });
  };

  let serve = await start();
  const ready = (await (await fetch(`${base}/readyz`)).json()) as { ok: boolean; hot: { driver: string }; dataDir: { path: string } };
  assert.deepEqual([ready.ok, ready.hot.driver, ready.dataDir.path], [true, 'redis', dataDir]);

  // 1. Import three ShareGPT sessions by posting their messages in batches.
  const file = new Uint8Array(readFileSync(sharedDataFile('sharegpt-sessions.json')));
  const conversations = parseConversations(file, 'sessions').slice(1, 4);
  assert.equal(conversations.length, 3);
  for (const c of conversations) {
    for (let i = 0; i < c.messages.length; i += 3) {
      const batch = c.messages.slice(i, i + 3).map((m) => ({ role: m.role, content: m.content as string }));
      const res = await api<{ turnIds: number[] }>(base, 'POST', `/v1/sessions/${c.sessionId}/messages`, { messages: batch });
      assert.equal(res.status, 201, JSON.stringify(res.json));
      ack(c.sessionId, res.json.turnIds, batch);
    }
  }

  // 2. Export one session and import the archive as a new session.
  const source = conversations[0]!.sessionId;
  const exported = await fetch(`${base}/v1/sessions/${source}/export`, { headers: AUTH });
  assert.equal(exported.status, 200);
  const archive = new Uint8Array(await exported.arrayBuffer());
  const imported = await fetch(`${base}/v1/import?sessionId=copy-of-first`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/octet-stream' }, body: archive });
  const importedInfo = (await imported.json()) as { turns: number };
  assert.equal(imported.status, 201, JSON.stringify(importedInfo));
  assert.equal(importedInfo.turns, acked.get(source)!.size);
  acked.set('copy-of-first', new Map(acked.get(source)!));

  // 3. Context: recent ends with the last turn; smart stays within its budget.
  const second = conversations[1]!.sessionId;
  const lastOfSecond = Math.max(...acked.get(second)!.keys());
  const recent = await api<ContextReply>(base, 'POST', `/v1/sessions/${second}/context`, { type: 'recent' });
  assert.equal(recent.status, 200, JSON.stringify(recent.json));
  assert.ok(recent.json.messages.length > 0);
  assert.equal(recent.json.messages.at(-1)?.turnId, lastOfSecond);
  assert.equal(recent.json.messages.at(-1)?.content, acked.get(second)!.get(lastOfSecond)!.content);
  const smart = await api<ContextReply>(base, 'POST', `/v1/sessions/${second}/context`, { type: 'smart', query: (conversations[1]!.messages[0]!.content as string).slice(0, 200), maxTokens: 600 });
  assert.equal(smart.status, 200, JSON.stringify(smart.json));
  assert.ok(smart.json.messages.length > 0);
  assert.ok(smart.json.tokens <= 600, `smart context of ${smart.json.tokens} tokens exceeds 600`);

  // 4. Concurrent appends; SIGKILL once enough of them were acknowledged.
  const inflight = new Map<string, Sent>(); // content → message, for every append sent
  const targets = [...conversations.map((c) => c.sessionId), 'fresh-session'];
  /** 8 writers append until the process is signalled; returns the HTTP statuses seen, the failed requests and those cut mid-request. */
  const loadThen = async (round: string, signal: NodeJS.Signals): Promise<{ statuses: Set<number>; failed: number; cut: number }> => {
    let stop = false;
    let acknowledged = 0;
    let failed = 0;
    let cut = 0;
    const statuses = new Set<number>();
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; !stop; n++) {
        const sessionId = targets[(w + n) % targets.length]!;
        const batch: Sent[] = Array.from({ length: 1 + (n % 3) }, (_, j) => ({ role: j % 2 === 0 ? 'user' : 'assistant', content: `load ${round} w${w} n${n} m${j}` }));
        for (const m of batch) inflight.set(m.content, m);
        try {
          const res = await fetch(`${base}/v1/sessions/${sessionId}/messages`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ messages: batch }) });
          const body = (await res.json()) as { turnIds: number[] };
          statuses.add(res.status);
          if (res.status < 200 || res.status >= 300) return; // Shutting down (503): not acknowledged.
          ack(sessionId, body.turnIds, batch);
          acknowledged++;
        } catch (err) {
          failed++;
          // ECONNREFUSED: the listener is closed. Anything else (reset, closed socket) cut a request in flight.
          if (!String((err as Error).cause ?? err).includes('ECONNREFUSED')) cut++;
          return; // The server is gone: this append was never acknowledged.
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    const deadline = Date.now() + 10_000;
    while (acknowledged < 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    if (acknowledged < 60) {
      stop = true;
      await Promise.all(writers);
      assert.fail(`only ${acknowledged} appends acknowledged under load:\n${serve.output()}`);
    }
    serve.kill(signal);
    // Every writer ends on the request it had in flight when the process stopped or died.
    await Promise.all(writers);
    return { statuses, failed, cut };
  };
  const killedLoad = await loadThen('kill', 'SIGKILL');
  assert.equal((await serve.exited).signal, 'SIGKILL');
  assert.ok(killedLoad.failed > 0, 'no append was in flight at the kill');

  // 5. Restart with the same environment: every acknowledged message, exactly once, in order.
  const verify = async (): Promise<void> => {
    for (const [sessionId, turns] of acked) {
      const messages = await allMessages(base, sessionId);
      const ids = messages.map((m) => m.turnId);
      for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${sessionId}: turn ids out of order or repeated: ${ids.join(',')}`);
      const byId = new Map(messages.map((m) => [m.turnId, m]));
      for (const [turnId, sent] of turns) {
        const found = byId.get(turnId);
        assert.ok(found, `${sessionId}: acknowledged turn ${turnId} (${JSON.stringify(sent.content.slice(0, 40))}) is missing`);
        assert.equal(found.content, sent.content, `${sessionId} turn ${turnId}`);
        assert.equal(found.role, sent.role, `${sessionId} turn ${turnId}`);
      }
      // Anything else must be an append that was in flight at the kill, present once.
      const contents = new Set<string>();
      for (const m of messages) {
        if (turns.has(m.turnId)) continue;
        assert.ok(inflight.has(m.content), `${sessionId}: turn ${m.turnId} holds a message that was never sent: ${JSON.stringify(m.content.slice(0, 60))}`);
        assert.ok(!contents.has(m.content), `${sessionId}: in-flight message stored twice: ${m.content}`);
        contents.add(m.content);
      }
    }
  };
  serve = await start();
  await verify();
  // New appends continue after the highest stored turn.
  const after = await api<{ turnId: number }>(base, 'POST', `/v1/sessions/fresh-session/messages`, { role: 'user', content: 'after the restart' });
  assert.equal(after.status, 201, JSON.stringify(after.json));
  const freshIds = (await allMessages(base, 'fresh-session')).map((m) => m.turnId);
  assert.equal(after.json.turnId, Math.max(...freshIds));
  ack('fresh-session', [after.json.turnId], [{ role: 'user', content: 'after the restart' }]);

  // 6. SIGTERM under load: graceful shutdown (stop accepting, let requests finish, flush, close), exit code 0.
  const termLoad = await loadThen('term', 'SIGTERM');
  assert.deepEqual(await serve.exited, { code: 0, signal: null }, serve.output());
  assert.deepEqual([...termLoad.statuses].filter((status) => status !== 201 && status !== 503), [], 'statuses other than 201 and 503 during the shutdown');
  // Requests in flight get their answer. A request that reaches a keep-alive connection just as
  // it is closed as idle is cut (a race no server avoids, and on a loaded 2-core machine the
  // window between a response and the writer's next request is wide): some, never all eight.
  // A SIGKILL cuts all of them; the statuses above prove the others were answered.
  assert.ok(termLoad.cut < 8, `${termLoad.cut} of 8 requests in flight cut by the graceful shutdown`);

  // 7. A second restart sees the same data, all of it archived by the flush at shutdown; SIGTERM again.
  serve = await start();
  await verify();
  for (const sessionId of acked.keys()) {
    const info = await api<{ unarchivedTurns: number }>(base, 'GET', `/v1/sessions/${sessionId}`);
    assert.equal(info.status, 200);
    assert.equal(info.json.unarchivedTurns, 0, `${sessionId} after a graceful shutdown: ${JSON.stringify(info.json)}`);
  }
  serve.kill('SIGTERM');
  assert.deepEqual(await serve.exited, { code: 0, signal: null }, serve.output());
});
