import { readFile } from 'node:fs/promises';
import { concat } from '../codec/codec.js';
import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import { readControl, withCommit } from './control.js';
import type { InspectReport } from './file.js';
import { indexFile, inspectBytes, readTurns } from './file.js';
import { append, importSession, saveSummary } from './fs-append.js';
import { cleanupExpiredSessions, deleteSession, deleteSessionLocked } from './fs-delete.js';
import { SessionFiles, toInfo } from './fs-files.js';
import { compact, deleteTurns, reembed } from './fs-rewrite.js';
import { SessionOwners, sessionStamps } from './fs-users.js';
import type { VerifyReport } from './fs-verify.js';
import { verify } from './fs-verify.js';
import type { FoundFile } from './fs-walk.js';
import { tenants, walkTenant } from './fs-walk.js';
import { ioError } from './io.js';
import type { ArchiveOptions, ResolvedArchiveOptions } from './options.js';
import { resolveArchiveOptions } from './options.js';
import { segmentRecord } from './rewrite.js';
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
import { deleteUserSessions, listLimit, validateRange, validateTurns } from './validate.js';
import { EmbeddingScan, searchScope } from './vector-scan.js';

export type { VerifyFileReport, VerifyReport } from './fs-verify.js';
export { shardOf } from './layout.js';

/**
 * The default `ArchiveStore`: one append-only file of records per session under
 * `<dataDir>/archive/<tenant>/<shard>/<sessionId>.strata` (format: docs/format.md).
 *
 * Writers hold the session's `SessionLock`; nothing assumes this process owns the directory:
 * every write re-reads the file's current state (cache keyed by inode, size and mtime) first.
 *
 * This class reads; the writes are in fs-append.ts (appends, summaries, imports), fs-rewrite.ts
 * (compaction, deletion of turns, re-embedding), fs-delete.ts (sessions, retention) and
 * fs-verify.ts, all working on the files through `SessionFiles` (fs-files.ts).
 */
export class FsArchiveStore implements ArchiveStore {
  readonly options: ResolvedArchiveOptions;
  readonly root: string;
  private readonly files: SessionFiles;
  private readonly owners: SessionOwners;
  private closed = false;

  constructor(options: ArchiveOptions) {
    this.options = resolveArchiveOptions(options);
    this.files = new SessionFiles(this.options);
    this.root = this.files.root;
    this.owners = new SessionOwners(this.files);
  }

  /** Absolute path of a session's file; ids validated and containment double-checked. */
  pathOf(ref: SessionRef): string {
    return this.files.pathOf(ref);
  }

  private check(): void {
    if (this.closed) throw new StrataError('STRATA_ERR_CLOSED', 'the archive store is closed');
  }

  // ---------------------------------------------------------------- reading

  async read(ref: SessionRef, range?: TurnRange): Promise<ArchivedTurn[]> {
    this.check();
    const r = validateRange(range);
    const path = this.pathOf(ref);
    return (await this.files.withSnapshot(path, (snap) => readTurns(snap.index, r, this.files.bodyReader(snap), { maxDecodedBytes: this.options.maxDecodedBytes }))) ?? [];
  }

  async info(ref: SessionRef): Promise<ArchiveSessionInfo | null> {
    this.check();
    const path = this.pathOf(ref);
    return this.files.withSnapshot(path, async (snap) => toInfo(ref, snap.index));
  }

  async listSessions(tenant: string, options: ListOptions = {}): Promise<{ sessions: ArchiveSessionInfo[]; nextCursor: string | null }> {
    this.check();
    const limit = listLimit(options);
    const cursor = options.cursor ?? null;
    if (cursor !== null && (typeof cursor !== 'string' || !/^[0-9a-f]{2}\/[A-Za-z0-9_.~-]+$/.test(cursor))) throw new StrataError('STRATA_ERR_VALIDATION', 'cursor: expected a cursor returned by listSessions');
    const found: FoundFile[] = [];
    for await (const f of walkTenant(this.files, tenant, cursor)) {
      found.push(f);
      if (found.length > limit) break;
    }
    const page = found.slice(0, limit);
    const sessions: ArchiveSessionInfo[] = [];
    for (const f of page) {
      const info = await this.files.withSnapshot(f.path, async (snap) => toInfo(f, snap.index));
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
    return this.files.users.stamp(this.files.tenantDir(tenant), userId);
  }

  async listUserSessions(tenant: string, userId: string): Promise<string[]> {
    this.check();
    validateId('user', userId);
    const ids = await this.files.users.sessions(this.files.userIndexOf(tenant), userId);
    return this.owners.confirm(tenant, userId, ids, await this.sessionStamps(tenant, ids));
  }

  /** Per session, a string that changes whenever its file or its control file changes; null for a session without a file (fs-users.ts). */
  async sessionStamps(tenant: string, sessionIds: readonly string[]): Promise<Map<string, string | null>> {
    this.check();
    return sessionStamps(this.files, tenant, sessionIds);
  }

  async searchByEmbedding(query: Float32Array, topK: number, scope: SearchScope): Promise<EmbeddingHit[]> {
    this.check();
    const { tenant, sessionIds } = await searchScope(query, topK, scope, (t, userId) => this.listUserSessions(t, userId));
    const scan = new EmbeddingScan(query, topK);
    for (const sessionId of sessionIds) {
      await this.files.withSnapshot(this.pathOf({ tenant, sessionId }), (snap) => scan.add(sessionId, snap.index, snap.index.embedderId, this.files.bodyReader(snap)));
    }
    return scan.top();
  }

  async loadSummaries(ref: SessionRef): Promise<Summary[]> {
    this.check();
    const path = this.pathOf(ref);
    const out = await this.files.withSnapshot(path, async (snap) => {
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
      return fresh.length === 0 ? file : concat([file, await segmentRecord(this.options, fresh, null)]);
    } catch (err) {
      if (err instanceof StrataError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${ref.tenant}/${ref.sessionId} has no archive`);
      throw ioError(err, 'reading', path);
    }
  }

  async stats(tenant?: string): Promise<ArchiveStats> {
    this.check();
    const out: ArchiveStats = { sessions: 0, turns: 0, bytes: 0, segments: 0 };
    const names = tenant === undefined ? await tenants(this.files) : [validateId('tenant', tenant)];
    for (const t of names) {
      for await (const f of walkTenant(this.files, t, null)) {
        await this.files.withSnapshot(f.path, async (snap) => {
          out.sessions++;
          out.turns += snap.index.turnCount;
          out.bytes += snap.index.size;
          out.segments += snap.index.segments.length;
        });
      }
    }
    return out;
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

  /** Structure and CRC status of a session file's bytes. */
  inspect(bytes: Uint8Array, file?: string): InspectReport {
    return inspectBytes(bytes, file);
  }

  // ---------------------------------------------------------------- writing

  async append(ref: SessionRef, turns: readonly ArchivedTurn[], options: AppendOptions = {}): Promise<AppendResult> {
    this.check();
    return append(this.files, ref, turns, options);
  }

  async saveSummary(ref: SessionRef, summary: Summary): Promise<void> {
    this.check();
    return saveSummary(this.files, ref, summary);
  }

  async importSession(ref: SessionRef, file: Uint8Array, options: { userId?: string } = {}): Promise<ArchiveSessionInfo> {
    this.check();
    return importSession(this.files, ref, file, options);
  }

  async compact(ref: SessionRef): Promise<void> {
    this.check();
    return compact(this.files, ref);
  }

  /**
   * Re-embeds every turn whose vectors come from another embedder than `embedderId` (or have
   * none) and rewrites the file atomically. Returns how many turns got new vectors.
   */
  async reembed(ref: SessionRef, embedderId: string, embed: (texts: string[]) => Promise<Float32Array[]>): Promise<{ turns: number }> {
    this.check();
    return reembed(this.files, ref, embedderId, embed);
  }

  async deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt> {
    this.check();
    return deleteTurns(this.files, ref, turnIds);
  }

  async deleteSession(ref: SessionRef, options: DeleteSessionOptions = {}): Promise<DeleteReceipt> {
    this.check();
    return deleteSession(this.files, ref, options, (r, path) => this.deleteSessionLocked(r, path));
  }

  /** Unlinks a session's file and takes it out of its owner's index, once its floor is durable. Caller holds the locks. */
  protected deleteSessionLocked(ref: SessionRef, path: string): Promise<DeleteReceipt> {
    return deleteSessionLocked(this.files, ref, path);
  }

  async deleteUser(tenant: string, userId: string): Promise<DeleteReceipt> {
    this.check();
    return deleteUserSessions(this, tenant, userId);
  }

  async cleanupExpiredSessions(maxAgeDays: number): Promise<number> {
    this.check();
    return cleanupExpiredSessions(this.files, maxAgeDays);
  }

  /**
   * Walks every file: reports damage and torn tails; with `repair`, cuts torn tails (under the
   * session lock) and removes temp files left by interrupted rewrites more than an hour old.
   */
  async verify(options: { repair?: boolean; tenant?: string } = {}): Promise<VerifyReport> {
    this.check();
    return verify(this.files, options);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.files.clear();
  }
}
