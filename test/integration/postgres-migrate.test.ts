import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.js';
import { Db } from '../../src/postgres/db.js';
import { MIGRATIONS, migrate } from '../../src/postgres/schema.js';
import { captureIo } from '../helpers/io.js';
import { sql, tempSchema } from '../helpers/postgres.js';

const tables = (url: string, schema: string) => sql<{ t: string }>(url, 'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1', [schema]);

test('strata migrate --dry-run changes nothing; migrate applies each version once, also when instances start together', async (t) => {
  const { url, schema, drop } = tempSchema('strata_mig');
  t.after(drop);
  const run = async (argv: string[]) => {
    const io = Object.assign(captureIo(), { env: {} });
    const code = await main(['migrate', '--postgres-url', url, ...argv], io);
    return { code, out: io.out(), err: io.err() };
  };
  const dry = await run(['--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.err);
  const report = JSON.parse(dry.out) as { current: number; applied: Array<{ version: number }>; dryRun: boolean };
  assert.deepEqual([report.current, report.dryRun, report.applied.map((m) => m.version)], [0, true, MIGRATIONS.map((m) => m.version)]);
  assert.deepEqual(await tables(url, schema), [], 'a dry run leaves no table behind');
  // Three instances starting at once: the advisory lock lets one apply, the others find nothing to do.
  const dbs = [new Db(url), new Db(url), new Db(url)];
  const reports = await Promise.all(dbs.map((db) => migrate(db)));
  for (const db of dbs) await db.acquire().release();
  assert.equal(reports.filter((r) => r.applied.length > 0).length, 1);
  const versions = await sql<{ version: number }>(url, 'SELECT version FROM schema_migrations ORDER BY version');
  assert.deepEqual(versions.map((v) => v.version), MIGRATIONS.map((m) => m.version));
  assert.ok((await tables(url, schema)).map((r) => r.t).includes('archive_segments'));
  const again = await run([]);
  assert.equal(again.code, 0);
  assert.match(again.out, /nothing to apply/);
  // Segment bytes are already compressed: PostgreSQL must store them as they are.
  const [storage] = await sql<{ s: string }>(url, "SELECT attstorage AS s FROM pg_attribute WHERE attrelid = 'archive_segments'::regclass AND attname = 'record'");
  assert.equal(storage?.s, 'e');
  const bad = await run(['--postgres-url', 'mysql://x']);
  assert.equal(bad.code, 1);
});
