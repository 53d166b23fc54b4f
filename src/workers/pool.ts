import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { StrataError } from '../errors.js';
import type { PrepareResult, PrepareTask, SummarizeResult, SummarizeTask, WorkerTask } from './prepare.js';

/**
 * Most threads the default gives: each holds its own BPE ranks and GloVe table (~95 MB resident),
 * and more threads than this rarely help one instance (scale out with instances instead).
 */
export const MAX_DEFAULT_WORKER_THREADS = 4;

/** Worker threads when the configuration names none: every core but the request thread's, 1 to 4. */
export function defaultWorkerThreads(): number {
  return Math.min(MAX_DEFAULT_WORKER_THREADS, Math.max(1, availableParallelism() - 1));
}

/**
 * The worker module beside this one: `prepare-worker.ts` when Strata runs from its sources
 * (through tsx), `prepare-worker.js` from the build.
 */
export const PREPARE_WORKER_URL = new URL(`./prepare-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export interface PreparePoolOptions {
  /** Worker threads (at least 1). */
  threads: number;
  /** Tasks that may wait for a thread; a caller beyond that waits for room (backpressure). Default 2 × threads. */
  maxQueue?: number;
  /** Worker module. Default {@link PREPARE_WORKER_URL}; tests pass a fault-injecting wrapper. */
  workerUrl?: URL;
}

/**
 * Who waits: `read` (a request waiting for token counts) goes before `compaction` (background
 * work), both in the queue and for room in it.
 */
export type PrepareLane = 'read' | 'compaction';

export type PrepareOutput = Exclude<PrepareResult, { error: unknown }>;
export type SummarizeOutput = Exclude<SummarizeResult, { error: unknown }>;

export interface PreparePoolStats {
  threads: number;
  /** Tasks running on a thread. */
  busy: number;
  /** Tasks waiting for a thread (at most `maxQueue`). */
  queued: number;
  /** Callers waiting for room in the queue. */
  waiting: number;
}

interface Job {
  task: WorkerTask;
  resolve: (value: PrepareOutput | SummarizeOutput) => void;
  reject: (err: unknown) => void;
}

const LANES: readonly PrepareLane[] = ['read', 'compaction'];

/**
 * A fixed pool of worker threads (piscina) for the CPU half of compaction, so the request thread
 * does only I/O. The pool holds at most `threads` tasks in piscina at once (its own queue stays
 * empty) and orders the rest itself: at most `maxQueue` tasks wait, reads before compaction, and
 * a caller finding the queue full awaits room instead of growing it.
 *
 * A worker that dies fails its task with STRATA_ERR_WORKER_FAILED; piscina starts a new thread
 * and the pool goes on serving. Threads start on the first task and are unreferenced while idle,
 * so an unclosed pool never keeps the process alive; `destroy()` terminates them.
 */
export class PreparePool {
  readonly threads: number;
  readonly maxQueue: number;
  private readonly workerUrl: URL;
  private piscina: Piscina | null = null;
  private busy = 0;
  private dispatchedTasks = 0;
  private readonly queues: Record<PrepareLane, Job[]> = { read: [], compaction: [] };
  private readonly roomWaiters: Record<PrepareLane, Array<() => void>> = { read: [], compaction: [] };
  private destroyed = false;

  constructor(options: PreparePoolOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw invalid('threads', 'an integer ≥ 1', options.threads);
    const maxQueue = options.maxQueue ?? 2 * options.threads;
    if (!Number.isInteger(maxQueue) || maxQueue < 1) throw invalid('maxQueue', 'an integer ≥ 1', options.maxQueue);
    this.threads = options.threads;
    this.maxQueue = maxQueue;
    this.workerUrl = options.workerUrl ?? PREPARE_WORKER_URL;
  }

  /** Runs a task on a worker thread; waits for room first when `maxQueue` tasks already wait. */
  run(task: PrepareTask, lane: PrepareLane): Promise<PrepareOutput> {
    return this.enqueue(task, lane) as Promise<PrepareOutput>;
  }

  /** A milestone summary on a worker thread (the `compaction` lane), queued like `run`. */
  summarize(task: SummarizeTask): Promise<SummarizeOutput> {
    return this.enqueue(task, 'compaction') as Promise<SummarizeOutput>;
  }

  private async enqueue(task: WorkerTask, lane: PrepareLane): Promise<PrepareOutput | SummarizeOutput> {
    this.assertOpen();
    while (this.busy >= this.threads && this.queued() >= this.maxQueue) {
      await new Promise<void>((resolve) => this.roomWaiters[lane].push(resolve));
      this.assertOpen();
    }
    return new Promise<PrepareOutput | SummarizeOutput>((resolve, reject) => {
      this.queues[lane].push({ task, resolve, reject });
      this.pump();
    });
  }

  stats(): PreparePoolStats {
    return { threads: this.threads, busy: this.busy, queued: this.queued(), waiting: this.roomWaiters.read.length + this.roomWaiters.compaction.length };
  }

  /** Tasks handed to a thread since the pool was made (diagnostics). */
  get dispatched(): number {
    return this.dispatchedTasks;
  }

  /** The live threads (for diagnostics and tests); none before the first task. */
  workers(): readonly Worker[] {
    return this.piscina?.threads ?? [];
  }

  /** Fails what waits with STRATA_ERR_CLOSED and terminates the threads (running tasks fail too). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const closed = (): StrataError => new StrataError('STRATA_ERR_CLOSED', 'the worker pool was closed');
    for (const lane of LANES) {
      for (const job of this.queues[lane].splice(0)) job.reject(closed());
      for (const wake of this.roomWaiters[lane].splice(0)) wake();
    }
    const piscina = this.piscina;
    this.piscina = null;
    await piscina?.destroy();
  }

  private queued(): number {
    return this.queues.read.length + this.queues.compaction.length;
  }

  private assertOpen(): void {
    if (this.destroyed) throw new StrataError('STRATA_ERR_CLOSED', 'the worker pool was closed');
  }

  private pump(): void {
    while (this.busy < this.threads) {
      const job = this.queues.read.shift() ?? this.queues.compaction.shift();
      if (!job) return;
      this.busy++;
      // One task left the queue: one caller waiting for room may enter it.
      (this.roomWaiters.read.shift() ?? this.roomWaiters.compaction.shift())?.();
      this.dispatch(job);
    }
  }

  private dispatch(job: Job): void {
    this.dispatchedTasks++;
    let piscina: Piscina;
    try {
      piscina = this.pool();
    } catch (err) {
      // Threads that cannot even start (bad options for a worker): the task fails, coded.
      this.busy--;
      job.reject(new StrataError('STRATA_ERR_WORKER_FAILED', `cannot start worker threads: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
      queueMicrotask(() => this.pump());
      return;
    }
    piscina
      .run(job.task)
      .then(
        (result: PrepareResult | SummarizeResult) => {
          if ('error' in result) job.reject(new StrataError(result.error.code, result.error.message, result.error.details ? { details: result.error.details } : {}));
          else job.resolve(result);
        },
        (err: unknown) => {
          job.reject(
            this.destroyed
              ? new StrataError('STRATA_ERR_CLOSED', 'the worker pool was closed while a task ran', { cause: err })
              : new StrataError('STRATA_ERR_WORKER_FAILED', `a worker thread failed while ${'kind' in job.task ? 'summarizing turns' : 'preparing turns'}: ${(err as Error)?.message ?? String(err)}`, { cause: err }),
          );
        },
      )
      .finally(() => {
        this.busy--;
        this.pump();
      });
  }

  private pool(): Piscina {
    if (this.piscina) return this.piscina;
    const execArgv = workerExecArgv(this.workerUrl.pathname.endsWith('.ts'));
    const piscina = new Piscina({
      filename: this.workerUrl.href,
      minThreads: this.threads,
      maxThreads: this.threads,
      // The pool hands piscina at most `threads` tasks; a thread still starting holds them briefly.
      maxQueue: this.threads,
      ...(execArgv ? { execArgv } : {}),
    });
    // A thread that dies between tasks is replaced by piscina; with no task to fail, nothing to report.
    piscina.on('error', () => undefined);
    this.piscina = piscina;
    return piscina;
  }
}

/** Options that name this process's main script (`node -e CODE`, `--input-type=module`): not a worker's. */
const SCRIPT_OPTIONS = new Set(['-e', '--eval', '-p', '--print', '--input-type']);

/**
 * The Node options of the worker threads, or undefined to inherit this process's unchanged.
 * Threads inherit them (loaders such as tsx included), less those about the main script, which
 * would make a worker read its module as `-e` input; from the sources a worker imports
 * TypeScript, so tsx's loader is added when this process got it some other way.
 */
export function workerExecArgv(sources: boolean, execArgv: readonly string[] = process.execArgv): string[] | undefined {
  const out: string[] = [];
  let changed = false;
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (SCRIPT_OPTIONS.has(arg)) {
      i++; // and its value
      changed = true;
    } else if (/^--(eval|print|input-type)=/.test(arg)) {
      changed = true;
    } else {
      out.push(arg);
    }
  }
  if (sources && !out.some((a) => a.includes('tsx'))) {
    out.push('--import', 'tsx');
    changed = true;
  }
  return changed ? out : undefined;
}

function invalid(option: string, expected: string, received: unknown): StrataError {
  return new StrataError('STRATA_ERR_CONFIG_INVALID', `option \`workers.${option}\`: expected ${expected}, received ${JSON.stringify(received) ?? String(received)}`, { details: { option: `workers.${option}` } });
}
