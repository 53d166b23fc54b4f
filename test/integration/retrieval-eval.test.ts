import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { parseLocomoDate } from '../../src/eval/locomo.js';
import { captureIo } from '../helpers/io.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'retrieval');

test('eval locomo on a tiny fixture computes evidence recall as by hand', async () => {
  const io = captureIo();
  const code = await main(['eval', 'locomo', '--input', join(FIXTURES, 'locomo-tiny.json'), '--k', '1,25', '--embedder', 'hash', '--json'], io);
  assert.equal(code, 0, io.err());
  const r = JSON.parse(io.out()) as { recall: Record<string, Record<string, number>>; questions: number; medianContextTokens: number; searchP50Ms: number; searchP95Ms: number };
  // Category 5 and the item without evidence are skipped; D9:9 is not in the conversation.
  assert.equal(r.questions, 2);
  // Q1 (cat 4): its one evidence turn ranks first → 1 at k=1. Q2 (cat 2): D2:1 first, D2:3 later → 0.5 at k=1, 1 at k=25.
  assert.equal(r.recall['4']!['1'], 1);
  assert.equal(r.recall['2']!['1'], 0.5);
  assert.equal(r.recall['2']!['25'], 1);
  assert.equal(r.recall.all!['1'], 0.75);
  assert.equal(r.recall.all!['25'], 1);
  assert.ok(r.medianContextTokens > 0);
  assert.ok(r.searchP95Ms >= r.searchP50Ms);
});

test('eval locomo prints a table naming its session granularity', async () => {
  const io = captureIo();
  assert.equal(await main(['eval', 'locomo', '--input', join(FIXTURES, 'locomo-tiny.json'), '--embedder', 'hash'], io), 0, io.err());
  assert.match(io.out(), /one Strata session per LoCoMo session/);
  assert.match(io.out(), /recall@10/);
});

test('eval retrieval: turn recall and session recall_any per category, user scope respected', async () => {
  const io = captureIo();
  assert.equal(await main(['eval', 'retrieval', '--input', join(FIXTURES, 'generic-tiny.json'), '--k', '1,5', '--embedder', 'hash', '--json'], io), 0, io.err());
  const r = JSON.parse(io.out()) as { recall: Record<string, Record<string, number>>; sessionRecallAny: Record<string, Record<string, number>> };
  assert.equal(r.recall.pref!['1'], 1);
  // b1 belongs to user u2, outside the query's scope: at most half the evidence is findable.
  assert.equal(r.recall.task!['5'], 0.5);
  assert.equal(r.sessionRecallAny.task!['1'], 1);
  assert.equal(r.recall.all!['5'], 0.75);
});

test('eval commands reject bad input with coded errors', async () => {
  const io = captureIo();
  assert.equal(await main(['eval', 'locomo', '--input', join(FIXTURES, 'generic-tiny.json'), '--embedder', 'hash'], io), 1);
  assert.match(io.err(), /STRATA_ERR_INPUT_FORMAT/);
  const io2 = captureIo();
  assert.equal(await main(['eval', 'retrieval', '--input', join(FIXTURES, 'generic-tiny.json'), '--k', 'x'], io2), 1);
  assert.match(io2.err(), /STRATA_ERR_VALIDATION/);
});

test('LoCoMo dates parse to UTC timestamps', () => {
  assert.equal(parseLocomoDate('1:56 pm on 8 May, 2023'), Date.UTC(2023, 4, 8, 13, 56));
  assert.equal(parseLocomoDate('nonsense'), null);
});
