import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import type { SessionRef } from '../types.js';
import { readControl, withCommit } from './control.js';
import type { FileIndex, SegmentEntry } from './file.js';
import { indexFile } from './file.js';
import { FILE_EXTENSION } from './format.js';
import { ioError, readAt } from './io.js';
import { archiveStem, shardOf, stemNeedsRecordedId } from './layout.js';
import type { ResolvedArchiveOptions } from './options.js';
import type { ArchiveSessionInfo } from './store.js';
import { USER_INDEX_FILE, UserIndex } from './user-index.js';

/** A session file open for reading, its index, and its bytes when they were just read (not when the index came from the cache). */
export interface Snapshot {
  index: FileIndex;
  bytes: Uint8Array | null;
  fh: FileHandle;
}

/**
 * The session files of one archive directory, as every part of `FsArchiveStore` reaches them:
 * where a session's file lives, its index (cached by inode, size and mtime, so a file changed by
 * another process is read again), and the locks a change of it holds.
 */
export class SessionFiles {
  readonly root: string;
  readonly users = new UserIndex();
  private readonly cache = new Map<string, { key: string; index: FileIndex }>();

  constructor(readonly options: ResolvedArchiveOptions) {
    this.root = resolve(options.dataDir, 'archive');
  }

  /** Absolute path of a session's file; ids validated and containment double-checked. */
  pathOf(ref: SessionRef): string {
    const tenant = validateId('tenant', ref?.tenant);
    const sessionId = validateId('session', ref?.sessionId);
    const path = resolve(this.root, tenant, shardOf(sessionId), archiveStem(sessionId) + FILE_EXTENSION);
    if (!path.startsWith(this.root + sep)) throw new StrataError('STRATA_ERR_INVALID_ID', `session ${JSON.stringify(sessionId)} resolves outside the archive directory`);
    return path;
  }

  tenantDir(tenant: string): string {
    const dir = resolve(this.root, validateId('tenant', tenant));
    if (!dir.startsWith(this.root + sep)) throw new StrataError('STRATA_ERR_INVALID_ID', `tenant ${JSON.stringify(tenant)} resolves outside the archive directory`);
    return dir;
  }

  /** The tenant's user index file (user-index.ts). */
  userIndexOf(tenant: string): string {
    return join(this.tenantDir(tenant), USER_INDEX_FILE);
  }

  /** Opens the file and returns its index (from the cache when inode, size and mtime match). Null when absent. */
  async snapshot(path: string, flags: 'r' | 'r+' = 'r'): Promise<Snapshot | null> {
    const snap = await this.rawSnapshot(path, flags);
    if (snap === null || snap.index.highWater === 0) return snap;
    // A deletion whose unlink did not happen yet (crash between the floor and the unlink): the
    // floor says the file's turns are deleted, so nobody may read them.
    if ((await readControl(path)).deletedUpTo >= snap.index.highWater) {
      await snap.fh.close();
      return null;
    }
    return snap;
  }

  /** `snapshot` without the deletion floor: also a file whose deletion was interrupted. */
  async rawSnapshot(path: string, flags: 'r' | 'r+' = 'r'): Promise<Snapshot | null> {
    let fh: FileHandle;
    try {
      fh = await open(path, flags);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw ioError(err, 'opening', path);
    }
    try {
      const st = await fh.stat();
      const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
      const hit = this.cache.get(path);
      if (hit && hit.key === key) {
        this.cache.delete(path);
        this.cache.set(path, hit);
        return { index: hit.index, bytes: null, fh };
      }
      const bytes = await readAt(fh, 0, st.size);
      const index = indexFile(path, bytes);
      if (this.options.indexCacheSize > 0) {
        this.cache.delete(path);
        this.cache.set(path, { key, index });
        while (this.cache.size > this.options.indexCacheSize) this.cache.delete(this.cache.keys().next().value!);
      }
      return { index, bytes, fh };
    } catch (err) {
      await fh.close();
      throw ioError(err, 'reading', path);
    }
  }

  /** Runs `fn` on the file's snapshot and closes it; null when the file is absent. */
  async withSnapshot<T>(path: string, fn: (s: Snapshot) => Promise<T>): Promise<T | null> {
    const snap = await this.snapshot(path);
    if (!snap) return null;
    try {
      return await fn(snap);
    } finally {
      await snap.fh.close();
    }
  }

  bodyReader(snap: Snapshot): (s: SegmentEntry) => Promise<Uint8Array> {
    return async (s) => {
      if (snap.bytes) return snap.bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength);
      const body = await readAt(snap.fh, s.bodyOffset, s.bodyLength);
      if (body.length !== s.bodyLength) throw new StrataError('STRATA_ERR_ARCHIVE_IO', `${snap.index.file} shrank while being read`);
      return body;
    };
  }

  /** Drops the cached index of a file this process just changed. */
  forget(path: string): void {
    this.cache.delete(path);
  }

  clear(): void {
    this.cache.clear();
  }

  /**
   * Runs a change of the session's file holding the in-process lock and the cross-process
   * commit lock (control.ts), so no other process's append or rewrite interleaves with it.
   */
  exclusive<T>(ref: SessionRef, path: string, fn: () => Promise<T>): Promise<T> {
    return this.options.lock.withLock({ tenant: ref.tenant, sessionId: ref.sessionId }, () => withCommit(path, null, this.options.commitWaitMs, async () => ({ result: await fn() })));
  }
}

/** Writers refuse files whose high-water turn id or contents cannot be established. */
export function assertWritable(index: FileIndex, rewrite = false): void {
  if (index.versionError) throw index.versionError;
  if (index.unknownLoss || index.metaDamaged || (rewrite && index.damage.length > 0)) {
    const d = index.damage[0]!;
    throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${d.message}; the file is read-only until repaired (strata verify) or re-imported`, { details: { file: index.file, offset: d.offset, segment: d.segment, block: d.block } });
  }
}

/** The session id field of a new file's metadata: only where the file name does not give it back. */
export function recordedId(ref: SessionRef): { sessionId?: string } {
  return stemNeedsRecordedId(archiveStem(ref.sessionId)) ? { sessionId: ref.sessionId } : {};
}

export function toInfo(ref: { tenant: string; sessionId: string }, index: FileIndex): ArchiveSessionInfo {
  return {
    tenant: ref.tenant,
    sessionId: ref.sessionId,
    userId: index.meta.userId ?? null,
    turnCount: index.turnCount,
    highWater: index.highWater,
    firstTurnAt: index.firstTurnAt,
    lastTurnAt: index.lastTurnAt,
    bytes: index.size,
    segments: index.segments.length,
    embedderId: index.embedderId,
  };
}
