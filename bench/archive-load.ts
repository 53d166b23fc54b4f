// The load-latency workload of `strata bench archive`, run in its own process (the parent's heap
// holds the whole corpus, whose garbage collection would otherwise land in these timings).
// Usage: archive-load <dataDir | postgres URL with ?schema=> <loads> <sessions> [<json-gzip-file>...]
// prints one JSON object: {"times": [ms...], "baseTimes": [ms...], "turns": n}
// (baseTimes: the proposal's gzip JSON files, when given).
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { FsArchiveStore } from '../src/archive/fs-store.js';
import { PgArchiveStore } from '../src/archive/pg-store.js';
import type { ArchiveStore } from '../src/archive/store.js';
import { Db, parsePostgresUrl } from '../src/postgres/db.js';

const [where, loadsArg, sessionsArg, ...jsonPaths] = process.argv.slice(2);
const loads = Number(loadsArg);
const sessions = Number(sessionsArg);
const postgres = /^postgres(ql)?:/.test(where!);
const db = postgres ? new Db(parsePostgresUrl(where!)).acquire() : null;
// The file store is opened fresh for every load (no index cache); the PostgreSQL store keeps
// nothing between reads but its pool, which a running instance has open anyway.
const open = (): ArchiveStore => (db ? new PgArchiveStore({ db }) : new FsArchiveStore({ dataDir: where! }));
const pgStore = db ? open() : null;
const times: number[] = [];
const baseTimes: number[] = [];
let turns = 0;
// The first rounds warm up the JIT (and the pool); they are not counted. Each side runs in its own loop.
for (let i = 0; i < loads + 5; i++) {
  const store = pgStore ?? open();
  const t0 = performance.now();
  const loaded = await store.read({ tenant: 'bench', sessionId: `long-${i % sessions}` });
  const t1 = performance.now();
  turns = loaded.length;
  if (i >= 5) times.push(t1 - t0);
}
for (let i = 0; i < (jsonPaths.length === 0 ? 0 : Math.min(loads, 60) + 5); i++) {
  const t0 = performance.now();
  const doc = JSON.parse(gunzipSync(await readFile(jsonPaths[i % jsonPaths.length]!)).toString('utf8')) as { turns: Array<{ embedding: number[] }> };
  for (const t of doc.turns) Float32Array.from(t.embedding);
  const t1 = performance.now();
  if (i >= 5) baseTimes.push(t1 - t0);
}
await db?.release();
process.stdout.write(`${JSON.stringify({ times, baseTimes, turns })}\n`);
