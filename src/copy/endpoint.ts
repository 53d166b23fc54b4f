import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ArchiveStore } from '../archive/store.js';
import type { CoreConfig } from '../config.js';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import type { JournalReader } from '../journal/store.js';
import { parsePostgresUrl } from '../postgres/db.js';
import type { Db } from '../postgres/db.js';
import { MIGRATIONS, migrate, schemaVersion } from '../postgres/schema.js';
import { openDb, openStores } from '../stores.js';
import { systemClock } from '../types.js';

/** Where `strata copy` reads or writes: `fs:<data directory>` or a `postgres://` URL (with `?schema=`). */
export type EndpointSpec = { driver: 'fs'; dir: string; label: string } | { driver: 'postgres'; url: string; schema: string; label: string };

/**
 * An opened side of a copy: its archive and (source) every instance's unarchived journal
 * records, through the store factory; `archive` is null for a target that does not exist yet
 * and must not be created (a dry run).
 */
export interface Endpoint {
  spec: EndpointSpec;
  /** The configuration the stores were opened with (the source's read-only core reuses it). */
  config: CoreConfig;
  archive: ArchiveStore | null;
  journal: JournalReader | null;
  /** Tenants that hold at least one archived session. */
  tenants(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * Parses `--from` / `--to`. Only the two schemes are accepted, so a typo never falls back to a
 * directory named like a URL.
 */
export function parseEndpoint(option: string, text: string): EndpointSpec {
  if (typeof text !== 'string' || text.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', `${option}: expected fs:<dir> or a postgres:// URL, received nothing`);
  if (text.startsWith('fs:')) {
    const dir = text.slice(3);
    if (dir.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', `${option}: expected fs:<dir>, received "fs:" without a directory`);
    return { driver: 'fs', dir: resolve(dir), label: `fs:${resolve(dir)}` };
  }
  if (/^postgres(ql)?:\/\//.test(text)) {
    let settings;
    try {
      settings = parsePostgresUrl(text);
    } catch (err) {
      throw new StrataError('STRATA_ERR_VALIDATION', `${option}: ${(err as Error).message.replace(/^STRATA_ERR_[A-Z_]+: /, '')}`, { cause: err });
    }
    return { driver: 'postgres', url: text, schema: settings.schema, label: `${redact(settings.connectionString)} (schema ${settings.schema})` };
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(text)?.[1];
  throw new StrataError('STRATA_ERR_VALIDATION', `${option}: expected fs:<dir> or a postgres:// URL, received ${scheme ? `the unknown scheme ${JSON.stringify(`${scheme}:`)}` : JSON.stringify(text)}`, { details: { option } });
}

/** The URL without its password, for reports and logs. */
function redact(connectionString: string): string {
  const u = new URL(connectionString);
  if (u.password) u.password = '***';
  return u.toString();
}

/** True when both name the same store (a copy onto itself is refused). */
export function sameEndpoint(a: EndpointSpec, b: EndpointSpec): boolean {
  if (a.driver === 'fs' && b.driver === 'fs') return a.dir === b.dir;
  if (a.driver === 'postgres' && b.driver === 'postgres') {
    const x = new URL(parsePostgresUrl(a.url).connectionString);
    const y = new URL(parsePostgresUrl(b.url).connectionString);
    return a.schema === b.schema && x.hostname === y.hostname && (x.port || '5432') === (y.port || '5432') && x.pathname === y.pathname;
  }
  return false;
}

/** The configuration of one side: the base options (codec, archive), this side's store. */
function endpointConfig(base: CoreConfig, spec: EndpointSpec): CoreConfig {
  // A copy acknowledges nothing to anyone before it verified the target: still, the target's
  // commits are synchronous (PostgreSQL: synchronous_commit=on), so a finished run is durable.
  if (spec.driver === 'fs') return { ...base, durability: 'fsync', dataDir: spec.dir, store: { driver: 'fs', postgresUrl: null } };
  return { ...base, durability: 'fsync', store: { driver: 'postgres', postgresUrl: spec.url } };
}

async function isDirectory(path: string): Promise<boolean | null> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StrataError('STRATA_ERR_ARCHIVE_IO', `checking ${path} failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Opens the source for reading only: no journal lock, no migration, no file or row written (a
 * running service may keep using it). A missing directory or a database without Strata's
 * schema is an error, never an empty source.
 */
export async function openSource(base: CoreConfig, spec: EndpointSpec): Promise<Endpoint> {
  const config = endpointConfig(base, spec);
  if (spec.driver === 'fs') {
    const dir = await isDirectory(spec.dir);
    if (dir === null) throw new StrataError('STRATA_ERR_NOT_FOUND', `--from ${spec.label}: no such directory`, { details: { option: '--from' } });
    if (!dir) throw new StrataError('STRATA_ERR_VALIDATION', `--from ${spec.label}: not a directory`, { details: { option: '--from' } });
  } else {
    const version = await withDb(config, schemaVersion);
    if (version === 0) throw new StrataError('STRATA_ERR_NOT_FOUND', `--from ${spec.label}: the schema holds no Strata tables`, { details: { option: '--from' } });
  }
  const stores = await openStores(config, { clock: systemClock, readOnly: true });
  return { spec, config, archive: stores.archive, journal: stores.journal, tenants: () => listTenants(config, spec), close: () => closeStores(stores) };
}

/**
 * Opens the target for writing archives (no journal of its own: a copy writes only archived
 * sessions). PostgreSQL: the schema is migrated first, as `strata serve` does; an fs directory
 * is created when missing. A dry run creates nothing: a target that does not exist yet has no
 * archive (every session would be copied).
 */
export async function openTarget(base: CoreConfig, spec: EndpointSpec, options: { dryRun: boolean }): Promise<Endpoint> {
  const config = endpointConfig(base, spec);
  const empty: Endpoint = { spec, config, archive: null, journal: null, tenants: () => Promise.resolve([]), close: () => Promise.resolve() };
  if (spec.driver === 'fs') {
    const dir = await isDirectory(spec.dir);
    if (dir === false) throw new StrataError('STRATA_ERR_VALIDATION', `--to ${spec.label}: not a directory`, { details: { option: '--to' } });
    if (dir === null && options.dryRun) return empty;
  } else {
    const version = await withDb(config, async (db) => {
      const current = await schemaVersion(db);
      if (current < MIGRATIONS.at(-1)!.version && !options.dryRun) await migrate(db);
      return current;
    });
    if (version === 0 && options.dryRun) return empty;
  }
  const stores = await openStores(config, { clock: systemClock, readOnly: true });
  return { spec, config, archive: stores.archive, journal: stores.journal, tenants: () => listTenants(config, spec), close: () => closeStores(stores) };
}

async function closeStores(stores: { archive: ArchiveStore; journal: { close(): Promise<void> } }): Promise<void> {
  await stores.journal.close();
  await stores.archive.close();
}

async function withDb<T>(config: CoreConfig, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = openDb(config).acquire();
  try {
    return await fn(db);
  } finally {
    await db.release();
  }
}

/**
 * Tenants with archived sessions. The ArchiveStore contract lists sessions per tenant only, so
 * this reads each driver's tenant level itself (read-only): the fs archive's directory names,
 * the PostgreSQL archive's tenant column. It belongs in the drivers as `listTenants()`.
 */
async function listTenants(config: CoreConfig, spec: EndpointSpec): Promise<string[]> {
  if (spec.driver === 'postgres') {
    const rows = await withDb(config, async (db) => (await db.query<{ tenant: string }>('SELECT DISTINCT tenant FROM archive_sessions WHERE live', [], 'listing tenants')).rows);
    return rows.map((r) => r.tenant).sort();
  }
  const root = join(spec.dir, 'archive');
  let entries;
  try {
    entries = await readdir(root, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new StrataError('STRATA_ERR_ARCHIVE_IO', `listing ${root} failed: ${(err as Error).message}`, { cause: err });
  }
  return entries.filter((e) => e.isDirectory() && isTenantId(e.name)).map((e) => e.name).sort();
}

function isTenantId(name: string): boolean {
  try {
    validateId('tenant', name);
    return true;
  } catch {
    return false;
  }
}
