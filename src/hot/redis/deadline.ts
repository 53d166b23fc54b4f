/**
 * A deadline for every Redis command the store sends, kept by one timer for all of them.
 *
 * node-redis gives each command its own `AbortSignal.timeout` (5 s by default), which costs a
 * timer, an event listener and, once the timer fires after the command has long been answered,
 * a DOMException: measured, about half of the client's CPU time per command on small replies.
 * The store's clients turn that off (`commandOptions.timeout: 0`) and wrap each command here
 * instead: a command not answered within `timeoutMs` is rejected as node-redis's own timeout
 * would reject it (the reply, if it ever comes, is dropped), so a server that stops answering
 * without closing its connections (SIGSTOP, a network partition) still fails calls, and the
 * cache reports STRATA_ERR_HOT_UNAVAILABLE.
 */
export class CommandDeadlines {
  readonly #timeoutMs: number;
  /** In sending order, so the oldest come first (a Set iterates in insertion order). */
  readonly #pending = new Set<{ readonly sentAt: number; readonly reject: (err: Error) => void }>();
  #timer: NodeJS.Timeout | null = null;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** `command`'s result, or a rejection once it has waited `timeoutMs` for its reply. */
  watch<T>(command: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry = { sentAt: performance.now(), reject };
      this.#pending.add(entry);
      this.#timer ??= setInterval(() => this.#expire(), Math.max(10, Math.min(1000, this.#timeoutMs / 4))).unref();
      command.then(
        (value) => {
          this.#pending.delete(entry);
          resolve(value);
        },
        (err: unknown) => {
          this.#pending.delete(entry);
          reject(err);
        },
      );
    });
  }

  #expire(): void {
    const limit = performance.now() - this.#timeoutMs;
    for (const entry of this.#pending) {
      if (entry.sentAt > limit) break;
      this.#pending.delete(entry);
      entry.reject(new Error(`Redis did not answer within ${this.#timeoutMs} ms`));
    }
    if (this.#pending.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Stops the timer (commands still pending keep waiting for their replies). */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
