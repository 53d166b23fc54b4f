import { hostname } from 'node:os';
import { StrataError } from '../errors.js';
import { systemClock } from '../types.js';
import type { Clock, HeldLock, SessionLock, SessionRef } from '../types.js';
import type { HotStore } from './store.js';

export interface LeaseLockOptions {
  /** Lease time-to-live in ms; renewed every `ttlMs / 3` while the guarded work runs. Default 30000. */
  ttlMs?: number;
  /** How long `withLock` keeps retrying a busy lease before STRATA_ERR_LEASE_BUSY; 0 = one attempt. Default 10000. */
  waitMs?: number;
  /** First retry delay in ms; doubles (with jitter) up to 16× this. Default 20. */
  retryMs?: number;
  /** Owner name put in front of each token, to see who holds a lease. Default `<hostname>:<pid>`. */
  owner?: string;
  /** Time passed to the store as `now` (the memory store expires leases by it). Default: system clock. Waiting uses real timers. */
  clock?: Clock;
}

/** What the guarded function can see of the lease it runs under. */
export interface HeldLease extends HeldLock {
  readonly token: string;
  readonly fence: number;
  /** Aborted (reason: a STRATA_ERR_LEASE_LOST error) as soon as a renewal finds the lease lost. */
  readonly signal: AbortSignal;
  /** Checks with the store now; throws STRATA_ERR_LEASE_LOST when the lease is no longer ours. Call before committing work. */
  assertHeld(): Promise<void>;
}

function checkPositive(option: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', `lease lock option \`${option}\`: expected an integer >= ${min}, got ${String(value)}`, { details: { option } });
  }
  return value;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A SessionLock on top of a HotStore's compaction lease (token + expiry), so every instance
 * sharing the store excludes the others. The lease is renewed in the background while the work
 * runs. Losing it (a renewal fails for longer than the TTL, or finds another token) aborts
 * `lease.signal`, and `withLock` then rejects with STRATA_ERR_LEASE_LOST even if the work itself
 * completed: the caller must treat that work as possibly overlapping with another holder's.
 */
export class LeaseSessionLock implements SessionLock {
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly retryMs: number;
  readonly owner: string;
  readonly #clock: Clock;

  constructor(
    readonly store: HotStore,
    options: LeaseLockOptions = {},
  ) {
    this.ttlMs = checkPositive('ttlMs', options.ttlMs ?? 30_000, 3);
    this.waitMs = checkPositive('waitMs', options.waitMs ?? 10_000, 0);
    this.retryMs = checkPositive('retryMs', options.retryMs ?? 20, 1);
    const owner = options.owner ?? `${hostname()}:${process.pid}`;
    if (typeof owner !== 'string' || owner.length === 0 || owner.length > 128) throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'lease lock option `owner`: expected 1-128 characters');
    this.owner = owner;
    const clock = options.clock ?? systemClock;
    if (typeof clock?.now !== 'function') throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'lease lock option `clock`: expected an object with now()');
    this.#clock = clock;
  }

  withLock<T>(ref: SessionRef, fn: (held: HeldLock) => Promise<T>): Promise<T> {
    return this.withLease(ref, (lease) => fn(lease));
  }

  async #acquire(ref: SessionRef): Promise<{ token: string; fence: number }> {
    const started = performance.now();
    let delay = this.retryMs;
    while (true) {
      const token = await this.store.acquireLease(ref, this.owner, this.ttlMs, this.#clock.now());
      if (token !== null) return token;
      const left = this.waitMs - (performance.now() - started);
      if (left <= 0) {
        throw new StrataError('STRATA_ERR_LEASE_BUSY', `the lease of session ${ref.tenant}/${ref.sessionId} is held by another instance (waited ${this.waitMs} ms)`, { details: { tenant: ref.tenant, sessionId: ref.sessionId } });
      }
      await sleep(Math.min(left, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, this.retryMs * 16);
    }
  }

  async withLease<T>(ref: SessionRef, fn: (lease: HeldLease) => Promise<T>): Promise<T> {
    const { token, fence } = await this.#acquire(ref);
    const controller = new AbortController();
    const lostError = (): StrataError =>
      new StrataError('STRATA_ERR_LEASE_LOST', `the lease of session ${ref.tenant}/${ref.sessionId} was lost before the work finished`, { details: { tenant: ref.tenant, sessionId: ref.sessionId } });
    const markLost = (): void => {
      if (!controller.signal.aborted) controller.abort(lostError());
    };
    let lastRenewed = performance.now();
    const renew = async (): Promise<boolean> => {
      try {
        const held = await this.store.renewLease(ref, token, this.ttlMs, this.#clock.now());
        if (held) lastRenewed = performance.now();
        else markLost();
        return held;
      } catch {
        // The store is unreachable: the lease is ours until its TTL runs out, then it is lost.
        if (performance.now() - lastRenewed >= this.ttlMs) markLost();
        return !controller.signal.aborted;
      }
    };
    const timer = setInterval(() => void renew(), Math.floor(this.ttlMs / 3));
    timer.unref();
    const lease: HeldLease = {
      token,
      fence,
      signal: controller.signal,
      assertHeld: async () => {
        if (controller.signal.aborted || !(await renew())) throw lostError();
      },
    };
    const release = (): Promise<void> => this.store.releaseLease(ref, token).catch(() => {});
    let result: T;
    try {
      result = await fn(lease);
    } catch (err) {
      clearInterval(timer);
      await release();
      throw err;
    }
    clearInterval(timer);
    // A final check tells whether the lease was ours all along (work that may have overlapped
    // another holder's must be reported); then compare-and-delete, never someone else's lease.
    if (!controller.signal.aborted) await renew();
    await release();
    if (controller.signal.aborted) throw lostError();
    return result;
  }
}
