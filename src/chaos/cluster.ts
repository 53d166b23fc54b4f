/**
 * Process control for a chaos run: N real `strata serve` processes sharing one private Redis
 * and one durable store — a data directory (fs), or a schema of the run's own in a PostgreSQL
 * database (postgres: the instances get no data directory at all) — each with its own
 * STRATA_INSTANCE_ID (so its own journal) and port. Signals are real (SIGKILL, SIGSTOP/SIGCONT);
 * a restarted instance keeps its id and port, as a restarted container would; a retired one was
 * killed for good and is never started again.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readdir, rm, statfs, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDiskFull } from '../archive/io.js';
import { ChaosPostgres } from './postgres.js';
import { RedisProcess, freePort } from './redis.js';
import { sleep } from './prng.js';

/** The package root, from src/chaos/ (sources) or dist/src/chaos/ (built). */
const HERE = fileURLToPath(new URL('.', import.meta.url));
export const PACKAGE_ROOT = join(HERE, HERE.includes(`${join('dist', 'src', 'chaos')}`) ? '../../..' : '../..');

/** `sources`: node + tsx on src/cli/bin-dev.ts; `built`: node bin/strata.js (needs dist/). */
export type ServeEntry = 'sources' | 'built';

/**
 * The instances run the same code as the caller: the built entry when this module is the
 * built one (`npx strata chaos`), the sources through tsx when it runs from the sources, where
 * a dist/ left from an earlier build would test stale code.
 */
export function detectEntry(): ServeEntry {
  const fromSources = import.meta.url.endsWith('.ts');
  return !fromSources && existsSync(join(PACKAGE_ROOT, 'bin/strata.js')) ? 'built' : 'sources';
}

function serveArgv(entry: ServeEntry): string[] {
  if (entry === 'built') return [join(PACKAGE_ROOT, 'bin/strata.js'), 'serve'];
  // tsx by absolute URL: the child's cwd is a temp dir, where a bare `--import tsx` would not resolve.
  return ['--import', import.meta.resolve('tsx'), join(PACKAGE_ROOT, 'src/cli/bin-dev.ts'), 'serve'];
}

export interface Tenant {
  readonly name: string;
  readonly key: string;
}

export const TENANTS: readonly Tenant[] = [
  { name: 'chaosA', key: 'chaos-key-tenant-a-01' },
  { name: 'chaosB', key: 'chaos-key-tenant-b-02' },
];

/** Where the journals and the archive live: one shared data directory, or one PostgreSQL database. */
export type ChaosStore = { driver: 'fs' } | { driver: 'postgres'; /** A database the run may create and drop a schema of its own in. */ url: string };

export interface ClusterOptions {
  instances: number;
  /** Default: fs. */
  store?: ChaosStore;
  entry: ServeEntry;
  /** Compaction lease lifetime; a SIGSTOP longer than this lets another instance take the lease. */
  leaseTtlMs: number;
  /** Extra environment for every instance (overrides the chaos defaults). */
  env?: Record<string, string>;
  /**
   * fs: mount a tmpfs of this many MiB on the data directory, so the run can fill it
   * (`Cluster.fillDisk`). Needs root (or CAP_SYS_ADMIN); without it the start fails and says so.
   */
  diskMiB?: number;
}

const OUTPUT_TAIL = 64 * 1024;
/** The file that fills the disk; dot-prefixed, at the data directory's top, where no store looks. */
const BALLAST = '.chaos-ballast';

/**
 * Appends to `fh` in ever smaller writes until not one more page fits (ENOSPC or EDQUOT): the
 * filesystem is then full to the page. Any other error is thrown.
 */
export async function writeUntilFull(fh: FileHandle): Promise<void> {
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  for (let size = chunk.length; size >= 4096; ) {
    try {
      const { bytesWritten } = await fh.write(chunk, 0, size);
      if (bytesWritten < size) size >>= 1;
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      size >>= 1;
    }
  }
}

export class StrataInstance {
  private child: ChildProcess | null = null;
  private exitedPromise: Promise<void> = Promise.resolve();
  private tail = '';
  /** True between SIGSTOP and SIGCONT. */
  stopped = false;
  /** True once /readyz answered 200, until the process is killed. */
  ready = false;
  /** Killed for good: never started again, no longer a target of requests or faults. */
  retired = false;
  // The child the harness itself killed: its exit during start() is a fault, not a failure.
  private killed: ChildProcess | null = null;

  constructor(
    readonly index: number,
    readonly id: string,
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly entry: ServeEntry,
    private readonly cwd: string,
  ) {}

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Whatever the process wrote last (stdout and stderr), for failure reports. */
  output(): string {
    return this.tail;
  }

  /**
   * Spawns the process and waits for /readyz. Resolves false when the harness killed it
   * before it was ready (a SIGKILL during recovery); throws when it died or hung by itself.
   */
  async start(timeoutMs = 60_000): Promise<boolean> {
    const child = spawn(process.execPath, serveArgv(this.entry), { cwd: this.cwd, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.stopped = false;
    this.ready = false;
    // Output of this process only: a failed start shows its own last words.
    this.tail = '';
    const keep = (chunk: Buffer): void => {
      this.tail = (this.tail + chunk.toString()).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exitedPromise = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.killed === child) return false;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`instance ${this.index} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${this.tail.slice(-4000)}`);
      try {
        const res = await fetch(`${this.base}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.status === 200 && this.child === child && this.killed !== child) {
          this.ready = true;
          return true;
        }
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    throw new Error(`instance ${this.index} not ready within ${timeoutMs} ms:\n${this.tail.slice(-4000)}`);
  }

  /**
   * Up to three starts; resolves with the failed ones (an empty list when it came up). A start
   * that failed with STRATA_ERR_STORAGE_FULL (the run filled the disk while it started) is what
   * a full disk should do: it does not count, and the next start waits for `diskFree`, as an
   * orchestrator's restart backoff would.
   */
  async startWithRetries(diskFree: () => Promise<void> = () => Promise.resolve()): Promise<string[]> {
    const failures: string[] = [];
    let diskFullStarts = 0;
    for (let tries = 1; tries <= 3; ) {
      try {
        await this.start();
        return failures;
      } catch (err) {
        if (this.killed === this.child) return failures;
        await this.kill();
        if (this.tail.includes('STRATA_ERR_STORAGE_FULL') && diskFullStarts++ < 5) {
          await diskFree();
          await sleep(200);
          continue;
        }
        failures.push(`instance ${this.index} start ${tries}: ${(err as Error).message}`);
        tries++;
        await sleep(1_000);
      }
    }
    return failures;
  }

  async kill(): Promise<void> {
    if (this.running) {
      this.killed = this.child;
      this.child?.kill('SIGKILL');
    }
    this.stopped = false;
    this.ready = false;
    await this.exitedPromise;
  }

  /** SIGKILL for good: the instance is never started again (a host lost with its container). */
  async retire(): Promise<void> {
    this.retired = true;
    await this.kill();
  }

  pause(): void {
    if (!this.running) return;
    this.child?.kill('SIGSTOP');
    this.stopped = true;
  }

  resume(): void {
    if (this.running) this.child?.kill('SIGCONT');
    this.stopped = false;
  }

  killNow(): void {
    if (this.running) this.child?.kill('SIGKILL');
  }
}

/** The instances a client may send to: all of them but the retired ones. */
export const serving = (instances: readonly StrataInstance[]): StrataInstance[] => instances.filter((inst) => !inst.retired);

export class Cluster {
  private constructor(
    readonly redis: RedisProcess,
    /**
     * fs: the shared data directory. postgres: the instances' working directory, where the
     * default `./data` would appear if anything wrote a data directory (`strayFiles()`).
     */
    readonly dataDir: string,
    readonly instances: StrataInstance[],
    readonly postgres: ChaosPostgres | null,
    /** The data directory is a tmpfs of the run's own (it is unmounted by stop()). */
    readonly mounted: boolean,
  ) {}

  private ballast: FileHandle | null = null;
  private diskFreed: Promise<void> = Promise.resolve();
  private freeDiskNow: () => void = () => {};

  static async start(options: ClusterOptions): Promise<Cluster> {
    const store = options.store ?? { driver: 'fs' };
    const postgres = store.driver === 'postgres' ? await ChaosPostgres.create(store.url) : null;
    const redis = await RedisProcess.start();
    const dataDir = await mkdtemp(join(tmpdir(), postgres ? 'strata-chaos-cwd-' : 'strata-chaos-data-'));
    const mounted = postgres === null && options.diskMiB !== undefined;
    if (mounted) {
      const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${options.diskMiB}m,mode=0755`, 'tmpfs', dataDir], { encoding: 'utf8' });
      if (r.status !== 0) {
        await rm(dataDir, { recursive: true, force: true });
        await redis.stop();
        throw new Error(
          `the full-disk fault needs a data directory of its own size: "mount -t tmpfs -o size=${options.diskMiB}m tmpfs ${dataDir}" failed (${(r.stderr || r.error?.message || '').trim()}); run as root (or with CAP_SYS_ADMIN), or without full-disk faults (--disk-fulls 0)`,
        );
      }
    }
    const base: Record<string, string> = {};
    // A clean environment: no STRATA_* or REDIS_URL of the caller's shell leaks in.
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('STRATA_') && k !== 'REDIS_URL') base[k] = v;
    // postgres: no STRATA_DATA_DIR at all; the journals and the archive are tables.
    Object.assign(base, postgres ? { STRATA_STORE: 'postgres', STRATA_POSTGRES_URL: postgres.url } : { STRATA_DATA_DIR: dataDir });
    Object.assign(base, {
      REDIS_URL: redis.url,
      STRATA_API_KEYS: TENANTS.map((t) => `${t.key}:${t.name}`).join(','),
      STRATA_EMBEDDER: 'hash',
      STRATA_LOG_LEVEL: 'warn',
      // Compaction as often as possible, so kills, pauses and flushes land inside it: a session
      // is archived every 20 turns or after 1 s, maintenance runs every 200 ms, and only 4
      // archived turns stay hot, so reads go to the archive too.
      STRATA_COMPACTION_MAX_UNARCHIVED_TURNS: '20',
      STRATA_COMPACTION_MAX_UNARCHIVED_AGE_MS: '1000',
      STRATA_COMPACTION_INTERVAL_MS: '200',
      STRATA_COMPACTION_LEASE_TTL_MS: String(options.leaseTtlMs),
      STRATA_RECENT_TURNS: '4',
      STRATA_SESSION_IDLE_TTL_MS: '5000',
      ...options.env,
    });
    const instances: StrataInstance[] = [];
    for (let i = 0; i < options.instances; i++) {
      const port = await freePort();
      const id = `${postgres?.instancePrefix ?? 'chaos-'}${i}`;
      const env = { ...base, STRATA_PORT: String(port), STRATA_INSTANCE_ID: id };
      instances.push(new StrataInstance(i, id, port, env, options.entry, dataDir));
    }
    const cluster = new Cluster(redis, dataDir, instances, postgres, mounted);
    // Children must not outlive a run that ends without stop() (a failed assertion, Ctrl-C).
    process.once('exit', cluster.killNow);
    try {
      await Promise.all(instances.map((inst) => inst.start()));
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /**
   * Every instance running and not paused (paused ones continued, dead ones restarted, three
   * tries each). Resolves with the failures: an instance that cannot start is a finding to
   * report, not a reason to abandon the run.
   */
  async ensureAllUp(): Promise<string[]> {
    for (const inst of this.instances) if (inst.stopped) inst.resume();
    await this.diskFreed;
    const failures: string[] = [];
    await Promise.all(serving(this.instances).filter((inst) => !inst.running).map(async (inst) => failures.push(...(await inst.startWithRetries(() => this.diskFree())))));
    return failures;
  }

  private readonly killNow = (): void => {
    for (const inst of this.instances) inst.killNow();
    this.redis.killNow();
  };

  /**
   * postgres: whatever the instances wrote into their working directory (the default data
   * directory would be `./data` there). An instance on the postgres store writes no files.
   */
  async strayFiles(): Promise<string[]> {
    if (this.postgres === null) return [];
    return (await readdir(this.dataDir, { recursive: true })).map(String).sort();
  }

  /**
   * Fills the data directory's filesystem (a tmpfs of the run's, see `diskMiB`) with a ballast
   * file until a write of one page fails with ENOSPC; called again while full, it tops the
   * ballast up (the instances free space too: journal files retire). Resolves with the
   * ballast's size. Until `freeDisk()`, `diskFree()` waits.
   */
  async fillDisk(): Promise<number> {
    if (!this.mounted) throw new Error('fillDisk needs the data directory on a tmpfs of its own (ClusterOptions.diskMiB)');
    if (this.ballast === null) {
      this.ballast = await open(join(this.dataDir, BALLAST), 'a');
      this.diskFreed = new Promise((resolve) => (this.freeDiskNow = resolve));
    }
    // The bulk at once (fallocate reserves the pages without copying a byte), the rest by writes.
    const { bavail, bsize } = await statfs(this.dataDir);
    const bulk = (bavail - 64) * bsize;
    if (bulk > 0) spawnSync('fallocate', ['-o', String((await this.ballast.stat()).size), '-l', String(bulk), join(this.dataDir, BALLAST)]);
    await writeUntilFull(this.ballast);
    return (await this.ballast.stat()).size;
  }

  /** Removes the ballast: space returns, restarts waiting in `diskFree()` go on. */
  async freeDisk(): Promise<void> {
    if (this.ballast === null) return;
    await this.ballast.close();
    this.ballast = null;
    await unlink(join(this.dataDir, BALLAST));
    this.freeDiskNow();
  }

  /** Resolves once the disk is not held full (immediately when it is not). */
  diskFree(): Promise<void> {
    return this.diskFreed;
  }

  async stop(): Promise<void> {
    process.off('exit', this.killNow);
    await Promise.all(this.instances.map((inst) => inst.kill()));
    await this.redis.stop();
    await this.freeDisk().catch(() => undefined);
    if (this.mounted) spawnSync('umount', [this.dataDir]);
    await rm(this.dataDir, { recursive: true, force: true });
    await this.postgres?.drop();
  }
}
