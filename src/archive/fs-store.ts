import { searchText } from '../message.js';
import { controlPath, readControl, withCommit } from './control.js';
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, readdir, stat, unlink } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import { archiveStem, sessionIdOfStem, shardOf, stemNeedsRecordedId } from './layout.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import type { FileIndex, SegmentEntry, SessionMeta } from './file.js';
import { checkedImport, encodeMetaRecord, encodeSummaryRecord, indexFile, inspectBytes, readTurns, segmentsFor } from './file.js';
import type { InspectReport } from './file.js';
import { FILE_EXTENSION, RECORD_TYPES, encodeRecord } from './format.js';
import { atomicWrite, fsyncDir, ioError, isTempName, readAt, writeAll } from './io.js';
import type { ArchiveOptions, ResolvedArchiveOptions } from './options.js';
import { resolveArchiveOptions } from './options.js';
import type { TextLayout } from './segment.js';
import { concat } from '../codec/codec.js';
import { decodeSegment, embeddingDims, encodeSegment, scoreEmbeddings } from './segment.js';
import type {
  AppendOptions,
  AppendResult,
  ArchiveSessionInfo,
  ArchiveStats,
  ArchiveStore,
  DeleteReceipt,
  DeleteSessionOptions,
  EmbeddingHit,
  IdempotencyEntry,
  ListOptions,
  SearchScope,
  Summary,
  TurnRange,
} from './store.js';
import { USER_INDEX_FILE, UserIndex } from './user-index.js';
import { addReceipt, expiryCutoff, validateQuery, validateRange, validateSummary, validateTurns } from './validate.js';
import { norm } from './vectors.js';

/** Result of `verify` for one file. */
export interface VerifyFileReport {
  tenant: string;
  sessionId: string;
  file: string;
  ok: boolean;
  tornBytes: number;
  damage: InspectReport['damage'];
  versionError: string | null;
  repaired: boolean;
}

export interface VerifyReport {
  files: number;
  ok: number;
  damaged: number;
  repaired: number;
  reports: VerifyFileReport[];
}

/** The sessions a file walk found, in listing order. */
interface FoundFile {
  tenant: string;
  shard: string;
  /** The file name without its extension (src/archive/layout.ts). */
  stem: string;
  sessionId: string;
  path: string;
}

interface Snapshot {
  index: FileIndex;
  bytes: Uint8Array | null;
  fh: FileHandle;
}

const EMPTY_RECEIPT: DeleteReceipt = Object.freeze({ sessions: 0, turns: 0, bytes: 0, vectors: 0, summaries: 0 });
const SHARD_PATTERN = /^[0-9a-f]{2}$/;

export { shardOf } from './layout.js';

/**
 * The default `ArchiveStore`: one append-only file of records per session under
 * `<dataDir>/archive/<tenant>/<shard>/<sessionId>.strata` (format: docs/format.md).
 *
 * Writers hold the session's `SessionLock`; nothing assumes this process owns the directory:
 * every write re-reads the file's current state (cache keyed by inode, size and mtime) first.
 */
export class FsArchiveStore implements ArchiveStore {
  readonly options: ResolvedArchiveOptions;
  readonly root: string;
  private readonly cache = new Map<string, { key: string; index: FileIndex }>();
  private readonly users = new UserIndex();
  /** Owner of a session file as last read from it, with the file's stamp at that time. */
  private readonly owners = new Map<string, { stamp: string; owner: string | null }>();
  private closed = false;

  constructor(options: ArchiveOptions) {
    this.options = resolveArchiveOptions(options);
    this.root = resolve(this.options.dataDir, 'archive');
  }

  /** Absolute path of a session's file; ids validated and containment double-checked. */
  pathOf(ref: SessionRef): string {
    const tenant = validateId('tenant', ref?.tenant);
    const sessionId = validateId('session', ref?.sessionId);
    const path = resolve(this.root, tenant, shardOf(sessionId), archiveStem(sessionId) + FILE_EXTENSION);
    if (!path.startsWith(this.root + sep)) throw new StrataError('STRATA_ERR_INVALID_ID', `session ${JSON.stringify(sessionId)} resolves outside the archive directory`);
    return path;
  }

  private tenantDir(tenant: string): string {
    const dir = resolve(this.root, validateId('tenant', tenant));
    if (!dir.startsWith(this.root + sep)) throw new StrataError('STRATA_ERR_INVALID_ID', `tenant ${JSON.stringify(tenant)} resolves outside the archive directory`);
    return dir;
  }

  private check(): void {
    if (this.closed) throw new StrataError('STRATA_ERR_CLOSED', 'the archive store is closed');
  }

  // ---------------------------------------------------------------- reading

  /** Opens the file and returns its index (from the cache when inode, size and mtime match). Null when absent. */
  private async snapshot(path: string, flags: 'r' | 'r+' = 'r'): Promise<Snapshot | null> {
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

  private async rawSnapshot(path: string, flags: 'r' | 'r+' = 'r'): Promise<Snapshot | null> {
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

  private async withSnapshot<T>(path: string, fn: (s: Snapshot) => Promise<T>): Promise<T | null> {
    const snap = await this.snapshot(path);
    if (!snap) return null;
    try {
      return await fn(snap);
    } finally {
      await snap.fh.close();
    }
  }

  private bodyReader(snap: Snapshot): (s: SegmentEntry) => Promise<Uint8Array> {
    return async (s) => {
      if (snap.bytes) return snap.bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength);
      const body = await readAt(snap.fh, s.bodyOffset, s.bodyLength);
      if (body.length !== s.bodyLength) throw new StrataError('STRATA_ERR_ARCHIVE_IO', `${snap.index.file} shrank while being read`);
      return body;
    };
  }

  async read(ref: SessionRef, range?: TurnRange): Promise<ArchivedTurn[]> {
    this.check();
    const r = validateRange(range);
    const path = this.pathOf(ref);
    return (await this.withSnapshot(path, (snap) => readTurns(snap.index, r, this.bodyReader(snap), { maxDecodedBytes: this.options.maxDecodedBytes }))) ?? [];
  }

  async info(ref: SessionRef): Promise<ArchiveSessionInfo | null> {
    this.check();
    const path = this.pathOf(ref);
    return this.withSnapshot(path, async (snap) => toInfo(ref, snap.index));
  }

  async listSessions(tenant: string, options: ListOptions = {}): Promise<{ sessions: ArchiveSessionInfo[]; nextCursor: string | null }> {
    this.check();
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new StrataError('STRATA_ERR_VALIDATION', `limit: expected an integer from 1 to 1000, received ${String(limit)}`);
    const cursor = options.cursor ?? null;
    if (cursor !== null && (typeof cursor !== 'string' || !/^[0-9a-f]{2}\/[A-Za-z0-9_.~-]+$/.test(cursor))) throw new StrataError('STRATA_ERR_VALIDATION', 'cursor: expected a cursor returned by listSessions');
    const found: FoundFile[] = [];
    for await (const f of this.walkTenant(tenant, cursor)) {
      found.push(f);
      if (found.length > limit) break;
    }
    const page = found.slice(0, limit);
    const sessions: ArchiveSessionInfo[] = [];
    for (const f of page) {
      const info = await this.withSnapshot(f.path, async (snap) => toInfo(f, snap.index));
      if (info) sessions.push(info);
    }
    const last = page[page.length - 1];
    return { sessions, nextCursor: found.length > limit && last ? `${last.shard}/${last.stem}` : null };
  }

  /**
   * A string that changes whenever the archived turns of any session of the user change (an
   * append, a rewrite, a deletion, an import, on any instance): one stat, so a user-scope search
   * over a current index costs no per-session look-up.
   */
  async userStamp(tenant: string, userId: string): Promise<string> {
    this.check();
    validateId('user', userId);
    return this.users.stamp(this.tenantDir(tenant), userId);
  }

  async listUserSessions(tenant: string, userId: string): Promise<string[]> {
    this.check();
    validateId('user', userId);
    const ids = await this.users.sessions(join(this.tenantDir(tenant), USER_INDEX_FILE), userId);
    const stamps = await this.sessionStamps(tenant, ids);
    const out: string[] = [];
    for (const sessionId of ids) {
      // The index is a hint written after the file: confirm with the file's own metadata (read
      // again only when the file or its control file changed since the last confirmation).
      const path = this.pathOf({ tenant, sessionId });
      const stamp = stamps.get(sessionId) ?? null;
      if (stamp === null) continue;
      const known = this.owners.get(path);
      let owner: string | null;
      if (known && known.stamp === stamp) owner = known.owner;
      else {
        owner = await this.withSnapshot(path, async (snap) => snap.index.meta.userId ?? null);
        this.owners.set(path, { stamp, owner });
        if (this.owners.size > 100_000) this.owners.delete(this.owners.keys().next().value!);
      }
      if (owner === userId) out.push(sessionId);
    }
    return out;
  }

  /**
   * Per session, a string that changes whenever its archive file or its control file changes
   * (identity, size, modification time of both: two stats, no read); null for a session without
   * a file. Cheap enough to check a thousand sessions per search.
   */
  async sessionStamps(tenant: string, sessionIds: readonly string[]): Promise<Map<string, string | null>> {
    this.check();
    const out = new Map<string, string | null>();
    const one = async (sessionId: string) => {
      const path = this.pathOf({ tenant, sessionId });
      const [file, ctl] = await Promise.all([stat(path, { bigint: true }).catch(() => null), stat(controlPath(path), { bigint: true }).catch(() => null)]);
      out.set(sessionId, file === null ? null : `${file.ino}:${file.size}:${file.mtimeNs}|${ctl ? `${ctl.ino}:${ctl.size}:${ctl.mtimeNs}` : '-'}`);
    };
    for (let i = 0; i < sessionIds.length; i += 64) await Promise.all(sessionIds.slice(i, i + 64).map(one));
    return out;
  }

  async searchByEmbedding(query: Float32Array, topK: number, scope: SearchScope): Promise<EmbeddingHit[]> {
    this.check();
    validateQuery(query, topK);
    if (typeof scope !== 'object' || scope === null) throw new StrataError('STRATA_ERR_VALIDATION', 'scope: expected {tenant, sessionIds} or {tenant, userId}');
    const tenant = validateId('tenant', scope.tenant);
    let sessionIds: readonly string[];
    if ('userId' in scope) sessionIds = await this.listUserSessions(tenant, scope.userId);
    else if (Array.isArray(scope.sessionIds)) sessionIds = scope.sessionIds.map((id) => validateId('session', id));
    else throw new StrataError('STRATA_ERR_VALIDATION', 'scope: expected {tenant, sessionIds} or {tenant, userId}');
    const qn = norm(query);
    let hits: EmbeddingHit[] = [];
    for (const sessionId of new Set(sessionIds)) {
      await this.withSnapshot(this.pathOf({ tenant, sessionId }), async (snap) => {
        const index = snap.index;
        if (index.versionError) throw index.versionError;
        const seen = new Set<number>();
        const body = this.bodyReader(snap);
        for (const s of segmentsFor(index)) {
          const h = s.header!;
          // Only the session's current embedder: vectors of an older model are not comparable (reindex replaces them).
          if (h.encoding === 'none' || h.embedderId !== index.embedderId) continue;
          if (h.dims !== query.length) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `query has ${query.length} dimensions, session ${sessionId} stores ${h.dims}-dimension vectors`, { details: { sessionId, expected: h.dims, received: query.length } });
          const scores = scoreEmbeddings(await body(s), h, { file: index.file, segment: s.ordinal }, query, qn);
          for (let i = 0; i < scores.length; i++) {
            const id = s.ids![i]!;
            if (Number.isNaN(scores[i]!) || seen.has(id)) continue;
            seen.add(id);
            hits.push({ sessionId, turnId: id, score: scores[i]! });
          }
          if (hits.length > 4 * topK + 1024) hits = topHits(hits, topK);
        }
      });
    }
    return topHits(hits, topK);
  }

  async loadSummaries(ref: SessionRef): Promise<Summary[]> {
    this.check();
    const path = this.pathOf(ref);
    const out = await this.withSnapshot(path, async (snap) => {
      if (snap.index.versionError) throw snap.index.versionError;
      if (snap.index.summariesDamaged || snap.index.unknownLoss) throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${path}: a summary record is damaged; run verify`, { details: { file: path, block: 'summary' } });
      return snap.index.summaries.map((s) => ({ ...s }));
    });
    return out ?? [];
  }

  async exportSession(ref: SessionRef, extra: readonly ArchivedTurn[] = []): Promise<Uint8Array> {
    this.check();
    const path = this.pathOf(ref);
    try {
      const file = new Uint8Array(await readFile(path));
      if (extra.length === 0) return file;
      validateTurns(extra);
      const highWater = indexFile(path, file).highWater;
      const fresh = extra.filter((t) => t.turnId > highWater);
      return fresh.length === 0 ? file : concat([file, encodeRecord(RECORD_TYPES.segment, this.encode(fresh, null))]);
    } catch (err) {
      if (err instanceof StrataError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${ref.tenant}/${ref.sessionId} has no archive`);
      throw ioError(err, 'reading', path);
    }
  }

  async stats(tenant?: string): Promise<ArchiveStats> {
    this.check();
    const out: ArchiveStats = { sessions: 0, turns: 0, bytes: 0, segments: 0 };
    const tenants = tenant === undefined ? await this.tenants() : [validateId('tenant', tenant)];
    for (const t of tenants) {
      for await (const f of this.walkTenant(t, null)) {
        await this.withSnapshot(f.path, async (snap) => {
          out.sessions++;
          out.turns += snap.index.turnCount;
          out.bytes += snap.index.size;
          out.segments += snap.index.segments.length;
        });
      }
    }
    return out;
  }

  // ---------------------------------------------------------------- writing

  async append(ref: SessionRef, turns: readonly ArchivedTurn[], options: AppendOptions = {}): Promise<AppendResult> {
    this.check();
    const path = this.pathOf(ref);
    validateTurns(turns);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const embedderId = options.embedderId ?? null;
    if (embedderId !== null && (typeof embedderId !== 'string' || embedderId.length === 0 || embedderId.length > 255)) throw new StrataError('STRATA_ERR_VALIDATION', 'embedderId: expected a string of 1-255 characters');
    const dims = embeddingDims(turns);
    if (turns.length === 0 && userId === undefined) {
      // Nothing to write to an existing file; a missing one is created (registers the session).
      const highWater = await this.withSnapshot(path, async (snap) => snap.index.highWater);
      if (highWater !== null && highWater !== undefined) return { appended: 0, skipped: 0, highWater };
    }
    return this.options.lock.withLock({ tenant: ref.tenant, sessionId: ref.sessionId }, () =>
      withCommit(path, options.fence ?? null, this.options.commitWaitMs, async (control) => {
        await options.precommit?.();
        const result = await this.appendCommitted(ref, path, turns.filter((t) => t.turnId > control.deletedUpTo), userId, embedderId, dims, control.deletedUpTo);
        if (!options.idempotency?.length && options.keysSince === undefined) return { result };
        const keys: Record<string, [number, number, string]> = {};
        const since = options.keysSince ?? 0;
        for (const [k, v] of Object.entries(control.keys ?? {})) if (v[1] >= since) keys[k] = v;
        for (const e of options.idempotency ?? []) if (e.createdAt >= since) keys[e.key] ??= [e.turnId, e.createdAt, e.hash];
        return { result, next: { fence: control.fence, deletedUpTo: control.deletedUpTo, keys } };
      }),
    );
  }

  /** The append itself, under the session's commit lock, with turns of a deleted range removed. */
  private async appendCommitted(ref: SessionRef, path: string, turns: readonly ArchivedTurn[], userId: string | undefined, embedderId: string | null, dims: number, deletedUpTo: number): Promise<AppendResult> {
    {
      await mkdir(resolve(path, '..'), { recursive: true }).catch((err: unknown) => {
        throw ioError(err, 'creating directory for', path);
      });
      if (deletedUpTo > 0) {
        // A file left behind by a deletion interrupted before its unlink: finish the deletion
        // before new turns (above the floor) start a new file.
        const left = await this.rawSnapshot(path);
        if (left) {
          await left.fh.close();
          if (left.index.highWater <= deletedUpTo) await this.deleteSessionLocked(ref, path);
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
        const snap = (await this.snapshot(path, 'r+'))!;
        try {
          index = snap.index;
          assertWritable(index);
          if (userId !== undefined && index.meta.userId && index.meta.userId !== userId) throw new StrataError('STRATA_ERR_CONFLICT', `session ${ref.sessionId} belongs to user ${index.meta.userId}, not ${userId}`);
          if (dims > 0 && index.dims > 0 && index.dims !== dims && index.embedderId === embedderId) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `embeddings have ${dims} dimensions, session ${ref.sessionId} stores ${index.dims} for embedder ${embedderId ?? '(none)'}`, { details: { expected: index.dims, received: dims } });
          const fresh = turns.filter((t) => t.turnId > index.highWater);
          const parts: Uint8Array[] = [];
          newUser = userId !== undefined && !index.meta.userId;
          if (index.validEnd === 0 || newUser) parts.push(encodeMetaRecord(index.validEnd === 0 ? { userId: userId ?? null, createdAt: this.options.clock.now(), ...recordedId(ref) } : { userId }));
          for (const chunk of chunks(fresh, this.options.maxSegmentTurns)) parts.push(encodeRecord(RECORD_TYPES.segment, this.encode(chunk, embedderId)));
          segmentsAfter = index.segments.length + (parts.length - (parts.length > 0 && (index.validEnd === 0 || newUser) ? 1 : 0));
          if (parts.length > 0) await this.appendBytes(snap.fh, path, index, concat(parts));
          result = { appended: fresh.length, skipped: turns.length - fresh.length, highWater: Math.max(index.highWater, deletedUpTo, fresh.length ? fresh[fresh.length - 1]!.turnId : 0) };
        } finally {
          await snap.fh.close();
        }
        if (newUser) await this.users.add(join(this.tenantDir(ref.tenant), USER_INDEX_FILE), userId!, ref.sessionId);
        const owner = userId ?? index.meta.userId;
        if (owner && (result.appended > 0 || newUser)) await this.users.bump(this.tenantDir(ref.tenant), owner);
      } catch (err) {
        throw ioError(err, 'appending to', path);
      }
      if (segmentsAfter > this.options.compactAfterSegments) await this.compactLocked(path);
      return result;
    }
  }

  /**
   * Runs a change of the session's file holding the in-process lock and the cross-process
   * commit lock (control.ts), so no other process's append or rewrite interleaves with it.
   */
  private exclusive<T>(ref: SessionRef, path: string, fn: () => Promise<T>): Promise<T> {
    return this.options.lock.withLock({ tenant: ref.tenant, sessionId: ref.sessionId }, () => withCommit(path, null, this.options.commitWaitMs, async () => ({ result: await fn() })));
  }

  /** Highest turn id deleted with the session (its deletion floor); 0 when never deleted. */
  async deletedUpTo(ref: SessionRef): Promise<number> {
    this.check();
    return (await readControl(this.pathOf(ref))).deletedUpTo;
  }

  async committedTurn(ref: SessionRef, turnId: number): Promise<ArchivedTurn | null> {
    this.check();
    const path = this.pathOf(ref);
    return this.options.lock.withLock({ tenant: ref.tenant, sessionId: ref.sessionId }, () =>
      withCommit(path, null, this.options.commitWaitMs, async () => ({ result: (await this.read(ref, { fromTurn: turnId, toTurn: turnId }))[0] ?? null })),
    );
  }

  async idempotencyKeys(ref: SessionRef): Promise<IdempotencyEntry[]> {
    this.check();
    const control = await readControl(this.pathOf(ref));
    return Object.entries(control.keys ?? {}).map(([key, [turnId, createdAt, hash]]) => ({ key, turnId, createdAt, hash }));
  }

  private encode(turns: readonly ArchivedTurn[], embedderId: string | null): Uint8Array {
    const codec = this.options.textCodec;
    let layout: TextLayout;
    if (this.options.textLayout === 'auto') layout = codec.id >= 0x10 && codec.id <= 0x11 ? 'turn' : 'block';
    else layout = this.options.textLayout;
    return encodeSegment(turns, { codec, layout, encoding: this.options.embeddingEncoding, embedderId });
  }

  /** Cuts a torn tail, writes at the end of the last complete record, fsyncs (and the directory for a new file). */
  private async appendBytes(fh: FileHandle, path: string, index: FileIndex, bytes: Uint8Array): Promise<void> {
    if (index.tornBytes > 0) await fh.truncate(index.validEnd);
    await this.options.writeHook?.('append', path);
    await writeAll(fh, bytes, index.validEnd);
    await this.options.writeHook?.('fsync-append', path);
    await fh.sync();
    if (index.size === 0) await fsyncDir(resolve(path, '..'));
    this.cache.delete(path);
  }

  async saveSummary(ref: SessionRef, summary: Summary): Promise<void> {
    this.check();
    const path = this.pathOf(ref);
    const s = validateSummary(summary);
    await this.exclusive(ref, path, async () => {
      await mkdir(resolve(path, '..'), { recursive: true });
      await (await open(path, 'a')).close();
      const snap = (await this.snapshot(path, 'r+'))!;
      try {
        if (snap.index.versionError) throw snap.index.versionError;
        const parts = snap.index.validEnd === 0 ? [encodeMetaRecord({ userId: null, createdAt: this.options.clock.now(), ...recordedId(ref) })] : [];
        parts.push(encodeSummaryRecord(s));
        await this.appendBytes(snap.fh, path, snap.index, concat(parts));
      } catch (err) {
        throw ioError(err, 'appending a summary to', path);
      } finally {
        await snap.fh.close();
      }
    });
  }

  async compact(ref: SessionRef): Promise<void> {
    this.check();
    const path = this.pathOf(ref);
    await this.exclusive(ref, path, () => this.compactLocked(path).then(() => undefined));
  }

  /** Rewrites the file as: metadata, merged segments, current summaries. Caller holds the lock. */
  private async compactLocked(path: string, drop?: ReadonlySet<number>): Promise<{ before: FileIndex; after: number; turns: ArchivedTurn[]; kept: Summary[] } | null> {
    const state = await this.withSnapshot(path, async (snap) => {
      assertWritable(snap.index, true);
      return { index: snap.index, turns: await this.allTurnsWithEmbedder(snap) };
    });
    if (!state) return null;
    const { index } = state;
    if (!drop && index.segments.length <= 1 && index.tornBytes === 0) return { before: index, after: index.size, turns: [], kept: index.summaries };
    const removed = drop ? state.turns.filter((t) => drop.has(t.turn.turnId)).map((t) => t.turn) : [];
    const keep = drop ? state.turns.filter((t) => !drop.has(t.turn.turnId)) : state.turns;
    const kept = index.summaries.filter((s) => !removed.some((t) => t.turnId >= s.fromTurn && t.turnId <= s.toTurn));
    const bytes = await this.rewrite(path, index, keep, kept);
    return { before: index, after: bytes.length, turns: removed, kept };
  }

  /** Writes the file as metadata, segments of `keep` (one embedder per segment) and `kept` summaries, atomically. Caller holds the lock. */
  private async rewrite(path: string, index: FileIndex, keep: ReadonlyArray<{ turn: ArchivedTurn; embedderId: string | null }>, kept: readonly Summary[]): Promise<Uint8Array> {
    const meta: SessionMeta = { userId: index.meta.userId ?? null, highWater: index.highWater, createdAt: index.meta.createdAt ?? this.options.clock.now(), ...(index.meta.sessionId !== undefined ? { sessionId: index.meta.sessionId } : {}) };
    const parts: Uint8Array[] = [encodeMetaRecord(meta)];
    // Segments are homogeneous in embedder: consecutive turns of the same embedder form a run.
    let run: ArchivedTurn[] = [];
    let runEmbedder: string | null = null;
    const flush = () => {
      for (const chunk of chunks(run, this.options.maxSegmentTurns)) parts.push(encodeRecord(RECORD_TYPES.segment, this.encode(chunk, runEmbedder)));
      run = [];
    };
    for (const { turn, embedderId } of keep) {
      if (run.length > 0 && embedderId !== runEmbedder) flush();
      runEmbedder = embedderId;
      run.push(turn);
    }
    flush();
    for (const s of kept) parts.push(encodeSummaryRecord(s));
    const bytes = concat(parts);
    await atomicWrite(path, bytes, this.options.writeHook);
    this.cache.delete(path);
    // Rewrites delete turns or replace vectors: searches over the owner's sessions must see it.
    const tenantDir = resolve(path, '..', '..');
    if (index.meta.userId) await this.users.bump(tenantDir, index.meta.userId);
    return bytes;
  }

  /**
   * Re-embeds every turn whose vectors come from another embedder than `embedderId` (or have
   * none) and rewrites the file atomically. Returns how many turns got new vectors.
   */
  async reembed(ref: SessionRef, embedderId: string, embed: (texts: string[]) => Promise<Float32Array[]>): Promise<{ turns: number }> {
    this.check();
    const path = this.pathOf(ref);
    return this.exclusive(ref, path, async () => {
      const state = await this.withSnapshot(path, async (snap) => {
        assertWritable(snap.index, true);
        return { index: snap.index, turns: await this.allTurnsWithEmbedder(snap) };
      });
      if (!state) throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${ref.sessionId} has no archive`);
      const stale = state.turns.filter((t) => t.embedderId !== embedderId || !t.turn.embedding);
      if (stale.length === 0) return { turns: 0 };
      const vectors = await embed(stale.map((t) => searchText(t.turn)));
      if (vectors.length !== stale.length) throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedder returned ${vectors.length} vectors for ${stale.length} texts`);
      stale.forEach((t, i) => {
        t.turn.embedding = vectors[i]!;
        t.embedderId = embedderId;
      });
      await this.rewrite(path, state.index, state.turns, state.index.summaries);
      return { turns: stale.length };
    });
  }

  private async allTurnsWithEmbedder(snap: Snapshot): Promise<Array<{ turn: ArchivedTurn; embedderId: string | null }>> {
    const out = new Map<number, { turn: ArchivedTurn; embedderId: string | null }>();
    const body = this.bodyReader(snap);
    for (const s of segmentsFor(snap.index)) {
      const turns = decodeSegment(await body(s), s.header!, { file: snap.index.file, segment: s.ordinal }, { maxDecodedBytes: this.options.maxDecodedBytes });
      for (const t of turns) if (!out.has(t.turnId)) out.set(t.turnId, { turn: t, embedderId: s.header!.encoding === 'none' ? null : s.header!.embedderId });
    }
    return [...out.values()].sort((a, b) => a.turn.turnId - b.turn.turnId);
  }

  async deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt> {
    this.check();
    const path = this.pathOf(ref);
    if (!Array.isArray(turnIds) || !turnIds.every((id) => Number.isInteger(id) && id >= 1)) throw new StrataError('STRATA_ERR_VALIDATION', 'turnIds: expected an array of positive integers');
    if (turnIds.length === 0) return { ...EMPTY_RECEIPT };
    return this.exclusive(ref, path, async () => {
      const existing = await this.withSnapshot(path, async (snap) => {
        assertWritable(snap.index, true);
        const drop = new Set(turnIds);
        return segmentsFor(snap.index).some((s) => s.ids!.some((id) => drop.has(id)));
      });
      if (!existing) return { ...EMPTY_RECEIPT };
      const r = await this.compactLocked(path, new Set(turnIds));
      if (!r) return { ...EMPTY_RECEIPT };
      return { sessions: 0, turns: r.turns.length, bytes: Math.max(0, r.before.size - r.after), vectors: r.turns.filter((t) => t.embedding).length, summaries: r.before.summaries.length - r.kept.length };
    });
  }

  async deleteSession(ref: SessionRef, options: DeleteSessionOptions = {}): Promise<DeleteReceipt> {
    this.check();
    const path = this.pathOf(ref);
    return this.options.lock.withLock({ tenant: ref.tenant, sessionId: ref.sessionId }, () =>
      withCommit(path, options.fence ?? null, this.options.commitWaitMs, async (control, save) => {
        const current = await this.rawSnapshot(path);
        const highWater = current ? current.index.highWater : 0;
        await current?.fh.close();
        // The floor is durable before anything is unlinked: from then on no reader, no replay
        // and no other instance's journal can bring these turns back, whatever crashes next.
        const floor = Math.max(control.deletedUpTo, options.upTo ?? 0, highWater);
        // Idempotency keys stay: a late retry of a deleted message answers its old id and stores nothing.
        if (floor > control.deletedUpTo) await save({ fence: control.fence, deletedUpTo: floor });
        return { result: await this.deleteSessionLocked(ref, path) };
      }),
    );
  }

  private async deleteSessionLocked(ref: SessionRef, path: string): Promise<DeleteReceipt> {
    const raw = await this.rawSnapshot(path);
    const snapInfo = raw ? { index: raw.index, vectors: await this.countVectors(raw).finally(() => raw.fh.close()) } : null;
    if (!snapInfo) return { ...EMPTY_RECEIPT };
    const { index } = snapInfo;
    try {
      await unlink(path);
      await fsyncDir(resolve(path, '..'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY_RECEIPT };
      throw ioError(err, 'deleting', path);
    }
    this.cache.delete(path);
    if (index.meta.userId) {
      await this.users.remove(join(this.tenantDir(ref.tenant), USER_INDEX_FILE), index.meta.userId, ref.sessionId);
      await this.users.bump(this.tenantDir(ref.tenant), index.meta.userId);
    }
    return { sessions: 1, turns: index.turnCount, bytes: index.size, vectors: snapInfo.vectors, summaries: index.summaries.length };
  }

  private async countVectors(snap: Snapshot): Promise<number> {
    let n = 0;
    const body = this.bodyReader(snap);
    for (const s of segmentsFor(snap.index)) {
      if (s.header!.encoding === 'none') continue;
      const b = await body(s);
      const e = s.header!.blocks.find((x) => x.kind === 7)!;
      for (let i = 0; i < s.header!.count; i++) if (b[e.offset + (i >> 3)]! & (1 << (i & 7))) n++;
    }
    return n;
  }

  async deleteUser(tenant: string, userId: string): Promise<DeleteReceipt> {
    this.check();
    const total = { ...EMPTY_RECEIPT };
    for (const sessionId of await this.listUserSessions(tenant, userId)) {
      addReceipt(total, await this.deleteSession({ tenant, sessionId }));
    }
    return total;
  }

  async cleanupExpiredSessions(maxAgeDays: number): Promise<number> {
    this.check();
    const cutoff = expiryCutoff(maxAgeDays, this.options.clock.now());
    let deleted = 0;
    for (const tenant of await this.tenants()) {
      for await (const f of this.walkTenant(tenant, null)) {
        const ref = { tenant: f.tenant, sessionId: f.sessionId };
        const gone = await this.exclusive(ref, f.path, async () => {
          const last = await this.withSnapshot(f.path, async (snap) => snap.index.lastTurnAt ?? snap.index.meta.createdAt ?? (await snap.fh.stat()).mtimeMs);
          if (last === null || last >= cutoff) return false;
          return (await this.deleteSessionLocked(ref, f.path)).sessions > 0;
        });
        if (gone) deleted++;
      }
    }
    return deleted;
  }

  async importSession(ref: SessionRef, file: Uint8Array, options: { userId?: string } = {}): Promise<ArchiveSessionInfo> {
    this.check();
    const path = this.pathOf(ref);
    const userId = options.userId === undefined ? undefined : validateId('user', options.userId);
    const index = await checkedImport(`import of ${ref.tenant}/${ref.sessionId}`, file, this.options.maxDecodedBytes);
    const owner = userId ?? index.meta.userId ?? null;
    // The metadata record names the owner given here and, for a hashed file name, this session's id.
    const extraMeta: SessionMeta = { ...(userId !== undefined && userId !== index.meta.userId ? { userId } : {}), ...(stemNeedsRecordedId(archiveStem(ref.sessionId)) && index.meta.sessionId !== ref.sessionId ? { sessionId: ref.sessionId } : {}) };
    const bytes = Object.keys(extraMeta).length > 0 ? concat([file, encodeMetaRecord(extraMeta)]) : file;
    return this.exclusive(ref, path, async () => {
      try {
        await stat(path);
        throw new StrataError('STRATA_ERR_CONFLICT', `session ${ref.tenant}/${ref.sessionId} already has an archive`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, 'checking', path);
      }
      await mkdir(resolve(path, '..'), { recursive: true });
      await atomicWrite(path, bytes, this.options.writeHook);
      this.cache.delete(path);
      if (owner) {
        await this.users.add(join(this.tenantDir(ref.tenant), USER_INDEX_FILE), owner, ref.sessionId);
        await this.users.bump(this.tenantDir(ref.tenant), owner);
      }
      return toInfo(ref, indexFile(path, bytes));
    });
  }

  /**
   * Walks every file: reports damage and torn tails; with `repair`, cuts torn tails (under the
   * session lock) and removes temp files left by interrupted rewrites more than an hour old.
   */
  async verify(options: { repair?: boolean; tenant?: string } = {}): Promise<VerifyReport> {
    this.check();
    const report: VerifyReport = { files: 0, ok: 0, damaged: 0, repaired: 0, reports: [] };
    const tenants = options.tenant === undefined ? await this.tenants() : [validateId('tenant', options.tenant)];
    for (const tenant of tenants) {
      for await (const f of this.walkTenant(tenant, null)) {
        const ref = { tenant, sessionId: f.sessionId };
        // Checking only reads (it must work while a server runs); repairing writes, under the locks.
        const guard = <T>(fn: () => Promise<T>): Promise<T> => (options.repair ? this.exclusive(ref, f.path, fn) : fn());
        const r = await guard(async () => {
          const snap = await this.snapshot(f.path, options.repair ? 'r+' : 'r');
          if (!snap) return null;
          try {
            const ix = snap.index;
            const fileReport: VerifyFileReport = { tenant, sessionId: f.sessionId, file: f.path, ok: ix.damage.length === 0 && !ix.versionError && ix.tornBytes === 0, tornBytes: ix.tornBytes, damage: ix.damage, versionError: ix.versionError?.message ?? null, repaired: false };
            // Codec-level check of undamaged segments: block CRCs passed, frames must decode too.
            for (const s of segmentsFor(ix)) {
              try {
                decodeSegment(await this.bodyReader(snap)(s), s.header!, { file: ix.file, segment: s.ordinal }, { maxDecodedBytes: this.options.maxDecodedBytes });
              } catch (err) {
                const e = err as StrataError;
                fileReport.ok = false;
                fileReport.damage = [...fileReport.damage, { offset: s.recordOffset, kind: 'segment', segment: s.ordinal, block: (e.details?.block as string | undefined) ?? 'text', code: e.code ?? 'STRATA_ERR_INTERNAL', message: e.message }];
              }
            }
            if (options.repair && ix.tornBytes > 0) {
              await snap.fh.truncate(ix.validEnd);
              await snap.fh.sync();
              this.cache.delete(f.path);
              fileReport.repaired = true;
            }
            return fileReport;
          } finally {
            await snap.fh.close();
          }
        });
        if (!r) continue;
        report.files++;
        if (r.ok) report.ok++;
        else report.damaged++;
        if (r.repaired) report.repaired++;
        report.reports.push(r);
      }
      if (options.repair) await this.removeStaleTemps(tenant);
    }
    return report;
  }

  private async removeStaleTemps(tenant: string): Promise<void> {
    const dir = this.tenantDir(tenant);
    for (const shard of await readdirSafe(dir)) {
      if (!SHARD_PATTERN.test(shard)) continue;
      for (const name of await readdirSafe(join(dir, shard))) {
        if (!isTempName(name)) continue;
        const p = join(dir, shard, name);
        const st = await stat(p).catch(() => null);
        if (st && this.options.clock.now() - st.mtimeMs > 3_600_000) await unlink(p).catch(() => undefined);
      }
    }
  }

  /** Structure and CRC status of a session file's bytes. */
  inspect(bytes: Uint8Array, file?: string): InspectReport {
    return inspectBytes(bytes, file);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
  }

  // ---------------------------------------------------------------- walking

  private async tenants(): Promise<string[]> {
    const names = await readdirSafe(this.root);
    return names.filter((n) => /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(n) && n.length <= 128).sort();
  }

  /** Files of one tenant in (shard, file name) order, strictly after `cursor` (`<shard>/<stem>`). */
  private async *walkTenant(tenant: string, cursor: string | null): AsyncGenerator<FoundFile> {
    const dir = this.tenantDir(tenant);
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
          const snap = await this.rawSnapshot(path);
          if (snap) await snap.fh.close();
          sessionId = snap?.index.meta.sessionId ?? undefined;
        }
        if (sessionId === undefined || shardOf(sessionId) !== shard) continue;
        yield { tenant, shard, stem, sessionId, path };
      }
    }
  }
}

async function readdirSafe(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw ioError(err, 'listing', dir);
  }
}

/** Writers refuse files whose high-water turn id or contents cannot be established. */
function assertWritable(index: FileIndex, rewrite = false): void {
  if (index.versionError) throw index.versionError;
  if (index.unknownLoss || index.metaDamaged || (rewrite && index.damage.length > 0)) {
    const d = index.damage[0]!;
    throw new StrataError('STRATA_ERR_ARCHIVE_CORRUPT', `${d.message}; the file is read-only until repaired (strata verify) or re-imported`, { details: { file: index.file, offset: d.offset, segment: d.segment, block: d.block } });
  }
}

/** The session id field of a new file's metadata: only where the file name does not give it back. */
function recordedId(ref: SessionRef): { sessionId?: string } {
  return stemNeedsRecordedId(archiveStem(ref.sessionId)) ? { sessionId: ref.sessionId } : {};
}

function toInfo(ref: { tenant: string; sessionId: string }, index: FileIndex): ArchiveSessionInfo {
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

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

function topHits(hits: EmbeddingHit[], k: number): EmbeddingHit[] {
  return hits.sort((a, b) => b.score - a.score || a.sessionId.localeCompare(b.sessionId) || a.turnId - b.turnId).slice(0, k);
}

