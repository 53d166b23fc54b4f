/**
 * HTTP throughput and latency of `strata serve` under a mixed load (appends and recent-context
 * reads over many sessions), against the framework ceiling measured in the same run: the same
 * server answering `GET /healthz`. The server is a `strata serve` process of its own (temporary
 * data directory, memory hot tier or Redis, request logs at warn) and the load generator
 * (autocannon) runs in this process, so neither takes CPU time from the other's event loop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import type { StrataConfig } from '../src/config.js';
import { StrataError } from '../src/errors.js';
import { deleteKeys } from './hot.js';
import type { AdminClient } from './hot.js';
import { importOptional } from './optional.js';
import { freePort } from '../src/net.js';

export interface HttpBenchOptions {
  connections?: number;
  durationSec?: number;
  /** Use Redis at this URL for the hot tier instead of the in-process store. */
  redisUrl?: string;
  /** Sessions the load is spread over. Default 1000. */
  sessions?: number;
  durability?: StrataConfig['durability'];
}

export interface HttpRunResult {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  non2xx: number;
}

export interface HttpBenchResult {
  mixed: HttpRunResult;
  baseline: HttpRunResult;
  /** Both runs as `{name, reqPerSec, p50Ms, p99Ms}`: the baseline first. */
  runs: Array<{ name: string; reqPerSec: number; p50Ms: number; p99Ms: number }>;
  connections: number;
  durationSec: number;
  hotDriver: string;
  durability: string;
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

function summarize(r: AutocannonResult): HttpRunResult {
  return { reqPerSec: r.requests.average, p50Ms: r.latency.p50, p99Ms: r.latency.p99, requests: r.requests.total, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

const SAMPLE = 'I am planning a trip to Lisbon in May and would like to know which neighbourhoods are best for walking and food.';

/** How to run the `strata` CLI of this installation: the built bin, or the sources through tsx. */
function strataCommand(): { args: string[]; cwd: string } {
  const here = dirname(fileURLToPath(import.meta.url));
  const built = join(here, '..', '..', 'bin', 'strata.js');
  if (!import.meta.url.endsWith('.ts') && existsSync(built)) return { args: [built], cwd: join(here, '..', '..') };
  return { args: ['--import', 'tsx', join(here, '..', 'src', 'cli', 'bin-dev.ts')], cwd: join(here, '..') };
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new StrataError('STRATA_ERR_INTERNAL', `strata serve exited with ${child.exitCode}: ${stderr().slice(-500)}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new StrataError('STRATA_ERR_INTERNAL', `strata serve did not become ready in 60 s: ${stderr().slice(-500)}`);
}

export async function runHttpBench(options: HttpBenchOptions = {}): Promise<HttpBenchResult> {
  const connections = options.connections ?? 64;
  const durationSec = options.durationSec ?? 10;
  const sessions = options.sessions ?? 1000;
  // autocannon has no type declarations; it is a devDependency, loaded only here (a coded error
  // names it when an installed package lacks it).
  const autocannon = (await importOptional<{ default: Autocannon }>('autocannon', 'strata bench http')).default;
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-bench-http-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const durability = options.durability ?? 'fsync';
  const hotDriver = options.redisUrl ? 'redis' : 'memory';
  const keyPrefix = `strata-bench-http-${process.pid}-${Date.now().toString(36)}:`;
  const { args, cwd } = strataCommand();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STRATA_DATA_DIR: dataDir,
    STRATA_HOST: '127.0.0.1',
    STRATA_PORT: String(port),
    STRATA_LOG_LEVEL: 'warn',
    STRATA_EMBEDDER: 'hash',
    STRATA_DURABILITY: durability,
    STRATA_HOT_DRIVER: hotDriver,
    ...(options.redisUrl ? { REDIS_URL: options.redisUrl, STRATA_REDIS_KEY_PREFIX: keyPrefix } : {}),
  };
  delete env.STRATA_API_KEYS;
  const child = spawn(process.execPath, [...args, 'serve'], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  try {
    await waitReady(url, child, () => stderr);
    const baseline = summarize(await autocannon({ url: `${url}/healthz`, connections, duration: durationSec }));

    // Seed every session so context reads never read an empty session.
    const seedBody = JSON.stringify({ role: 'user', content: SAMPLE });
    for (let s = 0; s < sessions; s += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, sessions - s) }, (_, i) => fetch(`${url}/v1/sessions/bench-${s + i}/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: seedBody }).then((r) => r.arrayBuffer())),
      );
    }
    let counter = 0;
    const addBody = JSON.stringify({ role: 'user', content: SAMPLE });
    const contextBody = JSON.stringify({ type: 'recent', limit: 20 });
    const mixed = summarize(
      await autocannon({
        url,
        connections,
        duration: durationSec,
        headers: { 'content-type': 'application/json' },
        requests: [
          {
            method: 'POST',
            setupRequest: (req: Record<string, unknown>) => {
              const n = counter++;
              const session = `bench-${n % sessions}`;
              // Half appends, half context reads.
              return n % 2 === 0 ? { ...req, path: `/v1/sessions/${session}/messages`, body: addBody } : { ...req, path: `/v1/sessions/${session}/context`, body: contextBody };
            },
          },
        ],
      }),
    );
    const runs = [
      { name: 'baseline: GET /healthz', reqPerSec: baseline.reqPerSec, p50Ms: baseline.p50Ms, p99Ms: baseline.p99Ms },
      { name: 'mixed: 50% add, 50% recent context', reqPerSec: mixed.reqPerSec, p50Ms: mixed.p50Ms, p99Ms: mixed.p99Ms },
    ];
    return { mixed, baseline, runs, connections, durationSec, hotDriver, durability };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    await rm(dataDir, { recursive: true, force: true });
    if (options.redisUrl) await dropRunKeys(options.redisUrl, keyPrefix);
  }
}

/** Removes this run's keys from a Redis the benchmark was pointed at (it may hold other data). */
async function dropRunKeys(url: string, prefix: string): Promise<void> {
  const client = createClient({ url, RESP: 2 }) as AdminClient;
  client.on('error', () => {});
  try {
    await client.connect();
    await deleteKeys(client, `${prefix}*`);
  } finally {
    if (client.isOpen) await client.quit().catch(() => undefined);
  }
}
