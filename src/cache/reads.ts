import { StrataError } from '../errors.js';
import { toSessionRef, validateId } from '../ids.js';
import type { SessionRef, Turn } from '../types.js';
import { withTokenCount } from '../workers/preparer.js';
import type { ContextRequest, ContextResult, SearchHit, SearchScopeInput, SessionInfo, TenantOption } from './api.js';
import type { Compactor } from './compactor.js';
import { CachePart, MAX_PAGE, notFound, pageLimit, stripEmbedding, type CacheCore } from './core.js';
import type { Rehydration } from './rehydration.js';

/** How far a recent window reaches back for the tool call of the tool results it starts with. */
const MAX_TOOL_REACH = 128;

/** Reads: context, messages, search and session info, seeding the hot tier on a miss. */
export class Reads extends CachePart {
  private readonly userSessionCache = new Map<string, { stamp: string | null; sessionIds: string[]; embedderChecked: boolean }>();

  constructor(
    core: CacheCore,
    private readonly rehydration: Rehydration,
    private readonly compactor: Compactor,
  ) {
    super(core);
  }

  /**
   * Context of a session that does not exist (yet) is empty, not an error: an application asks
   * for context before the first message of every new session.
   */
  async getContext(sessionId: string, request: ContextRequest): Promise<ContextResult> {
    const ref = toSessionRef(sessionId, request?.tenant);
    // `recent` and `full` answer an unknown session with no messages by themselves (and seed a
    // session the hot tier does not hold): no look-up of its last turn first.
    if (request?.type === 'smart' && (await this.rehydration.lastTurnId(ref)) === null) return { type: request.type, messages: [], summary: null, tokens: 0, explain: [], nextAfter: null };
    switch (request?.type) {
      case 'recent': {
        const limit = pageLimit(request.limit, this.tuning.recentTurns);
        let messages = await this.recent(ref, limit);
        // A window that starts inside a tool round (tool results whose call is older) reaches
        // back to the call: a model API refuses a tool result without it (at most MAX_TOOL_REACH turns).
        if (messages[0]?.role === 'tool' && messages[0].turnId > 1) {
          const wider = await this.recent(ref, limit + MAX_TOOL_REACH);
          let j = wider.findIndex((m) => m.turnId === messages[0]!.turnId) - 1;
          while (j >= 0 && wider[j]!.role === 'tool') j--;
          if (j >= 0 && (wider[j]!.tool_calls?.length ?? 0) > 0) messages = wider.slice(j);
        }
        return { type: 'recent', messages, summary: null, tokens: sumTokens(messages), explain: [], nextAfter: null };
      }
      case 'full': {
        const page = await this.getMessages(sessionId, { tenant: ref.tenant, after: request.after, limit: pageLimit(request.limit, MAX_PAGE) });
        return { type: 'full', messages: page.messages, summary: null, tokens: sumTokens(page.messages), explain: [], nextAfter: page.nextAfter };
      }
      case 'smart': {
        if (!this.retrieval) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'smart context needs a retrieval configuration (embedder and tokenizer)');
        await this.compactor.flushIfUnarchived(ref, true);
        await this.assertEmbedder(ref.tenant, [ref.sessionId]);
        const recentWindow = await this.recent(ref, this.tuning.recentTurns);
        return this.retrieval.smartContext(ref, request, recentWindow);
      }
      default:
        throw new StrataError('STRATA_ERR_VALIDATION', `context type must be recent, full or smart; received ${JSON.stringify(request?.type)}`);
    }
  }

  /** The last `limit` turns, from the hot tier, rehydrating from the archive on a miss. */
  async recent(ref: SessionRef, limit: number): Promise<Turn[]> {
    const now = this.clock.now();
    let turns = await this.hot.recent(ref, limit, now);
    if (turns.length === 0) {
      this.metrics.hotAccess?.(false);
      if (!(await this.hot.meta(ref))) {
        if (!(await this.rehydration.seedHot(ref, undefined, false))) return [];
        turns = await this.hot.recent(ref, limit, now);
      }
    } else {
      this.metrics.hotAccess?.(true);
    }
    // Turns re-seeded from journal records have no token counts yet.
    turns = await this.preparer.withTokens(turns);
    const first = turns[0]?.turnId;
    if (first !== undefined && turns.length < limit && first > 1) {
      // The hot tier holds fewer turns than asked for: the rest comes from the archive.
      const older = await this.archive.read(ref, { fromTurn: Math.max(1, first - (limit - turns.length)), toTurn: first - 1 });
      turns = [...older.map(stripEmbedding), ...turns];
    }
    return turns.slice(-limit);
  }

  async getMessages(sessionId: string, options: TenantOption & { after?: number; limit?: number } = {}): Promise<{ messages: Turn[]; nextAfter: number | null }> {
    const ref = toSessionRef(sessionId, options.tenant);
    const after = options.after ?? 0;
    if (!Number.isInteger(after) || after < 0) throw new StrataError('STRATA_ERR_VALIDATION', `after must be a non-negative integer; received ${JSON.stringify(options.after)}`);
    const limit = pageLimit(options.limit, MAX_PAGE);
    const lastTurnId = await this.rehydration.lastTurnId(ref);
    // A session nobody wrote to yet has no messages (not an error: see getContext).
    if (lastTurnId === null) return { messages: [], nextAfter: null };
    const from = after + 1;
    const to = after + limit;
    const [archived, hot] = await Promise.all([this.archive.read(ref, { fromTurn: from, toTurn: to }), this.hot.range(ref, from, to)]);
    const byId = new Map<number, Turn>();
    for (const t of archived) byId.set(t.turnId, stripEmbedding(t));
    // A hot turn re-seeded from a journal record has no token count; the archive's copy may.
    const known = hot.map((t) => (t.tokens === undefined && byId.get(t.turnId)?.tokens !== undefined ? withTokenCount(t, byId.get(t.turnId)!.tokens!) : t));
    for (const t of await this.preparer.withTokens(known)) byId.set(t.turnId, t);
    const messages = [...byId.values()].sort((a, b) => a.turnId - b.turnId);
    return { messages, nextAfter: to < lastTurnId ? to : null };
  }

  async searchDiskHistory(query: string, topK: number, scope: SearchScopeInput): Promise<SearchHit[]> {
    if (!this.retrieval) throw new StrataError('STRATA_ERR_NOT_AVAILABLE', 'search needs a retrieval configuration (embedder and tokenizer)');
    if (typeof query !== 'string' || query.trim().length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'query must be a non-empty string');
    if (!Number.isInteger(topK) || topK < 1 || topK > 100) throw new StrataError('STRATA_ERR_VALIDATION', `topK must be an integer from 1 to 100; received ${JSON.stringify(topK)}`);
    const tenant = validateId('tenant', scope.tenant ?? 'default');
    if ('sessionId' in scope && scope.sessionId !== undefined) {
      const ref = toSessionRef(scope.sessionId, tenant);
      const meta = await this.hot.meta(ref);
      // Like its context, a session that does not exist has nothing to find.
      if (!meta && !(await this.archive.info(ref)) && !this.pending.has(ref)) return [];
      // Every turn by default; on request, not the recent window the application already has.
      const excludeRecent = (scope as { excludeRecent?: unknown }).excludeRecent;
      if (excludeRecent !== undefined && typeof excludeRecent !== 'boolean') throw new StrataError('STRATA_ERR_VALIDATION', `excludeRecent: expected a boolean, received ${typeof excludeRecent}`, { details: { field: 'excludeRecent' } });
      // Search reads the archive: turns it must find are archived first.
      await this.compactor.flushIfUnarchived(ref, excludeRecent === true);
      await this.assertEmbedder(tenant, [ref.sessionId]);
      const exclude = excludeRecent ? new Set((await this.hot.recent(ref, this.tuning.recentTurns, this.clock.now())).map((t) => t.turnId)) : new Set<number>();
      return this.retrieval.search(query, topK, { tenant, sessionIds: [ref.sessionId] }, new Map([[ref.sessionId, exclude]]));
    }
    const userId = validateId('user', (scope as { userId: string }).userId);
    // Unarchived turns of the user's sessions are archived first; only sessions with a backlog
    // (in the hot tier or this instance's journal) are looked at, not every session of the user.
    const backlog = new Set<string>();
    for (const ref of [...this.pending.refs(), ...(await this.hot.sessionsToCompact(1, Number.MAX_SAFE_INTEGER, 10_000))]) if (ref.tenant === tenant) backlog.add(ref.sessionId);
    const owned = await this.userSessions(tenant, userId);
    for (const sessionId of owned.sessionIds) if (backlog.has(sessionId)) await this.compactor.flushIfUnarchived({ tenant, sessionId });
    const current = await this.userSessions(tenant, userId);
    if (!current.embedderChecked) {
      await this.assertEmbedder(tenant, current.sessionIds);
      current.embedderChecked = true;
    }
    return this.retrieval.search(query, topK, this.archive.userStamp ? { tenant, userId } : { tenant, sessionIds: current.sessionIds }, new Map());
  }

  /** A user's archived sessions, re-listed only when the archive's stamp of the user changed. */
  async userSessions(tenant: string, userId: string): Promise<{ stamp: string | null; sessionIds: string[]; embedderChecked: boolean }> {
    const stamp = this.archive.userStamp ? await this.archive.userStamp(tenant, userId) : null;
    const key = `${tenant}\u0000${userId}`;
    const hit = this.userSessionCache.get(key);
    if (hit && stamp !== null && hit.stamp === stamp) return hit;
    // After a start, a persisted index of this very stamp knows the sessions (and checked their
    // embedder): no listing, no per-session look-up.
    const known = stamp !== null ? ((await this.retrieval?.knownUserSessions?.(tenant, userId, stamp)) ?? null) : null;
    const entry = known ? { stamp, sessionIds: known, embedderChecked: true } : { stamp, sessionIds: await this.archive.listUserSessions(tenant, userId), embedderChecked: false };
    this.userSessionCache.delete(key);
    this.userSessionCache.set(key, entry);
    if (this.userSessionCache.size > 4096) this.userSessionCache.delete(this.userSessionCache.keys().next().value!);
    return entry;
  }

  /** Vectors of another model are not comparable with this embedder's: refuse rather than mix spaces. */
  async assertEmbedder(tenant: string, sessionIds: readonly string[]): Promise<void> {
    if (!this.embedder) return;
    for (const sessionId of sessionIds) {
      const stored = (await this.archive.info({ tenant, sessionId }))?.embedderId ?? null;
      if (stored !== null && stored !== this.embedder.id) {
        throw new StrataError('STRATA_ERR_EMBEDDER_MISMATCH', `session ${sessionId} was embedded with ${stored}, the configured embedder is ${this.embedder.id}; run \`strata reindex\``, { details: { sessionId, stored, configured: this.embedder.id } });
      }
    }
  }

  async getSession(sessionId: string, options: TenantOption = {}): Promise<SessionInfo> {
    const ref = toSessionRef(sessionId, options.tenant);
    const [meta, info] = await Promise.all([this.hot.meta(ref), this.archive.info(ref)]);
    // Without hot state, unarchived turns are in journals: this instance's and, after a loss of
    // the hot tier (or in a read-only core), every instance's.
    const floor = meta ? 0 : Math.max(await this.archive.deletedUpTo(ref), await this.hot.floor(ref));
    const journaled = meta ? [] : [...new Set([...this.pending.turns(ref).map((t) => t.turnId), ...this.rehydration.recoveryIndex.turns(ref, floor).turns.map((t) => t.turnId)])].filter((id) => id > Math.max(info?.highWater ?? 0, floor));
    let pendingMax = 0;
    for (const id of journaled) pendingMax = Math.max(pendingMax, id);
    if (!meta && !info && pendingMax === 0) throw notFound(ref);
    const lastTurnId = Math.max((meta?.nextTurnId ?? 1) - 1, info?.highWater ?? 0, pendingMax);
    const archivedTurns = info?.turnCount ?? 0;
    const unarchivedTurns = meta ? meta.unarchivedCount : journaled.length;
    return {
      tenant: ref.tenant,
      sessionId: ref.sessionId,
      userId: meta?.userId ?? info?.userId ?? this.pending.userId(ref) ?? null,
      turns: archivedTurns + unarchivedTurns,
      lastTurnId,
      hotTurns: meta?.turnCount ?? 0,
      unarchivedTurns,
      archivedTurns,
      bytes: { hot: meta?.bytes ?? 0, archive: info?.bytes ?? 0 },
      createdAt: minDefined(meta?.createdAt, info?.firstTurnAt),
      lastActivityAt: maxDefined(meta?.lastAccess, info?.lastTurnAt),
    };
  }

  async listSessions(options: TenantOption & { cursor?: string | null; limit?: number; userId?: string } = {}): Promise<{ sessions: SessionInfo[]; nextCursor: string | null }> {
    const tenant = validateId('tenant', options.tenant ?? 'default');
    if (options.userId !== undefined) {
      const userId = validateId('user', options.userId);
      const ids = (await this.archive.listUserSessions(tenant, userId)).sort();
      const start = options.cursor ? ids.findIndex((id) => id > options.cursor!) : 0;
      const limit = pageLimit(options.limit, 100);
      const page = start < 0 ? [] : ids.slice(start, start + limit);
      const sessions = await Promise.all(page.map((id) => this.getSession(id, { tenant })));
      return { sessions, nextCursor: start >= 0 && start + limit < ids.length ? (page.at(-1) ?? null) : null };
    }
    const listed = await this.archive.listSessions(tenant, { cursor: options.cursor ?? null, limit: pageLimit(options.limit, 100) });
    const sessions = await Promise.all(listed.sessions.map((s) => this.getSession(s.sessionId, { tenant })));
    return { sessions, nextCursor: listed.nextCursor };
  }
}

function sumTokens(turns: readonly Turn[]): number {
  let n = 0;
  for (const t of turns) n += t.tokens ?? 0;
  return n;
}

function minDefined(...values: Array<number | null | undefined>): number | null {
  const xs = values.filter((v): v is number => typeof v === 'number');
  return xs.length ? Math.min(...xs) : null;
}

function maxDefined(...values: Array<number | null | undefined>): number | null {
  const xs = values.filter((v): v is number => typeof v === 'number');
  return xs.length ? Math.max(...xs) : null;
}
