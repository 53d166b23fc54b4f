import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SessionFiles } from './fs-files.js';
import { FILE_EXTENSION } from './format.js';
import { ioError } from './io.js';
import { sessionIdOfStem, shardOf } from './layout.js';

/** A session file a walk found. */
export interface FoundFile {
  tenant: string;
  shard: string;
  /** The file name without its extension (src/archive/layout.ts). */
  stem: string;
  sessionId: string;
  path: string;
}

export const SHARD_PATTERN = /^[0-9a-f]{2}$/;

/** Tenants with a directory under the archive root, sorted. */
export async function tenants(files: SessionFiles): Promise<string[]> {
  const names = await readdirSafe(files.root);
  return names.filter((n) => /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(n) && n.length <= 128).sort();
}

/** Files of one tenant in (shard, file name) order, strictly after `cursor` (`<shard>/<stem>`). */
export async function* walkTenant(files: SessionFiles, tenant: string, cursor: string | null): AsyncGenerator<FoundFile> {
  const dir = files.tenantDir(tenant);
  const [cShard, cStem] = cursor ? (cursor.split('/') as [string, string]) : ['', ''];
  for (const shard of (await readdirSafe(dir)).filter((s) => SHARD_PATTERN.test(s)).sort()) {
    if (shard < cShard) continue;
    const names = (await readdirSafe(join(dir, shard))).filter((n) => n.endsWith(FILE_EXTENSION) && !n.startsWith('.')).sort();
    for (const name of names) {
      const stem = name.slice(0, -FILE_EXTENSION.length);
      if (shard === cShard && stem <= cStem) continue;
      const path = join(dir, shard, name);
      let sessionId = sessionIdOfStem(stem);
      // A hashed name: the id is in the file's metadata.
      if (sessionId === null) {
        const snap = await files.rawSnapshot(path);
        if (snap) await snap.fh.close();
        sessionId = snap?.index.meta.sessionId ?? undefined;
      }
      if (sessionId === undefined || shardOf(sessionId) !== shard) continue;
      yield { tenant, shard, stem, sessionId, path };
    }
  }
}

export async function readdirSafe(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(err, 'listing', dir);
  }
}
