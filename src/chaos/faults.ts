/**
 * The fault scheduler. The plan (which fault, when, on which instance, for how long) is drawn
 * from the seed before the run; execution adapts only where the state demands it: a kill or
 * pause goes to another instance when its target is already down, and waits when it would
 * leave no instance serving (the suite checks durability under faults, not a total outage).
 * Kills and pauses end in the background (restart, SIGCONT) so faults overlap.
 *
 * Two faults are for particular deployments: `retire` SIGKILLs an instance for good (it never
 * comes back; a Redis FLUSHALL follows while its journal still holds acknowledged turns, so the
 * others must take them from its journal), and `pgTerminate` ends every PostgreSQL connection
 * of the run's instances at once (postgres store only). `diskFull` fills the shared data
 * directory's filesystem (a tmpfs of the run's) for 1–3 s, then frees it: the instances must
 * refuse writes with a 503 that stores nothing, and serve again by themselves (fs store only).
 */
import type { Cluster, StrataInstance } from './cluster.js';
import type { FaultEvent, RunLog } from './log.js';
import type { Rng } from './prng.js';
import { sleep } from './prng.js';

export interface FaultCounts {
  sigkill: number;
  sigstop: number;
  flushall: number;
  redisRestart: number;
  /** Instances SIGKILLed and never restarted, each followed by a FLUSHALL; default 0. */
  retire?: number;
  /** `pg_terminate_backend` of every connection of the instances (postgres store); default 0. */
  pgTerminate?: number;
  /** The data directory's filesystem full for 1–3 s (fs store on a tmpfs); default 0. */
  diskFull?: number;
}

export type PlannedKind = keyof FaultCounts;

export interface PlannedFault {
  atMs: number;
  kind: PlannedKind;
  target: number;
  /** How long a killed instance stays down, or a paused one stays paused. */
  downMs: number;
  /** A FLUSHALL in the middle of this kill's downtime: recovery must not rely on that instance. */
  flushWhileDown: boolean;
}

export function planFaults(rng: Rng, counts: FaultCounts, durationMs: number, leaseTtlMs: number, instances: number): PlannedFault[] {
  const kinds: PlannedKind[] = [];
  for (const kind of Object.keys(counts) as PlannedKind[]) for (let i = 0; i < (counts[kind] ?? 0); i++) kinds.push(kind);
  rng.shuffle(kinds);
  // A retirement lands in the first half, so the rest of the run works without that instance
  // and its journal. (Drawn only when there is one: plans without it stay as they were.)
  const half = Math.max(1, Math.floor(kinds.length / 2));
  kinds.forEach((kind, i) => {
    if (kind !== 'retire' || i < half) return;
    const j = rng.int(0, half - 1);
    [kinds[i], kinds[j]] = [kinds[j]!, kind];
  });
  const firstKill = kinds.indexOf('sigkill');
  // One slot per fault, the fault at a random point of the first half of its slot; the tail
  // of the phase stays quiet for the last restarts.
  const slot = (durationMs * 0.95) / Math.max(1, kinds.length);
  return kinds.map((kind, i) => ({
    atMs: Math.round(i * slot + rng.float() * slot * 0.5),
    kind,
    target: rng.int(0, instances - 1),
    // A pause lasts longer than the lease TTL, so another instance may take over the lease.
    downMs: kind === 'sigstop' ? rng.int(Math.round(leaseTtlMs * 1.5), leaseTtlMs * 2 + 1_000) : kind === 'diskFull' ? rng.int(1_000, 3_000) : rng.int(200, 1_500),
    flushWhileDown: i === firstKill || kind === 'retire',
  }));
}

/** How long a kill or pause waits for another instance to be serving before it is skipped. */
const MAX_WAIT_MS = 30_000;
const MIN_GAP_MS = 250;

export class FaultScheduler {
  readonly counts: Record<string, number> = { sigkill: 0, sigstop: 0, flushall: 0, redisRestart: 0, flushallWhileDown: 0, retire: 0, pgTerminate: 0, diskFull: 0, skipped: 0 };
  /** Instances that failed to start again (with their last output): a finding of its own. */
  readonly startFailures: string[] = [];
  /** Retired instances, with their pending journal rows right after the kill (postgres; null on fs). */
  readonly retired: Array<{ index: number; id: string; pendingRowsAtKill: number | null }> = [];
  /** Instance → the fault (log seq) holding it: paused, or down and restarting. */
  private readonly busy = new Map<number, number>();
  private readonly restarting = new Set<number>();
  private readonly background: Promise<void>[] = [];
  // Redis faults never overlap: a FLUSHALL during a restart would fail instead of flushing.
  private redisChain: Promise<void> = Promise.resolve();
  private stopping = false;
  private diskHeld = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly log: RunLog,
  ) {}

  /** Runs the plan from now; resolves when the last fault is injected and lifted. */
  async run(plan: PlannedFault[]): Promise<void> {
    const t0 = this.log.now();
    for (const fault of plan) {
      // Behind schedule (a kill waited for a target), faults still come MIN_GAP_MS apart
      // rather than all at once.
      const wait = Math.max(MIN_GAP_MS, t0 + fault.atMs - this.log.now());
      await sleep(wait);
      if (this.stopping) break;
      if (fault.kind === 'flushall') await this.redis('flushall', null, () => this.cluster.redis.flushall());
      else if (fault.kind === 'redisRestart') await this.redis('redisRestart', null, () => this.cluster.redis.restart());
      else if (fault.kind === 'pgTerminate') await this.pgTerminate();
      else if (fault.kind === 'diskFull') this.background.push(this.diskFull(fault.downMs));
      else await this.instanceFault(fault);
    }
    await Promise.all(this.background);
  }

  stop(): void {
    this.stopping = true;
  }

  /** Serving: ready, not paused, no fault of ours in progress. */
  private healthy(inst: StrataInstance): boolean {
    return inst.running && inst.ready && !inst.stopped && !this.busy.has(inst.index);
  }

  private async instanceFault(fault: PlannedFault): Promise<void> {
    const all = this.cluster.instances;
    const order = all.map((_, k) => all[(fault.target + k) % all.length]!);
    let target: StrataInstance | undefined;
    let waited = 0;
    for (;;) {
      // A kill may also land on an instance that is still restarting (a crash during recovery,
      // and restarts do not serialize the kills); a pause only on a serving one. Either way
      // another instance must stay serving.
      // (A restarting instance whose process is not spawned yet is no target: the kill would be a no-op.)
      // A retirement takes only a serving instance: no restart of an earlier kill may be pending.
      const candidates = order.filter((inst) => this.healthy(inst) || (fault.kind === 'sigkill' && this.restarting.has(inst.index) && inst.running && !inst.stopped));
      target = candidates.find((inst) => all.some((other) => other !== inst && this.healthy(other)));
      if (target !== undefined || this.stopping || waited >= MAX_WAIT_MS) break;
      await sleep(100);
      waited += 100;
    }
    if (target === undefined) {
      // Instances that failed to restart are reported as such; the plan goes on without them.
      this.counts.skipped!++;
      return;
    }
    const inst = target;
    if (fault.kind === 'retire') {
      const event = this.log.fault('retire', inst.index, `SIGKILL for good, FLUSHALL ${Math.round(fault.downMs / 2)} ms later`);
      this.counts.retire!++;
      this.busy.set(inst.index, event.seq);
      await inst.retire();
      // What the others will have to archive from its journal (postgres: its rows; the fs
      // journal stays in the shared directory).
      const pendingRowsAtKill = (await this.cluster.postgres?.pendingRows(inst.id)) ?? null;
      this.retired.push({ index: inst.index, id: inst.id, pendingRowsAtKill });
      this.log.faultEnded(event, pendingRowsAtKill === null ? undefined : `${pendingRowsAtKill} journal rows pending`);
      this.background.push(
        (async () => {
          await sleep(fault.downMs / 2);
          await this.redis('flushallWhileDown', null, () => this.cluster.redis.flushall());
        })(),
      );
    } else if (fault.kind === 'sigkill') {
      const event = this.log.fault('sigkill', inst.index, `down ${fault.downMs} ms${fault.flushWhileDown ? ', FLUSHALL while down' : ''}${this.restarting.has(inst.index) ? ', killed while restarting' : ''}`);
      this.counts.sigkill!++;
      this.busy.set(inst.index, event.seq);
      this.restarting.add(inst.index);
      await inst.kill();
      this.background.push(this.restartLater(inst, event, fault));
    } else {
      const event = this.log.fault('sigstop', inst.index, `paused ${fault.downMs} ms`);
      this.counts.sigstop!++;
      this.busy.set(inst.index, event.seq);
      inst.pause();
      this.background.push(
        (async () => {
          await sleep(fault.downMs);
          inst.resume();
          this.log.faultEnded(event);
          this.release(inst, event);
        })(),
      );
    }
  }

  /** Ends `event`'s hold on the instance unless a later fault took it over. */
  private release(inst: StrataInstance, event: FaultEvent): void {
    if (this.busy.get(inst.index) !== event.seq) return;
    this.busy.delete(inst.index);
    this.restarting.delete(inst.index);
  }

  private async restartLater(inst: StrataInstance, event: FaultEvent, fault: PlannedFault): Promise<void> {
    if (fault.flushWhileDown) {
      await sleep(fault.downMs / 2);
      await this.redis('flushallWhileDown', null, () => this.cluster.redis.flushall());
      await sleep(fault.downMs / 2);
    } else await sleep(fault.downMs);
    // A process cannot start on a full disk (its journal needs a new file): it waits for space,
    // as an orchestrator's restart backoff would.
    await this.cluster.diskFree();
    // A later kill of the same instance owns its restart from then on.
    if (this.busy.get(inst.index) === event.seq && !inst.retired) this.startFailures.push(...(await inst.startWithRetries(() => this.cluster.diskFree())));
    this.log.faultEnded(event);
    this.release(inst, event);
  }

  /** The disk full for `holdMs` (topped up as the instances free space), then freed; one at a time. */
  private async diskFull(holdMs: number): Promise<void> {
    if (this.diskHeld || !this.cluster.mounted) {
      this.counts.skipped!++;
      return;
    }
    this.diskHeld = true;
    const event = this.log.fault('diskFull', null, `held full ${holdMs} ms`);
    this.counts.diskFull!++;
    try {
      const filled = await this.cluster.fillDisk();
      const until = performance.now() + holdMs;
      while (performance.now() < until) {
        await sleep(Math.min(200, until - performance.now()));
        await this.cluster.fillDisk();
      }
      this.log.faultEnded(event, `ballast ${Math.round(filled / 1024)} KiB`);
    } finally {
      await this.cluster.freeDisk();
      this.diskHeld = false;
    }
  }

  /** Every connection of the run's instances ends at once; the pools must reconnect by themselves. */
  private async pgTerminate(): Promise<void> {
    const postgres = this.cluster.postgres;
    if (postgres === null) {
      this.counts.skipped!++;
      return;
    }
    const event = this.log.fault('pgTerminate', null, 'pg_terminate_backend of every instance connection');
    this.counts.pgTerminate!++;
    // The database being unreachable from here is the run's problem, not the instances'.
    const outcome = await postgres.terminateBackends().then(
      (n) => `${n} connections terminated`,
      (err: unknown) => `failed: ${(err as Error).message}`,
    );
    this.log.faultEnded(event, outcome);
  }

  private redis(kind: 'flushall' | 'redisRestart' | 'flushallWhileDown', instance: number | null, act: () => Promise<void>): Promise<void> {
    const run = async (): Promise<void> => {
      const event = this.log.fault(kind, instance);
      this.counts[kind]!++;
      await act();
      this.log.faultEnded(event);
    };
    const next = this.redisChain.then(run);
    this.redisChain = next.catch(() => {});
    return next;
  }
}
