// The load-latency workload of `strata bench archive`, run in its own process (the parent's heap
// holds the whole corpus, whose garbage collection would otherwise land in these timings).
// Usage: archive-load <dataDir> <loads> <json-gzip-file>... ; prints one JSON object:
// {"times": [ms...], "baseTimes": [ms...], "turns": n}
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { FsArchiveStore } from '../src/archive/fs-store.js';

const [dataDir, loadsArg, ...jsonPaths] = process.argv.slice(2);
const loads = Number(loadsArg);
const sessions = jsonPaths.length;
const times: number[] = [];
const baseTimes: number[] = [];
let turns = 0;
// The first rounds warm up the JIT; they are not counted. Each side runs in its own loop.
for (let i = 0; i < loads + 5; i++) {
  const fresh = new FsArchiveStore({ dataDir: dataDir! });
  const t0 = performance.now();
  const loaded = await fresh.read({ tenant: 'bench', sessionId: `long-${i % sessions}` });
  const t1 = performance.now();
  turns = loaded.length;
  if (i >= 5) times.push(t1 - t0);
}
for (let i = 0; i < Math.min(loads, 60) + 5; i++) {
  const t0 = performance.now();
  const doc = JSON.parse(gunzipSync(await readFile(jsonPaths[i % sessions]!)).toString('utf8')) as { turns: Array<{ embedding: number[] }> };
  for (const t of doc.turns) Float32Array.from(t.embedding);
  const t1 = performance.now();
  if (i >= 5) baseTimes.push(t1 - t0);
}
process.stdout.write(`${JSON.stringify({ times, baseTimes, turns })}\n`);
