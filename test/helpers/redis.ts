/**
 * A Redis for tests. By default a PRIVATE `redis-server` on a free loopback port, without
 * persistence (`--save '' --appendonly no`), in its own temp dir, so tests may FLUSHALL, restart
 * or kill it. With `REDIS_URL` set (and `private` not requested) that server is used instead and
 * every test works under a unique key prefix; `flushall()` then deletes only that prefix's keys,
 * never the whole shared server.
 *
 *   const redis = await startRedis();
 *   after(() => redis.stop());
 *   const store = new RedisHotStore({ url: redis.url, keyPrefix: redis.prefix('append') });
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import { freePort } from '../../src/net.js';

export interface TestRedis {
  readonly url: string;
  /** True when this is a private server the helper started (restart/kill/FLUSHALL are allowed). */
  readonly isPrivate: boolean;
  /** A key prefix unique to this helper and `name` (use one per test). */
  prefix(name: string): string;
  /** Empties the private server (FLUSHALL), or deletes this helper's keys on a shared one. */
  flushall(): Promise<void>;
  /** Stops and starts the private server on the same port: every key and cached script is gone. */
  restart(): Promise<void>;
  /** Sends a raw command on a helper-owned connection (SCRIPT FLUSH, INFO, …). */
  command(args: string[]): Promise<unknown>;
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** Always start a private server, even with REDIS_URL set (tests that restart or kill it). */
  private?: boolean;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
}

async function waitReady(child: ChildProcess, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => done(new Error(`redis-server on port ${port} did not start within 10 s:\n${output}`)), 10_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) done();
    };
    const onExit = (code: number | null): void => done(new Error(`redis-server exited with ${code}:\n${output}`));
    const onError = (err: Error): void =>
      done(new Error(`cannot start redis-server (${err.message}); install it (apt-get install redis-server) or set REDIS_URL`));
    function done(err?: Error): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) reject(err);
      else resolve();
    }
    child.stdout?.on('data', onData);
    child.on('exit', onExit);
    child.on('error', onError);
  });
}

type Client = ReturnType<typeof createClient>;

// Private servers must not outlive a test process that ends without calling stop().
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

async function connect(url: string): Promise<Client> {
  const client = createClient({ url, RESP: 2, socket: { reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  return client as Client;
}

export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  const id = randomBytes(4).toString('hex');
  const shared = process.env.REDIS_URL;
  if (shared && !options.private) {
    let client: Client | null = await connect(shared);
    const ownPrefix = `strata-test:${id}:`;
    const run = (): Client => {
      if (client === null) throw new Error('test redis helper is stopped');
      return client;
    };
    const deleteOwnKeys = async (): Promise<void> => {
      const c = run();
      for await (const keys of c.scanIterator({ MATCH: `${ownPrefix}*`, COUNT: 500 })) if (keys.length > 0) await c.del(keys);
    };
    return {
      url: shared,
      isPrivate: false,
      prefix: (name) => `${ownPrefix}${name}:`,
      flushall: deleteOwnKeys,
      async restart() {
        throw new Error('restart() needs a private redis-server: call startRedis({ private: true })');
      },
      command: (args) => run().sendCommand(args),
      async stop() {
        if (client === null) return;
        await deleteOwnKeys();
        await client.close();
        client = null;
      },
    };
  }

  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'strata-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  const serverArgs = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', ...(options.args ?? [])];
  let child: ChildProcess | null = null;
  let client: Client | null = null;

  async function launch(): Promise<void> {
    const proc = spawn('redis-server', serverArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    await waitReady(proc, port);
    proc.stdout?.resume();
    proc.stderr?.resume();
    client = await connect(url);
  }

  async function kill(): Promise<void> {
    const c = client;
    client = null;
    if (c !== null) c.destroy();
    const proc = child;
    child = null;
    if (proc === null || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    });
  }

  await launch();
  const run = (): Client => {
    if (client === null) throw new Error('test redis server is stopped');
    return client;
  };
  return {
    url,
    isPrivate: true,
    prefix: (name) => `t${id}:${name}:`,
    async flushall() {
      await run().flushAll();
    },
    async restart() {
      await kill();
      await launch();
    },
    command: (args) => run().sendCommand(args),
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
