import { stat } from 'node:fs/promises';
import { controlPath } from './control.js';
import type { SessionFiles } from './fs-files.js';

/*
 * The fs driver's answers about users' sessions beyond the user index (user-index.ts): the index
 * is a hint written after the file, so each session it names is confirmed by the file's own
 * metadata, read again only when the file changed.
 */

/** The owner of each session file as last read from it, with the file's stamp at that time. */
export class SessionOwners {
  private readonly owners = new Map<string, { stamp: string; owner: string | null }>();

  constructor(private readonly files: SessionFiles) {}

  /** The sessions of `ids` whose file names `userId` as owner; `stamps` from `sessionStamps`. */
  async confirm(tenant: string, userId: string, ids: readonly string[], stamps: Map<string, string | null>): Promise<string[]> {
    const out: string[] = [];
    for (const sessionId of ids) {
      // Read again only when the file or its control file changed since the last confirmation.
      const path = this.files.pathOf({ tenant, sessionId });
      const stamp = stamps.get(sessionId) ?? null;
      if (stamp === null) continue;
      const known = this.owners.get(path);
      let owner: string | null;
      if (known && known.stamp === stamp) owner = known.owner;
      else {
        owner = await this.files.withSnapshot(path, async (snap) => snap.index.meta.userId ?? null);
        this.owners.set(path, { stamp, owner });
        if (this.owners.size > 100_000) this.owners.delete(this.owners.keys().next().value!);
      }
      if (owner === userId) out.push(sessionId);
    }
    return out;
  }
}

/**
 * Per session, a string that changes whenever its archive file or its control file changes
 * (identity, size, modification time of both: two stats, no read); null for a session without
 * a file. Cheap enough to check a thousand sessions per search.
 */
export async function sessionStamps(files: SessionFiles, tenant: string, sessionIds: readonly string[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  const one = async (sessionId: string) => {
    const path = files.pathOf({ tenant, sessionId });
    const [file, ctl] = await Promise.all([stat(path, { bigint: true }).catch(() => null), stat(controlPath(path), { bigint: true }).catch(() => null)]);
    out.set(sessionId, file === null ? null : `${file.ino}:${file.size}:${file.mtimeNs}|${ctl ? `${ctl.ino}:${ctl.size}:${ctl.mtimeNs}` : '-'}`);
  };
  for (let i = 0; i < sessionIds.length; i += 64) await Promise.all(sessionIds.slice(i, i + 64).map(one));
  return out;
}
