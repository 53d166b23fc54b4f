import type { HotStore } from '../hot/store.js';
import { sessionKey } from '../ids.js';
import type { MessageFields } from '../message.js';
import type { SessionRef } from '../types.js';
import { textLength, type Preparer } from '../workers/preparer.js';

/**
 * Turns waiting for their count at most. Beyond it, turns stay uncounted: a read counts those
 * it returns, and compaction counts them before they are archived, so a backlog here costs
 * reads some time but never memory without bound.
 */
export const MAX_WAITING_COUNTS = 8192;

/** Turns, and UTF-16 units of their text, per count task (one worker task, then one hot-tier write per tick). */
const COUNT_BATCH_TURNS = 256;
const COUNT_BATCH_CHARS = 512 * 1024;

interface Waiting {
  ref: SessionRef;
  turnId: number;
  key: string;
  message: MessageFields;
}

/**
 * Token counts off the request path. An append stores its turns uncounted and, once they are
 * acknowledged, hands them here: they are counted in batches on the worker pool's compaction
 * lane (on this thread, between other work, without a pool) and the counts are written into
 * the hot tier (`HotStore.setTokens`), where reads and compaction find them. One batch runs at
 * a time; appends meanwhile join the next one.
 */
export class TokenCounts {
  #waiting: Waiting[] = [];
  #running: Promise<void> | null = null;
  #stopped = false;
  /** Turns left uncounted because `limit` were waiting (reads and compaction count them). */
  skipped = 0;
  readonly #limit: number;
  readonly #onError: (err: unknown) => void;
  readonly #onSkip: (turns: number) => void;

  constructor(
    private readonly hot: HotStore,
    private readonly preparer: Preparer,
    options: { onError(err: unknown): void; onSkip?(turns: number): void; limit?: number },
  ) {
    this.#limit = options.limit ?? MAX_WAITING_COUNTS;
    this.#onError = options.onError;
    this.#onSkip = options.onSkip ?? (() => undefined);
  }

  /** Turns waiting for their count. */
  get waiting(): number {
    return this.#waiting.length;
  }

  add(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string; message: MessageFields }>): void {
    if (this.#stopped || turns.length === 0) return;
    if (this.#waiting.length + turns.length > this.#limit) {
      this.skipped += turns.length;
      this.#onSkip(turns.length);
      return;
    }
    for (const t of turns) this.#waiting.push({ ref, turnId: t.turnId, key: t.key, message: t.message });
    this.#running ??= this.#drain();
  }

  /** Resolves once every turn handed over so far has its count written (or failed). */
  async settled(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops counting: what waits stays uncounted; waits for the batch in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#waiting = [];
    await this.#running;
  }

  async #drain(): Promise<void> {
    try {
      while (!this.#stopped && this.#waiting.length > 0) {
        // The appends released by one group commit arrive within a tick: one batch for them.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const batch = this.#take();
        try {
          const counts = await this.preparer.countInBackground(batch.map((w) => w.message));
          if (counts === null || this.#stopped) continue;
          const bySession = new Map<string, { ref: SessionRef; turns: Array<{ turnId: number; key: string; tokens: number }> }>();
          batch.forEach((w, i) => {
            const k = sessionKey(w.ref);
            let entry = bySession.get(k);
            if (entry === undefined) bySession.set(k, (entry = { ref: w.ref, turns: [] }));
            entry.turns.push({ turnId: w.turnId, key: w.key, tokens: counts[i]! });
          });
          const writes = await Promise.allSettled([...bySession.values()].map((e) => this.hot.setTokens(e.ref, e.turns)));
          for (const w of writes) if (w.status === 'rejected') this.#onError(w.reason);
        } catch (err) {
          // The turns stay uncounted; reads and compaction count them.
          this.#onError(err);
        }
      }
    } finally {
      this.#running = null;
    }
  }

  #take(): Waiting[] {
    let n = 0;
    let chars = 0;
    while (n < this.#waiting.length && n < COUNT_BATCH_TURNS && (n === 0 || chars < COUNT_BATCH_CHARS)) {
      chars += textLength(this.#waiting[n]!.message);
      n++;
    }
    return this.#waiting.splice(0, n);
  }
}
