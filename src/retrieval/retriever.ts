import { messageFields, searchText } from '../message.js';
import type { SearchHit } from '../cache/api.js';
import { isStrataError, StrataError } from '../errors.js';
import { Bm25Index, type Bm25Parts } from './bm25.js';
import { l2normalize, type Embedder } from './embedder.js';
import { Lru } from './lru.js';
import { scopeKey, type RetrievalScope, type RetrievalTurn, type TurnSource } from './source.js';
import { stem, terms, words } from './text.js';

/** Tuning of the hybrid search. Defaults were chosen on the LoCoMo and LongMemEval dev files (docs/retrieval.md). */
export interface RetrieverOptions {
  /** Reciprocal-rank-fusion constant k in 1/(k + rank). Default 10 (the top of each ranking counts most). */
  rrfK?: number;
  /** Weight of the dense ranking in the fusion. Default 0.5. 0 = lexical only. */
  denseWeight?: number;
  /** Weight of the BM25 ranking in the fusion. Default 1. 0 = dense only. */
  lexicalWeight?: number;
  /** Candidates taken from each ranking before fusion. Default 200. */
  depth?: number;
  /** Share of each adjacent turn's fused score added to a turn's own (context smoothing). Default 0.3. */
  smoothing?: number;
  /** Neighbour expansion: adjacent turns (±1) brought in after each of the first `neighbourHits` hits. Default 0 (off). */
  neighbourHits?: number;
  /** Multiplier applied to turns whose speaker is named in the query. Default 2 (1 = off). */
  speakerBoost?: number;
  /**
   * Session evidence: each turn's score is multiplied by 1 + sessionWeight × (its session's
   * evidence / the best session's), where a session's evidence is the sum of its `sessionTop`
   * best turn scores. A session that many good turns point to lifts all of its turns. Default 1; 0 = off.
   */
  sessionWeight?: number;
  /** Turns per session summed into its evidence. Default 3. */
  sessionTop?: number;
  /**
   * Multiplier of user turns when the query speaks in the first person (I, my, me…) and does not
   * address the assistant (you, your): a question about "my X" is answered by what the user
   * said. Default 1.5; 1 = off.
   */
  selfBoost?: number;
  /**
   * Query word weighting, for embedders that average word vectors (GloVe): each word of the
   * query weighs idf^queryIdfPower, its BM25 inverse document frequency in the searched scope.
   * Words the user's history is full of ("thinking", "advice", "suggestions") then count for
   * little, the rare words that name the topic ("cocktail") for much. Default 2; 0 = the
   * embedder's own weights. Embedders of whole texts (OpenAI-compatible) are not affected.
   */
  queryIdfPower?: number;
  /** Indexed scopes kept in memory. Default 64. */
  maxScopes?: number;
  /** Cached query embeddings. Default 1024. */
  queryCacheSize?: number;
  /** Cached result lists. Default 1024. */
  resultCacheSize?: number;
}

export interface SearchOptions {
  /** Turns never returned (the recent window), as `{sessionId, turnId}`. */
  exclude?: Iterable<{ sessionId: string; turnId: number }>;
}

/**
 * A user-scope index as data, for persistence: the live docs in the order a fresh build adds
 * them (session id, then turn id), their BM25 postings and vectors, and the versions they
 * reflect. An index made from it ranks exactly like one built from the same turns.
 */
export interface IndexData {
  version: string;
  /** Session id → the version its docs were loaded at. */
  sessionVersions: Map<string, string>;
  dimensions: number;
  /** In doc order; `embedding` is not read (the vectors are in `matrix`). */
  turns: readonly RetrievalTurn[];
  bm25: Bm25Parts;
  /** Row-major normalised vectors, `dimensions` per doc. */
  matrix: Float32Array;
}

interface ScopeIndex {
  version: string;
  /** Docs in append order: each session's turns consecutive and ascending. */
  turns: RetrievalTurn[];
  /** Row-major normalised vectors, `dimensions` per turn. */
  matrix: Float32Array;
  bm25: Bm25Index;
  /** `${sessionId}\0${turnId}` → doc number (live docs only). */
  byKey: Map<string, number>;
  /** Lower-cased speaker name → doc numbers. */
  speakers: Map<string, number[]>;
  /** The previous and next turn of the same session (doc numbers, −1 at the ends). */
  prev: number[];
  next: number[];
  /** 0 for a doc whose session changed or left the scope since it was added (incremental updates). */
  alive: Uint8Array;
  dead: number;
  /** Session → its docs, and the per-session versions the docs were loaded at (incremental sources). */
  sessionDocs: Map<string, number[]>;
  sessionVersions: Map<string, string> | null;
}

/** Above this share of dead docs an incremental update rebuilds the index instead. */
const MAX_DEAD_SHARE = 0.25;

const key = (sessionId: string, turnId: number) => `${sessionId}\u0000${turnId}`;

/** A query in the first person singular (English). */
const FIRST_PERSON = /\b(i|i'm|i've|i'd|i'll|my|me|mine|myself)\b/i;
/** A query that addresses the assistant ("you told me", "your suggestion"): its answer may be in the assistant's turns. */
const SECOND_PERSON = /\b(you|your|you're|you've|yours)\b/i;

/**
 * Cosine of the query with each of the `n` row-major vectors (normalised: a dot product), −∞
 * for dead docs. The scan over every vector of the scope is most of a search's time: four
 * running sums instead of one let the additions overlap (one sum waits on the previous addition
 * at every step), about twice as fast.
 */
function denseScores(matrix: Float32Array, qv: Float32Array, dims: number, n: number, alive: Uint8Array, out: Float32Array): void {
  const tail = dims - (dims % 4);
  for (let d = 0, base = 0; d < n; d++, base += dims) {
    if (!alive[d]) {
      out[d] = -Infinity;
      continue;
    }
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let i = 0;
    for (; i < tail; i += 4) {
      s0 += matrix[base + i]! * qv[i]!;
      s1 += matrix[base + i + 1]! * qv[i + 1]!;
      s2 += matrix[base + i + 2]! * qv[i + 2]!;
      s3 += matrix[base + i + 3]! * qv[i + 3]!;
    }
    for (; i < dims; i++) s0 += matrix[base + i]! * qv[i]!;
    out[d] = s0 + s1 + (s2 + s3);
  }
}

/**
 * Indexes of the `count` largest values among `candidates` (or all of 0..n-1), descending.
 * A bounded min-heap keeps this O(n log count) instead of sorting every turn of the scope.
 */
function topIndexes(scores: Float32Array, count: number, docOrder: (a: number, b: number) => number, candidates?: readonly number[]): number[] {
  const total = candidates ? candidates.length : scores.length;
  const heap: number[] = [];
  const less = (a: number, b: number) => scores[a]! < scores[b]! || (scores[a] === scores[b] && docOrder(a, b) < 0);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let j = 0; j < total; j++) {
    const doc = candidates ? candidates[j]! : j;
    if (heap.length < count) {
      heap.push(doc);
      for (let i = heap.length - 1; i > 0; ) {
        const p = (i - 1) >> 1;
        if (!less(heap[i]!, heap[p]!)) break;
        [heap[i], heap[p]] = [heap[p]!, heap[i]!];
        i = p;
      }
    } else if (count > 0 && less(heap[0]!, doc)) {
      heap[0] = doc;
      down(0);
    }
  }
  return heap.sort((a, b) => scores[b]! - scores[a]! || docOrder(b, a));
}

/**
 * Hybrid search over a `TurnSource`: dense cosine over the turn vectors plus BM25, fused by
 * weighted reciprocal rank, recency as the tie-breaker, optional neighbour smoothing and
 * expansion, exclusions. Per-scope indexes are built on first use and rebuilt when the scope's
 * version changes; query embeddings and results are cached (results keyed by scope version).
 */
export class HybridRetriever {
  private readonly o: Required<RetrieverOptions>;
  private readonly indexes: Lru<string, Promise<ScopeIndex>>;
  private readonly queryVectors: Lru<string, Promise<Float32Array>>;
  private readonly results: Lru<string, SearchHit[]>;

  constructor(
    private readonly source: TurnSource,
    private readonly embedder: Embedder,
    options: RetrieverOptions = {},
  ) {
    this.o = {
      rrfK: options.rrfK ?? 10,
      denseWeight: options.denseWeight ?? 0.5,
      lexicalWeight: options.lexicalWeight ?? 1,
      depth: options.depth ?? 200,
      smoothing: options.smoothing ?? 0.3,
      neighbourHits: options.neighbourHits ?? 0,
      speakerBoost: options.speakerBoost ?? 2,
      sessionWeight: options.sessionWeight ?? 1,
      sessionTop: options.sessionTop ?? 3,
      selfBoost: options.selfBoost ?? 1.5,
      queryIdfPower: options.queryIdfPower ?? 2,
      maxScopes: options.maxScopes ?? 64,
      queryCacheSize: options.queryCacheSize ?? 1024,
      resultCacheSize: options.resultCacheSize ?? 1024,
    };
    for (const [name, value] of Object.entries(this.o)) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw new StrataError('STRATA_ERR_CONFIG_INVALID', `retrieval.${name}: expected a finite number ≥ 0, got ${String(value)}`);
      }
    }
    this.indexes = new Lru(this.o.maxScopes);
    this.queryVectors = new Lru(this.o.queryCacheSize);
    this.results = new Lru(this.o.resultCacheSize);
  }

  /** Drops a scope's index (e.g. after a deletion the version would also reveal). */
  invalidate(scope?: RetrievalScope): void {
    if (scope) this.indexes.delete(scopeKey(scope));
    else this.indexes.clear();
  }

  /** True when an index of the scope is in memory (current or not). */
  hasIndex(scope: RetrievalScope): boolean {
    return this.indexes.get(scopeKey(scope)) !== undefined;
  }

  /** Every turn in scope, sorted by session then turn id, from the (current) index. */
  async turns(scope: RetrievalScope): Promise<{ version: string; turns: readonly RetrievalTurn[] }> {
    const version = await this.source.version(scope);
    const index = await this.index(scope, scopeKey(scope), version);
    return { version, turns: index.turns };
  }

  async search(query: string, topK: number, scope: RetrievalScope, options: SearchOptions = {}): Promise<SearchHit[]> {
    if (!Number.isInteger(topK) || topK < 1 || topK > 1000) {
      throw new StrataError('STRATA_ERR_VALIDATION', `topK: expected an integer 1-1000, got ${String(topK)}`);
    }
    const sk = scopeKey(scope);
    const version = await this.source.version(scope);
    const excluded = options.exclude ? [...options.exclude].map((e) => key(e.sessionId, e.turnId)).sort() : [];
    const resultKey = `${sk}\u0001${version}\u0001${topK}\u0001${excluded.join(',')}\u0001${query}`;
    const cached = this.results.get(resultKey);
    if (cached) return cached.map((h) => ({ ...h, scores: { ...h.scores } }));

    const run = async (): Promise<SearchHit[]> => {
      const index = await this.index(scope, sk, version);
      return this.rank(index, scope.tenant, query, await this.queryVector(query, index, sk), topK, new Set(excluded));
    };
    let hits: SearchHit[];
    try {
      hits = await run();
    } catch (err) {
      // A persisted index whose message fields fail their checksum: dropped, built from the
      // scope's turns, and the search runs again.
      if (!isStrataError(err, 'STRATA_ERR_INDEX_DAMAGED') || !('userId' in scope)) throw err;
      await this.source.indexDamaged?.(scope);
      this.indexes.delete(sk);
      hits = await run();
    }
    this.results.set(resultKey, hits);
    return hits.map((h) => ({ ...h, scores: { ...h.scores } }));
  }

  /**
   * The query's vector: the embedder's own (cached per query), or, with `queryIdfPower` and an
   * embedder that weighs words, one weighted by the scope's term statistics (cached per query
   * and scope version).
   */
  private queryVector(query: string, ix: ScopeIndex, sk: string): Promise<Float32Array> {
    const power = this.o.queryIdfPower;
    const embedQuery = power > 0 ? this.embedder.embedQuery?.bind(this.embedder) : undefined;
    const k = embedQuery ? `${this.embedder.id}\u0000${sk}\u0000${ix.version}\u0000${query}` : `${this.embedder.id}\u0000${query}`;
    let v = this.queryVectors.get(k);
    if (!v) {
      if (embedQuery) {
        const n = ix.bm25.size;
        v = embedQuery(query, (word) => {
          const df = ix.bm25.df(stem(word));
          return Math.log(1 + (n - df + 0.5) / (df + 0.5)) ** power;
        });
      } else {
        v = this.embedder.embed([query]).then((r) => r[0]!);
      }
      v.catch(() => this.queryVectors.delete(k));
      this.queryVectors.set(k, v);
    }
    return v;
  }

  private index(scope: RetrievalScope, sk: string, version: string): Promise<ScopeIndex> {
    const existing = this.indexes.get(sk);
    const build = async (): Promise<ScopeIndex> => {
      let prior = existing ? await existing.catch(() => null) : null;
      // A user's index after a restart: the persisted one, brought up to date below like one
      // kept in memory (a snapshot the source cannot verify is not offered).
      if (!prior && 'userId' in scope && this.source.loadIndex) {
        const data = await this.source.loadIndex(scope);
        if (data && data.dimensions === this.embedder.dimensions) prior = this.fromData(data);
      }
      if (prior && prior.version === version) return prior;
      // A user's index follows its sessions: only sessions whose version changed are read again
      // and re-added; the others keep their docs (no reading, no tokenizing, no embedding).
      if ('userId' in scope && this.source.sessionVersions && this.source.loadSessions) {
        const versions = await this.source.sessionVersions(scope);
        let ix: ScopeIndex;
        if (prior?.sessionVersions && prior.dead <= prior.turns.length * MAX_DEAD_SHARE) ix = await this.update(prior, scope.tenant, versions, version);
        else {
          ix = this.empty(version, versions);
          await this.addDocs(ix, await this.source.loadSessions(scope.tenant, [...versions.keys()]));
        }
        this.source.indexChanged?.(scope);
        return ix;
      }
      const ix = this.empty(version, null);
      await this.addDocs(ix, await this.source.loadTurns(scope));
      return ix;
    };
    const next = build();
    next.catch(() => this.indexes.delete(sk));
    this.indexes.set(sk, next);
    return next;
  }

  /**
   * The current index of a user scope as data (live docs only, in fresh-build order), or null
   * when none is in memory. The version is the one the index was built for.
   */
  async exportIndex(scope: RetrievalScope & { userId: string }): Promise<IndexData | null> {
    const ix = await this.indexes.get(scopeKey(scope))?.catch(() => null);
    if (!ix?.sessionVersions) return null;
    const dims = this.embedder.dimensions;
    const n = ix.turns.length;
    const newOf = new Int32Array(n).fill(-1);
    const turns: RetrievalTurn[] = [];
    for (const sessionId of [...ix.sessionDocs.keys()].sort()) {
      for (const doc of ix.sessionDocs.get(sessionId)!) {
        if (!ix.alive[doc]) continue;
        newOf[doc] = turns.length;
        turns.push(ix.turns[doc]!);
      }
    }
    const matrix = new Float32Array(turns.length * dims);
    for (let doc = 0; doc < n; doc++) if (newOf[doc]! >= 0) matrix.set(ix.matrix.subarray(doc * dims, (doc + 1) * dims), newOf[doc]! * dims);
    return { version: ix.version, sessionVersions: new Map(ix.sessionVersions), dimensions: dims, turns, bm25: ix.bm25.export(newOf, turns.length), matrix };
  }

  private fromData(data: IndexData): ScopeIndex {
    const ix = this.empty(data.version, new Map(data.sessionVersions));
    const n = data.turns.length;
    ix.bm25 = Bm25Index.fromParts(data.bm25);
    ix.matrix = data.matrix;
    ix.alive = new Uint8Array(n).fill(1);
    data.turns.forEach((t, doc) => {
      ix.turns.push(t);
      ix.byKey.set(key(t.sessionId, t.turnId), doc);
      const same = doc > 0 && data.turns[doc - 1]!.sessionId === t.sessionId;
      ix.prev.push(same ? doc - 1 : -1);
      ix.next.push(-1);
      if (same) ix.next[doc - 1] = doc;
      let docs = ix.sessionDocs.get(t.sessionId);
      if (!docs) ix.sessionDocs.set(t.sessionId, (docs = []));
      docs.push(doc);
      if (t.speaker) {
        for (const w of words(t.speaker)) {
          let list = ix.speakers.get(w);
          if (!list) ix.speakers.set(w, (list = []));
          list.push(doc);
        }
      }
    });
    return ix;
  }

  private empty(version: string, sessionVersions: Map<string, string> | null): ScopeIndex {
    return { version, turns: [], matrix: new Float32Array(0), bm25: new Bm25Index(), byKey: new Map(), speakers: new Map(), prev: [], next: [], alive: new Uint8Array(0), dead: 0, sessionDocs: new Map(), sessionVersions };
  }

  /** Appends turns as docs (each session's turns consecutive and ascending), embedding those without a stored vector. */
  private async addDocs(ix: ScopeIndex, input: RetrievalTurn[]): Promise<void> {
    const turns = [...input].sort((a, b) => (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : a.turnId - b.turnId));
    const dims = this.embedder.dimensions;
    const base = ix.turns.length;
    const total = base + turns.length;
    const matrix = new Float32Array(total * dims);
    matrix.set(ix.matrix.subarray(0, base * dims));
    const missing: number[] = [];
    turns.forEach((t, i) => {
      // Stored vectors come back dequantised (int8/f16): renormalise so dot products are cosines.
      if (t.embedding && t.embedding.length === dims) matrix.set(l2normalize(Float32Array.from(t.embedding)), (base + i) * dims);
      else if (t.embedding && t.embedding.length !== dims) {
        throw new StrataError('STRATA_ERR_EMBEDDER_MISMATCH', `turn ${t.sessionId}#${t.turnId} has a ${t.embedding.length}-d vector, embedder ${this.embedder.id} makes ${dims}-d; run \`strata reindex\``);
      } else missing.push(i);
    });
    if (missing.length > 0) {
      const vectors = await this.embedder.embed(missing.map((i) => searchText(turns[i]!)));
      missing.forEach((i, j) => matrix.set(vectors[j]!, (base + i) * dims));
    }
    const alive = new Uint8Array(total);
    alive.set(ix.alive);
    alive.fill(1, base);
    ix.matrix = matrix;
    ix.alive = alive;
    turns.forEach((t, i) => {
      const doc = base + i;
      ix.turns.push(t);
      ix.bm25.add(searchText(t));
      ix.byKey.set(key(t.sessionId, t.turnId), doc);
      const same = i > 0 && turns[i - 1]!.sessionId === t.sessionId;
      ix.prev.push(same ? doc - 1 : -1);
      ix.next.push(-1);
      if (same) ix.next[doc - 1] = doc;
      let docs = ix.sessionDocs.get(t.sessionId);
      if (!docs) ix.sessionDocs.set(t.sessionId, (docs = []));
      docs.push(doc);
      if (t.speaker) {
        for (const w of words(t.speaker)) {
          let list = ix.speakers.get(w);
          if (!list) ix.speakers.set(w, (list = []));
          list.push(doc);
        }
      }
    });
  }

  /** A new index version from `prior`: the docs of changed or vanished sessions die, changed and new sessions are added. */
  private async update(prior: ScopeIndex, tenant: string, versions: Map<string, string>, version: string): Promise<ScopeIndex> {
    const changed = [...versions].filter(([id, v]) => prior.sessionVersions!.get(id) !== v).map(([id]) => id);
    const gone = [...prior.sessionVersions!.keys()].filter((id) => !versions.has(id));
    const loaded = changed.length > 0 ? await this.source.loadSessions!(tenant, changed) : [];
    // A copy of the bookkeeping; the heavy parts (BM25 postings, vectors of live docs) are shared.
    const ix: ScopeIndex = { ...prior, version, turns: [...prior.turns], byKey: new Map(prior.byKey), speakers: prior.speakers, prev: [...prior.prev], next: [...prior.next], alive: Uint8Array.from(prior.alive), sessionDocs: new Map(prior.sessionDocs), sessionVersions: versions };
    for (const id of [...changed, ...gone]) {
      for (const doc of ix.sessionDocs.get(id) ?? []) {
        if (!ix.alive[doc]) continue;
        ix.alive[doc] = 0;
        ix.dead++;
        const t = ix.turns[doc]!;
        ix.byKey.delete(key(t.sessionId, t.turnId));
      }
      ix.sessionDocs.delete(id);
    }
    await this.addDocs(ix, loaded);
    return ix;
  }

  private async rank(ix: ScopeIndex, tenant: string, query: string, qv: Float32Array, topK: number, excluded: Set<string>): Promise<SearchHit[]> {
    const n = ix.turns.length;
    if (n === 0) return [];
    const o = this.o;
    const dims = this.embedder.dimensions;

    // Names of speakers in the query select that speaker's turns; the name itself says little
    // to BM25 (half the turns of a two-person chat) or to GloVe, so it is dropped from both.
    const qWords = words(query);
    const named = qWords.filter((w) => ix.speakers.has(w));
    const namedSet = new Set(named);
    const lexTerms = terms(qWords.filter((w) => !namedSet.has(w)).join(' '));

    // Ties go by (session id, turn id), the order a fresh build numbers docs in: an index that
    // grew by updates ranks like one built at once (doc numbers then follow update order).
    const docOrder = (a: number, b: number): number => {
      const x = ix.turns[a]!;
      const y = ix.turns[b]!;
      return x.sessionId < y.sessionId ? -1 : x.sessionId > y.sessionId ? 1 : x.turnId - y.turnId;
    };
    const dense = new Float32Array(n);
    if (o.denseWeight > 0) denseScores(ix.matrix, qv, dims, n, ix.alive, dense);
    const lexical = new Float32Array(n);
    // The postings may hold docs of a newer version of this index (an update shares them): only this version's live docs count.
    const touched = o.lexicalWeight > 0 ? ix.bm25.score(lexTerms, lexical).filter((d) => d < n && ix.alive[d] === 1) : [];

    const fuse = (): Map<number, number> => {
      const out = new Map<number, number>();
      const add = (doc: number, v: number) => out.set(doc, (out.get(doc) ?? 0) + v);
      if (o.denseWeight > 0) topIndexes(dense, o.depth, docOrder).forEach((doc, r) => add(doc, o.denseWeight / (o.rrfK + r + 1)));
      if (o.lexicalWeight > 0) topIndexes(lexical, o.depth, docOrder, touched).forEach((doc, r) => add(doc, o.lexicalWeight / (o.rrfK + r + 1)));
      return out;
    };
    const fused = fuse();
    if (ix.dead > 0) for (const doc of fused.keys()) if (!ix.alive[doc]) fused.delete(doc);
    let scores = fused;
    if (o.smoothing > 0) {
      scores = new Map(fused);
      for (const [doc, v] of fused) {
        for (const nb of [ix.prev[doc]!, ix.next[doc]!]) {
          if (nb < 0) continue;
          scores.set(nb, (scores.get(nb) ?? 0) + o.smoothing * v);
        }
      }
    }
    if (o.speakerBoost !== 1 && named.length > 0) {
      const boosted = new Set<number>();
      for (const w of named) for (const doc of ix.speakers.get(w)!) boosted.add(doc);
      for (const [doc, v] of scores) if (boosted.has(doc)) scores.set(doc, v * o.speakerBoost);
    }

    if (o.sessionWeight > 0) {
      const perSession = new Map<string, number[]>();
      for (const [doc, v] of scores) {
        const sid = ix.turns[doc]!.sessionId;
        let list = perSession.get(sid);
        if (!list) perSession.set(sid, (list = []));
        list.push(v);
      }
      const evidence = new Map<string, number>();
      let best = 0;
      for (const [sid, list] of perSession) {
        list.sort((a, b) => b - a);
        let e = 0;
        for (let i = 0; i < Math.min(o.sessionTop, list.length); i++) e += list[i]!;
        evidence.set(sid, e);
        best = Math.max(best, e);
      }
      if (best > 0) {
        if (scores === fused) scores = new Map(fused);
        for (const [doc, v] of scores) scores.set(doc, v * (1 + (o.sessionWeight * evidence.get(ix.turns[doc]!.sessionId)!) / best));
      }
    }
    if (o.selfBoost !== 1 && FIRST_PERSON.test(query) && !SECOND_PERSON.test(query)) {
      if (scores === fused) scores = new Map(fused);
      for (const [doc, v] of scores) if (ix.turns[doc]!.role === 'user') scores.set(doc, v * o.selfBoost);
    }

    const order = [...scores.keys()].filter((d) => !excluded.has(key(ix.turns[d]!.sessionId, ix.turns[d]!.turnId)));
    // Recency breaks ties: newer turns first among equal scores.
    order.sort((a, b) => scores.get(b)! - scores.get(a)! || ix.turns[b]!.createdAt - ix.turns[a]!.createdAt || docOrder(b, a));

    const chosen: Array<{ doc: number; neighbour: boolean; score: number }> = [];
    const taken = new Set<number>();
    const take = (doc: number, neighbour: boolean, score: number) => {
      if (chosen.length >= topK || taken.has(doc)) return;
      taken.add(doc);
      chosen.push({ doc, neighbour, score });
    };
    for (let i = 0; i < order.length && chosen.length < topK; i++) {
      const doc = order[i]!;
      const s = scores.get(doc)!;
      take(doc, false, s);
      if (i < o.neighbourHits) {
        for (const nb of [ix.prev[doc]!, ix.next[doc]!]) {
          if (nb < 0) continue;
          const t = ix.turns[nb]!;
          if (excluded.has(key(t.sessionId, t.turnId))) continue;
          take(nb, true, s * 0.5);
        }
      }
    }
    // Turns of a persisted index read their message fields on demand.
    await Promise.all(chosen.map(({ doc }) => ix.turns[doc]!.load?.()));
    return chosen.map(({ doc, neighbour, score }) => {
      const t = ix.turns[doc]!;
      return {
        tenant,
        sessionId: t.sessionId,
        turnId: t.turnId,
        ...messageFields(t),
        createdAt: t.createdAt,
        score,
        scores: { dense: o.denseWeight > 0 ? dense[doc]! : null, lexical: o.lexicalWeight > 0 ? lexical[doc]! : null, fused: fused.get(doc) ?? 0 },
        neighbour,
      };
    });
  }
}
