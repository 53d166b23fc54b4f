/**
 * A `strata serve` (or any long-running command) as a real child process, for tests that talk to
 * it over HTTP and read its output. The child leads its own process group, so `stop()` also ends
 * what a wrapper such as `npx` started beneath it.
 *
 *   const port = await freePort();
 *   const serve = new ChildServer(process.execPath, ['--import', TSX, BIN_DEV, 'serve'], { env: serveEnv({ STRATA_PORT: String(port), ... }), cwd });
 *   t.after(() => serve.stop());
 *   await serve.waitReady(`http://127.0.0.1:${port}`);
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/net.js';
export { freePort };

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The CLI from the sources, run through tsx (imported by absolute URL: children run in temp dirs). */
export const SOURCE_CLI = ['--import', import.meta.resolve('tsx'), join(ROOT, 'src/cli/bin-dev.ts')];

/** This process's environment without any STRATA_* or REDIS_URL of the developer's shell, plus `extra`. */
export function serveEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('STRATA_') && k !== 'REDIS_URL') env[k] = v;
  return { ...env, ...extra };
}

export class ChildServer {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once every process holding the child's stdout and stderr (its descendants too) has ended. */
  readonly drained: Promise<void>;
  private out = '';
  private err = '';

  constructor(command: string, args: string[], options: { env: Record<string, string>; cwd: string }) {
    this.child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.out += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.err += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    const closed = (stream: NodeJS.ReadableStream | null) => new Promise<void>((resolve) => (stream ? stream.once('close', () => resolve()) : resolve()));
    this.drained = Promise.all([closed(this.child.stdout), closed(this.child.stderr)]).then(() => undefined);
  }

  stdout(): string {
    return this.out;
  }

  stderr(): string {
    return this.err;
  }

  /** Polls `GET /readyz` until it answers 200. */
  async waitReady(base: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      if (exited) throw new Error(`the server exited before it was ready:\n${this.out}\n${this.err}`);
      try {
        const res = await fetch(`${base}/readyz`);
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`the server was not ready within ${timeoutMs} ms:\n${this.out}\n${this.err}`);
  }

  /** Sends `signal` to the whole process group (the child and anything it started that is still alive). */
  signal(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /**
   * SIGTERM to the process group, then SIGKILL after `graceMs`; resolves with the child's exit
   * once its output is drained, i.e. once a wrapper's descendants (npx → node) have ended too.
   */
  async stop(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      const [exit] = await Promise.all([this.exited, this.drained]);
      return exit;
    } finally {
      clearTimeout(timer);
    }
  }
}
