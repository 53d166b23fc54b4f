/**
 * A whole chaos run: start the cluster, run the workload while the scheduler injects faults,
 * stop the faults, bring every instance up (but the retired ones), flush and read every session
 * back and check the invariants; then restart every instance with Redis flushed while they are
 * down, so the data can only come back from journals and archive, and check again.
 */
import { Cluster, TENANTS } from './cluster.js';
import type { ChaosStore, ServeEntry } from './cluster.js';
import { check } from './checker.js';
import type { Loss, Stop, Violation } from './checker.js';
import type { FaultCounts } from './faults.js';
import { FaultScheduler, planFaults } from './faults.js';
import { RunLog } from './log.js';
import { Rng, sleep } from './prng.js';
import { flushSession, readSession } from './readback.js';
import type { ReadResult } from './readback.js';
import { buildReport, formatReport, serverErrorSummary } from './report.js';
import type { ChaosReport } from './report.js';
import { Workload, sessionKey } from './workload.js';
import type { SessionRef } from './workload.js';

export interface ChaosOptions {
  seed: number;
  instances: number;
  /** How long the workload runs under faults. */
  durationMs: number;
  entry: ServeEntry;
  /** Where journals and archive live; default fs (one shared data directory). */
  store?: ChaosStore;
  /** Faults to inject; default: proportional to the duration (see defaultFaultCounts). */
  faults?: FaultCounts;
  /** Hostile requests over the duration; default 15 per second. */
  hostile?: number;
  writers?: number;
  sessions?: number;
  /** Client timeout of one attempt. */
  timeoutMs?: number;
  maxAttempts?: number;
  leaseTtlMs?: number;
  /** Mean pause between deletes; null: no deletes. Default 3 s. */
  deleteEveryMs?: number | null;
  /** Writes every request and fault as JSONL. */
  logPath?: string;
  /** Progress lines (phase changes), for a person watching. */
  progress?: (line: string) => void;
}

export interface ChaosResult {
  report: ChaosReport;
  /** The table, the server errors and each violation with its events. */
  text: string;
}

/** Size of the data directory's tmpfs in a run with full-disk faults. */
export const CHAOS_DISK_MIB = 1024;

/** Whether this process may mount the tmpfs that full-disk faults fill. */
export const canMountDisk = (): boolean => process.platform === 'linux' && process.getuid?.() === 0;

/**
 * About one kill per 6.5 s, a pause per 25 s, a FLUSHALL and a Redis restart per 40 s; on the
 * fs store a full disk per 50 s when this process may mount a tmpfs (root); on the postgres
 * store one instance killed for good and every PostgreSQL connection terminated once per 20 s.
 */
export function defaultFaultCounts(durationMs: number, store: ChaosStore['driver'] = 'fs', diskFaults = canMountDisk()): FaultCounts {
  return {
    sigkill: Math.max(1, Math.round(durationMs / 6_500)),
    sigstop: Math.max(1, Math.ceil(durationMs / 25_000)),
    flushall: Math.max(1, Math.ceil(durationMs / 40_000)),
    redisRestart: Math.max(1, Math.ceil(durationMs / 40_000)),
    ...(store === 'postgres' ? { retire: 1, pgTerminate: Math.max(1, Math.ceil(durationMs / 20_000)) } : {}),
    ...(store === 'fs' && diskFaults ? { diskFull: Math.max(1, Math.ceil(durationMs / 50_000)) } : {}),
  };
}

/** The hot tier's losses in the log: FLUSHALLs and Redis restarts, each from start to end. */
export function lossesOf(log: RunLog): Loss[] {
  return log.faults.filter((f) => f.kind === 'flushall' || f.kind === 'redisRestart' || f.kind === 'flushallWhileDown').map((f) => ({ startMs: f.startMs, endMs: f.endMs ?? f.startMs }));
}

/** Every SIGKILL in the log, per instance (the final restart kills all of them). */
export function stopsOf(log: RunLog, instances: number): Stop[] {
  const stops: Stop[] = [];
  for (const f of log.faults) {
    if ((f.kind === 'sigkill' || f.kind === 'retire') && f.instance !== null) stops.push({ instance: f.instance, atMs: f.startMs });
    if (f.kind === 'finalRestart') for (let i = 0; i < instances; i++) stops.push({ instance: i, atMs: f.startMs });
  }
  return stops;
}

/** Flushes (when asked) and reads back every session, each page from a random serving instance. */
export async function readAll(log: RunLog, cluster: Cluster, rng: Rng, sessions: SessionRef[], flush: boolean, timeoutMs: number): Promise<{ stored: Map<string, ReadResult>; errors: Violation[] }> {
  const stored = new Map<string, ReadResult>();
  const errors: Violation[] = [];
  for (const session of sessions) {
    if (flush) {
      const err = await flushSession(log, cluster.instances, rng, session, timeoutMs);
      if (err !== null) errors.push({ kind: 'readError', session: sessionKey(session), subject: 'flush', detail: err, keys: [], phase: 'flush' });
    }
    stored.set(sessionKey(session), await readSession(log, cluster.instances, rng, session, timeoutMs));
  }
  return { stored, errors };
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const rng = new Rng(options.seed);
  const leaseTtlMs = options.leaseTtlMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 2_500;
  const store = options.store ?? { driver: 'fs' };
  const counts = options.faults ?? defaultFaultCounts(options.durationMs, store.driver);
  const log = new RunLog(options.logPath);
  const progress = (line: string): void => options.progress?.(`t=${Math.round(log.now() / 1000)}s ${line}`);
  progress(`starting redis-server and ${options.instances} instances (${options.entry}, ${store.driver} store)`);
  const cluster = await Cluster.start({ instances: options.instances, entry: options.entry, leaseTtlMs, store, ...(store.driver === 'fs' && (counts.diskFull ?? 0) > 0 ? { diskMiB: CHAOS_DISK_MIB } : {}) });
  try {
    const sessions: SessionRef[] = Array.from({ length: options.sessions ?? 24 }, (_, i) => ({ tenant: TENANTS[i % TENANTS.length]!, id: `chaos-s${i}` }));
    const workload = new Workload(log, cluster.instances, rng.fork('workload'), {
      writers: options.writers ?? 16,
      sessions,
      timeoutMs,
      maxAttempts: options.maxAttempts ?? 8,
      deleteEveryMs: options.deleteEveryMs === undefined ? 3_000 : options.deleteEveryMs,
      hostile: { count: options.hostile ?? Math.round((options.durationMs * 15) / 1000), durationMs: options.durationMs * 0.95, seed: options.seed },
    });
    const plan = planFaults(rng.fork('plan'), counts, options.durationMs, leaseTtlMs, options.instances);
    const scheduler = new FaultScheduler(cluster, log);
    progress(`workload and faults for ${Math.round(options.durationMs / 1000)} s: ${JSON.stringify(counts)}`);
    const phaseStart = log.now();
    workload.start();
    await scheduler.run(plan);
    const rest = phaseStart + options.durationMs - log.now();
    if (rest > 0) await sleep(rest);
    await workload.stop();

    progress('faults over: every instance up, flush and read back');
    const startFailures = [...scheduler.startFailures, ...(await cluster.ensureAllUp())];
    // Idle: background compaction and recovery settle before the read-back.
    await sleep(1_000);
    const readRng = rng.fork('read');
    const first = await readAll(log, cluster, readRng, sessions, true, timeoutMs * 4);
    const losses = lossesOf(log);
    const violations = [...first.errors, ...check({ phase: 'after faults', writes: workload.writes, deletes: workload.deletes, stored: first.stored, losses, stops: stopsOf(log, cluster.instances.length) })];
    // Every session was flushed: the turns a retired instance journaled were archived by the
    // others, and the archive commit removed its rows (postgres) — or they would still be here.
    const ids = sessions.map((s) => s.id);
    const retired = await Promise.all(scheduler.retired.map(async (r) => ({ ...r, rowsAfterFlush: (await cluster.postgres?.pendingRows(r.id, ids)) ?? null })));

    progress('final restart of every instance with FLUSHALL while they are down, read back again');
    const final = log.fault('finalRestart', null, 'SIGKILL all, FLUSHALL, start all');
    await Promise.all(cluster.instances.map((inst) => inst.kill()));
    await cluster.redis.flushall();
    startFailures.push(...(await cluster.ensureAllUp()));
    log.faultEnded(final);
    const second = await readAll(log, cluster, readRng, sessions, false, timeoutMs * 4);
    violations.push(...second.errors, ...check({ phase: 'after restart + FLUSHALL', writes: workload.writes, deletes: workload.deletes, stored: second.stored, losses, stops: stopsOf(log, cluster.instances.length) }));
    const strayFiles = await cluster.strayFiles();

    const report = buildReport({ seed: options.seed, instances: options.instances, durationMs: options.durationMs, store: store.driver, log, workload, violations, faults: scheduler.counts, startFailures, retired, strayFiles });
    return { report, text: formatReport(report, serverErrorSummary(log)) };
  } finally {
    await cluster.stop();
    await log.close();
  }
}
