/**
 * Query word weighting (`queryIdfPower`): with GloVe, a query's words weigh by their inverse
 * document frequency in the searched scope, so the words a history is full of stop steering the
 * dense ranking. Real GloVe table, dense ranking only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GloveEmbedder } from '../../src/retrieval/embedders/glove.js';
import { HybridRetriever } from '../../src/retrieval/retriever.js';
import type { RetrievalScope, RetrievalTurn, TurnSource } from '../../src/retrieval/source.js';

// A history where "thinking", "sure" and "choose" are everywhere; one turn is about drinks.
const texts = [
  'I have been thinking about which running shoes to choose, not sure yet',
  'I am still thinking about it and not sure which plan to choose for the garden',
  'thinking about the weekend, not sure what to choose for the kids',
  'we mixed gin, cucumber and Pimm for the party and everyone loved the drinks',
  'I keep thinking about whether to choose the blue or the grey sofa, not sure',
  'thinking of a new phone but I am not sure which one to choose',
];
const history: RetrievalTurn[] = texts.map((content, i) => ({ sessionId: `s${i}`, turnId: 1, role: 'user', content, createdAt: 1000 + i }));

class Source implements TurnSource {
  loadTurns(_scope: RetrievalScope) {
    return Promise.resolve(history);
  }
  version() {
    return Promise.resolve('1');
  }
}

const denseOnly = { lexicalWeight: 0, smoothing: 0, sessionWeight: 0, selfBoost: 1, speakerBoost: 1 };
const query = "I've been thinking about making a cocktail but I'm not sure which one to choose";
const scope = { tenant: 't', userId: 'u' };

test('idf-weighted query words find the topic a history rarely mentions; the plain average follows the common words', async () => {
  const embedder = new GloveEmbedder();
  const plain = await new HybridRetriever(new Source(), embedder, { ...denseOnly, queryIdfPower: 0 }).search(query, 1, scope);
  const weighted = await new HybridRetriever(new Source(), embedder, denseOnly).search(query, 1, scope);
  assert.notEqual(plain[0]!.sessionId, 's3');
  assert.equal(weighted[0]!.sessionId, 's3');
});

test('the weighted query vector is cached per scope version, the plain one per query', async () => {
  let embeds = 0;
  const glove = new GloveEmbedder();
  const counting = { id: glove.id, dimensions: glove.dimensions, embed: (t: readonly string[]) => glove.embed(t), embedQuery: (q: string, w: (word: string) => number) => (embeds++, glove.embedQuery(q, w)) };
  const src = new Source();
  const r = new HybridRetriever(src, counting, denseOnly);
  await r.search(query, 1, scope);
  await r.search(query, 2, scope);
  assert.equal(embeds, 1);
  src.version = () => Promise.resolve('2');
  await r.search(query, 1, scope);
  assert.equal(embeds, 2);
});
