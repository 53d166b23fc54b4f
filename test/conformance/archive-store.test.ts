import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsArchiveStore } from '../../src/archive/fs-store.js';
import { PgArchiveStore } from '../../src/archive/pg-store.js';
import type { PgArchiveOptions } from '../../src/archive/pg-store.js';
import { Db } from '../../src/postgres/db.js';
import { migrate } from '../../src/postgres/schema.js';
import { tempSchema } from '../helpers/postgres.js';
import { archiveStoreSuite } from './archive-store.js';
import type { FakeClock } from './archive-store.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'strata-archive-'));
  dirs.push(d);
  return d;
}

archiveStoreSuite('fs (brotli, per-block text, int8)', ({ clock }) => new FsArchiveStore({ dataDir: tempDir(), clock }));
archiveStoreSuite('fs (deflate, per-turn text, f16, compaction after 4 segments)', ({ clock }) =>
  new FsArchiveStore({ dataDir: tempDir(), clock, textCodec: 'deflate', textLayout: 'turn', embeddingEncoding: 'f16', compactAfterSegments: 4, indexCacheSize: 0 }),
);
archiveStoreSuite('fs (huffman-tokens, segments of 7 turns)', ({ clock }) => new FsArchiveStore({ dataDir: tempDir(), clock, textCodec: 'huffman-tokens', maxSegmentTurns: 7 }));

// PostgreSQL: one schema per store, on the machine's shared server; dropped at the end.
const schemas: Array<() => Promise<void>> = [];
after(async () => {
  for (const drop of schemas) await drop();
});
async function pgStore(clock: FakeClock, options: Omit<PgArchiveOptions, 'db' | 'clock'> = {}): Promise<PgArchiveStore> {
  const { url, drop } = tempSchema('strata_ca');
  schemas.push(drop);
  const db = new Db(url);
  await migrate(db);
  return new PgArchiveStore({ db, clock, ...options });
}
archiveStoreSuite('postgres (brotli, per-block text, int8)', ({ clock }) => pgStore(clock));
archiveStoreSuite('postgres (deflate, per-turn text, f16, compaction after 4 segments)', ({ clock }) => pgStore(clock, { textCodec: 'deflate', textLayout: 'turn', embeddingEncoding: 'f16', compactAfterSegments: 4 }));
archiveStoreSuite('postgres (huffman-tokens, segments of 7 turns)', ({ clock }) => pgStore(clock, { textCodec: 'huffman-tokens', maxSegmentTurns: 7 }));
