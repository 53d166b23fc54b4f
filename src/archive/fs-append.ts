import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { concat } from '../codec/codec.js';
import { StrataError } from '../errors.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import { withCommit } from './control.js';
import type { FileIndex, SessionMeta } from './file.js';
import { checkedImport, encodeMetaRecord, encodeSummaryRecord, indexFile } from './file.js';
import { deleteSessionLocked } from './fs-delete.js';
import type { SessionFiles } from './fs-files.js';
import { assertWritable, recordedId, toInfo } from './fs-files.js';
import { compactLocked } from './fs-rewrite.js';
import { atomicWrite, fsyncDir, ioError, writeAll } from './io.js';
import { archiveStem, stemNeedsRecordedId } from './layout.js';
import { segmentRecords } from './rewrite.js';
import type { AppendOptions, AppendResult, ArchiveSessionInfo, Summary } from './store.js';
import { checkAppendable, optionalUserId, validateAppend, validateSummary } from './validate.js';

/*
 * The fs driver's appends: turns as new segment records at the end of the session's file (the
 * file itself is never rewritten here; fs-rewrite.ts does that), summaries, and imports of a
 * whole file.
 */

export async function append(files: SessionFiles, ref: SessionRef, turns: readonly ArchivedTurn[], options: AppendOptions): Promise<AppendResult> {
  const path = files.pathOf(ref);
  const { userId, embedderId, dims } = validateAppend(turns, options);
  if (turns.length === 0 && userId === undefined) {
    // Nothing to write to an existing file; a missing one is created (registers the session).
    const highWater = await files.withSnapshot(path, async (snap) => snap.index.highWater);
    if (highWater !== null && highWater !== undefined) return { appended: 0, skipped: 0, highWater };
  }
  return files.options.lock.withLock({ tenant: ref.tenant, sessionId: ref.sessionId }, () =>
    withCommit(path, options.fence ?? null, files.options.commitWaitMs, async (control, save) => {
      await options.precommit?.();
      // Where the file ended before this append: if anything fails after segment bytes landed
      // (the disk filled up while the keys were saved, the user index could not be updated),
      // they are cut off again, so a refused append leaves no turn archived without its keys.
      const landed: Landed = { end: null };
      let committed: { result: AppendResult; compact: boolean };
      try {
        committed = await appendCommitted(files, ref, path, turns.filter((t) => t.turnId > control.deletedUpTo), userId, embedderId, dims, control.deletedUpTo, landed);
        if (options.idempotency?.length || options.keysSince !== undefined) {
          const keys: Record<string, [number, number, string]> = {};
          const since = options.keysSince ?? 0;
          for (const [k, v] of Object.entries(control.keys ?? {})) if (v[1] >= since) keys[k] = v;
          for (const e of options.idempotency ?? []) if (e.createdAt >= since) keys[e.key] ??= [e.turnId, e.createdAt, e.hash];
          await save({ fence: control.fence, deletedUpTo: control.deletedUpTo, keys });
        } else await save(control);
      } catch (err) {
        if (landed.end !== null) await cutBack(files, path, landed.end);
        throw err;
      }
      // Committed (turns, keys, fence): merging segments is an optimisation a later append redoes.
      if (committed.compact) await compactLocked(files, path);
      return { result: committed.result };
    }),
  );
}

interface Landed {
  /** The file's valid end before this append's bytes were written; null until they were. */
  end: number | null;
}

/** Truncates an append that did not commit (under the commit lock). A failure here leaves complete records that a later append or verify keeps. */
async function cutBack(files: SessionFiles, path: string, end: number): Promise<void> {
  try {
    const fh = await open(path, 'r+');
    try {
      await fh.truncate(end);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Nothing better to do: the error that made the append fail is the one reported.
  }
  files.forget(path);
}

/** The append itself, under the session's commit lock, with turns of a deleted range removed. */
async function appendCommitted(
  files: SessionFiles,
  ref: SessionRef,
  path: string,
  turns: readonly ArchivedTurn[],
  userId: string | undefined,
  embedderId: string | null,
  dims: number,
  deletedUpTo: number,
  landed: Landed,
): Promise<{ result: AppendResult; compact: boolean }> {
  await mkdir(resolve(path, '..'), { recursive: true }).catch((err: unknown) => {
    throw ioError(err, 'creating directory for', path);
  });
  if (deletedUpTo > 0) {
    // A file left behind by a deletion interrupted before its unlink: finish the deletion
    // before new turns (above the floor) start a new file.
    const left = await files.rawSnapshot(path);
    if (left) {
      await left.fh.close();
      if (left.index.highWater <= deletedUpTo) await deleteSessionLocked(files, ref, path);
    }
  }
  const fh = await open(path, 'a+').catch((err: unknown) => {
    throw ioError(err, 'opening', path);
  });
  let index: FileIndex;
  let segmentsAfter: number;
  let result: AppendResult;
  let newUser = false;
  try {
    await fh.close();
    const snap = (await files.snapshot(path, 'r+'))!;
    try {
      index = snap.index;
      assertWritable(index);
      checkAppendable(ref.sessionId, { userId: index.meta.userId, dims: index.dims, embedderId: index.embedderId }, userId, embedderId, dims);
      const fresh = turns.filter((t) => t.turnId > index.highWater);
      const parts: Uint8Array[] = [];
      newUser = userId !== undefined && !index.meta.userId;
      if (index.validEnd === 0 || newUser) parts.push(encodeMetaRecord(index.validEnd === 0 ? { userId: userId ?? null, createdAt: files.options.clock.now(), ...recordedId(ref) } : { userId }));
      parts.push(...(await segmentRecords(files.options, fresh, embedderId)));
      segmentsAfter = index.segments.length + (parts.length - (parts.length > 0 && (index.validEnd === 0 || newUser) ? 1 : 0));
      if (parts.length > 0) {
        landed.end = index.validEnd;
        await appendBytes(files, snap.fh, path, index, concat(parts));
      }
      result = { appended: fresh.length, skipped: turns.length - fresh.length, highWater: Math.max(index.highWater, deletedUpTo, fresh.length ? fresh[fresh.length - 1]!.turnId : 0) };
    } finally {
      await snap.fh.close();
    }
    if (newUser) await files.users.add(files.userIndexOf(ref.tenant), userId!, ref.sessionId);
    const owner = userId ?? index.meta.userId;
    if (owner && (result.appended > 0 || newUser)) await files.users.bump(files.tenantDir(ref.tenant), owner);
  } catch (err) {
    throw ioError(err, 'appending to', path);
  }
  return { result, compact: segmentsAfter > files.options.compactAfterSegments };
}

/** Cuts a torn tail, writes at the end of the last complete record, fsyncs (and the directory for a new file). */
async function appendBytes(files: SessionFiles, fh: FileHandle, path: string, index: FileIndex, bytes: Uint8Array): Promise<void> {
  if (index.tornBytes > 0) await fh.truncate(index.validEnd);
  await files.options.writeHook?.('append', path);
  await writeAll(fh, bytes, index.validEnd);
  await files.options.writeHook?.('fsync-append', path);
  await fh.sync();
  if (index.size === 0) await fsyncDir(resolve(path, '..'));
  files.forget(path);
}

export async function saveSummary(files: SessionFiles, ref: SessionRef, summary: Summary): Promise<void> {
  const path = files.pathOf(ref);
  const s = validateSummary(summary);
  await files.exclusive(ref, path, async () => {
    await mkdir(resolve(path, '..'), { recursive: true });
    await (await open(path, 'a')).close();
    const snap = (await files.snapshot(path, 'r+'))!;
    try {
      if (snap.index.versionError) throw snap.index.versionError;
      const parts = snap.index.validEnd === 0 ? [encodeMetaRecord({ userId: null, createdAt: files.options.clock.now(), ...recordedId(ref) })] : [];
      parts.push(encodeSummaryRecord(s));
      await appendBytes(files, snap.fh, path, snap.index, concat(parts));
    } catch (err) {
      throw ioError(err, 'appending a summary to', path);
    } finally {
      await snap.fh.close();
    }
  });
}

export async function importSession(files: SessionFiles, ref: SessionRef, file: Uint8Array, options: { userId?: string }): Promise<ArchiveSessionInfo> {
  const path = files.pathOf(ref);
  const userId = optionalUserId(options.userId);
  const index = await checkedImport(`import of ${ref.tenant}/${ref.sessionId}`, file, files.options.maxDecodedBytes);
  const owner = userId ?? index.meta.userId ?? null;
  // The metadata record names the owner given here and, for a hashed file name, this session's id.
  const extraMeta: SessionMeta = { ...(userId !== undefined && userId !== index.meta.userId ? { userId } : {}), ...(stemNeedsRecordedId(archiveStem(ref.sessionId)) && index.meta.sessionId !== ref.sessionId ? { sessionId: ref.sessionId } : {}) };
  const bytes = Object.keys(extraMeta).length > 0 ? concat([file, encodeMetaRecord(extraMeta)]) : file;
  return files.exclusive(ref, path, async () => {
    try {
      await stat(path);
      throw new StrataError('STRATA_ERR_CONFLICT', `session ${ref.tenant}/${ref.sessionId} already has an archive`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'checking', path);
    }
    await mkdir(resolve(path, '..'), { recursive: true });
    await atomicWrite(path, bytes, files.options.writeHook);
    files.forget(path);
    if (owner) {
      await files.users.add(files.userIndexOf(ref.tenant), owner, ref.sessionId);
      await files.users.bump(files.tenantDir(ref.tenant), owner);
    }
    return toInfo(ref, indexFile(path, bytes));
  });
}
