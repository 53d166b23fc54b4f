/**
 * The hot tier against the designs it replaces, in one run on one Redis, with real chat text:
 *
 * - Redis memory (`INFO memory` used_memory deltas) of Strata in steady state (every message
 *   added through `addMessage`, then `flush()`, so Redis holds the last `recentTurns` turns per
 *   session) against the "current" design of the proposal: every message as JSON with a
 *   384-float embedding, RPUSHed into one list per session.
 * - `recent` context latency (one caller) and throughput (64 callers) against LangChain.js
 *   `RedisChatMessageHistory`, whose `getMessages()` reads the whole list (`LRANGE 0 -1`) and
 *   parses every message; the last `recentTurns` are sliced from it, as an application would.
 * - `addMessage` throughput with durability `fsync`, sequential and with concurrent writers.
 * - Cold-start `recent` of evicted sessions (rehydrated from the archive).
 *
 * By default the benchmark starts its own `redis-server` (no persistence) on a free loopback
 * port, so the memory deltas are not disturbed by other clients; with `redisUrl` every key lives
 * under a unique prefix and is deleted afterwards (deltas are then only as clean as the server is
 * quiet).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { StrataError } from '../src/errors.js';
import type { Role } from '../src/types.js';
import type { Strata } from '../src/strata.js';
import { sharedDataFile } from './data.js';
import { type CpuBudget, watchCpu } from './cpu.js';
import { type LoopDelay, watchEventLoop } from './loop-delay.js';
import { importOptional } from './optional.js';
// Types only (erased): the packages themselves are loaded by importOptional.
import type * as LangChainRedis from '@langchain/redis';
import type * as LangChainMessages from '@langchain/core/messages';
import { freePort } from '../src/net.js';
import { defaultWorkerThreads } from '../src/workers/pool.js';
import { getTokenizer } from '../src/context/gpt-tokenizer.js';

export const SHAREGPT = sharedDataFile('sharegpt-sessions.json');

/** Dimensions of the embedding each message carries in the "current" design. */
export const BASELINE_EMBEDDING_DIMENSIONS = 384;
const RECENT_TURNS = 20;

export interface HotBenchOptions {
  /** An existing Redis; default: a private `redis-server` started (and stopped) by the benchmark. */
  redisUrl?: string;
  /** Default 1000. */
  sessions?: number;
  /** Turns per session. Default 200. */
  turns?: number;
  /** JSON array of sessions `[{turns: [{role, content}]}]`. Default `sharegpt-sessions.json` in `$STRATA_SHARED_DATA` (see bench/data.ts). */
  input?: string;
  /** `recent` calls measured with one caller, per system. Default 2000. */
  reads?: number;
  /** `recent` calls measured with `concurrency` callers, per system. Default 4 × `reads`. */
  concurrentReads?: number;
  /** Concurrent callers and writers. Default 64. */
  concurrency?: number;
  /** Sessions evicted, then read cold. Default min(sessions, 500). */
  coldSessions?: number;
  /** Embedder used at compaction. Default `glove` (Strata's default). */
  embedder?: 'glove' | 'hash';
  /** Worker threads of the Strata core (`workers`). Default: its own default (CPUs − 1, 1 to 4). */
  workers?: number;
  /** Progress of long phases (e.g. a cli-progress bar). */
  onPhase?: (label: string, total: number) => { increment(by?: number): void; stop(): void };
}

export interface LatencyResult {
  p50Ms: number;
  p99Ms: number;
  /** With one caller. */
  singleOpsPerSec: number;
  /** With `concurrency` callers. */
  opsPerSec: number;
  concurrentP50Ms: number;
  concurrentP99Ms: number;
}

export interface HotBenchResult {
  sessions: number;
  turns: number;
  messages: number;
  recentTurns: number;
  concurrency: number;
  redis: 'private' | 'external';
  embedder: string;
  /** Worker threads of the Strata core. */
  workers: number;
  /** used_memory deltas. `langchain` is LangChain's list of the same messages (no embeddings). */
  redisBytes: { strata: number; baseline: number; langchain: number };
  /**
   * CPU time of the Redis server (INFO cpu, user + sys) per message stored: Strata's load and
   * flush (ids, confirms, compaction's reads and trims), LangChain's addMessages. On an external
   * Redis, other clients' work counts too.
   */
  redisCpuUsPerMessage: { strata: number; langchain: number };
  memoryReduction: number;
  /** Mean size of one message of the "current" design (JSON with the embedding). */
  baselineMessageBytes: number;
  recent: { strata: LatencyResult; langchain: LatencyResult & { listLength: number } };
  /** `addMessage` with durability fsync and `concurrency` writers. */
  addPerSec: number;
  add: {
    sequentialPerSec: number;
    concurrentPerSec: number;
    sequentialMessages: number;
    concurrentMessages: number;
    loadSeconds: number;
    /** The final `flush()`: waits for the compactions the load started and archives the rest. */
    flushSeconds: number;
    /** Messages per second from the first add to the end of the flush: what compaction sustains. */
    archivedPerSec: number;
    /** Times an add answered STRATA_ERR_BACKPRESSURE (compaction behind) and was retried after 20 ms. */
    backpressureRetries: number;
    /** Event-loop delay during load and flush (compaction runs in the same process): the same as `eventLoopDelay`. */
    eventLoopDelayP99Ms: number;
    eventLoopDelayMaxMs: number;
    /** LangChain's addMessages (one LPUSH per message, no durability), same concurrency. */
    langchainPerSec: number;
  };
  /** Event-loop delay of the process during the load and the flush: how late a 10 ms timer ran (bench/loop-delay.ts). */
  eventLoopDelay: LoopDelay;
  /**
   * CPU per message of Strata's load and flush (this process and the Redis server), and the
   * messages/s that cost allows on this machine's cores (bench/cpu.ts). `tokenCount`: µs for one
   * exact count of a message (gpt-tokenizer, o200k_base) on one thread, over a sample of the
   * run's messages, measured after the load: one part of `process` that every message needs.
   */
  cpuUsPerMessage: CpuBudget & { tokenCount: number };
  coldRecent: { p50Ms: number; p99Ms: number; sessions: number };
  /** Sessions whose `recent` answer was checked against the messages written (all must match). */
  verified: { strata: number; langchain: number; cold: number };
  seconds: number;
}

interface ChatTurn {
  role: Role;
  content: string;
}

// ------------------------------------------------------------------ helpers

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Runs `count` calls spread over `concurrency` callers, each awaiting its call before the next. */
async function drive(concurrency: number, count: number, call: (i: number) => Promise<unknown>, tick?: () => void): Promise<{ seconds: number; sorted: number[] }> {
  const latencies = new Array<number>(count);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        const start = performance.now();
        await call(i);
        latencies[i] = performance.now() - start;
        tick?.();
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, sorted: latencies.sort((a, b) => a - b) };
}

const noPhase = { increment() {}, stop() {} };

/** µs per exact token count of one of `texts` on this thread (a first pass warms the tokenizer up). */
function tokenCountUs(texts: readonly string[]): number {
  const tokenizer = getTokenizer();
  let tokens = 0;
  for (const t of texts) tokens += tokenizer.count(t);
  const t0 = performance.now();
  for (const t of texts) tokens -= tokenizer.count(t);
  if (tokens !== 0) throw new Error('the tokenizer counted the same texts differently twice');
  return ((performance.now() - t0) * 1000) / Math.max(1, texts.length);
}

async function loadTurns(path: string): Promise<ChatTurn[]> {
  const sessions = JSON.parse(await readFile(path, 'utf8')) as Array<{ turns?: Array<{ role?: unknown; content?: unknown }> }>;
  const pool: ChatTurn[] = [];
  for (const s of sessions) {
    for (const t of s.turns ?? []) {
      // Empty messages are rejected by every store; they carry nothing to measure.
      if (typeof t.content !== 'string' || t.content.length === 0) continue;
      const role: Role = t.role === 'assistant' || t.role === 'system' ? t.role : 'user';
      pool.push({ role, content: t.content });
    }
  }
  if (pool.length === 0) throw new Error(`${path}: no turns with content`);
  return pool;
}

/** Deterministic pseudo-random floats in [-1, 1), printed the way `JSON.stringify(Array.from(f32))` prints them. */
function embeddingJson(seed: number): string {
  const v = new Float32Array(BASELINE_EMBEDDING_DIMENSIONS);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < v.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    v[i] = x / 2 ** 31 - 1;
  }
  return JSON.stringify(Array.from(v));
}

/** A private redis-server without persistence; `stop()` ends it and removes its directory. */
async function startPrivateRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'strata-bench-redis-'));
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  try {
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s:\n${output}`)), 10_000);
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          child.stdout?.resume();
          resolve();
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot start redis-server (${err.message}); install it or pass --redis URL`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
    });
  } catch (err) {
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  child.stderr?.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type AdminClient = ReturnType<typeof createClient>;

/** A numeric field of an INFO section's text, or undefined. */
function infoField(info: string, name: string): number | undefined {
  const m = new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info);
  return m === null ? undefined : Number(m[1]);
}

/** The Redis server's CPU time so far (INFO cpu: used_cpu_user + used_cpu_sys), in µs. */
async function redisCpuUs(client: AdminClient): Promise<number> {
  const info = String(await client.sendCommand(['INFO', 'cpu']));
  const user = infoField(info, 'used_cpu_user');
  const sys = infoField(info, 'used_cpu_sys');
  if (user === undefined || sys === undefined) throw new Error('INFO cpu has no used_cpu_user / used_cpu_sys field');
  return (user + sys) * 1e6;
}

/**
 * `used_memory` without the replication backlog and the replicas' output buffers: a primary with
 * replicas fills a backlog of up to `repl-backlog-size` (1 MiB by default) while it takes writes,
 * which is the cost of replication, not of the data held.
 */
async function usedMemory(client: AdminClient): Promise<number> {
  const info = String(await client.sendCommand(['INFO', 'memory']));
  const used = infoField(info, 'used_memory');
  if (used === undefined) throw new Error('INFO memory has no used_memory field');
  return used - (infoField(info, 'mem_replication_backlog') ?? 0) - (infoField(info, 'mem_clients_slaves') ?? 0);
}

/** Deletes the keys matching `match` (a SCAN pattern): a run's own keys on a Redis that may hold other data. */
export async function deleteKeys(client: AdminClient, match: string): Promise<void> {
  // One key per UNLINK (pipelined): a cluster node refuses one command over keys of several slots.
  for await (const keys of client.scanIterator({ MATCH: match, COUNT: 1000 })) await Promise.all(keys.map((key) => client.unlink(key)));
}

// ------------------------------------------------------------------ the run

export async function runHotBench(options: HotBenchOptions = {}): Promise<HotBenchResult> {
  const started = performance.now();
  const sessions = options.sessions ?? 1000;
  const turns = options.turns ?? 200;
  const reads = options.reads ?? 2000;
  const concurrentReads = options.concurrentReads ?? reads * 4;
  const concurrency = options.concurrency ?? 64;
  const coldCount = Math.min(sessions, options.coldSessions ?? 500);
  const embedderName = options.embedder ?? 'glove';
  const phase = options.onPhase ?? (() => noPhase);
  const messages = sessions * turns;
  const recentTurns = Math.min(RECENT_TURNS, turns);

  // The LangChain baseline's packages are devDependencies: fail before any work when they are missing.
  const [{ RedisChatMessageHistory }, { AIMessage, HumanMessage, SystemMessage }] = await Promise.all([
    importOptional<typeof LangChainRedis>('@langchain/redis', 'strata bench hot'),
    importOptional<typeof LangChainMessages>('@langchain/core/messages', 'strata bench hot'),
  ]);
  const pool = await loadTurns(options.input ?? SHAREGPT);
  // Benchmark session s, turn t (0-based) is the pool's turn (s·turns + t) mod |pool|: sessions
  // walk through the file's turns, cycling when the file is shorter than sessions × turns.
  const poolIndex = (s: number, t: number): number => (s * turns + t) % pool.length;
  const turnAt = (s: number, t: number): ChatTurn => pool[poolIndex(s, t)]!;
  const sessionId = (s: number): string => `bench-${String(s).padStart(6, '0')}`;

  const privateRedis = options.redisUrl ? null : await startPrivateRedis();
  const url = options.redisUrl ?? privateRedis!.url;
  const prefix = `strata-bench-hot:${randomBytes(4).toString('hex')}:`;
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-bench-hot-'));
  const admin = createClient({ url, RESP: 2 }) as AdminClient;
  admin.on('error', () => {});
  let strata: Strata | null = null;
  let lcClient: { quit(): Promise<unknown>; isOpen: boolean } | null = null;
  try {
    await admin.connect();

    // 1. The proposal's "current" design: JSON with an embedding per message, one list per session.
    const embeddings = new Map<number, string>();
    const embeddingOf = (i: number): string => {
      let e = embeddings.get(i);
      if (e === undefined) embeddings.set(i, (e = embeddingJson(i)));
      return e;
    };
    const baseKey = (s: number): string => `${prefix}current:${sessionId(s)}`;
    const baseStart = await usedMemory(admin);
    let baselineJsonBytes = 0;
    let bar = phase('current design: RPUSH', sessions);
    for (let s = 0; s < sessions; s += 8) {
      const batch: Array<Promise<unknown>> = [];
      for (let k = s; k < Math.min(sessions, s + 8); k++) {
        const values: string[] = [];
        for (let t = 0; t < turns; t++) {
          const turn = turnAt(k, t);
          // Byte for byte what JSON.stringify({role, content, embedding: Array.from(f32), timestamp, turn_id}) prints.
          const json = `{"role":${JSON.stringify(turn.role)},"content":${JSON.stringify(turn.content)},"embedding":${embeddingOf(poolIndex(k, t))},"timestamp":${1_700_000_000_000 + t * 1000},"turn_id":${t + 1}}`;
          baselineJsonBytes += Buffer.byteLength(json);
          values.push(json);
        }
        batch.push(admin.rPush(baseKey(k), values));
      }
      await Promise.all(batch);
      bar.increment(batch.length);
    }
    bar.stop();
    embeddings.clear();
    const baselineBytes = (await usedMemory(admin)) - baseStart;
    const lengths = await Promise.all([0, sessions - 1].map((s) => admin.lLen(baseKey(s))));
    if (lengths.some((n) => n !== turns)) throw new Error(`current-design lists hold ${lengths.join(', ')} messages, expected ${turns}`);
    await deleteKeys(admin, `${prefix}current:*`);

    // 2. Strata: every message through addMessage (fsync), then flush to the steady state.
    const { createStrata } = await import('../src/strata.js');
    strata = await createStrata({
      dataDir,
      instanceId: `bench-hot-${process.pid}`,
      hot: { driver: 'redis', redisUrl: url, keyPrefix: `${prefix}strata:` },
      durability: 'fsync',
      embedder: { provider: embedderName },
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
      // Background maintenance would run in the middle of the measurements; compaction still
      // happens on the write path's threshold (every 100 unarchived turns) and on flush.
      compaction: { intervalMs: 3_600_000 },
    });
    const memory = strata;
    const strataStart = await usedMemory(admin);
    const strataCpuStart = await redisCpuUs(admin);
    const sequentialSessions = Math.max(1, Math.min(Math.floor(sessions / 10), Math.ceil(1000 / turns)));
    let backpressureRetries = 0;
    const writeSession = async (s: number): Promise<void> => {
      const id = sessionId(s);
      for (let t = 0; t < turns; t++) {
        const turn = turnAt(s, t);
        // What an application does with a 429: wait a little and retry.
        for (;;) {
          try {
            await memory.addMessage(id, turn.role, turn.content);
            break;
          } catch (err) {
            if (!(err instanceof StrataError) || err.code !== 'STRATA_ERR_BACKPRESSURE') throw err;
            backpressureRetries++;
            await sleep(20);
          }
        }
      }
    };
    const loopWatch = watchEventLoop(10);
    const cpuWatch = watchCpu();
    bar = phase('strata: addMessage (fsync)', messages);
    let t0 = performance.now();
    for (let s = 0; s < sequentialSessions; s++) {
      await writeSession(s);
      bar.increment(turns);
    }
    const sequentialSeconds = (performance.now() - t0) / 1000;
    const concurrentSessions = sessions - sequentialSessions;
    t0 = performance.now();
    await drive(concurrency, concurrentSessions, (i) => writeSession(sequentialSessions + i), () => bar.increment(turns));
    const concurrentSeconds = (performance.now() - t0) / 1000;
    bar.stop();
    t0 = performance.now();
    await memory.flush();
    const flushSeconds = (performance.now() - t0) / 1000;
    const loopDelay = loopWatch.stop();
    const strataCpuUs = (await redisCpuUs(admin)) - strataCpuStart;
    const cpuBudget = { ...cpuWatch.stop(messages, strataCpuUs), tokenCount: tokenCountUs(pool.slice(0, Math.min(messages, 4000)).map((t) => t.content)) };
    const strataBytes = (await usedMemory(admin)) - strataStart;

    // 3. LangChain.js: the same messages through RedisChatMessageHistory.addMessages.
    const lcConfig = { url };
    const histories = Array.from({ length: sessions }, (_, s) => new RedisChatMessageHistory({ sessionId: `${prefix}langchain:${sessionId(s)}`, config: lcConfig }));
    // One pooled client for every history (the pool keys clients by config object); connected
    // once up front, because concurrent first calls would each try to connect it.
    const client = histories[0]!.client as { connect(): Promise<unknown>; quit(): Promise<unknown>; isOpen: boolean; on(event: string, fn: () => void): unknown };
    client.on('error', () => {});
    await client.connect();
    lcClient = client;
    const toLangChain = (turn: ChatTurn) => (turn.role === 'assistant' ? new AIMessage(turn.content) : turn.role === 'system' ? new SystemMessage(turn.content) : new HumanMessage(turn.content));
    const lcStart = await usedMemory(admin);
    const lcCpuStart = await redisCpuUs(admin);
    bar = phase('langchain: addMessages', sessions);
    t0 = performance.now();
    await drive(
      concurrency,
      sessions,
      (s) => histories[s]!.addMessages(Array.from({ length: turns }, (_, t) => toLangChain(turnAt(s, t)))),
      () => bar.increment(),
    );
    const langchainAddSeconds = (performance.now() - t0) / 1000;
    bar.stop();
    const langchainCpuUs = (await redisCpuUs(admin)) - lcCpuStart;
    const langchainBytes = (await usedMemory(admin)) - lcStart;

    // 4. Every session's answer checked against what was written, outside the timings.
    const expectedRecent = (s: number): ChatTurn[] => Array.from({ length: recentTurns }, (_, k) => turnAt(s, turns - recentTurns + k));
    const checkStrata = async (s: number): Promise<void> => {
      const got = (await memory.getContext(sessionId(s), { type: 'recent' })).messages;
      const want = expectedRecent(s);
      const ok = got.length === want.length && got.every((m, k) => m.turnId === turns - recentTurns + k + 1 && m.role === want[k]!.role && m.content === want[k]!.content);
      if (!ok) throw new Error(`strata: recent context of ${sessionId(s)} does not match the messages written (${got.length} turns, ids ${got.map((m) => m.turnId).join(',')})`);
    };
    const lcType = { user: 'human', assistant: 'ai', system: 'system', tool: 'tool' } as const;
    let listLength = 0;
    const checkLangChain = async (s: number): Promise<void> => {
      const all = await histories[s]!.getMessages();
      listLength = all.length;
      const got = all.slice(-recentTurns);
      const want = expectedRecent(s);
      const ok = all.length === turns && got.every((m, k) => m.getType() === lcType[want[k]!.role] && m.content === want[k]!.content);
      if (!ok) throw new Error(`langchain: history of ${sessionId(s)} does not match the messages written`);
    };
    bar = phase('verifying round trips', sessions);
    await drive(concurrency, sessions, async (s) => {
      await checkStrata(s);
      await checkLangChain(s);
    }, () => bar.increment());
    bar.stop();

    // 5. recent: one caller, then `concurrency` callers, Strata and LangChain on the same sessions.
    const strataRecent = (i: number) => memory.getContext(sessionId(i % sessions), { type: 'recent' });
    const langchainRecent = async (i: number) => (await histories[i % sessions]!.getMessages()).slice(-recentTurns);
    const measure = async (name: string, call: (i: number) => Promise<unknown>): Promise<LatencyResult> => {
      const warm = Math.min(500, reads);
      await drive(1, warm, (i) => call(i + 7919));
      bar = phase(`${name}: recent, 1 caller`, reads);
      const single = await drive(1, reads, call, () => bar.increment());
      bar.stop();
      bar = phase(`${name}: recent, ${concurrency} callers`, concurrentReads);
      const many = await drive(concurrency, concurrentReads, call, () => bar.increment());
      bar.stop();
      return {
        p50Ms: percentile(single.sorted, 0.5),
        p99Ms: percentile(single.sorted, 0.99),
        singleOpsPerSec: reads / single.seconds,
        opsPerSec: concurrentReads / many.seconds,
        concurrentP50Ms: percentile(many.sorted, 0.5),
        concurrentP99Ms: percentile(many.sorted, 0.99),
      };
    };
    const strataLatency = await measure('strata', strataRecent);
    const langchainLatency = await measure('langchain', langchainRecent);

    // 6. Cold start: sessions spread over the set are evicted, then each is read once.
    const coldIds = Array.from({ length: coldCount }, (_, k) => Math.floor((k * sessions) / coldCount));
    bar = phase('evicting', coldCount);
    for (const s of coldIds) {
      const { evicted } = await memory.evictToDiskLru(sessionId(s));
      if (evicted !== 1) throw new Error(`evictToDiskLru(${sessionId(s)}) evicted ${evicted} sessions`);
      bar.increment();
    }
    bar.stop();
    bar = phase('strata: cold recent', coldCount);
    const cold = await drive(1, coldCount, (k) => checkStrata(coldIds[k]!), () => bar.increment());
    bar.stop();

    const concurrentMessages = concurrentSessions * turns;
    const sequentialMessages = sequentialSessions * turns;
    return {
      sessions,
      turns,
      messages,
      recentTurns,
      concurrency,
      redis: privateRedis ? 'private' : 'external',
      embedder: embedderName,
      workers: options.workers ?? defaultWorkerThreads(),
      redisBytes: { strata: strataBytes, baseline: baselineBytes, langchain: langchainBytes },
      redisCpuUsPerMessage: { strata: strataCpuUs / messages, langchain: langchainCpuUs / messages },
      memoryReduction: baselineBytes > 0 ? 1 - strataBytes / baselineBytes : 0,
      baselineMessageBytes: baselineJsonBytes / messages,
      recent: { strata: strataLatency, langchain: { ...langchainLatency, listLength } },
      addPerSec: concurrentMessages > 0 ? concurrentMessages / concurrentSeconds : sequentialMessages / sequentialSeconds,
      add: {
        sequentialPerSec: sequentialMessages / sequentialSeconds,
        concurrentPerSec: concurrentMessages > 0 ? concurrentMessages / concurrentSeconds : 0,
        sequentialMessages,
        concurrentMessages,
        loadSeconds: sequentialSeconds + concurrentSeconds,
        flushSeconds,
        archivedPerSec: messages / (sequentialSeconds + concurrentSeconds + flushSeconds),
        backpressureRetries,
        eventLoopDelayP99Ms: loopDelay.p99Ms,
        eventLoopDelayMaxMs: loopDelay.maxMs,
        langchainPerSec: messages / langchainAddSeconds,
      },
      eventLoopDelay: loopDelay,
      cpuUsPerMessage: cpuBudget,
      coldRecent: { p50Ms: percentile(cold.sorted, 0.5), p99Ms: percentile(cold.sorted, 0.99), sessions: coldCount },
      verified: { strata: sessions, langchain: sessions, cold: coldCount },
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await strata?.close().catch(() => undefined);
    if (lcClient?.isOpen) await lcClient.quit().catch(() => undefined);
    if (admin.isOpen) {
      // A private server is simply stopped; on a shared one only this run's keys are deleted.
      if (!privateRedis) await deleteKeys(admin, `${prefix}*`).catch(() => undefined);
      await admin.close().catch(() => undefined);
    }
    await privateRedis?.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ single primary vs Redis Cluster

export interface HotClusterBenchOptions {
  /** The cluster's nodes, `host:port,host:port` (any of them; the masters are found through CLUSTER NODES). */
  clusterNodes: string;
  /** A single primary to compare with; default: a private `redis-server` started by the benchmark. */
  redisUrl?: string;
  /** Default 200. */
  sessions?: number;
  /** Turns per session. Default 100. */
  turns?: number;
  input?: string;
  /** `recent` calls with one caller. Default 4000 (a p99 over 40 worst calls, not 20). */
  reads?: number;
  /** `recent` calls with `concurrency` callers. Default 4 × `reads`. */
  concurrentReads?: number;
  /** Default 64. */
  concurrency?: number;
  /** Default `hash`: compaction is the same for both sides and not what this run compares. */
  embedder?: 'glove' | 'hash';
  onPhase?: HotBenchOptions['onPhase'];
}

export interface HotSideResult {
  /** Σ used_memory delta over the masters, after every message was added and flushed. */
  redisBytes: number;
  masters: number;
  recent: LatencyResult;
  /** `addMessage` (fsync) with `concurrency` writers. */
  addPerSec: number;
}

export interface HotClusterBenchResult {
  sessions: number;
  turns: number;
  messages: number;
  concurrency: number;
  embedder: string;
  single: HotSideResult;
  cluster: HotSideResult;
  /** cluster recent p50 / single recent p50, one caller (and p99). */
  latencyRatio: { p50: number; p99: number; concurrentP99: number };
  /** Sessions whose `recent` answer was checked on each side. */
  verified: number;
  seconds: number;
}

/** The masters of a cluster (CLUSTER NODES through any node), as admin clients. */
async function clusterMasters(nodes: string): Promise<AdminClient[]> {
  const seed = createClient({ url: `redis://${nodes.split(',')[0]!.trim()}`, RESP: 2 }) as AdminClient;
  seed.on('error', () => {});
  await seed.connect();
  try {
    const lines = String(await seed.sendCommand(['CLUSTER', 'NODES'])).trim().split('\n');
    const masters = lines.filter((l) => l.split(' ')[2]!.split(',').includes('master') && !l.split(' ')[2]!.includes('fail')).map((l) => l.split(' ')[1]!.split('@')[0]!);
    return await Promise.all(
      masters.map(async (addr) => {
        const c = createClient({ url: `redis://${addr}`, RESP: 2 }) as AdminClient;
        c.on('error', () => {});
        await c.connect();
        return c;
      }),
    );
  } finally {
    await seed.close();
  }
}

/**
 * Strata's hot tier on a single primary and on a Redis Cluster, side by side in one run: the same
 * sessions added through `addMessage` (fsync, `concurrency` writers), flushed to the steady state,
 * every `recent` answer checked, then `recent` with one caller and with `concurrency` callers,
 * in rounds that alternate between the two sides (both stay open until the end).
 * Only Strata is measured: the baselines of `runHotBench` cannot run on a cluster (LangChain's
 * history is fine there, but the question here is what the cluster layout costs).
 */
export async function runHotClusterBench(options: HotClusterBenchOptions): Promise<HotClusterBenchResult> {
  const started = performance.now();
  const sessions = options.sessions ?? 200;
  const turns = options.turns ?? 100;
  const reads = options.reads ?? 4000;
  const concurrentReads = options.concurrentReads ?? reads * 4;
  const concurrency = options.concurrency ?? 64;
  const embedderName = options.embedder ?? 'hash';
  const phase = options.onPhase ?? (() => noPhase);
  const recentTurns = Math.min(RECENT_TURNS, turns);
  const pool = await loadTurns(options.input ?? SHAREGPT);
  const turnAt = (s: number, t: number): ChatTurn => pool[(s * turns + t) % pool.length]!;
  const sessionId = (s: number): string => `bench-${String(s).padStart(6, '0')}`;
  const { createStrata } = await import('../src/strata.js');

  interface Side {
    name: string;
    masters: number;
    strata: Awaited<ReturnType<typeof createStrata>>;
    dataDir: string;
    redisBytes: number;
    addPerSec: number;
    single: { latencies: number[]; seconds: number };
    many: { latencies: number[]; seconds: number };
  }

  /** Writes every session through `addMessage`, flushes, checks every `recent` answer. */
  const load = async (name: string, url: string, masters: AdminClient[], prefix: string, opened: Side[]): Promise<Side> => {
    const memory = async (): Promise<number> => (await Promise.all(masters.map(usedMemory))).reduce((a, b) => a + b, 0);
    const dataDir = await mkdtemp(join(tmpdir(), 'strata-bench-hot-'));
    const strata = await createStrata({
      dataDir,
      instanceId: `bench-hot-${process.pid}-${opened.length}`,
      hot: { driver: 'redis', redisUrl: url, keyPrefix: prefix },
      durability: 'fsync',
      embedder: { provider: embedderName },
      compaction: { intervalMs: 3_600_000 },
    });
    const side: Side = { name, masters: masters.length, strata, dataDir, redisBytes: 0, addPerSec: 0, single: { latencies: [], seconds: 0 }, many: { latencies: [], seconds: 0 } };
    opened.push(side);
    const before = await memory();
    let bar = phase(`${name}: addMessage (fsync)`, sessions * turns);
    const t0 = performance.now();
    await drive(concurrency, sessions, async (s) => {
      for (let t = 0; t < turns; t++) {
        const turn = turnAt(s, t);
        for (;;) {
          try {
            await strata.addMessage(sessionId(s), turn.role, turn.content);
            break;
          } catch (err) {
            if (!(err instanceof StrataError) || err.code !== 'STRATA_ERR_BACKPRESSURE') throw err;
            await sleep(20);
          }
        }
        bar.increment();
      }
    });
    side.addPerSec = (sessions * turns) / ((performance.now() - t0) / 1000);
    bar.stop();
    await strata.flush();
    side.redisBytes = (await memory()) - before;
    bar = phase(`${name}: verifying`, sessions);
    await drive(concurrency, sessions, async (s) => {
      const got = (await strata.getContext(sessionId(s), { type: 'recent' })).messages;
      const ok = got.length === recentTurns && got.every((m, k) => m.turnId === turns - recentTurns + k + 1 && m.content === turnAt(s, turns - recentTurns + k).content);
      if (!ok) throw new Error(`${name}: recent context of ${sessionId(s)} does not match the messages written`);
    }, () => bar.increment());
    bar.stop();
    return side;
  };

  /**
   * `recent` with one caller and with `concurrency` callers, measured in alternating rounds on
   * the two sides (single, cluster, single, …), so that neither side is timed while the other's
   * write burst still settles (replicas catching up, the heap of the process growing).
   */
  const measureReads = async (sides: Side[]): Promise<void> => {
    // Many short rounds: a stall of the process (a major GC, the scheduler of a busy host) delays
    // every caller in flight, so with few rounds one stall decides the p99 of whichever side it hit.
    const rounds = 16;
    for (const side of sides) {
      const call = (i: number) => side.strata.getContext(sessionId(i % sessions), { type: 'recent' });
      await drive(1, Math.min(500, reads), (i) => call(i + 7919));
    }
    const bar = phase('recent, alternating rounds', rounds * sides.length * 2);
    for (let round = 0; round < rounds; round++) {
      for (const side of sides) {
        const call = (i: number) => side.strata.getContext(sessionId((i + round * 7919) % sessions), { type: 'recent' });
        const one = await drive(1, Math.ceil(reads / rounds), call);
        side.single.latencies.push(...one.sorted);
        side.single.seconds += one.seconds;
        bar.increment();
        const many = await drive(concurrency, Math.ceil(concurrentReads / rounds), call);
        side.many.latencies.push(...many.sorted);
        side.many.seconds += many.seconds;
        bar.increment();
      }
    }
    bar.stop();
  };

  const result = (side: Side): HotSideResult => {
    const single = [...side.single.latencies].sort((a, b) => a - b);
    const many = [...side.many.latencies].sort((a, b) => a - b);
    return {
      redisBytes: side.redisBytes,
      masters: side.masters,
      recent: {
        p50Ms: percentile(single, 0.5),
        p99Ms: percentile(single, 0.99),
        singleOpsPerSec: single.length / side.single.seconds,
        opsPerSec: many.length / side.many.seconds,
        concurrentP50Ms: percentile(many, 0.5),
        concurrentP99Ms: percentile(many, 0.99),
      },
      addPerSec: side.addPerSec,
    };
  };
  const run = randomBytes(4).toString('hex');
  const prefix = `strata-bench-hot:${run}:`;
  const privateRedis = options.redisUrl ? null : await startPrivateRedis();
  const singleUrl = options.redisUrl ?? privateRedis!.url;
  const singleAdmin = createClient({ url: singleUrl, RESP: 2 }) as AdminClient;
  singleAdmin.on('error', () => {});
  let masters: AdminClient[] = [];
  try {
    await singleAdmin.connect();
    masters = await clusterMasters(options.clusterNodes);
    const sides: Side[] = [];
    let single: HotSideResult;
    let cluster: HotSideResult;
    try {
      await load('single primary', singleUrl, [singleAdmin], prefix, sides);
      await load('cluster', `redis+cluster://${options.clusterNodes}`, masters, prefix, sides);
      await measureReads(sides);
      [single, cluster] = [result(sides[0]!), result(sides[1]!)];
    } finally {
      for (const side of sides) {
        await side.strata.close().catch(() => undefined);
        await rm(side.dataDir, { recursive: true, force: true });
      }
    }
    return {
      sessions,
      turns,
      messages: sessions * turns,
      concurrency,
      embedder: embedderName,
      single,
      cluster,
      latencyRatio: {
        p50: cluster.recent.p50Ms / single.recent.p50Ms,
        p99: cluster.recent.p99Ms / single.recent.p99Ms,
        concurrentP99: cluster.recent.concurrentP99Ms / single.recent.concurrentP99Ms,
      },
      verified: sessions,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    // Only this run's keys are deleted from the cluster; a private single primary is stopped.
    for (const m of masters) {
      await deleteKeys(m, `${prefix}*`).catch(() => undefined);
      await m.close().catch(() => undefined);
    }
    if (singleAdmin.isOpen) {
      if (!privateRedis) await deleteKeys(singleAdmin, `${prefix}*`).catch(() => undefined);
      await singleAdmin.close().catch(() => undefined);
    }
    await privateRedis?.stop();
  }
}
