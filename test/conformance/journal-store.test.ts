import { Journal } from '../../src/journal/journal.js';
import { PgJournal } from '../../src/journal/pg-journal.js';
import { Db } from '../../src/postgres/db.js';
import { migrate } from '../../src/postgres/schema.js';
import { tempDir } from '../helpers/journal.js';
import { tempSchema } from '../helpers/postgres.js';
import { journalStoreSuite } from './journal-store.js';

journalStoreSuite('fs', async () => {
  const { dir, cleanup } = await tempDir();
  return { open: (instanceId, options = {}) => Journal.open({ dataDir: dir, instanceId, ...options }), cleanup };
});

journalStoreSuite('postgres', async () => {
  const { url, drop } = tempSchema('strata_cj');
  const setup = new Db(url);
  await migrate(setup);
  await setup.acquire().release();
  return { open: (instanceId, options = {}) => PgJournal.open({ db: new Db(url), instanceId, ...options }), cleanup: drop };
});
