import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreateStrataOptions, Strata } from '../../src/strata.js';
import { createStrata } from '../../src/strata.js';
import type { Clock } from '../../src/types.js';

/** A clock the test moves by hand. */
export class FakeClock implements Clock {
  constructor(public t = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/**
 * A temp directory removed after the test, once every instance opened with `openStrata` (and
 * registered with `closeAfter`) is closed: cleanup runs in reverse order of registration.
 */
export async function tempDir(t: { after(fn: () => Promise<void>): void }, prefix = 'strata-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanupStack(t).push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const stacks = new WeakMap<object, Array<() => Promise<unknown>>>();

function cleanupStack(t: { after(fn: () => Promise<void>): void }): Array<() => Promise<unknown>> {
  let stack = stacks.get(t);
  if (!stack) {
    const fns: Array<() => Promise<unknown>> = [];
    stack = fns;
    stacks.set(t, fns);
    t.after(async () => {
      while (fns.length) await fns.pop()!().catch(() => undefined);
    });
  }
  return stack;
}

/** Registers an async cleanup that runs before the cleanups registered earlier. */
export function closeAfter(t: { after(fn: () => Promise<void>): void }, fn: () => Promise<unknown>): void {
  cleanupStack(t).push(fn);
}

/** A Strata core for tests: hash embedder, no maintenance timer (tests call runMaintenance). */
export function openStrata(dataDir: string, options: CreateStrataOptions = {}): Promise<Strata> {
  return createStrata({
    ...options,
    dataDir,
    embedder: { provider: 'hash', ...options.embedder },
    compaction: { intervalMs: 3_600_000, ...options.compaction },
    instanceId: options.instanceId ?? 'test',
  });
}

/** Deterministic PRNG (mulberry32, the chaos suite's) for seeded fault tests. */
export { mulberry32 as prng } from '../../src/chaos/prng.js';
