import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bm25Index } from '../../src/retrieval/bm25.js';
import { HashEmbedder } from '../../src/retrieval/embedders/hash.js';
import { HybridRetriever } from '../../src/retrieval/retriever.js';
import type { RetrievalScope, RetrievalTurn, TurnSource } from '../../src/retrieval/source.js';
import { isStrataError } from '../../src/errors.js';

function turns(sessionId: string, texts: string[], speaker?: string[]): RetrievalTurn[] {
  return texts.map((content, i) => ({ sessionId, turnId: i + 1, role: i % 2 ? 'assistant' : 'user', content, createdAt: 1000 + i, ...(speaker ? { speaker: speaker[i % speaker.length]! } : {}) }));
}

/** A TurnSource over tenants/users in memory that counts loads and has a settable version. */
class Source implements TurnSource {
  loads = 0;
  ver = 1;
  constructor(private readonly data: Array<{ tenant: string; userId: string; turns: RetrievalTurn[] }>) {}
  loadTurns(scope: RetrievalScope) {
    this.loads++;
    return Promise.resolve(
      this.data
        .filter((d) => d.tenant === scope.tenant && ('userId' in scope ? d.userId === scope.userId : scope.sessionIds.includes(d.turns[0]!.sessionId)))
        .flatMap((d) => d.turns),
    );
  }
  version() {
    return Promise.resolve(String(this.ver));
  }
}

const chat = [
  'hello there how are you',
  'I am fine thanks',
  'my sister bought a red bicycle yesterday',
  'that sounds like fun riding',
  'we are planning a trip to Lisbon in June',
  'Lisbon is lovely in summer',
  'the quarterly budget review is on Friday',
  'remember to bring the spreadsheets',
];

test('BM25 ranks the document sharing rare terms first', () => {
  const ix = new Bm25Index();
  for (const t of chat) ix.add(t);
  const out = new Float32Array(ix.size);
  const touched = ix.score(['lisbon', 'trip'], out);
  const best = touched.sort((a, b) => out[b]! - out[a]!)[0];
  assert.equal(best, 4);
  assert.equal(out[0], 0);
});

test('hybrid search finds the relevant turn and reports score parts', async () => {
  const src = new Source([{ tenant: 't', userId: 'u', turns: turns('s1', chat) }]);
  const r = new HybridRetriever(src, new HashEmbedder(128), { smoothing: 0 });
  const hits = await r.search('when is the budget review', 3, { tenant: 't', sessionIds: ['s1'] });
  assert.equal(hits[0]!.turnId, 7);
  assert.equal(hits[0]!.tenant, 't');
  assert.ok(hits[0]!.scores.lexical! > 0);
  assert.notEqual(hits[0]!.scores.dense, null);
  assert.ok(hits[0]!.scores.fused > 0);
  assert.ok(hits.length <= 3);
});

test('lexical-only fusion returns only turns sharing a term and no dense score', async () => {
  const src = new Source([{ tenant: 't', userId: 'u', turns: turns('s1', chat) }]);
  const lexOnly = new HybridRetriever(src, new HashEmbedder(128), { denseWeight: 0, smoothing: 0 });
  const hits = await lexOnly.search('bicycle', 2, { tenant: 't', sessionIds: ['s1'] });
  assert.equal(hits[0]!.turnId, 3);
  assert.equal(hits[0]!.scores.dense, null);
  assert.equal(hits.length, 1, 'BM25 alone returns only turns sharing a term');
});

test('neighbour expansion brings adjacent turns and they count toward k', async () => {
  const src = new Source([{ tenant: 't', userId: 'u', turns: turns('s1', chat) }]);
  const r = new HybridRetriever(src, new HashEmbedder(128), { neighbourHits: 1, denseWeight: 0, smoothing: 0 });
  const hits = await r.search('bicycle', 3, { tenant: 't', sessionIds: ['s1'] });
  assert.deepEqual(hits.map((h) => [h.turnId, h.neighbour]), [[3, false], [2, true], [4, true]]);
  const two = await r.search('bicycle', 2, { tenant: 't', sessionIds: ['s1'] });
  assert.equal(two.length, 2);
});

test('excluded turns (the recent window) are never returned, nor as neighbours', async () => {
  const src = new Source([{ tenant: 't', userId: 'u', turns: turns('s1', chat) }]);
  const r = new HybridRetriever(src, new HashEmbedder(128), { neighbourHits: 2 });
  const hits = await r.search('Lisbon trip', 8, { tenant: 't', sessionIds: ['s1'] }, { exclude: [{ sessionId: 's1', turnId: 5 }, { sessionId: 's1', turnId: 6 }] });
  assert.ok(hits.length > 0);
  assert.ok(hits.every((h) => h.turnId !== 5 && h.turnId !== 6));
});

test('scope isolation: another tenant or user never appears', async () => {
  const src = new Source([
    { tenant: 'a', userId: 'u1', turns: turns('s1', ['secret plans for the Lisbon trip']) },
    { tenant: 'b', userId: 'u1', turns: turns('s2', ['other tenant Lisbon trip']) },
    { tenant: 'a', userId: 'u2', turns: turns('s3', ['other user Lisbon trip']) },
    { tenant: 'a', userId: 'u1', turns: turns('s4', ['more about Lisbon trip']) },
  ]);
  const r = new HybridRetriever(src, new HashEmbedder(64));
  const hits = await r.search('Lisbon trip', 10, { tenant: 'a', userId: 'u1' });
  assert.deepEqual(new Set(hits.map((h) => h.sessionId)), new Set(['s1', 's4']));
  assert.ok(hits.every((h) => h.tenant === 'a'));
  const other = await r.search('Lisbon trip', 10, { tenant: 'b', userId: 'u1' });
  assert.deepEqual(other.map((h) => h.sessionId), ['s2']);
});

test('speaker names in the query favour that speaker’s turns', async () => {
  const t = turns('s1', ['I love hiking in the mountains', 'I love hiking in the mountains too'], ['Ann', 'Bob']);
  const src = new Source([{ tenant: 't', userId: 'u', turns: t }]);
  const r = new HybridRetriever(src, new HashEmbedder(64), { smoothing: 0 });
  assert.equal((await r.search('What does Bob love?', 1, { tenant: 't', sessionIds: ['s1'] }))[0]!.turnId, 2);
  assert.equal((await r.search('What does Ann love?', 1, { tenant: 't', sessionIds: ['s1'] }))[0]!.turnId, 1);
});

test('index and results are cached until the scope version changes', async () => {
  const data = [{ tenant: 't', userId: 'u', turns: turns('s1', chat) }];
  const src = new Source(data);
  const r = new HybridRetriever(src, new HashEmbedder(64));
  const scope = { tenant: 't', sessionIds: ['s1'] };
  await r.search('budget', 2, scope);
  await r.search('budget', 2, scope);
  await r.search('Lisbon', 2, scope);
  assert.equal(src.loads, 1);
  data[0]!.turns.push({ sessionId: 's1', turnId: 9, role: 'user', content: 'the budget was approved', createdAt: 2000 });
  assert.ok((await r.search('approved', 1, scope))[0]!.turnId !== 9, 'stale index until the version changes');
  src.ver++;
  assert.equal((await r.search('approved', 1, scope))[0]!.turnId, 9);
  assert.equal(src.loads, 2);
});

test('bad topK is a coded validation error', async () => {
  const r = new HybridRetriever(new Source([]), new HashEmbedder(64));
  await assert.rejects(r.search('x', 0, { tenant: 't', sessionIds: [] }), (err) => isStrataError(err, 'STRATA_ERR_VALIDATION'));
  assert.throws(() => new HybridRetriever(new Source([]), new HashEmbedder(64), { rrfK: -1 }), (err) => isStrataError(err, 'STRATA_ERR_CONFIG_INVALID'));
});

/** A user's sessions in memory, with per-session versions: the retriever updates its index incrementally. */
class SessionSource implements TurnSource {
  readonly sessions = new Map<string, RetrievalTurn[]>();
  readonly versions = new Map<string, number>();
  loaded: string[] = [];
  fullLoads = 0;
  set(id: string, ts: RetrievalTurn[]): void {
    this.sessions.set(id, ts);
    this.versions.set(id, (this.versions.get(id) ?? 0) + 1);
  }
  drop(id: string): void {
    this.sessions.delete(id);
    this.versions.delete(id);
  }
  loadTurns() {
    this.fullLoads++;
    return Promise.resolve([...this.sessions.values()].flat());
  }
  version() {
    return Promise.resolve([...this.versions].map(([id, v]) => `${id}:${v}`).join('|'));
  }
  sessionVersions() {
    return Promise.resolve(new Map([...this.versions].map(([id, v]) => [id, String(v)])));
  }
  loadSessions(_tenant: string, ids: readonly string[]) {
    this.loaded.push(...ids);
    return Promise.resolve(ids.flatMap((id) => this.sessions.get(id) ?? []));
  }
}

test('a user index is updated by re-reading only the sessions that changed, and answers as a rebuilt one', async () => {
  const src = new SessionSource();
  const texts = ['we talked about the garden', 'the tomatoes need water', 'buy compost on saturday', 'the shed roof leaks', 'call the roofer monday', 'paint the fence blue'];
  for (let s = 0; s < 6; s++) src.set(`s${s}`, turns(`s${s}`, [texts[s]!, `filler ${s} about nothing`, `more filler ${s}`]));
  const scope = { tenant: 't', userId: 'u' };
  const r = new HybridRetriever(src, new HashEmbedder(64));
  await r.search('roof', 3, scope);
  assert.deepEqual(src.loaded.sort(), ['s0', 's1', 's2', 's3', 's4', 's5']);
  // One session gets a turn, one is deleted: only the changed one is read again.
  src.loaded = [];
  src.set('s2', turns('s2', [texts[2]!, 'filler 2 about nothing', 'more filler 2', 'the roofer can come on monday']));
  src.drop('s3');
  const updated = await r.search('roofer monday', 5, scope);
  assert.deepEqual(src.loaded, ['s2']);
  assert.equal(src.fullLoads, 0);
  assert.ok(!updated.some((h) => h.sessionId === 's3'), 'a deleted session is gone');
  assert.ok(updated.some((h) => h.sessionId === 's2' && h.turnId === 4), 'the new turn is found');
  // The same best hit as an index built from scratch over the same turns (term statistics of
  // dead docs stay until a rebuild, so only close scores may order differently), and no dead doc.
  const fresh = new HybridRetriever(src, new HashEmbedder(64));
  const live = new Set([...src.sessions.values()].flat().map((t) => `${t.sessionId}#${t.turnId}`));
  for (const q of ['roofer can come', 'tomatoes water', 'compost saturday', 'fence blue']) {
    const a = (await r.search(q, 6, scope)).map((h) => `${h.sessionId}#${h.turnId}`);
    const b = (await fresh.search(q, 6, scope)).map((h) => `${h.sessionId}#${h.turnId}`);
    assert.equal(a[0], b[0], q);
    assert.ok(a.every((k) => live.has(k)), `${q}: ${a.join(' ')}`);
  }
});

test('an index grown by adding sessions in any order ranks exactly like one built at once, ties included', async () => {
  const src = new SessionSource();
  const scope = { tenant: 't', userId: 'u' };
  // Identical turns in every session: every query ties across sessions, so only the tie order decides.
  const same = ['the roofer comes monday', 'buy compost on saturday', 'paint the fence blue'];
  const r = new HybridRetriever(src, new HashEmbedder(64));
  for (const id of ['s5', 's2', 's9', 's0', 's7']) {
    src.set(id, turns(id, same));
    await r.search('roofer', 3, scope);
  }
  const fresh = new HybridRetriever(src, new HashEmbedder(64));
  for (const q of ['roofer monday', 'compost', 'fence blue paint', 'nothing shared']) {
    assert.deepEqual(await r.search(q, 10, scope), await fresh.search(q, 10, scope), q);
  }
});
