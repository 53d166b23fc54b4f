/**
 * The fault scheduler. The plan (which fault, when, on which instance, for how long) is drawn
 * from the seed before the run; execution adapts only where the state demands it: a kill or
 * pause goes to another instance when its target is already down, and waits when it would
 * leave no instance serving (the suite checks durability under faults, not a total outage).
 * Kills and pauses end in the background (restart, SIGCONT) so faults overlap.
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
  for (const kind of Object.keys(counts) as PlannedKind[]) for (let i = 0; i < counts[kind]; i++) kinds.push(kind);
  rng.shuffle(kinds);
  const firstKill = kinds.indexOf('sigkill');
  // One slot per fault, the fault at a random point of the first half of its slot; the tail
  // of the phase stays quiet for the last restarts.
  const slot = (durationMs * 0.95) / Math.max(1, kinds.length);
  return kinds.map((kind, i) => ({
    atMs: Math.round(i * slot + rng.float() * slot * 0.5),
    kind,
    target: rng.int(0, instances - 1),
    // A pause lasts longer than the lease TTL, so another instance may take over the lease.
    downMs: kind === 'sigstop' ? rng.int(Math.round(leaseTtlMs * 1.5), leaseTtlMs * 2 + 1_000) : rng.int(200, 1_500),
    flushWhileDown: i === firstKill,
  }));
}

export class FaultScheduler {
  readonly counts: Record<string, number> = { sigkill: 0, sigstop: 0, flushall: 0, redisRestart: 0, flushallWhileDown: 0 };
  /** Instances that failed to start again (with their last output): a finding of its own. */
  readonly startFailures: string[] = [];
  private readonly busy = new Set<number>();
  private readonly background: Promise<void>[] = [];
  // Redis faults never overlap: a FLUSHALL during a restart would fail instead of flushing.
  private redisChain: Promise<void> = Promise.resolve();
  private stopping = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly log: RunLog,
    private readonly rng: Rng,
  ) {}

  /** Runs the plan from now; resolves when the last fault is injected and lifted. */
  async run(plan: PlannedFault[]): Promise<void> {
    const t0 = this.log.now();
    for (const fault of plan) {
      const wait = t0 + fault.atMs - this.log.now();
      if (wait > 0) await sleep(wait);
      if (this.stopping) break;
      if (fault.kind === 'flushall') await this.redis('flushall', null, () => this.cluster.redis.flushall());
      else if (fault.kind === 'redisRestart') await this.redis('redisRestart', null, () => this.cluster.redis.restart());
      else await this.instanceFault(fault);
    }
    await Promise.all(this.background);
  }

  stop(): void {
    this.stopping = true;
  }

  private healthy(inst: StrataInstance): boolean {
    return inst.running && !inst.stopped && !this.busy.has(inst.index);
  }

  private async instanceFault(fault: PlannedFault): Promise<void> {
    const all = this.cluster.instances;
    let target: StrataInstance | undefined;
    for (;;) {
      // The planned target, or the next healthy one, provided another instance stays healthy.
      const order = all.map((_, k) => all[(fault.target + k) % all.length]!);
      const healthy = order.filter((inst) => this.healthy(inst));
      if (healthy.length >= 2) {
        target = healthy[0]!;
        break;
      }
      if (this.stopping) return;
      await sleep(100);
    }
    const inst = target;
    this.busy.add(inst.index);
    if (fault.kind === 'sigkill') {
      const event = this.log.fault('sigkill', inst.index, `down ${fault.downMs} ms${fault.flushWhileDown ? ', FLUSHALL while down' : ''}`);
      this.counts.sigkill!++;
      await inst.kill();
      this.background.push(this.restartLater(inst, event, fault));
    } else {
      const event = this.log.fault('sigstop', inst.index, `paused ${fault.downMs} ms`);
      this.counts.sigstop!++;
      inst.pause();
      this.background.push(
        (async () => {
          await sleep(fault.downMs);
          inst.resume();
          this.log.faultEnded(event);
          this.busy.delete(inst.index);
        })(),
      );
    }
  }

  private async restartLater(inst: StrataInstance, event: FaultEvent, fault: PlannedFault): Promise<void> {
    if (fault.flushWhileDown) {
      await sleep(fault.downMs / 2);
      await this.redis('flushallWhileDown', null, () => this.cluster.redis.flushall());
      await sleep(fault.downMs / 2);
    } else await sleep(fault.downMs);
    this.startFailures.push(...(await inst.startWithRetries()));
    this.log.faultEnded(event);
    this.busy.delete(inst.index);
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
