import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/net.js';
export { freePort };

/**
 * PostgreSQL for tests. The machine's shared server (127.0.0.1:5432, trust, user postgres) is
 * used only through a schema of its own per test (`tempSchema`), dropped afterwards. Tests that
 * restart or kill PostgreSQL start a private cluster (`startCluster`): initdb + pg_ctl in a temp
 * directory on a free port, run as the postgres user.
 */
export const PG_BIN = process.env.STRATA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
export const SHARED_URL = process.env.STRATA_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let counter = 0;

/** A fresh schema name (never created here: the store migrates it). */
export function schemaName(prefix = 'strata_t'): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
}

export function withSchema(baseUrl: string, schema: string, params: Record<string, string | number> = {}): string {
  const u = new URL(baseUrl);
  u.searchParams.set('schema', schema);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
  return u.toString();
}

/** A unique schema on the shared server; `drop()` removes it with everything in it. */
export function tempSchema(prefix?: string, params: Record<string, string | number> = {}): { url: string; schema: string; drop: () => Promise<void> } {
  const schema = schemaName(prefix);
  return { url: withSchema(SHARED_URL, schema, params), schema, drop: () => dropSchema(SHARED_URL, schema) };
}

export async function dropSchema(baseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: baseUrl });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** Runs one SQL text on `url`'s database (search_path = the URL's schema when given). */
export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<R[]> {
  const u = new URL(url);
  const schema = u.searchParams.get('schema');
  for (const k of [...u.searchParams.keys()]) if (!['sslmode'].includes(k)) u.searchParams.delete(k);
  const client = new pg.Client({ connectionString: u.toString(), ...(schema ? { options: `-c search_path=${schema}` } : {}) });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

export interface Cluster {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  baseUrl: string;
  dir: string;
  start(): Promise<void>;
  /** Fast shutdown (connections are terminated), as a managed database's restart does. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the server and removes the cluster. */
  destroy(): Promise<void>;
}

const run = promisify(execFile);

/** Runs a PostgreSQL binary as the postgres user (initdb and pg_ctl refuse to run as root). */
async function asPostgres(args: string[]): Promise<void> {
  const root = process.getuid?.() === 0;
  const cmd = root ? 'runuser' : args[0]!;
  const argv = root ? ['-u', 'postgres', '--', ...args] : args.slice(1);
  try {
    await run(cmd, argv, { encoding: 'utf8', timeout: 120_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; code?: unknown };
    throw new Error(`${args.join(' ')} failed (${String(e.code)}): ${e.stderr || e.stdout}`);
  }
}

/** A private PostgreSQL 15 cluster in a temp directory on a free port, started. */
export async function startCluster(): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-pg-'));
  chmodSync(dir, 0o700);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  await asPostgres([join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=on -c max_connections=100 -c shared_buffers=32MB`;
  const cluster: Cluster = {
    port,
    baseUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir,
    start: () => asPostgres([join(PG_BIN, 'pg_ctl'), '-D', data, '-l', join(dir, 'log'), '-o', opts, '-w', '-t', '60', 'start']),
    stop: () => asPostgres([join(PG_BIN, 'pg_ctl'), '-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']),
    restart: async () => {
      await cluster.stop();
      await cluster.start();
    },
    destroy: async () => {
      await cluster.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
