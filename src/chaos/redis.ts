/**
 * A private `redis-server` the chaos run owns: a free loopback port, its own temp dir, no
 * persistence (`--save '' --appendonly no`), so a SIGKILL + restart or a FLUSHALL really loses
 * every key and the Strata instances must rebuild the hot tier from journals and archive.
 * Commands are sent over a fresh socket in plain RESP: a long-lived client would reconnect on
 * its own after a restart and blur exactly when the server was gone.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../net.js';
export { freePort };

/** Sends one command and resolves with the first reply line (`+OK`, `-ERR …`, `:1`, …). */
export function redisCommand(port: number, args: string[], timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => finish(new Error(`redis ${args[0]} on port ${port}: no reply within ${timeoutMs} ms`)), timeoutMs);
    function finish(err: Error | null, line?: string): void {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(line ?? '');
    }
    socket.on('error', (err) => finish(err));
    socket.on('connect', () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      const end = reply.indexOf('\r\n');
      if (end >= 0) finish(null, reply.slice(0, end));
    });
  });
}

export class RedisProcess {
  private child: ChildProcess | null = null;
  private readonly dir = mkdtempSync(join(tmpdir(), 'strata-chaos-redis-'));

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisProcess> {
    const redis = new RedisProcess(await freePort());
    await redis.launch();
    return redis;
  }

  private async launch(): Promise<void> {
    // noeviction as the README asks for production: an evicted unarchived turn would look like a loss.
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--daemonize', 'no', '--maxmemory-policy', 'noeviction'];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => done(new Error(`redis-server on port ${this.port} not ready within 10 s:\n${output}`)), 10_000);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) done(null);
      };
      const onExit = (code: number | null): void => done(new Error(`redis-server exited with ${code}:\n${output}`));
      const onError = (err: Error): void => done(new Error(`cannot start redis-server (${err.message}); install it (apt-get install redis-server)`));
      function done(err: Error | null): void {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
        child.off('error', onError);
        child.stdout?.resume();
        child.stderr?.resume();
        if (err) reject(err);
        else resolve();
      }
      child.stdout?.on('data', onData);
      child.once('exit', onExit);
      child.once('error', onError);
    });
  }

  /** SIGKILL: every key, script and connection is gone at once. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  /** SIGKILL and start again on the same port (the URL the instances hold stays valid). */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async flushall(): Promise<void> {
    const reply = await redisCommand(this.port, ['FLUSHALL']);
    if (reply !== '+OK') throw new Error(`FLUSHALL answered ${reply}`);
  }

  /** For process-exit cleanup: synchronous, best effort. */
  killNow(): void {
    this.child?.kill('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
