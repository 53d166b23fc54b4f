/**
 * The run's result: counts of requests, acknowledgements, violations per invariant, server
 * errors, faults by kind and recovery times, as a table for people and as JSON for machines,
 * plus each violation with the events that led to it, drawn from the request log.
 */
import type { Violation, ViolationKind } from './checker.js';
import type { Attempt, FaultEvent, RunLog } from './log.js';
import { RunLog as Log } from './log.js';
import type { Workload } from './workload.js';

export interface ChaosReport {
  seed: number;
  instances: number;
  durationMs: number;
  /** Where journals and archive lived. */
  store: 'fs' | 'postgres';
  requests: number;
  /** Logical writes answered 2xx with their turn ids, and the messages they carried. */
  acknowledged: number;
  acknowledgedMessages: number;
  /** Writes never acknowledged after every retry: each may be stored once or not at all. */
  unacknowledged: number;
  deletes: number;
  /**
   * Well-formed writes refused for good (a 4xx other than 409/429, e.g. 422 for a retry with
   * the same key and body) or answered 2xx without their turn ids: the client cannot proceed.
   */
  rejectedWrites: number;
  lost: number;
  duplicated: number;
  conflicts: number;
  resurrected: number;
  gaps: number;
  foreign: number;
  readErrors: number;
  /** 5xx answers other than 503, from any request, hostile ones included. */
  serverErrors: number;
  /** 503 answers: an instance said it could not serve (closing, hot store down, recovering). */
  outageAnswers: number;
  /** The 503s that said the disk was full (STRATA_ERR_STORAGE_FULL). */
  storageFullAnswers: number;
  /** Sent (fetch accepted them), answered (an instance was there), answered outside 2xx/4xx/503. */
  hostile: { sent: number; answered: number; unexpected: number };
  /** Restarts that failed (the instance did not become ready). */
  startFailures: number;
  faults: Record<string, number>;
  /**
   * Instances killed for good: their journal rows pending right after the kill, and those of
   * the checked sessions still there once every session was flushed (postgres; null on fs).
   */
  retired: Array<{ index: number; id: string; pendingRowsAtKill: number | null; rowsAfterFlush: number | null }>;
  /** postgres: files the instances wrote into their working directory (they have no data directory). */
  strayFiles: string[];
  recoveryMs: { p50: number | null; p99: number | null; max: number | null };
  violations: Array<Violation & { events: string[] }>;
  startFailureOutput: string[];
  ok: boolean;
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** From each fault (a full disk: from when space returned) to the first append that was sent after it and acknowledged. */
function recoveryTimes(log: RunLog): number[] {
  const acks = log.attempts.filter((a) => a.op === 'append' && a.status !== null && a.status >= 200 && a.status < 300).sort((a, b) => a.startMs - b.startMs);
  const out: number[] = [];
  for (const f of log.faults) {
    if (f.kind === 'finalRestart') continue;
    const from = f.kind === 'diskFull' ? (f.endMs ?? f.startMs) : f.startMs;
    const first = acks.find((a) => a.startMs >= from);
    if (first) out.push(Math.round(first.endMs - from));
  }
  return out.sort((a, b) => a - b);
}

/** The attempts of the writes involved, the deletes of the session and the faults around them. */
function explain(v: Violation, log: RunLog): string[] {
  const [tenant, session] = v.session.split('/');
  const keys = new Set(v.keys);
  const own = log.attempts.filter((a) => (a.op === 'append' && keys.has(a.key ?? '')) || (a.op === 'delete' && a.tenant === tenant && a.session === session));
  const relevant: Array<Attempt | FaultEvent> = [...own];
  const keyed = own.filter((a) => a.op === 'append');
  if (keyed.length > 0) {
    const from = Math.min(...keyed.map((a) => a.startMs)) - 3_000;
    const to = Math.max(...keyed.map((a) => a.endMs)) + 3_000;
    relevant.push(...log.faults.filter((f) => f.startMs <= to && (f.endMs ?? f.startMs) >= from));
  } else relevant.push(...log.faults);
  return relevant.sort((a, b) => a.startMs - b.startMs).slice(0, 40).map((e) => Log.describe(e));
}

export function buildReport(args: {
  seed: number;
  instances: number;
  durationMs: number;
  store: ChaosReport['store'];
  log: RunLog;
  workload: Workload;
  violations: Violation[];
  faults: Record<string, number>;
  startFailures: string[];
  retired: ChaosReport['retired'];
  strayFiles: string[];
}): ChaosReport {
  const { log, workload } = args;
  // The same violation seen in both read-back phases counts once.
  const distinct = new Map<string, Violation>();
  for (const v of args.violations) if (!distinct.has(`${v.kind}|${v.session}|${v.subject}`)) distinct.set(`${v.kind}|${v.session}|${v.subject}`, v);
  const count = (kind: ViolationKind): number => [...distinct.values()].filter((v) => v.kind === kind).length;
  const acked = workload.writes.filter((w) => w.ackMs !== null);
  const recovery = recoveryTimes(log);
  const report: ChaosReport = {
    seed: args.seed,
    instances: args.instances,
    durationMs: args.durationMs,
    store: args.store,
    requests: log.attempts.length,
    acknowledged: acked.length,
    acknowledgedMessages: acked.reduce((n, w) => n + w.messages.length, 0),
    unacknowledged: workload.writes.length - acked.length,
    deletes: workload.deletes.length,
    rejectedWrites: workload.writes.filter((w) => w.ackMs === null && w.finalError !== null && /^(2xx|4(?!09|29)\d\d)/.test(w.finalError)).length,
    lost: count('lost'),
    duplicated: count('duplicated'),
    conflicts: count('conflict'),
    resurrected: count('resurrected'),
    gaps: count('gap'),
    foreign: count('foreign'),
    readErrors: count('readError'),
    serverErrors: log.attempts.filter((a) => a.status !== null && a.status >= 500 && a.status !== 503).length,
    outageAnswers: log.attempts.filter((a) => a.status === 503).length,
    storageFullAnswers: log.attempts.filter((a) => a.status === 503 && a.code === 'STRATA_ERR_STORAGE_FULL').length,
    hostile: { sent: workload.hostileSent, answered: workload.hostileAnswered, unexpected: workload.hostileUnexpected },
    startFailures: args.startFailures.length,
    faults: args.faults,
    retired: args.retired,
    strayFiles: args.strayFiles,
    recoveryMs: { p50: percentile(recovery, 50), p99: percentile(recovery, 99), max: recovery.at(-1) ?? null },
    violations: [...distinct.values()].map((v) => ({ ...v, events: explain(v, log) })),
    startFailureOutput: args.startFailures,
    ok: false,
  };
  report.ok = report.rejectedWrites + report.lost + report.duplicated + report.conflicts + report.resurrected + report.gaps + report.foreign + report.readErrors + report.serverErrors + report.hostile.unexpected + report.startFailures + report.strayFiles.length === 0;
  return report;
}

/** Server errors by route and code, for the report's detail section. */
export function serverErrorSummary(log: RunLog): string[] {
  const counts = new Map<string, number>();
  for (const a of log.attempts) {
    if (a.status === null || a.status < 500 || a.status === 503) continue;
    const what = `${a.status} ${a.code ?? '(no code)'} on ${a.method} ${a.op === 'hostile' ? `hostile ${a.key}` : a.op}`;
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([what, n]) => `${n} × ${what}`);
}

export function formatReport(r: ChaosReport, serverErrors: string[], maxExamples = 3): string {
  const rows: Array<[string, string | number]> = [
    ['requests', r.requests],
    ['acknowledged writes (messages)', `${r.acknowledged} (${r.acknowledgedMessages})`],
    ['unacknowledged writes', r.unacknowledged],
    ['deletes', r.deletes],
    ['rejected writes', r.rejectedWrites],
    ['lost', r.lost],
    ['duplicated', r.duplicated],
    ['id conflicts', r.conflicts],
    ['resurrected', r.resurrected],
    ['unexplained gaps', r.gaps],
    ['foreign content', r.foreign],
    ['read errors', r.readErrors],
    ['5xx (not 503)', r.serverErrors],
    ['503 outage answers', r.outageAnswers],
    ...(r.faults.diskFull ? [['503 disk full (of those)', r.storageFullAnswers] as [string, number]] : []),
    ['hostile sent / answered / unexpected', `${r.hostile.sent} / ${r.hostile.answered} / ${r.hostile.unexpected}`],
    ['failed restarts', r.startFailures],
    ...Object.entries(r.faults).map(([k, v]): [string, number] => [`faults: ${k}`, v]),
    ...r.retired.map((x): [string, string] => [`retired instance ${x.index}: journal rows at kill / after flush`, `${x.pendingRowsAtKill ?? '-'} / ${x.rowsAfterFlush ?? '-'}`]),
    ...(r.store === 'postgres' ? [['files written without a data directory', r.strayFiles.length] as [string, number]] : []),
    ['recovery p50 / p99 / max (ms)', `${r.recoveryMs.p50 ?? '-'} / ${r.recoveryMs.p99 ?? '-'} / ${r.recoveryMs.max ?? '-'}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const vwidth = Math.max(...rows.map(([, v]) => String(v).length));
  let out = `chaos: seed ${r.seed}, ${r.instances} instances, ${r.store} store, ${Math.round(r.durationMs / 1000)} s of faults: ${r.ok ? 'every invariant held' : 'INVARIANTS VIOLATED'}\n`;
  out += `| ${'metric'.padEnd(width)} | ${'value'.padStart(vwidth)} |\n|${'-'.repeat(width + 2)}|${'-'.repeat(vwidth + 2)}|\n`;
  for (const [k, v] of rows) out += `| ${k.padEnd(width)} | ${String(v).padStart(vwidth)} |\n`;
  if (serverErrors.length > 0) out += `\nserver errors:\n${serverErrors.map((s) => `  ${s}`).join('\n')}\n`;
  const byKind = new Map<string, Array<ChaosReport['violations'][number]>>();
  for (const v of r.violations) byKind.set(v.kind, [...(byKind.get(v.kind) ?? []), v]);
  for (const [kind, list] of byKind) {
    out += `\n${kind}: ${list.length}\n`;
    for (const v of list.slice(0, maxExamples)) out += `  [${v.phase}] ${v.session}: ${v.detail}\n${v.events.map((e) => `      ${e}`).join('\n')}\n`;
  }
  if (r.strayFiles.length > 0) out += `\nfiles written by instances without a data directory: ${r.strayFiles.slice(0, 20).join(', ')}\n`;
  // The first line says what failed; the end of the process output says why.
  for (const f of r.startFailureOutput.slice(0, maxExamples)) out += `\nfailed restart: ${f.split('\n')[0]}\n  …${f.slice(-1_500)}\n`;
  return out;
}
