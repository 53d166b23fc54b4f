// Writes the golden archive files in test/fixtures/archive/ (those of the current format version). Run once per new format version
// (`npx tsx scripts/make-golden-archive.ts`); the files are then read by test/unit/archive-golden.test.ts
// forever, so a reader change that breaks v1 fails the build. Never regenerate existing files.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsArchiveStore } from '../src/archive/fs-store.js';
import { FORMAT_VERSION } from '../src/archive/format.js';
import { GOLDEN_CASES, goldenTurnsOf } from '../test/fixtures/archive/golden.js';

const outDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'fixtures', 'archive');
const force = process.argv.includes('--force');
for (const c of GOLDEN_CASES) {
  const target = join(outDir, c.file);
  if (c.version !== FORMAT_VERSION || (existsSync(target) && !force)) {
    console.log(`${c.file}: ${c.version !== FORMAT_VERSION ? 'an earlier version' : 'exists'}, kept`);
    continue;
  }
  const dir = mkdtempSync(join(tmpdir(), 'strata-golden-'));
  try {
    const store = new FsArchiveStore({ dataDir: dir, clock: { now: () => 1_735_689_600_000 }, textCodec: c.codec, textLayout: c.layout, embeddingEncoding: c.encoding });
    const ref = { tenant: 'golden', sessionId: 'session-1' };
    const turns = goldenTurnsOf(c.version);
    await store.append(ref, turns.slice(0, 4), { userId: 'user-1', embedderId: 'golden-embedder' });
    await store.append(ref, turns.slice(4), { embedderId: 'golden-embedder' });
    await store.saveSummary(ref, { fromTurn: 1, toTurn: 6, text: 'A greeting and a question about Strata.', createdAt: 1_735_689_600_000 });
    writeFileSync(target, readFileSync(store.pathOf(ref)));
    console.log(`${c.file}: written`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
