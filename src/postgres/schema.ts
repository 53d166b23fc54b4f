import { StrataError } from '../errors.js';
import type { Db } from './db.js';

/**
 * Versioned migrations of Strata's PostgreSQL schema (every table and index is explained in
 * docs/postgres.md). A migration is applied once, in order, in one transaction with its row in
 * `schema_migrations`; an applied migration is never edited (a change is a new version).
 *
 * Every table's primary key starts with (tenant, session_id): one session's rows sit together in
 * each index, and on a sharded PostgreSQL (Citus) every table can be distributed by `session_id`
 * with all of one session's rows — journal, segments, summaries, keys — on one shard, so every
 * transaction Strata runs stays on one node.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'journal, epochs and archive',
    sql: `
CREATE TABLE epochs (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  value bigint NOT NULL
);
INSERT INTO epochs (singleton, value) VALUES (true, 0);

CREATE TABLE journal (
  tenant text NOT NULL,
  session_id text NOT NULL,
  id bigint GENERATED ALWAYS AS IDENTITY,
  instance_id text NOT NULL,
  kind smallint NOT NULL CHECK (kind IN (1, 2, 3)),
  turn_id bigint,
  record bytea NOT NULL,
  PRIMARY KEY (tenant, session_id, id)
);
CREATE INDEX journal_instance ON journal (instance_id, id);
CREATE INDEX journal_turn ON journal (tenant, session_id, turn_id) WHERE turn_id IS NOT NULL;

CREATE TABLE archive_sessions (
  tenant text NOT NULL,
  session_id text NOT NULL,
  live boolean NOT NULL DEFAULT false,
  user_id text,
  created_at bigint NOT NULL,
  high_water bigint NOT NULL DEFAULT 0,
  deleted_up_to bigint NOT NULL DEFAULT 0,
  fence bigint NOT NULL DEFAULT 0,
  turn_count bigint NOT NULL DEFAULT 0,
  first_turn_at bigint,
  last_turn_at bigint,
  bytes bigint NOT NULL DEFAULT 0,
  segments integer NOT NULL DEFAULT 0,
  next_seq integer NOT NULL DEFAULT 1,
  embedder_id text,
  dims integer NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant, session_id)
);
CREATE INDEX archive_sessions_user ON archive_sessions (tenant, user_id, session_id) WHERE live AND user_id IS NOT NULL;
CREATE INDEX archive_sessions_age ON archive_sessions ((coalesce(last_turn_at, created_at))) WHERE live;

CREATE TABLE archive_segments (
  tenant text NOT NULL,
  session_id text NOT NULL,
  seq integer NOT NULL,
  first_turn bigint NOT NULL,
  last_turn bigint NOT NULL,
  turn_count integer NOT NULL,
  vectors integer NOT NULL,
  embedder_id text,
  record bytea NOT NULL,
  PRIMARY KEY (tenant, session_id, seq)
);
ALTER TABLE archive_segments ALTER COLUMN record SET STORAGE EXTERNAL;

CREATE TABLE archive_summaries (
  tenant text NOT NULL,
  session_id text NOT NULL,
  from_turn bigint NOT NULL,
  to_turn bigint NOT NULL,
  text text NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (tenant, session_id, from_turn, to_turn)
);

CREATE TABLE archive_idempotency (
  tenant text NOT NULL,
  session_id text NOT NULL,
  key text NOT NULL,
  turn_id bigint NOT NULL,
  hash text NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (tenant, session_id, key)
);
`,
  },
]);

export interface MigrationReport {
  schema: string;
  /** Versions present before this run. */
  current: number;
  /** Migrations applied by this run (with `dryRun`: that would be applied). */
  applied: Array<{ version: number; name: string }>;
  dryRun: boolean;
}

/**
 * Brings the schema to the newest version. Runs in one transaction under a transaction-level
 * advisory lock named after the schema, so instances starting together apply each migration
 * exactly once (the others wait, then find nothing to do). `dryRun` reports and rolls back.
 */
export async function migrate(db: Db, options: { dryRun?: boolean } = {}): Promise<MigrationReport> {
  const schema = db.settings.schema;
  const dryRun = options.dryRun === true;
  const rollback = new Error('dry run');
  let report: MigrationReport | null = null;
  try {
    await db.tx('the schema migration', async (sql) => {
      await sql.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`strata.migrate:${schema}`]);
      await sql.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await sql.query(`SET LOCAL search_path TO ${schema}`);
      await sql.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const { rows } = await sql.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      const done = new Set(rows.map((r) => r.version));
      const current = rows.length === 0 ? 0 : Math.max(...done);
      const newest = MIGRATIONS.at(-1)!.version;
      if (current > newest) {
        throw new StrataError('STRATA_ERR_CONFIG_INVALID', `schema ${schema} is at version ${current}, newer than this build knows (${newest}): upgrade Strata before starting it on this database`, { details: { option: 'store.postgresUrl', schema, current, newest } });
      }
      const applied: MigrationReport['applied'] = [];
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        await sql.query(m.sql);
        await sql.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        applied.push({ version: m.version, name: m.name });
      }
      report = { schema, current, applied, dryRun };
      if (dryRun) throw rollback;
    });
  } catch (err) {
    if (err !== rollback) throw err;
  }
  return report!;
}

/** The schema's version (0: nothing applied). */
export async function schemaVersion(db: Db): Promise<number> {
  const { rows } = await db.query<{ v: number | null }>(`SELECT (SELECT max(version) FROM ${db.settings.schema}.schema_migrations) AS v`).catch((err: unknown) => {
    if ((err as StrataError).cause && (err as { cause: { code?: string } }).cause.code === '42P01') return { rows: [{ v: 0 }] };
    throw err;
  });
  return rows[0]?.v ?? 0;
}
