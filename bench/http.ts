/**
 * HTTP throughput and latency of `strata serve` under a mixed load (appends and context reads
 * over many sessions), against the framework ceiling measured in the same run: the same fastify
 * app answering `GET /healthz`. The server runs in-process on a free loopback port with a
 * temporary data directory and the memory hot tier (or Redis with `redis`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import type { StrataConfig } from '../src/config.js';
import { openMemory } from '../src/cli/commands/common.js';
import { buildServer } from '../src/server/app.js';
import { createServerMetrics } from '../src/server/metrics.js';
import { importOptional } from './optional.js';

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

export async function runHttpBench(options: HttpBenchOptions = {}): Promise<HttpBenchResult> {
  const connections = options.connections ?? 64;
  const durationSec = options.durationSec ?? 10;
  const sessions = options.sessions ?? 1000;
  // autocannon has no type declarations; it is a devDependency, loaded only here (a coded error
  // names it when an installed package lacks it).
  const autocannon = (await importOptional<{ default: Autocannon }>('autocannon', 'strata bench http')).default;
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-bench-http-'));
  const config = loadConfig({
    env: {},
    file: undefined,
    cwd: dataDir,
    flags: {
      dataDir,
      ...(options.durability ? { durability: options.durability } : {}),
      embedder: { provider: 'hash' },
      hot: options.redisUrl ? { driver: 'redis', redisUrl: options.redisUrl, keyPrefix: `strata-bench-${process.pid}:` } : { driver: 'memory' },
      server: { host: '127.0.0.1', port: 0, logLevel: 'silent' },
    },
  });
  const logger = pino({ level: 'silent' });
  const metrics = createServerMetrics({ defaultMetrics: false });
  const memory = await openMemory(config, { metrics: metrics.hooks, logger });
  const app = buildServer({ memory, config, logger, metrics });
  try {
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const baseline = summarize(await autocannon({ url: `${url}/healthz`, connections, duration: durationSec }));

    // Seed every session so context reads never hit an unknown session.
    for (let s = 0; s < sessions; s++) await memory.addMessage(`bench-${s}`, 'user', SAMPLE);
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
    return { mixed, baseline, connections, durationSec, hotDriver: config.hot.driver, durability: config.durability };
  } finally {
    await app.close();
    await memory.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
