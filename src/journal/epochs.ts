import { mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, ioError } from '../archive/io.js';
import { StrataError } from '../errors.js';

/**
 * Recovery after the hot tier lost its data (docs/consistency.md, "Redis loss").
 *
 * Epochs name the hot tier's datasets. A new dataset (first start, Redis restart without
 * persistence, FLUSHALL) gets a number allocated here, durably, from the shared data directory:
 * `epochs/<number>` is created exclusively, so two instances never allocate the same number and
 * a later dataset always has a larger one. Turn records carry the epoch their id was assigned
 * in; when two records claim one id (a writer paused across a loss journaled an id that the new
 * dataset handed out again), the one from the later epoch wins — the earlier one can never
 * have been acknowledged, because its writer's confirm saw the epoch change.
 */
export async function allocateEpoch(dataDir: string): Promise<number> {
  const dir = join(dataDir, 'epochs');
  await mkdir(dir, { recursive: true });
  for (let attempt = 0; attempt < 100; attempt++) {
    let max = 0;
    for (const name of await readdir(dir)) if (/^\d{1,15}$/.test(name)) max = Math.max(max, Number(name));
    const next = max + 1;
    try {
      const fh = await open(join(dir, String(next)), 'wx');
      await fh.sync();
      await fh.close();
      await fsyncDir(dir);
      // Only the largest number matters to the next allocation; older markers can go.
      for (const name of await readdir(dir)) if (/^\d{1,15}$/.test(name) && Number(name) < next - 8) await unlink(join(dir, name)).catch(() => undefined);
      return next;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, 'allocating an epoch in', dir);
    }
  }
  throw new StrataError('STRATA_ERR_INTERNAL', `could not allocate an epoch in ${dir}: too many concurrent allocations`);
}
