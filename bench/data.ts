import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from bench/ in the sources or dist/bench/ in the build. */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', ...(import.meta.url.includes('/dist/') ? ['..'] : []));

/**
 * Path of a file of the shared benchmark data (`../shared/data/` beside the repository). A clone
 * elsewhere (CI clones into a temporary directory) finds it through `STRATA_SHARED_DATA` or the
 * workplace's fixed location. When none exists, the conventional path is returned, so the error
 * names where the file was expected.
 */
export function sharedDataFile(name: string): string {
  const dirs = [process.env.STRATA_SHARED_DATA, join(ROOT, '..', 'shared', 'data'), '/work/shared/data'];
  for (const dir of dirs) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return join(ROOT, '..', 'shared', 'data', name);
}
