import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsArchiveStore } from '../../src/archive/fs-store.js';
import { archiveStoreSuite } from './archive-store.js';

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
