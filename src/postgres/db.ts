import pg from 'pg';
import { StrataError } from '../errors.js';
import { copyByteaOut } from './copy.js';

/**
 * One PostgreSQL pool shared by the journal and the archive of an instance (docs/postgres.md).
 *
 * Configured by one standard connection URL. Besides libpq's parameters (`sslmode`,
 * `sslrootcert`, `sslcert`, `sslkey`, `application_name`, …, handled by node-postgres), Strata
 * reads and removes its own:
 *
 * | parameter | default | meaning |
 * |---|---|---|
 * | `schema` | `strata` | schema of every table (tests isolate by schema) |
 * | `pool_size` | 10 | connections of this instance |
 * | `statement_timeout_ms` | 30000 | a statement running longer is cancelled (`STRATA_ERR_DB_TIMEOUT`) |
 * | `max_waiting` | 1000 | callers queued for a connection before new ones get `STRATA_ERR_BACKPRESSURE` |
 * | `connect_timeout_ms` | 5000 | how long a caller waits for a connection (then `STRATA_ERR_DB_UNAVAILABLE` or, with the pool full, `STRATA_ERR_BACKPRESSURE`) |
 */
export interface PostgresSettings {
  /** The URL without Strata's own parameters (what node-postgres gets). */
  connectionString: string;
  schema: string;
  poolSize: number;
  statementTimeoutMs: number;
  maxWaiting: number;
  connectTimeoutMs: number;
}

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

function bad(param: string, expected: string, received: string): StrataError {
  return new StrataError('STRATA_ERR_CONFIG_INVALID', `option store.postgresUrl: parameter ${param} expected ${expected}, received ${JSON.stringify(received)}`, { details: { option: 'store.postgresUrl', param } });
}

/** Parses a `postgres://` / `postgresql://` URL and Strata's parameters; validated eagerly. */
export function parsePostgresUrl(url: string): PostgresSettings {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'option store.postgresUrl: expected a postgres:// URL, received a string that is not a URL', { details: { option: 'store.postgresUrl' } });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new StrataError('STRATA_ERR_CONFIG_INVALID', `option store.postgresUrl: expected a postgres:// or postgresql:// URL, received a ${u.protocol} URL`, { details: { option: 'store.postgresUrl' } });
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = u.searchParams.get(name);
    u.searchParams.delete(name);
    if (raw === null) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < min || n > max) throw bad(name, `an integer from ${min} to ${max}`, raw);
    return n;
  };
  const schema = u.searchParams.get('schema') ?? 'strata';
  u.searchParams.delete('schema');
  if (!SCHEMA_RE.test(schema)) throw bad('schema', 'a lower-case identifier of [a-z0-9_] (at most 63 characters)', schema);
  const settings = {
    schema,
    poolSize: int('pool_size', 10, 1, 1000),
    statementTimeoutMs: int('statement_timeout_ms', 30_000, 1, 86_400_000),
    maxWaiting: int('max_waiting', 1000, 0, 1_000_000),
    connectTimeoutMs: int('connect_timeout_ms', 5000, 1, 600_000),
  };
  return { connectionString: u.toString(), ...settings };
}

/** Connection-level SQLSTATE classes and node errors: PostgreSQL is unreachable or went away. */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN'].includes(code)) return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect|Client was closed|terminating connection/i.test(message);
}

function isDriverError(err: unknown): boolean {
  return typeof (err as { code?: unknown })?.code === 'string' || isUnavailable(err);
}

/**
 * Maps a driver error to Strata's codes, in one place: unreachable → STRATA_ERR_DB_UNAVAILABLE,
 * cancelled by statement_timeout → STRATA_ERR_DB_TIMEOUT (both 503: nothing of the statement
 * committed). StrataErrors pass through.
 */
export function dbError(err: unknown, what: string): StrataError {
  if (err instanceof StrataError) return err;
  const e = err as { code?: string; message?: string };
  if (e?.code === '57014') return new StrataError('STRATA_ERR_DB_TIMEOUT', `PostgreSQL cancelled ${what} (statement timeout); it was rolled back, retry`, { cause: err });
  if (isUnavailable(err)) return new StrataError('STRATA_ERR_DB_UNAVAILABLE', `PostgreSQL is unavailable during ${what} (${e?.message ?? String(err)}); nothing of it was acknowledged, retry`, { cause: err });
  return new StrataError('STRATA_ERR_INTERNAL', `PostgreSQL failed ${what}: ${e?.message ?? String(err)} (SQLSTATE ${e?.code ?? 'none'})`, { cause: err, details: { sqlstate: e?.code ?? null } });
}

/** SQLSTATEs a transaction is retried on: serialization failure, deadlock. */
const RETRYABLE = new Set(['40001', '40P01']);

/** Thrown out of a rolled-back attempt of `Db.tx` that is to be run again. */
class RetryTransaction extends Error {}

/** What statements run on: a transaction's connection, or the pool (each statement its own transaction). */
export interface Sql {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * The pool, with bounded waiting (backpressure instead of an unbounded queue of callers), one
 * error mapping and a health flag that follows the last connection-level outcome.
 */
export class Db implements Sql {
  readonly settings: PostgresSettings;
  readonly pool: pg.Pool;
  private users = 0;
  private closed = false;
  private lastError: StrataError | null = null;

  constructor(url: string | PostgresSettings, options: { synchronousCommit?: boolean; applicationName?: string } = {}) {
    this.settings = typeof url === 'string' ? parsePostgresUrl(url) : url;
    const s = this.settings;
    const gucs = [`-c search_path=${s.schema}`, `-c statement_timeout=${s.statementTimeoutMs}`, `-c synchronous_commit=${options.synchronousCommit === false ? 'off' : 'on'}`];
    this.pool = new pg.Pool({
      connectionString: s.connectionString,
      max: s.poolSize,
      connectionTimeoutMillis: s.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      options: gucs.join(' '),
      application_name: options.applicationName ?? 'strata',
      // A dead server must not hang a query forever (TCP keepalive finds a vanished peer).
      keepAlive: true,
    });
    // An idle client's error (server restart) is reported here; the pool drops that client.
    this.pool.on('error', (err) => {
      this.lastError = dbError(err, 'an idle connection');
    });
  }

  /** Reference counting: the journal and the archive share the pool; the last release ends it. */
  acquire(): this {
    this.users++;
    return this;
  }

  async release(): Promise<void> {
    if (--this.users > 0 || this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }

  /** Not ok from a connection-level failure until the next statement succeeds. */
  health(): { ok: boolean; error?: string; code?: string } {
    if (this.closed) return { ok: false, error: 'the PostgreSQL pool is closed', code: 'STRATA_ERR_CLOSED' };
    return this.lastError ? { ok: false, error: this.lastError.message, code: this.lastError.code } : { ok: true };
  }

  private checkWaiting(): void {
    if (this.closed) throw new StrataError('STRATA_ERR_CLOSED', 'the PostgreSQL pool is closed');
    if (this.pool.waitingCount >= this.settings.maxWaiting) {
      throw new StrataError('STRATA_ERR_BACKPRESSURE', `all ${this.settings.poolSize} PostgreSQL connections are busy and ${this.pool.waitingCount} callers wait for one; retry later`);
    }
  }

  private note<T>(p: Promise<T>, what: string): Promise<T> {
    return p.then(
      (v) => {
        this.lastError = null;
        return v;
      },
      (err: unknown) => {
        const mapped = this.mapWait(err, what);
        if (mapped.code === 'STRATA_ERR_DB_UNAVAILABLE') this.lastError = mapped;
        throw mapped;
      },
    );
  }

  /** A connection wait that timed out while every connection is in use is backpressure, not an outage. */
  private mapWait(err: unknown, what: string): StrataError {
    const message = (err as Error)?.message ?? '';
    if (/timeout exceeded when trying to connect/i.test(message) && this.pool.totalCount >= this.settings.poolSize && this.pool.idleCount === 0) {
      return new StrataError('STRATA_ERR_BACKPRESSURE', `no PostgreSQL connection became free within ${this.settings.connectTimeoutMs} ms for ${what} (all ${this.settings.poolSize} busy); retry later`, { cause: err });
    }
    return dbError(err, what);
  }

  /** One statement in its own transaction. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values: unknown[] = [], what = 'a query'): Promise<pg.QueryResult<R>> {
    try {
      this.checkWaiting();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.note(typeof text === 'string' ? this.pool.query<R>(text, values) : this.pool.query<R>(text), what);
  }

  /** `copyByteaOut` (copy.ts) on a connection of the pool, with the pool's error mapping. */
  copyBytea(select: string, what: string): Promise<Buffer[]> {
    return this.withClient(what, (client) => copyByteaOut(client, select));
  }

  /**
   * Runs `fn` on one checked-out connection. A connection that dies meanwhile (an 'error' event,
   * which nobody else listens to while we hold the client, or an unavailable-class error) is
   * dropped from the pool; driver errors are mapped (`dbError`); others pass through unchanged.
   */
  private async withClient<T>(what: string, fn: (client: pg.PoolClient, broken: () => void) => Promise<T>): Promise<T> {
    this.checkWaiting();
    const client = await this.note(this.pool.connect(), what);
    let broken = false;
    const onError = (err: unknown): void => {
      broken = true;
      this.lastError = dbError(err, what);
    };
    client.on('error', onError);
    try {
      const result = await fn(client, () => (broken = true));
      this.lastError = null;
      return result;
    } catch (err) {
      if (err instanceof StrataError || !isDriverError(err)) throw err;
      const mapped = dbError(err, what);
      if (mapped.code === 'STRATA_ERR_DB_UNAVAILABLE') {
        broken = true;
        this.lastError = mapped;
      }
      throw mapped;
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  /**
   * Runs `fn` in a transaction on one connection; commits when it resolves, rolls back when it
   * throws. Retried (up to 3 attempts) on serialization failures and deadlocks only.
   */
  async tx<T>(what: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.withClient(what, async (client, broken) => {
          await client.query('BEGIN');
          try {
            const result = await fn(client);
            await client.query('COMMIT');
            return result;
          } catch (err) {
            await client.query('ROLLBACK').catch(broken);
            const code = (err as { code?: unknown })?.code;
            if (typeof code === 'string' && RETRYABLE.has(code) && attempt < 3) throw new RetryTransaction();
            throw err;
          }
        });
      } catch (err) {
        if (err instanceof RetryTransaction) continue;
        throw err;
      }
    }
  }
}
