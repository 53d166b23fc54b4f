import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SearchHit } from '../../src/cache/api.js';
import { getTokenizer } from '../../src/context/gpt-tokenizer.js';
import { latestUserMessage, packContext, TRUNCATION_MARKER } from '../../src/context/packer.js';
import { ExtractiveSummarizer, planMilestones } from '../../src/context/summarizer.js';
import type { Turn } from '../../src/types.js';
import { isStrataError } from '../../src/errors.js';

const tk = getTokenizer();
const mk = (n: number, words = 20): Turn[] =>
  Array.from({ length: n }, (_, i) => ({ turnId: i + 1, role: i % 2 ? 'assistant' : 'user', content: `turn ${i + 1} ${'word '.repeat(words)}`.trim(), createdAt: i }));
const hit = (t: Turn, score: number): SearchHit => ({ tenant: 't', sessionId: 's', turnId: t.turnId, role: t.role, content: t.content, createdAt: t.createdAt, score, scores: { dense: null, lexical: null, fused: score }, neighbour: false });

test('tokenizer: one instance per encoding, counts and truncates on token boundaries', () => {
  assert.equal(getTokenizer(), getTokenizer('o200k_base'));
  assert.equal(tk.id, 'o200k_base');
  assert.equal(getTokenizer('cl100k_base').id, 'cl100k_base');
  const text = 'The quick brown fox jumps over the lazy dog. <|endoftext|> again';
  assert.ok(tk.count(text) > 10);
  const cut = tk.truncate(text, 5);
  assert.ok(tk.count(cut) <= 5 && text.startsWith(cut));
  assert.equal(tk.truncate('short', 100), 'short');
  assert.equal(tk.count(''), 0);
});

test('packer returns the full history when it fits', () => {
  const history = mk(6, 3);
  const r = packContext({ recent: history.slice(-2), relevant: [], summaries: [], history, maxTokens: 1000, tokenizer: tk });
  assert.deepEqual(r.messages.map((m) => m.turnId), [1, 2, 3, 4, 5, 6]);
  assert.ok(r.explain.every((e) => e.reason === 'full'));
  assert.deepEqual(r.explain.map((e) => e.source), ['archive', 'archive', 'archive', 'archive', 'hot', 'hot']);
});

test('packer invariants: budget, chronological, no duplicates, explain for every item', () => {
  const history = mk(200);
  const recent = history.slice(-20);
  const relevant = [hit(history[40]!, 0.9), hit(history[10]!, 0.8), hit(history[195]!, 0.7), hit(history[40]!, 0.5), hit(history[120]!, 0.4)];
  const summaries = [{ fromTurn: 1, toTurn: 50, text: 'they talked about words', createdAt: 0 }, { fromTurn: 51, toTurn: 100, text: 'more words', createdAt: 0 }];
  for (const maxTokens of [60, 150, 400, 800]) {
    const r = packContext({ recent, relevant, summaries, history, maxTokens, tokenizer: tk });
    const ids = r.messages.map((m) => m.turnId);
    assert.ok(r.tokens <= maxTokens, `tokens ${r.tokens} ≤ ${maxTokens}`);
    const counted = r.messages.reduce((s, m) => s + tk.count(m.content as string), 0) + (r.summary ? tk.count(r.summary) : 0);
    assert.ok(counted <= maxTokens, `recounted ${counted} ≤ ${maxTokens}`);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(ids.includes(200), 'the newest turn is always there');
    assert.ok(!ids.includes(196) || r.explain.find((e) => e.turnId === 196)!.source === 'hot', 'recent turns are not re-added as relevant');
    assert.equal(r.explain.filter((e) => e.source !== 'summary').length, ids.length);
    assert.equal(r.explain.reduce((s, e) => s + e.tokens, 0), r.tokens);
  }
  const big = packContext({ recent, relevant, summaries, history, maxTokens: 800, tokenizer: tk });
  assert.ok(big.messages.some((m) => m.turnId === 41) && big.explain.some((e) => e.turnId === 41 && e.reason === 'relevant' && e.score === 0.9));
  assert.ok(big.summary?.includes('Turns 1–50'));
  assert.ok(big.explain.some((e) => e.source === 'summary' && e.fromTurn === 1 && e.toTurn === 50));
});

test('a single over-long turn is cut with a marker inside the budget', () => {
  const recent: Turn[] = [{ turnId: 1, role: 'user', content: 'lorem ipsum dolor '.repeat(500), createdAt: 0 }];
  const r = packContext({ recent, relevant: [], summaries: [], history: recent, maxTokens: 50, tokenizer: tk });
  assert.equal(r.messages.length, 1);
  assert.ok((r.messages[0]!.content as string).endsWith(TRUNCATION_MARKER));
  assert.ok(tk.count(r.messages[0]!.content as string) <= 50);
  assert.equal(r.explain[0]!.truncated, true);
});

test('bad budget is a coded error; the default query is the latest user message', () => {
  assert.throws(() => packContext({ recent: [], relevant: [], summaries: [], maxTokens: 0, tokenizer: tk }), (err) => isStrataError(err, 'STRATA_ERR_VALIDATION'));
  assert.equal(latestUserMessage(mk(5)), mk(5)[4]!.content);
  assert.equal(latestUserMessage([]), null);
});

test('extractive summary stays within its cap and names its range', async () => {
  const turns: Turn[] = [
    { turnId: 51, role: 'user', content: 'We are moving to Berlin in March. The apartment is near the park. I like cats.', createdAt: 0 },
    { turnId: 52, role: 'assistant', content: 'Berlin in March can be cold. Moving with cats needs planning for the apartment.', createdAt: 1 },
    { turnId: 53, role: 'user', content: 'The movers arrive on the second of March. Berlin apartment keys come a day earlier.', createdAt: 2 },
  ];
  const s = new ExtractiveSummarizer({ tokenizer: tk, maxTokens: 40 });
  const text = await s.summarize(turns);
  assert.ok(text.startsWith('Turns 51–53:'));
  assert.ok(tk.count(text) <= 40, `${tk.count(text)} ≤ 40`);
  assert.match(text, /Berlin/);
});

test('extractive summary: skipping sentences by word count keeps exactly the sentences counting would keep', async () => {
  // A tokenizer that is not the process-wide GPT instance gets no word-count shortcut.
  const plain = { id: 'plain', count: (text: string) => tk.count(text), truncate: (text: string, n: number) => tk.truncate(text, n) };
  const cl100k = getTokenizer('cl100k_base');
  const plainCl = { id: 'plain-cl', count: (text: string) => cl100k.count(text), truncate: (text: string, n: number) => cl100k.truncate(text, n) };
  const pieces = [
    'We are moving to Berlin in March.', 'The apartment is near the park!', 'Réunion à 10h\u00a0précises, salle 3.', '東京の会議は明日です。場所は本社です。',
    'Numbers 12345678 and 3.14159 and 1,000,000 count too.', 'Tabs\tand\u2003em\u3000spaces, line\u2028separators.', 'Emoji 🧪🚀 and don\'t, we\'ll, they\'re.',
    'https://example.com/a/very/long/path?with=query&and=more', 'x'.repeat(300) + ' end.', 'Short one.', 'A sentence with many many small words in it for the budget.',
  ];
  const turns: Turn[] = Array.from({ length: 40 }, (_, i) => ({ turnId: i + 1, role: i % 2 ? 'assistant' : 'user', content: [pieces[i % pieces.length], pieces[(i * 7 + 3) % pieces.length], pieces[(i * 5 + 1) % pieces.length]].join(' '), createdAt: i }));
  for (const maxTokens of [16, 40, 120, 400]) {
    assert.equal(await new ExtractiveSummarizer({ tokenizer: tk, maxTokens }).summarize(turns), await new ExtractiveSummarizer({ tokenizer: plain, maxTokens }).summarize(turns));
    assert.equal(await new ExtractiveSummarizer({ tokenizer: cl100k, maxTokens }).summarize(turns), await new ExtractiveSummarizer({ tokenizer: plainCl, maxTokens }).summarize(turns));
  }
});

test('milestone planner: complete windows, the tail at session end, rebuilds missing ones', () => {
  assert.deepEqual(planMilestones(120, [], 50), [{ fromTurn: 1, toTurn: 50 }, { fromTurn: 51, toTurn: 100 }]);
  assert.deepEqual(planMilestones(120, [{ fromTurn: 1, toTurn: 50 }], 50, { sessionEnded: true }), [{ fromTurn: 51, toTurn: 100 }, { fromTurn: 101, toTurn: 120 }]);
  assert.deepEqual(planMilestones(49, [], 50), []);
  assert.deepEqual(planMilestones(100, [{ fromTurn: 51, toTurn: 100 }], 50), [{ fromTurn: 1, toTurn: 50 }]);
  assert.throws(() => planMilestones(10, [], 0), (err) => isStrataError(err, 'STRATA_ERR_CONFIG_INVALID'));
});
