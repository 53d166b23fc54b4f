/**
 * A real Redis Cluster for tests: 6 private `redis-server --cluster-enabled yes` processes on free
 * loopback ports (3 masters, 3 replicas, `redis-cli --cluster create … --cluster-replicas 1`),
 * without persistence, in one temp dir, with a short `cluster-node-timeout` so a failover takes
 * about a second. Start one per test file:
 *
 *   const cluster = await startRedisCluster();
 *   after(() => cluster.stop());
 *   const store = new RedisHotStore({ url: cluster.url, keyPrefix: 'x:' });
 *
 * Tests may kill, restart, flush or fail over its nodes; it never touches any other server.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createClient } from 'redis';
import { freePort } from '../../src/net.js';

const run = promisify(execFile);

export interface ClusterNode {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
}

export interface TestRedisCluster {
  /** `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…` (every node), for RedisHotStore and createStrata. */
  readonly url: string;
  /** `127.0.0.1:P1,…`, the form of `--redis-cluster` and `STRATA_REDIS_CLUSTER_NODES`. */
  readonly nodeList: string;
  readonly nodes: readonly ClusterNode[];
  /** The ports of the current masters (CLUSTER NODES as seen by a live node). */
  masters(): Promise<number[]>;
  /** The port of the replica of the master on `port`. */
  replicaOf(port: number): Promise<number>;
  /** Sends a raw command to one node. */
  command(port: number, args: string[]): Promise<unknown>;
  /** SIGKILLs one node (it keeps its nodes.conf, so `restart` brings it back into the cluster). */
  kill(port: number): Promise<void>;
  /** Starts a killed node again on its port; a former master rejoins as a replica. */
  restart(port: number): Promise<void>;
  /** `CLUSTER FAILOVER TAKEOVER` on a replica, then waits until every live node reports cluster_state:ok and it is a master. */
  promote(replicaPort: number): Promise<void>;
  /** FLUSHALL on every master (the replicas follow). */
  flushall(): Promise<void>;
  /** Waits until every live node answers `cluster_state:ok` and knows the same masters, and every replica's link is up. */
  waitOk(): Promise<void>;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10000 < 65536 && !taken.has(port) && (await portFree(port + 10000))) {
      taken.add(port);
      return port;
    }
  }
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

type Client = ReturnType<typeof createClient>;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface StartRedisClusterOptions {
  /** `cluster-node-timeout`: how long until an unreachable node counts as failed. Default 1000 ms. */
  nodeTimeoutMs?: number;
  /** Enables DEBUG (e.g. `DEBUG SLEEP` to make a replica lag). Default false. */
  debug?: boolean;
}

export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-redis-cluster-'));
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < 6; i++) ports.push(await freeClusterPort(taken));
  const children = new Map<number, ChildProcess>();
  const clients = new Map<number, Client>();

  async function launch(port: number): Promise<void> {
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--daemonize', 'no', '--dir', dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`,
      '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1000),
      '--save', '', '--appendonly', 'no', '--dbfilename', `dump-${port}.rdb`,
      ...(options.debug ? ['--enable-debug-command', 'yes'] : []),
    ];
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.set(port, proc);
    running.add(proc);
    proc.once('exit', () => running.delete(proc));
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`redis-server ${port} did not start:\n${output}`)), 10_000);
      proc.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          proc.stdout?.removeAllListeners('data');
          proc.stdout?.resume();
          resolve();
        }
      });
      proc.stderr?.resume();
      proc.once('error', (err) => reject(new Error(`cannot start redis-server (${err.message})`)));
      proc.once('exit', (code) => reject(new Error(`redis-server ${port} exited with ${code}:\n${output}`)));
    });
    const client = createClient({ url: `redis://127.0.0.1:${port}`, RESP: 2, socket: { reconnectStrategy: false } });
    client.on('error', () => {});
    await client.connect();
    clients.set(port, client as Client);
  }

  const command = async (port: number, args: string[]): Promise<unknown> => {
    const client = clients.get(port);
    if (!client) throw new Error(`cluster node ${port} is not running`);
    return client.sendCommand(args);
  };

  const live = (): number[] => ports.filter((p) => clients.has(p));

  /** Parsed CLUSTER NODES of a live node: port → { master: boolean, id, masterId, failed }. */
  async function topology(): Promise<Array<{ port: number; id: string; master: boolean; masterId: string; failed: boolean }>> {
    const text = String(await command(live()[0]!, ['CLUSTER', 'NODES']));
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const [id, addr, flags, masterId] = line.split(' ');
        const flagList = flags!.split(',');
        return { id: id!, port: Number(addr!.split(':')[1]!.split('@')[0]), master: flagList.includes('master'), masterId: masterId!, failed: flagList.some((f) => f.startsWith('fail')) };
      });
  }

  async function waitOk(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const infos = await Promise.all(live().map((p) => command(p, ['CLUSTER', 'INFO']).catch(() => '')));
      // A replica whose link is not up yet has not copied its master: a failover would lose everything.
      const replication = await Promise.all(live().map((p) => command(p, ['INFO', 'replication']).catch(() => '')));
      const ok = infos.every((i) => String(i).includes('cluster_state:ok')) && replication.every((r) => String(r).includes('role:master') || String(r).includes('master_link_status:up'));
      if (ok) {
        // Every live node must agree on the masters, or a client may still be sent to a stale one.
        const views = await Promise.all(
          live().map(async (p) =>
            String(await command(p, ['CLUSTER', 'NODES']))
              .trim()
              .split('\n')
              .filter((l) => {
                const flags = l.split(' ')[2]!.split(',');
                return flags.includes('master') && !flags.some((f) => f.startsWith('fail'));
              })
              .map((l) => l.split(' ')[0])
              .sort()
              .join(','),
          ),
        );
        if (views.every((v) => v === views[0])) return;
      }
      if (Date.now() > deadline) throw new Error(`cluster not ok after 30 s: ${infos.map((i) => /cluster_state:\w+/.exec(String(i))?.[0]).join(' ')}`);
      await sleep(50);
    }
  }

  // A port found free can be taken before its server binds it (an outgoing connection's
  // ephemeral port): that node then starts on another free port.
  await Promise.all(
    ports.map(async (_, i) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await launch(ports[i]!);
        } catch (err) {
          if (attempt >= 4 || !(err as Error).message.includes('Address already in use')) throw err;
          children.delete(ports[i]!);
          ports[i] = await freeClusterPort(taken);
        }
      }
    }),
  );
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 60_000 });
  await waitOk();

  const nodes = ports.map((port) => ({ port, url: `redis://127.0.0.1:${port}` }));
  const nodeList = ports.map((p) => `127.0.0.1:${p}`).join(',');
  return {
    url: `redis+cluster://${nodeList}`,
    nodeList,
    nodes,
    async masters() {
      return (await topology()).filter((n) => n.master && !n.failed).map((n) => n.port);
    },
    async replicaOf(port) {
      const all = await topology();
      const master = all.find((n) => n.port === port);
      const replica = all.find((n) => !n.master && n.masterId === master?.id);
      if (!replica) throw new Error(`no replica of ${port}`);
      return replica.port;
    },
    command,
    async kill(port) {
      const client = clients.get(port);
      clients.delete(port);
      client?.destroy();
      const proc = children.get(port);
      children.delete(port);
      if (!proc || proc.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      });
    },
    async restart(port) {
      await launch(port);
      await waitOk();
    },
    async promote(replicaPort) {
      await command(replicaPort, ['CLUSTER', 'FAILOVER', 'TAKEOVER']);
      const deadline = Date.now() + 30_000;
      while (!String(await command(replicaPort, ['ROLE'])).startsWith('master')) {
        if (Date.now() > deadline) throw new Error(`${replicaPort} was not promoted`);
        await sleep(20);
      }
      await waitOk();
    },
    async flushall() {
      const masters = (await topology()).filter((n) => n.master && !n.failed && clients.has(n.port));
      await Promise.all(masters.map((m) => command(m.port, ['FLUSHALL'])));
    },
    waitOk,
    async stop() {
      for (const port of [...children.keys()]) {
        const client = clients.get(port);
        clients.delete(port);
        client?.destroy();
        const proc = children.get(port)!;
        children.delete(port);
        if (proc.exitCode === null) {
          await new Promise<void>((resolve) => {
            proc.once('exit', () => resolve());
            proc.kill('SIGKILL');
          });
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
