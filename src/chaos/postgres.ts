/**
 * The PostgreSQL side of a chaos run on the postgres store: a schema of the run's own in the
 * database the caller names (created by the instances' migration, dropped at the end; no other
 * schema is touched), the one fault PostgreSQL adds from the outside — every connection of the
 * run's instances terminated at once (`pg_terminate_backend`, what a failover or a proxy
 * restart does to a client) — and the journal rows an instance left behind, to show that the
 * others archived the rows of an instance that never came back.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { parsePostgresUrl } from '../postgres/db.js';

export class ChaosPostgres {
  private constructor(
    /** The caller's URL without Strata's parameters: what the harness itself connects with. */
    private readonly adminUrl: string,
    readonly schema: string,
    /** Every instance's STRATA_POSTGRES_URL: the caller's URL on the run's schema. */
    readonly url: string,
    /** Prefix of the instances' ids, unique to the run: their connections' application_name is `strata:<id>`. */
    readonly instancePrefix: string,
  ) {}

  /**
   * A fresh schema name on `baseUrl`'s database, after checking the database answers. The
   * caller's own Strata parameters (pool size, timeouts) are kept; a `schema` is replaced.
   */
  static async create(baseUrl: string): Promise<ChaosPostgres> {
    const settings = parsePostgresUrl(baseUrl);
    const tag = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const schema = `strata_chaos_${tag}`;
    const u = new URL(baseUrl);
    u.searchParams.set('schema', schema);
    // Three or more instances on a shared server: a small pool each leaves connections for
    // everybody else (the workload's 16 writers need no more), unless the caller chose one.
    if (!u.searchParams.has('pool_size')) u.searchParams.set('pool_size', '5');
    const target = new ChaosPostgres(settings.connectionString, schema, u.toString(), `chaos-${tag}-`);
    await target.query('SELECT 1');
    return target;
  }

  private async query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.adminUrl, connectionTimeoutMillis: 5_000, application_name: 'strata-chaos-harness' });
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Terminates every connection of this run's instances (and only theirs); resolves with how many. */
  async terminateBackends(): Promise<number> {
    const rows = await this.query<{ n: string }>(`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = current_database() AND starts_with(application_name, $1) AND pid <> pg_backend_pid()`, [`strata:${this.instancePrefix}`]);
    return Number(rows[0]?.n ?? 0);
  }

  /** Turn rows of `instanceId` still in the journal (pending: not archived by anyone yet), of `sessions` only when given. */
  async pendingRows(instanceId: string, sessions?: readonly string[]): Promise<number> {
    const where = sessions ? ' AND session_id = ANY($2)' : '';
    const rows = await this.query<{ n: string }>(`SELECT count(*) AS n FROM ${this.schema}.journal WHERE instance_id = $1 AND kind = 1${where}`, sessions ? [instanceId, sessions] : [instanceId]);
    return Number(rows[0]?.n ?? 0);
  }

  async drop(): Promise<void> {
    await this.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
  }
}
