import { UNFENCED } from '../types.js';
import type { HeldLock, SessionLock, SessionRef } from '../types.js';

/**
 * The single-process `SessionLock`: one FIFO mutex per session, released entries are dropped so
 * the map holds only sessions with a writer in flight. Several processes sharing one archive
 * directory need a shared lock instead (the Redis lease of the hot tier).
 */
export class InProcessSessionLock implements SessionLock {
  private readonly tails = new Map<string, Promise<void>>();

  async withLock<T>(ref: SessionRef, fn: (held: HeldLock) => Promise<T>): Promise<T> {
    const key = `${ref.tenant}\u0000${ref.sessionId}`;
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn(UNFENCED);
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Sessions with a writer holding or waiting for the lock (for tests and diagnostics). */
  get busy(): number {
    return this.tails.size;
  }
}
