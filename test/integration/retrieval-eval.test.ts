import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runRetrievalBench } from '../../bench/retrieval.js';
import { main } from '../../src/cli/main.js';
import { loadLocomo, parseLocomoDate, runLocomo } from '../../src/eval/locomo.js';
import { EVAL_TENANT, openEvalStrata } from '../../src/eval/product.js';
import { captureIo } from '../helpers/io.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'retrieval');

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-eval-test-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Names of the evaluations' temporary data dirs currently on disk. */
async function evalDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((n) => n.startsWith('strata-eval-') && !n.startsWith('strata-eval-test-'));
}

test('eval locomo on a tiny fixture computes evidence recall as by hand, through the product', async () => {
  const before = new Set(await evalDirs());
  const io = captureIo();
  const code = await main(['eval', 'locomo', '--input', join(FIXTURES, 'locomo-tiny.json'), '--k', '1,25', '--embedder', 'hash', '--json'], io);
  assert.equal(code, 0, io.err());
  const r = JSON.parse(io.out()) as { recall: Record<string, Record<string, number>>; questions: number; turns: number; medianContextTokens: number; searchP50Ms: number; searchP95Ms: number };
  // Category 5 and the item without evidence are skipped; D9:9 is not in the conversation.
  assert.equal(r.questions, 2);
  assert.equal(r.turns, 8);
  // Q1 (cat 4): its one evidence turn ranks first → 1 at k=1. Q2 (cat 2): D2:1 first, D2:3 later → 0.5 at k=1, 1 at k=25.
  assert.equal(r.recall['4']!['1'], 1);
  assert.equal(r.recall['2']!['1'], 0.5);
  assert.equal(r.recall['2']!['25'], 1);
  assert.equal(r.recall.all!['1'], 0.75);
  assert.equal(r.recall.all!['25'], 1);
  // Each LoCoMo session (4 short turns) fits a 2,000-token budget whole: smart context returns it all.
  assert.ok(r.medianContextTokens > 10 && r.medianContextTokens < 100, String(r.medianContextTokens));
  assert.ok(r.searchP95Ms >= r.searchP50Ms);
  // The temporary data dir is removed afterwards.
  assert.deepEqual((await evalDirs()).filter((n) => !before.has(n)), []);
});

test('eval locomo: sessions, owner, speaker and dates reach the archive through the cache', async () => {
  const loaded = await loadLocomo(join(FIXTURES, 'locomo-tiny.json'), 'hash');
  try {
    const ev = await openEvalStrata({ embedder: 'hash', dataDir: loaded.dataDir });
    try {
      const sessions = await ev.strata.listSessions({ tenant: EVAL_TENANT, userId: 'conv-x' });
      assert.deepEqual(sessions.sessions.map((s) => [s.sessionId, s.archivedTurns, s.unarchivedTurns]), [['conv-x-s01', 4, 0], ['conv-x-s02', 4, 0]]);
      const page = await ev.strata.getMessages('conv-x-s01', { tenant: EVAL_TENANT });
      assert.equal(page.messages[3]!.content, 'Sunny every day. [image: a photo of a trumpet player on a street]');
      assert.deepEqual(page.messages[3]!.metadata, { speaker: 'Bob', dia_id: 'D1:4', date: '1:56 pm on 8 May, 2023', blip_caption: 'a photo of a trumpet player on a street' });
      assert.equal(page.messages[0]!.createdAt, Date.UTC(2023, 4, 8, 13, 56));
      // User scope over both sessions: the hit for a word of session 2 is in session 2.
      const hits = await ev.strata.searchDiskHistory('violin lessons', 3, { tenant: EVAL_TENANT, userId: 'conv-x' });
      assert.equal(hits[0]!.sessionId, 'conv-x-s02');
      assert.equal(hits[0]!.turnId, 1);
    } finally {
      await ev.close();
    }
    // Retriever options reach the product's search: lexical-only scores have no dense part.
    const r = await runLocomo(loaded, { ks: [1], retriever: { denseWeight: 0 }, smartContext: false });
    assert.equal(r.medianContextTokens, null);
    assert.equal(r.questions, 2);
  } finally {
    await loaded.dispose();
  }
});

test('eval locomo prints a table naming its session granularity and setup', async () => {
  const io = captureIo();
  assert.equal(await main(['eval', 'locomo', '--input', join(FIXTURES, 'locomo-tiny.json'), '--embedder', 'hash'], io), 0, io.err());
  assert.match(io.out(), /one Strata session per LoCoMo session/);
  assert.match(io.out(), /durability none/);
  assert.match(io.out(), /recall@10/);
  assert.match(io.out(), /first evidence/);
});

test('eval locomo --ablation reports every row', async () => {
  const io = captureIo();
  assert.equal(await main(['eval', 'locomo', '--input', join(FIXTURES, 'locomo-tiny.json'), '--k', '1,25', '--ablation', '--json'], io), 0, io.err());
  const r = JSON.parse(io.out()) as { ablation: Record<string, Record<string, number>> };
  assert.ok(Object.keys(r.ablation).includes('BM25 only'));
  assert.ok(Object.keys(r.ablation).includes('+ neighbour smoothing 0.2 (previous default)'));
  assert.ok(Object.keys(r.ablation).includes('+ smoothing 0.3'));
  assert.ok(Object.keys(r.ablation).includes('+ query words weighted by idf²'));
  assert.ok(Object.keys(r.ablation).includes('+ fusion constant 10 (default)'));
  for (const row of Object.values(r.ablation)) assert.ok(row['1']! >= 0 && row['1']! <= row['25']! && row['25']! <= 1);
  // BM25 alone never ranks D2:3 ("We ordered pizza after the class yesterday"): no word in common
  // with the question, so Q2 stays at 1/2 and the mean at 3/4. Smoothing brings it in as D2:1's
  // neighbour; all 8 turns are within 25.
  assert.equal(r.ablation['BM25 only']!['25'], 0.75);
  assert.equal(r.ablation['+ neighbour smoothing 0.2 (previous default)']!['25'], 1);
});

test('eval retrieval: turn recall and session recall_any per category, user and session scope', async () => {
  const io = captureIo();
  assert.equal(await main(['eval', 'retrieval', '--input', join(FIXTURES, 'generic-tiny.json'), '--k', '1,5', '--embedder', 'hash', '--json'], io), 0, io.err());
  const r = JSON.parse(io.out()) as { recall: Record<string, Record<string, number>>; sessionRecallAny: Record<string, Record<string, number>>; queries: number };
  assert.equal(r.queries, 3);
  assert.equal(r.recall.pref!['1'], 1);
  // b1 belongs to user u2, outside the query's scope: at most half the evidence is findable.
  assert.equal(r.recall.task!['5'], 0.5);
  assert.equal(r.sessionRecallAny.task!['1'], 1);
  // Session scope: the session's last turn is found (no recent window in an evaluation).
  assert.equal(r.recall.session!['5'], 1);
  assert.equal(r.recall.all!['5'], 2.5 / 3);
});

test('eval retrieval renames ids Strata does not accept and maps its own turn ids back', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'odd-ids.json');
    await writeFile(file, JSON.stringify({
      sessions: [
        { session_id: 'chat #1/a', turns: [{ turn_id: 20, role: 'assistant', content: 'The capital of Peru is Lima.' }, { turn_id: 10, role: 'user', content: 'Tell me about Peru.' }] },
        { session_id: 'chat #2', turns: [{ turn_id: 5, role: 'user', content: 'Bananas are yellow.', created_at: '2024-01-02T00:00:00Z' }] },
      ],
      queries: [{ query: 'capital Lima', evidence: [{ session_id: 'chat #1/a', turn_id: 20 }] }],
    }));
    const io = captureIo();
    assert.equal(await main(['eval', 'retrieval', '--input', file, '--k', '1', '--embedder', 'hash', '--json'], io), 0, io.err());
    const r = JSON.parse(io.out()) as { recall: Record<string, Record<string, number>>; sessionRecallAny: Record<string, Record<string, number>> };
    assert.equal(r.recall.all!['1'], 1);
    assert.equal(r.sessionRecallAny.all!['1'], 1);
  });
});

test('eval retrieval: a query over sessions of several users searches a private copy of exactly those sessions', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'mixed.json');
    await writeFile(file, JSON.stringify({
      sessions: [
        { session_id: 'a', user_id: 'u1', turns: [{ turn_id: 1, role: 'user', content: 'the violin lesson is on tuesday' }] },
        { session_id: 'b', user_id: 'u2', turns: [{ turn_id: 1, role: 'user', content: 'my violin needs new strings' }] },
        { session_id: 'c', user_id: 'u2', turns: [{ turn_id: 1, role: 'user', content: 'violin concert tickets are sold out' }] },
      ],
      queries: [{ query: 'violin', session_ids: ['a', 'b'], evidence: [{ session_id: 'a', turn_id: 1 }, { session_id: 'b', turn_id: 1 }] }],
    }));
    const io = captureIo();
    assert.equal(await main(['eval', 'retrieval', '--input', file, '--embedder', 'hash', '--k', '2', '--json'], io), 0, io.err());
    const r = JSON.parse(io.out()) as { recall: Record<string, Record<string, number>>; sessionRecallAny: Record<string, Record<string, number>>; baselines: Record<string, { recall: Record<string, Record<string, number>> }> };
    // Both evidence turns are in the top 2: session c (another user's) is not in the query's scope.
    assert.equal(r.recall.all!['2'], 1);
    assert.equal(r.sessionRecallAny.all!['2'], 1);
    assert.deepEqual(Object.keys(r.baselines).sort(), ['bm25', 'previousDefault']);
    assert.equal(r.baselines.bm25!.recall.all!['2'], 1);
  });
});

test('eval commands reject bad input with coded errors', async () => {
  const io = captureIo();
  assert.equal(await main(['eval', 'locomo', '--input', join(FIXTURES, 'generic-tiny.json'), '--embedder', 'hash'], io), 1);
  assert.match(io.err(), /STRATA_ERR_INPUT_FORMAT/);
  const io2 = captureIo();
  assert.equal(await main(['eval', 'retrieval', '--input', join(FIXTURES, 'generic-tiny.json'), '--k', 'x'], io2), 1);
  assert.match(io2.err(), /STRATA_ERR_VALIDATION/);
  const io3 = captureIo();
  assert.equal(await main(['eval', 'locomo', '--input', join(FIXTURES, 'locomo-tiny.json'), '--k', '5,200', '--embedder', 'hash'], io3), 1);
  assert.match(io3.err(), /STRATA_ERR_VALIDATION/);
  const io4 = captureIo();
  assert.equal(await main(['eval', 'locomo', '--input', join(FIXTURES, 'locomo-tiny.json'), '--embedder', 'word2vec'], io4), 1);
  assert.match(io4.err(), /STRATA_ERR_VALIDATION/);
});

test('LoCoMo dates parse to UTC timestamps', () => {
  assert.equal(parseLocomoDate('1:56 pm on 8 May, 2023'), Date.UTC(2023, 4, 8, 13, 56));
  assert.equal(parseLocomoDate('nonsense'), null);
});

test('bench retrieval measures smart context through the product within the budget', async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'sessions.json');
    const topics = ['rust borrow checker', 'sourdough starter', 'tax deadline', 'python asyncio', 'mountain bike gears'];
    const turns = Array.from({ length: 80 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: `Question ${i} about ${topics[i % 5]}: ${'details '.repeat(10 + (i % 7))}` }));
    await writeFile(file, JSON.stringify([{ turns: turns.slice(0, 50) }, { turns: turns.slice(50) }]));
    const r = await runRetrievalBench({ turns: 70, queries: 6, maxTokens: 300, input: file, embedder: 'hash' });
    assert.equal(r.turns, 70);
    assert.equal(r.queries, 6);
    for (const row of [r.hybrid, r.baseline]) {
      assert.ok(row.medianTokens > 0 && row.medianTokens <= 300, String(row.medianTokens));
      assert.ok(row.p95Ms >= row.p50Ms);
    }
    assert.equal(r.p95Ms, r.hybrid.p95Ms);
  });
});
