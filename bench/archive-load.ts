// The load-latency workload of `strata bench archive`, run in its own process (the parent's heap
// holds the whole corpus, whose garbage collection would otherwise land in these timings).
// Usage: archive-load <dataDir | postgres URL with ?schema=> <loads> <sessions> [<json-gzip-file>...]
// prints one JSON object: {"times": [ms...], "baseTimes": [ms...], "firstMs": ms, "turns": n}
// (baseTimes: the proposal's gzip JSON files, when given; firstMs: the process's very first load,
// before any JIT compilation or heap growth).
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
let firstMs = 0;
// Steady state is what a running instance serves: every session is loaded 4 times (at least 20
// loads) before timing starts, so that the decoders are compiled and the heap has grown to its
// working size (a fresh process's first ~20 loads take 12-47 ms for that reason alone). The very
// first load is reported on its own. Each side runs in its own loop.
const warmup = Math.max(20, 4 * sessions);
for (let i = 0; i < loads + warmup; i++) {
  const store = pgStore ?? open();
  const t0 = performance.now();
  const loaded = await store.read({ tenant: 'bench', sessionId: `long-${i % sessions}` });
  const t1 = performance.now();
  turns = loaded.length;
  if (i === 0) firstMs = t1 - t0;
  if (i >= warmup) times.push(t1 - t0);
}
for (let i = 0; i < (jsonPaths.length === 0 ? 0 : Math.min(loads, 60) + warmup); i++) {
  const t0 = performance.now();
  const doc = JSON.parse(gunzipSync(await readFile(jsonPaths[i % jsonPaths.length]!)).toString('utf8')) as { turns: Array<{ embedding: number[] }> };
  for (const t of doc.turns) Float32Array.from(t.embedding);
  const t1 = performance.now();
  if (i >= warmup) baseTimes.push(t1 - t0);
}
await db?.release();
process.stdout.write(`${JSON.stringify({ times, baseTimes, firstMs, turns })}\n`);
