// Compiles src/ to dist/ and copies non-TypeScript assets (Lua scripts, JSON tables) beside
// the compiled modules, so runtime code resolves them relative to its own file in both layouts.
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, dirname, extname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const tsc = require.resolve('typescript/bin/tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });

const ASSET_EXTENSIONS = new Set(['.lua', '.json', '.bin']);
function copyAssets(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) copyAssets(path);
    else if (ASSET_EXTENSIONS.has(extname(name))) cpSync(path, path.replace(root, join(root, 'dist')));
  }
}
copyAssets(join(root, 'src'));
