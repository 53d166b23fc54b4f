import { mkdir } from 'node:fs/promises';
import { FsArchiveStore } from './archive/fs-store.js';
import { InProcessSessionLock } from './archive/lock.js';
import { PgArchiveStore } from './archive/pg-store.js';
import type { ArchiveStore } from './archive/store.js';
import type { CoreConfig } from './config.js';
import { StrataError } from './errors.js';
import { Journal, fsJournalReader } from './journal/journal.js';
import { PendingLedger } from './journal/ledger.js';
import { PgJournal, pgJournalReader } from './journal/pg-journal.js';
import type { JournalReader, JournalStore } from './journal/store.js';
import type { JournalRecord } from './journal/types.js';
import type { StrataMetrics } from './metrics.js';
import { Db } from './postgres/db.js';
import { MIGRATIONS, migrate, schemaVersion } from './postgres/schema.js';
import type { Clock } from './types.js';

/** The durable side of an instance: its journal and the archive, on one driver. */
export interface Stores {
  driver: 'fs' | 'postgres';
  archive: ArchiveStore;
  journal: JournalStore;
  /** Records of this instance's previous runs, to archive at start (empty for read-only). */
  replayed: JournalRecord[];
  /** The data directory (fs only), for health reports. */
  dataDir?: string;
  /** What open found in the journal (fs: torn tail, damage), for logging. */
  recovery?: Journal['recovery'];
}

export interface OpenStoresOptions {
  clock: Clock;
  metrics?: StrataMetrics;
  /** No journal of its own, no lock, no migration: reads every instance's records. */
  readOnly?: boolean;
  /** The instance id was defaulted: take the next free `<id>-N` when another process holds it. */
  defaultedId?: boolean;
}

/** The pool of `store.postgresUrl`, with this configuration's commit durability. */
export function openDb(config: CoreConfig): Db {
  if (!config.store.postgresUrl) throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'option store.postgresUrl (env STRATA_POSTGRES_URL): expected a postgres:// URL when store.driver is postgres, received nothing', { details: { option: 'store.postgresUrl' } });
  // 'batch' and 'none' acknowledge before the WAL flush (synchronous_commit=off): a crash of the
  // database server may lose the last fraction of a second of commits, atomically and in order.
  return new Db(config.store.postgresUrl, { synchronousCommit: config.durability === 'fsync', applicationName: `strata:${config.instanceId}` });
}

/**
 * Opens the journal and the archive of the configured driver. With `postgres` the schema is
 * migrated first (under an advisory lock; read-only cores only check that it is current), and
 * no data directory is created or used.
 */
export async function openStores(config: CoreConfig, options: OpenStoresOptions): Promise<Stores> {
  const { clock, metrics, readOnly = false, defaultedId = false } = options;
  if (config.store.driver === 'postgres') {
    const db = openDb(config).acquire();
    try {
      if (readOnly) {
        const version = await schemaVersion(db);
        if (version !== MIGRATIONS.at(-1)!.version) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', `PostgreSQL schema ${db.settings.schema} is at version ${version}, this build needs ${MIGRATIONS.at(-1)!.version}: run \`strata migrate\` (or start \`strata serve\`) first`);
      } else {
        await migrate(db);
      }
      const archive = new PgArchiveStore({ db, clock, embeddingEncoding: config.archive.embeddingEncoding });
      let journal: JournalStore | undefined;
      const replayed: JournalRecord[] = [];
      try {
        if (readOnly) journal = readOnlyJournal(pgJournalReader(db));
        else {
          journal = await openWithFreeId(config, defaultedId, (instanceId) => PgJournal.open({ db, instanceId, ...(metrics ? { metrics } : {}) }));
          for await (const { record } of journal.replay()) replayed.push(record);
        }
      } catch (err) {
        // A replay cut short (a connection cut): the journal's lock goes with it, so the next
        // attempt to open this instance id finds it free.
        await journal?.close().catch(() => undefined);
        await archive.close();
        throw err;
      }
      return { driver: 'postgres', archive, journal, replayed };
    } finally {
      // The archive and the journal hold their own references.
      await db.release();
    }
  }
  await mkdir(config.dataDir, { recursive: true });
  // The archive serialises operations on one file within this process; across processes, the
  // session's control-file lock (and the cache's lease around it) do.
  const archive = new FsArchiveStore({ dataDir: config.dataDir, clock, lock: new InProcessSessionLock(), embeddingEncoding: config.archive.embeddingEncoding });
  if (readOnly) return { driver: 'fs', archive, journal: readOnlyJournal(fsJournalReader(config.dataDir)), replayed: [], dataDir: config.dataDir };
  let journal: Journal | undefined;
  try {
    journal = await openWithFreeId(config, defaultedId, (instanceId) => Journal.open({ dataDir: config.dataDir, instanceId, durability: config.durability, ...(metrics ? { metrics } : {}) }));
    const replayed: JournalRecord[] = [];
    for await (const entry of journal.replay()) replayed.push(entry.record);
    return { driver: 'fs', archive, journal, replayed, dataDir: config.dataDir, recovery: journal.recovery };
  } catch (err) {
    await journal?.close().catch(() => undefined);
    await archive.close();
    throw err;
  }
}

/**
 * When the instance id was not given and another process (or another core in this process)
 * holds the default one, the next free `<id>-2`, `<id>-3`, … is taken, so several instances on
 * one host need no configuration; recovery reads every instance's journal.
 */
async function openWithFreeId<J>(config: CoreConfig, defaultedId: boolean, open: (instanceId: string) => Promise<J>): Promise<J> {
  for (let n = 1; ; n++) {
    const instanceId = n === 1 ? config.instanceId : `${config.instanceId}-${n}`;
    try {
      return await open(instanceId);
    } catch (err) {
      if (!defaultedId || n >= 64 || !(err instanceof StrataError) || err.code !== 'STRATA_ERR_JOURNAL_LOCKED') throw err;
    }
  }
}

/** What a read-only core has instead of a journal: every instance's records, nothing to write. */
export function readOnlyJournal(reader: JournalReader): JournalStore {
  const refuse = (): Promise<never> => Promise.reject(new StrataError('STRATA_ERR_NOT_AVAILABLE', 'this Strata instance was opened read-only'));
  return {
    instanceId: 'read-only',
    pending: new PendingLedger(),
    append: refuse,
    appendMany: refuse,
    // eslint-disable-next-line require-yield -- nothing to replay
    replay: async function* () {
      return;
    },
    markArchived: () => undefined,
    markDeleteApplied: () => undefined,
    markReplayed: () => undefined,
    checkpoint: () => Promise.resolve(),
    readPending: () => reader.readPending(),
    allocateEpoch: () => reader.allocateEpoch(),
    health: () => ({ ok: true }),
    close: () => Promise.resolve(),
  };
}
