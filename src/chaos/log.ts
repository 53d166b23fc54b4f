/**
 * The request log: every HTTP attempt the chaos client makes (appends and their retries,
 * deletes, flushes, reads, hostile requests) and every fault, with monotonic times relative
 * to the start of the run. The checker and the report read only this log and the ledger of
 * logical writes, so a violation can always be explained from it; with a path it is also
 * written as JSONL for post-mortems.
 */
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';

export type Op = 'append' | 'delete' | 'flush' | 'read' | 'hostile';

export interface Attempt {
  readonly type: 'request';
  /** Order of the attempt in the run. */
  readonly seq: number;
  readonly op: Op;
  readonly method: string;
  /** Path and query; the instance is `instance`. */
  readonly url: string;
  readonly instance: number;
  readonly tenant: string | null;
  readonly session: string | null;
  /** Idempotency key (appends), or the hostile request's kind. */
  readonly key: string | null;
  /** 1 for the first try of a logical operation. */
  readonly attempt: number;
  readonly startMs: number;
  endMs: number;
  /** HTTP status, or null when the connection failed, was cut or timed out. */
  status: number | null;
  /** `timeout`, `refused`, `cut` or the error message. */
  error: string | null;
  turnIds: number[] | null;
  /** The error code from an error body, when there is one. */
  code: string | null;
}

export interface FaultEvent {
  readonly type: 'fault';
  readonly seq: number;
  readonly kind: FaultKind;
  readonly instance: number | null;
  readonly startMs: number;
  /** When the fault was lifted (restart ready, SIGCONT, Redis back); null if instantaneous. */
  endMs: number | null;
  /** What the fault did, completed when it ends (e.g. how many connections it terminated). */
  note: string;
}

export type FaultKind = 'sigkill' | 'sigstop' | 'flushall' | 'redisRestart' | 'flushallWhileDown' | 'finalRestart' | 'retire' | 'pgTerminate' | 'diskFull';

export class RunLog {
  readonly attempts: Attempt[] = [];
  readonly faults: FaultEvent[] = [];
  private seq = 0;
  private readonly t0 = performance.now();
  private readonly sink: WriteStream | null;

  constructor(jsonlPath?: string) {
    this.sink = jsonlPath ? createWriteStream(jsonlPath) : null;
  }

  now(): number {
    return Math.round((performance.now() - this.t0) * 10) / 10;
  }

  begin(fields: Omit<Attempt, 'type' | 'seq' | 'startMs' | 'endMs' | 'status' | 'error' | 'turnIds' | 'code'>): Attempt {
    const a: Attempt = { type: 'request', seq: this.seq++, ...fields, startMs: this.now(), endMs: -1, status: null, error: null, turnIds: null, code: null };
    this.attempts.push(a);
    return a;
  }

  end(a: Attempt): void {
    a.endMs = this.now();
    this.write(a);
  }

  fault(kind: FaultKind, instance: number | null, note = ''): FaultEvent {
    const f: FaultEvent = { type: 'fault', seq: this.seq++, kind, instance, startMs: this.now(), endMs: null, note };
    this.faults.push(f);
    return f;
  }

  faultEnded(f: FaultEvent, outcome?: string): void {
    f.endMs = this.now();
    if (outcome !== undefined) f.note = f.note ? `${f.note}; ${outcome}` : outcome;
    this.write(f);
  }

  /** One line for a human: what, where, when, what came back. */
  static describe(e: Attempt | FaultEvent): string {
    if (e.type === 'fault') return `t=${e.startMs}ms FAULT ${e.kind}${e.instance !== null ? ` instance ${e.instance}` : ''}${e.endMs !== null ? ` until t=${e.endMs}ms` : ''}${e.note ? ` (${e.note})` : ''}`;
    const answer = e.status !== null ? `${e.status}${e.code ? ` ${e.code}` : ''}` : `no answer (${e.error})`;
    return `t=${e.startMs}..${e.endMs}ms ${e.method} ${e.url} → instance ${e.instance}${e.key ? ` key=${e.key}` : ''} try ${e.attempt}: ${answer}${e.turnIds ? ` turnIds=[${e.turnIds.join(',')}]` : ''}`;
  }

  private write(e: Attempt | FaultEvent): void {
    this.sink?.write(`${JSON.stringify(e)}\n`);
  }

  async close(): Promise<void> {
    const sink = this.sink;
    if (sink === null) return;
    await new Promise<void>((resolve) => sink.end(() => resolve()));
  }
}
