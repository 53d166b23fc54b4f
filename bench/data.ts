import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from bench/ in the sources or dist/bench/ in the build. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', ...(import.meta.url.includes('/dist/') ? ['..'] : []));

/**
 * Path of a file of the benchmark data sets, which are not distributed with Strata: the directory
 * named by `STRATA_SHARED_DATA` (what the README documents), else `../shared/data/` beside the
 * repository or the development machines' `/work/shared/data`. When none holds the file, the
 * path under `STRATA_SHARED_DATA` (or `../shared/data/`) is returned, so the error names where
 * the file was expected.
 */
export function sharedDataFile(name: string): string {
  const configured = process.env.STRATA_SHARED_DATA;
  const dirs = [configured, join(ROOT, '..', 'shared', 'data'), '/work/shared/data'];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return join(configured || join(ROOT, '..', 'shared', 'data'), name);
}
