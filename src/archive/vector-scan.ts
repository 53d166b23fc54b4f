import { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import type { FileIndex, SegmentEntry } from './file.js';
import { segmentsFor } from './file.js';
import { scoreEmbeddings } from './segment-decode.js';
import type { EmbeddingHit, SearchScope } from './store.js';
import { validateQuery } from './validate.js';
import { norm } from './vectors.js';

/*
 * `searchByEmbedding` of every driver: brute-force cosine similarity of the query with each
 * stored vector of the sessions in scope, on the stored encoding (segment-decode.ts), keeping
 * the best `topK`. Only the driver's way to reach a session's segments differs.
 */

/** Checks a search's query and scope; the sessions of a user scope come from the driver's user index. */
export async function searchScope(query: Float32Array, topK: number, scope: SearchScope, listUserSessions: (tenant: string, userId: string) => Promise<string[]>): Promise<{ tenant: string; sessionIds: Set<string> }> {
  validateQuery(query, topK);
  if (typeof scope !== 'object' || scope === null) throw new StrataError('STRATA_ERR_VALIDATION', 'scope: expected {tenant, sessionIds} or {tenant, userId}');
  const tenant = validateId('tenant', scope.tenant);
  let sessionIds: readonly string[];
  if ('userId' in scope) sessionIds = await listUserSessions(tenant, scope.userId);
  else if (Array.isArray(scope.sessionIds)) sessionIds = scope.sessionIds.map((id) => validateId('session', id));
  else throw new StrataError('STRATA_ERR_VALIDATION', 'scope: expected {tenant, sessionIds} or {tenant, userId}');
  return { tenant, sessionIds: new Set(sessionIds) };
}

/** The hits of one search, fed one session at a time. */
export class EmbeddingScan {
  private hits: EmbeddingHit[] = [];
  private readonly queryNorm: number;

  constructor(
    private readonly query: Float32Array,
    private readonly topK: number,
  ) {
    this.queryNorm = norm(query);
  }

  /**
   * Scores the session's vectors made by `embedderId`, its current embedder: vectors of an older
   * model are not comparable (reindex replaces them). A turn stored twice counts once.
   */
  async add(sessionId: string, index: FileIndex, embedderId: string | null, body: (s: SegmentEntry) => Promise<Uint8Array>): Promise<void> {
    if (index.versionError) throw index.versionError;
    const seen = new Set<number>();
    for (const s of segmentsFor(index)) {
      const h = s.header!;
      if (h.encoding === 'none' || h.embedderId !== embedderId) continue;
      if (h.dims !== this.query.length) throw new StrataError('STRATA_ERR_EMBEDDING_DIMENSION', `query has ${this.query.length} dimensions, session ${sessionId} stores ${h.dims}-dimension vectors`, { details: { sessionId, expected: h.dims, received: this.query.length } });
      const scores = scoreEmbeddings(await body(s), h, { file: index.file, segment: s.ordinal }, this.query, this.queryNorm);
      for (let i = 0; i < scores.length; i++) {
        const id = s.ids![i]!;
        if (Number.isNaN(scores[i]!) || seen.has(id)) continue;
        seen.add(id);
        this.hits.push({ sessionId, turnId: id, score: scores[i]! });
      }
      // Bounded memory over many sessions: cut back to the best ones now and then.
      if (this.hits.length > 4 * this.topK + 1024) this.hits = topHits(this.hits, this.topK);
    }
  }

  /** The best `topK` hits, best first; ties by session id, then turn id. */
  top(): EmbeddingHit[] {
    return topHits(this.hits, this.topK);
  }
}

function topHits(hits: EmbeddingHit[], k: number): EmbeddingHit[] {
  return hits.sort((a, b) => b.score - a.score || a.sessionId.localeCompare(b.sessionId) || a.turnId - b.turnId).slice(0, k);
}
