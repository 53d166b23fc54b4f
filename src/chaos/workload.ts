/**
 * The client side of a chaos run: concurrent writers on a bounded set of sessions (several
 * writers per session), deletes under fire, and a stream of hostile requests, all at random
 * instances. Every logical write carries an Idempotency-Key and unique content (writer id +
 * sequence), and is retried with the same key after a timeout, a cut connection or an outage
 * answer, possibly on another instance. The ledger records what was sent and what was
 * acknowledged; the checker compares it with what the cluster stores.
 */
import type { StrataInstance, Tenant } from './cluster.js';
import { serving } from './cluster.js';
import { acceptableHostileStatus, hostileRequests } from './hostile.js';
import type { RunLog } from './log.js';
import { isSuccess, retryable, send } from './http.js';
import type { Rng } from './prng.js';
import { sleep } from './prng.js';

export interface SessionRef {
  readonly tenant: Tenant;
  readonly id: string;
}

export const sessionKey = (s: { tenant: Tenant | string; id: string }): string => `${typeof s.tenant === 'string' ? s.tenant : s.tenant.name}/${s.id}`;

/** A message as sent: text, or an agent's tool call and its result (docs/messages.md). */
export interface SentMessage {
  readonly role: 'user' | 'assistant' | 'tool';
  readonly content: string | null;
  readonly tool_calls?: ReadonlyArray<{ id: string; type: 'function'; function: { name: string; arguments: string } }>;
  readonly tool_call_id?: string;
}

/**
 * What names a message in the checker: its message fields as JSON. Every message the workload
 * sends is unique (its text or its tool call ids carry the writer and sequence number).
 */
export function messageIdentity(m: { role: string; content: unknown; tool_calls?: unknown; tool_call_id?: unknown }): string {
  return JSON.stringify([m.role, m.content, m.tool_calls ?? null, m.tool_call_id ?? null]);
}

/**
 * One attempt of a write as the server may have seen it. The server can go on processing a
 * request after its client gave up (a paused instance resumes and runs it; nothing tells a
 * handler its client left), so an unanswered attempt may act long after its `endMs`.
 */
export interface WriteTry {
  instance: number;
  startMs: number;
  endMs: number;
  /** An HTTP answer came back: the server's work on it ended by `endMs`. */
  answered: boolean;
  /** The answer was 2xx: whatever ids the attempt took were confirmed before it. */
  ok: boolean;
  /** The request may have reached a server (false: refused, or never sent). */
  reached: boolean;
}

/** One logical append (one key), across all its attempts. */
export interface LogicalWrite {
  readonly key: string;
  readonly session: SessionRef;
  readonly messages: SentMessage[];
  readonly firstStartMs: number;
  lastEndMs: number;
  attempts: number;
  /** Set when an attempt answered 2xx with turn ids for every message. */
  ackMs: number | null;
  turnIds: number[] | null;
  /** A 4xx that retrying cannot change (a bug for a well-formed write), or the last failure. */
  finalError: string | null;
  /** Every attempt, for the checker's model of when a server may have acted on this write. */
  tries?: WriteTry[];
}

export interface DeleteOp {
  readonly session: SessionRef;
  readonly startMs: number;
  endMs: number;
  /** Answered 2xx (or 404: nothing to delete) by some attempt. */
  acked: boolean;
}

export interface WorkloadOptions {
  writers: number;
  sessions: SessionRef[];
  timeoutMs: number;
  maxAttempts: number;
  /** Mean pause between two deletes (each of a random session); null: no deletes. */
  deleteEveryMs: number | null;
  hostile: { count: number; durationMs: number; seed: number } | null;
}

/** Parallel hostile streams: one stuck on a paused instance must not starve the count. */
const HOSTILE_LANES = 4;

export class Workload {
  readonly writes: LogicalWrite[] = [];
  readonly deletes: DeleteOp[] = [];
  hostileSent = 0;
  /** Hostile requests that got an HTTP answer (the others met a down or paused instance). */
  hostileAnswered = 0;
  hostileUnexpected = 0;
  private stopping = false;
  private tasks: Promise<void>[] = [];

  constructor(
    private readonly log: RunLog,
    private readonly instances: StrataInstance[],
    private readonly rng: Rng,
    private readonly options: WorkloadOptions,
  ) {}

  start(): void {
    for (let w = 0; w < this.options.writers; w++) this.tasks.push(this.writer(w));
    if (this.options.deleteEveryMs !== null) this.tasks.push(this.deleter(this.options.deleteEveryMs));
    if (this.options.hostile) for (let lane = 0; lane < HOSTILE_LANES; lane++) this.tasks.push(this.hostile(lane, HOSTILE_LANES));
  }

  /** Stops issuing new operations and waits for those in flight to finish their retries. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.tasks);
  }

  private async writer(w: number): Promise<void> {
    const rng = this.rng.fork(`writer-${w}`);
    for (let n = 0; !this.stopping; n++) {
      const session = rng.pick(this.options.sessions);
      const size = rng.chance(0.6) ? 1 : rng.int(2, 4);
      // Unique content: the writer, its sequence number and the message's place in the batch
      // name the message; the filler varies the size so segments and pages differ.
      const messages: SentMessage[] = rng.chance(0.2)
        ? toolRound(w, n, rng.int(1, 3), rng)
        : Array.from({ length: size }, (_, j) => ({
            role: (n + j) % 2 === 0 ? 'user' : 'assistant',
            content: `w${w} n${n} m${j} ${'lorem ipsum '.repeat(rng.int(0, 20))}`.trimEnd(),
          }));
      const single = messages.length === 1 && rng.chance(0.7);
      const body = JSON.stringify(single ? messages[0] : { messages });
      await this.append({ key: `chaos-${this.rng.seed}-w${w}-n${n}`, session, messages, firstStartMs: this.log.now(), lastEndMs: -1, attempts: 0, ackMs: null, turnIds: null, finalError: null, tries: [] }, body, rng);
      await sleep(rng.int(0, 15));
    }
  }

  private async append(write: LogicalWrite, body: string, rng: Rng): Promise<void> {
    this.writes.push(write);
    for (let attempt = 1; attempt <= this.options.maxAttempts; attempt++) {
      const { attempt: a } = await send(this.log, {
        op: 'append',
        method: 'POST',
        path: `/v1/sessions/${write.session.id}/messages`,
        instance: rng.pick(serving(this.instances)),
        tenant: write.session.tenant,
        session: write.session.id,
        key: write.key,
        attempt,
        headers: { 'content-type': 'application/json', 'idempotency-key': write.key },
        body,
        timeoutMs: this.options.timeoutMs,
      });
      write.attempts = attempt;
      write.lastEndMs = a.endMs;
      const reached = a.status !== null || !(a.error === 'refused' || (a.error ?? '').startsWith('unsendable'));
      (write.tries ??= []).push({ instance: a.instance, startMs: a.startMs, endMs: a.endMs, answered: a.status !== null, ok: isSuccess(a), reached });
      if (isSuccess(a)) {
        if (a.turnIds !== null && a.turnIds.length === write.messages.length) {
          write.ackMs = a.endMs;
          write.turnIds = a.turnIds;
          write.finalError = null;
        } else write.finalError = `2xx without ${write.messages.length} turn ids`;
        return;
      }
      write.finalError = a.status !== null ? `${a.status} ${a.code ?? ''}`.trim() : (a.error ?? 'no answer');
      if (!retryable(a)) return;
      // Exponential backoff with jitter, capped: outages last seconds, not minutes.
      await sleep(Math.min(800, 25 * 2 ** attempt) * (0.5 + rng.float()));
    }
  }

  private async deleter(everyMs: number): Promise<void> {
    const rng = this.rng.fork('deleter');
    for (;;) {
      // Sleep in slices so stop() does not wait out a whole pause.
      const pause = rng.int(everyMs / 2, (everyMs * 3) / 2);
      for (let slept = 0; slept < pause && !this.stopping; slept += 100) await sleep(100);
      if (this.stopping) return;
      const session = rng.pick(this.options.sessions);
      const op: DeleteOp = { session, startMs: this.log.now(), endMs: -1, acked: false };
      this.deletes.push(op);
      // A delete is retried until answered: its effect window is [first try, answer], and an
      // unanswered delete would leave that window open.
      for (let attempt = 1; attempt <= this.options.maxAttempts * 2; attempt++) {
        const { attempt: a } = await send(this.log, {
          op: 'delete',
          method: 'DELETE',
          path: `/v1/sessions/${session.id}`,
          instance: rng.pick(serving(this.instances)),
          tenant: session.tenant,
          session: session.id,
          key: null,
          attempt,
          timeoutMs: this.options.timeoutMs * 2,
        });
        op.endMs = a.endMs;
        if (isSuccess(a) || a.status === 404) {
          op.acked = true;
          break;
        }
        if (!retryable(a)) break;
        await sleep(Math.min(800, 25 * 2 ** attempt) * (0.5 + rng.float()));
      }
    }
  }

  /** Hostile requests in `lanes` parallel lanes, paced to spread `count` over `durationMs`. */
  private async hostile(lane: number, lanes: number): Promise<void> {
    const spec = this.options.hostile;
    if (spec === null) return;
    const rng = this.rng.fork(`hostile-${lane}`);
    const tenants = [...new Set(this.options.sessions.map((s) => s.tenant))];
    const own = tenants[lane % tenants.length]!;
    const other = tenants[(lane + 1) % tenants.length]!;
    const requests = hostileRequests(spec.seed + lane, Math.ceil(spec.count / lanes), {
      // Hostile sessions never collide with the checked ones (`chaos-s…`).
      sessionPrefix: `hostile-${lane}-`,
      authHeader: { authorization: `Bearer ${own.key}` },
      otherTenantAuthHeader: { authorization: `Bearer ${other.key}` },
      // The instances run with the default 1 MiB body limit; 64 MiB bodies would only load the machine.
      bodyLimitBytes: 1024 * 1024,
    });
    const gapMs = spec.durationMs / Math.max(1, requests.length);
    // Every generated request is sent: paced over the fault phase, and whatever is left when
    // the phase ends goes out at once (the count is part of what the run promises).
    for (const req of requests) {
      const started = performance.now();
      const { attempt: a } = await send(this.log, {
        op: 'hostile',
        method: req.method,
        path: req.url,
        instance: rng.pick(serving(this.instances)),
        tenant: null,
        session: null,
        key: req.kind,
        attempt: 1,
        headers: req.headers,
        ...(req.body !== undefined ? { body: req.body } : {}),
        timeoutMs: this.options.timeoutMs,
      });
      if (a.error === null || !a.error.startsWith('unsendable')) this.hostileSent++;
      if (a.status !== null) this.hostileAnswered++;
      if (a.status !== null && a.status !== 503 && !acceptableHostileStatus(a.status)) this.hostileUnexpected++;
      const wait = gapMs - (performance.now() - started);
      if (wait > 0 && !this.stopping) await sleep(wait);
    }
  }
}

/** An agent's step: an assistant turn that only calls `calls` tools, then one result per call. */
function toolRound(w: number, n: number, calls: number, rng: Rng): SentMessage[] {
  const ids = Array.from({ length: calls }, (_, k) => `call-w${w}-n${n}-${k}`);
  return [
    { role: 'assistant', content: null, tool_calls: ids.map((id, k) => ({ id, type: 'function', function: { name: `tool_${k}`, arguments: JSON.stringify({ w, n, k, pad: 'x'.repeat(rng.int(0, 40)) }) } })) },
    ...ids.map((id): SentMessage => ({ role: 'tool', tool_call_id: id, content: `result of ${id} ${'data '.repeat(rng.int(0, 10))}`.trimEnd() })),
  ];
}
