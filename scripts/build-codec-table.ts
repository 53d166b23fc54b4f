// Rebuilds src/codec/tables/o200k-tokens.bin, the static code of huffman-tokens, from the token
// frequencies of ../shared/data/sharegpt-sessions.json (every message's content, in file order).
// Deterministic: the same corpus gives the same bytes (a test checks this).
// Usage: npm run build:codec-table [-- --input FILE] [--out FILE] [--train-fraction 0.8]
//   --train-fraction keeps sessions whose index i satisfies i % 5 < 5·fraction (for held-out tests).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sharedDataFile } from '../bench/data.js';
import { buildTokenTable } from '../src/codec/token-table-build.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    input: { type: 'string', default: sharedDataFile('sharegpt-sessions.json') },
    out: { type: 'string', default: join(root, 'src/codec/tables/o200k-tokens.bin') },
    'train-fraction': { type: 'string', default: '1' },
  },
});
const fraction = Number(values['train-fraction']);
const sessions = JSON.parse(readFileSync(resolve(values.input), 'utf8')) as Array<{ turns: Array<{ content: string }> }>;
const texts = sessions.filter((_, i) => fraction >= 1 || i % 5 < Math.round(5 * fraction)).flatMap((s) => s.turns.map((t) => t.content));
const started = performance.now();
const table = buildTokenTable(texts);
writeFileSync(resolve(values.out), table);
console.log(`wrote ${values.out}: ${table.length} bytes from ${texts.length} messages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
