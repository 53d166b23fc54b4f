// Runs every test file under test/ with node's test runner through tsx.
// Node 20's runner does not discover *.test.ts itself, so the files are listed here.
// Usage: node scripts/test.mjs [path-substring ...]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);
function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}
const files = find(join(root, 'test')).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// A test that hangs fails after 10 minutes instead of holding CI (the timeout bounds a whole file
// too: the chaos file runs two profiles of about two and a half minutes each); a leaked handle
// cannot keep a finished file's process alive.
const args = ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', '--test-timeout=600000', '--test-force-exit', ...files];
const result = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root, env: { ...process.env, STRATA_TEST: '1' } });
process.exit(result.status ?? 1);
