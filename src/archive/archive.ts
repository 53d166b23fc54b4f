import { StrataError } from '../errors.js';
import { toSessionRef, validateId } from '../ids.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import { DEFAULT_TENANT } from '../types.js';
import type { InspectReport } from './file.js';
import { inspectBytes } from './file.js';
import type { VerifyReport } from './fs-store.js';
import { FsArchiveStore } from './fs-store.js';
import type { ArchiveOptions } from './options.js';
import type {
  AppendOptions,
  AppendResult,
  ArchiveSessionInfo,
  ArchiveStats,
  ArchiveStore,
  DeleteReceipt,
  EmbeddingHit,
  SearchScope,
  Summary,
  TurnRange,
} from './store.js';

/** Options of `ConversationArchive`: the filesystem archive's options, plus a default tenant or another driver. */
export interface ConversationArchiveOptions extends Partial<ArchiveOptions> {
  /** Tenant of calls that pass a bare session id. Default `"default"`. */
  tenant?: string;
  /** Another `ArchiveStore` driver; when given, `dataDir` and the fs options are not used. Default: an `FsArchiveStore`. */
  store?: ArchiveStore;
}

/** Where `searchByEmbedding` looks: one session, a list of sessions, or all sessions of one user (one tenant). */
export type ArchiveSearchScope = string | readonly string[] | { sessionIds: readonly string[]; tenant?: string } | { userId: string; tenant?: string };

/**
 * The cold tier with the proposal's API (`save`, `load`, `searchByEmbedding`,
 * `cleanupExpiredSessions`) over an `ArchiveStore`. Sessions are named by a bare id (default
 * tenant) or a `{tenant, sessionId}` reference.
 */
export class ConversationArchive {
  readonly store: ArchiveStore;
  readonly tenant: string;

  constructor(options: ConversationArchiveOptions) {
    if (typeof options !== 'object' || options === null) throw new StrataError('STRATA_ERR_CONFIG_INVALID', `ConversationArchive options: expected an object, received ${options === null ? 'null' : typeof options}`);
    const { tenant, store, ...fsOptions } = options;
    try {
      this.tenant = validateId('tenant', tenant ?? DEFAULT_TENANT);
    } catch {
      throw new StrataError('STRATA_ERR_CONFIG_INVALID', `archive option \`tenant\`: expected a tenant id of [A-Za-z0-9_.-], received ${JSON.stringify(tenant)}`, { details: { option: 'tenant' } });
    }
    if (store !== undefined) {
      if (typeof store !== 'object' || store === null || typeof store.append !== 'function') throw new StrataError('STRATA_ERR_CONFIG_INVALID', 'archive option `store`: expected an ArchiveStore', { details: { option: 'store' } });
      this.store = store;
    } else {
      this.store = new FsArchiveStore(fsOptions as ArchiveOptions);
    }
    Object.freeze(this);
  }

  private ref(session: string | SessionRef): SessionRef {
    return toSessionRef(session, this.tenant);
  }

  /** Appends turns (ascending ids); turns at or below the session's high-water id are skipped. */
  save(session: string | SessionRef, turns: readonly ArchivedTurn[], options?: AppendOptions): Promise<AppendResult> {
    return this.store.append(this.ref(session), turns, options);
  }

  /** The session's turns in order (inclusive range); empty when the session has no archive. */
  load(session: string | SessionRef, range?: TurnRange): Promise<ArchivedTurn[]> {
    return this.store.read(this.ref(session), range);
  }

  info(session: string | SessionRef): Promise<ArchiveSessionInfo | null> {
    return this.store.info(this.ref(session));
  }

  /** Brute-force cosine over the stored vectors of the sessions in scope, best first. */
  searchByEmbedding(query: Float32Array, topK: number, scope: ArchiveSearchScope): Promise<EmbeddingHit[]> {
    let s: SearchScope;
    if (typeof scope === 'string') s = { tenant: this.tenant, sessionIds: [scope] };
    else if (Array.isArray(scope)) s = { tenant: this.tenant, sessionIds: scope as readonly string[] };
    else if (typeof scope === 'object' && scope !== null && 'userId' in scope) s = { tenant: scope.tenant ?? this.tenant, userId: scope.userId };
    else if (typeof scope === 'object' && scope !== null && 'sessionIds' in scope) s = { tenant: scope.tenant ?? this.tenant, sessionIds: scope.sessionIds };
    else throw new StrataError('STRATA_ERR_VALIDATION', 'scope: expected a session id, a list of session ids, {sessionIds} or {userId}');
    return this.store.searchByEmbedding(query, topK, s);
  }

  /** Deletes sessions whose last turn is older than `maxAgeDays` (default 30); returns how many. */
  cleanupExpiredSessions(maxAgeDays = 30): Promise<number> {
    return this.store.cleanupExpiredSessions(maxAgeDays);
  }

  deleteSession(session: string | SessionRef): Promise<DeleteReceipt> {
    return this.store.deleteSession(this.ref(session));
  }

  deleteTurns(session: string | SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt> {
    return this.store.deleteTurns(this.ref(session), turnIds);
  }

  deleteUser(userId: string, tenant = this.tenant): Promise<DeleteReceipt> {
    return this.store.deleteUser(tenant, userId);
  }

  listSessions(options: { tenant?: string; cursor?: string | null; limit?: number } = {}): Promise<{ sessions: ArchiveSessionInfo[]; nextCursor: string | null }> {
    const { tenant, ...rest } = options;
    return this.store.listSessions(tenant ?? this.tenant, rest);
  }

  listUserSessions(userId: string, tenant = this.tenant): Promise<string[]> {
    return this.store.listUserSessions(tenant, userId);
  }

  stats(tenant?: string): Promise<ArchiveStats> {
    return this.store.stats(tenant);
  }

  saveSummary(session: string | SessionRef, summary: Summary): Promise<void> {
    return this.store.saveSummary(this.ref(session), summary);
  }

  loadSummaries(session: string | SessionRef): Promise<Summary[]> {
    return this.store.loadSummaries(this.ref(session));
  }

  compact(session: string | SessionRef): Promise<void> {
    return this.store.compact(this.ref(session));
  }

  exportSession(session: string | SessionRef): Promise<Uint8Array> {
    return this.store.exportSession(this.ref(session));
  }

  importSession(session: string | SessionRef, file: Uint8Array, options?: { userId?: string }): Promise<ArchiveSessionInfo> {
    return this.store.importSession(this.ref(session), file, options);
  }

  /** Walks every archive file: CRC and codec checks; with `repair`, cuts torn tails. Filesystem driver only. */
  verify(options: { repair?: boolean; tenant?: string } = {}): Promise<VerifyReport> {
    if (!(this.store instanceof FsArchiveStore)) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'verify needs the filesystem archive driver');
    return this.store.verify(options);
  }

  /** Records, segments, blocks, codecs, sizes and CRC status of an archive file's bytes. */
  inspect(bytes: Uint8Array): InspectReport {
    return inspectBytes(bytes);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
