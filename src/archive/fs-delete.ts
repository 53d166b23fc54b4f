import { unlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { SessionRef } from '../types.js';
import { withCommit } from './control.js';
import { segmentsFor } from './file.js';
import type { SessionFiles, Snapshot } from './fs-files.js';
import { tenants, walkTenant } from './fs-walk.js';
import { fsyncDir, ioError } from './io.js';
import { countVectors } from './segment-decode.js';
import type { DeleteReceipt, DeleteSessionOptions } from './store.js';
import { EMPTY_RECEIPT, expiryCutoff } from './validate.js';

/*
 * The fs driver's deletion of whole sessions: on request, and by retention. The deletion floor
 * goes to the session's control file (control.ts) before the file is unlinked.
 */

/** `unlinkLocked` removes the file once the floor is durable (the store's `deleteSessionLocked`). */
export async function deleteSession(files: SessionFiles, ref: SessionRef, options: DeleteSessionOptions, unlinkLocked: (ref: SessionRef, path: string) => Promise<DeleteReceipt>): Promise<DeleteReceipt> {
  const path = files.pathOf(ref);
  return files.options.lock.withLock({ tenant: ref.tenant, sessionId: ref.sessionId }, () =>
    withCommit(path, options.fence ?? null, files.options.commitWaitMs, async (control, save) => {
      const current = await files.rawSnapshot(path);
      const highWater = current ? current.index.highWater : 0;
      await current?.fh.close();
      // The floor is durable before anything is unlinked: from then on no reader, no replay
      // and no other instance's journal can bring these turns back, whatever crashes next.
      const floor = Math.max(control.deletedUpTo, options.upTo ?? 0, highWater);
      // Idempotency keys stay: a late retry of a deleted message answers its old id and stores nothing.
      if (floor > control.deletedUpTo) await save({ fence: control.fence, deletedUpTo: floor });
      return { result: await unlinkLocked(ref, path) };
    }),
  );
}

/** Unlinks the session's file and takes it out of its owner's index. Caller holds the locks. */
export async function deleteSessionLocked(files: SessionFiles, ref: SessionRef, path: string): Promise<DeleteReceipt> {
  const raw = await files.rawSnapshot(path);
  const snapInfo = raw ? { index: raw.index, vectors: await vectorsOf(files, raw).finally(() => raw.fh.close()) } : null;
  if (!snapInfo) return { ...EMPTY_RECEIPT };
  const { index } = snapInfo;
  try {
    await unlink(path);
    await fsyncDir(resolve(path, '..'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY_RECEIPT };
    throw ioError(err, 'deleting', path);
  }
  files.forget(path);
  if (index.meta.userId) {
    await files.users.remove(files.userIndexOf(ref.tenant), index.meta.userId, ref.sessionId);
    await files.users.bump(files.tenantDir(ref.tenant), index.meta.userId);
  }
  return { sessions: 1, turns: index.turnCount, bytes: index.size, vectors: snapInfo.vectors, summaries: index.summaries.length };
}

async function vectorsOf(files: SessionFiles, snap: Snapshot): Promise<number> {
  let n = 0;
  const body = files.bodyReader(snap);
  for (const s of segmentsFor(snap.index)) {
    if (s.header!.encoding === 'none') continue;
    n += countVectors(await body(s), s.header!);
  }
  return n;
}

/** Deletes every session whose last turn (else its creation, else its file's mtime) is older than `maxAgeDays`. */
export async function cleanupExpiredSessions(files: SessionFiles, maxAgeDays: number): Promise<number> {
  const cutoff = expiryCutoff(maxAgeDays, files.options.clock.now());
  let deleted = 0;
  for (const tenant of await tenants(files)) {
    for await (const f of walkTenant(files, tenant, null)) {
      const ref = { tenant: f.tenant, sessionId: f.sessionId };
      const gone = await files.exclusive(ref, f.path, async () => {
        const last = await files.withSnapshot(f.path, async (snap) => snap.index.lastTurnAt ?? snap.index.meta.createdAt ?? (await snap.fh.stat()).mtimeMs);
        if (last === null || last >= cutoff) return false;
        return (await deleteSessionLocked(files, ref, f.path)).sessions > 0;
      });
      if (gone) deleted++;
    }
  }
  return deleted;
}
