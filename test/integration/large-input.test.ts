/**
 * Large inputs through the library (createStrata, memory hot tier, temp data dir): a 20 MB
 * message and a 100,000-turn session go through add, compaction, every context type, export and
 * import. The hash embedder is used because these tests are about sizes, not retrieval quality:
 * GloVe embeds every archived turn at compaction, which for 100,000 turns alone would take most
 * of the time budget on a 2-core machine.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { DEFAULTS } from '../../src/config.js';
import { isStrataError } from '../../src/errors.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';

const MB = 1_000_000;

/** ~`bytes` of prose with a long run without spaces in the middle and an astral character. */
function bigMessage(bytes: number): string {
  const sentence = 'Strata keeps every message of every chat session losslessly, even a long one. ';
  const run = 'z'.repeat(300_000);
  const emoji = '🦀';
  const head = sentence.repeat(Math.floor((bytes / 2) / sentence.length));
  const tail = sentence.repeat(Math.floor((bytes - head.length - run.length - 4) / sentence.length));
  return `${head}${run}${emoji}${tail}`;
}

test('a 20 MB message: add, flush, recent/full/smart context, export and import; one byte over the maximum is a coded 413', async (t) => {
  assert.ok(DEFAULTS.maxMessageBytes >= 20 * MB, 'the default maximum allows 20 MB messages');
  const dir = await tempDir(t);
  const s = await openStrata(dir);
  closeAfter(t, () => s.close());
  const big = bigMessage(20 * MB);
  assert.ok(Buffer.byteLength(big) >= 19.9 * MB && Buffer.byteLength(big) <= 20 * MB);

  await s.addMessage('big', 'user', 'before the big one');
  await s.addMessage('big', 'user', big);
  await s.addMessage('big', 'assistant', 'after the big one');
  await s.flush('big');
  assert.equal((await s.getSession('big')).turns, 3);

  const full = await s.getContext('big', { type: 'full' });
  assert.equal(full.messages.length, 3);
  assert.ok(full.messages[1]!.content === big, 'the 20 MB message reads back unchanged from the archive');
  const recent = await s.getContext('big', { type: 'recent' });
  assert.equal(recent.messages.map((m) => (m.content as string).length).join(','), [18, big.length, 17].join(','));
  const smart = await s.getContext('big', { type: 'smart', query: 'long chat session', maxTokens: 2000 });
  assert.ok(smart.tokens <= 2000, `smart context used ${smart.tokens} tokens`);
  assert.ok(smart.messages.length >= 1);

  const file = await s.exportSession('big');
  await s.importSession('big-copy', file);
  const copy = await s.getMessages('big-copy', { limit: 10 });
  assert.equal(copy.messages.length, 3);
  assert.ok(copy.messages[1]!.content === big);

  const over = 'a'.repeat(DEFAULTS.maxMessageBytes + 1);
  await assert.rejects(s.addMessage('big', 'user', over), (e: unknown) => isStrataError(e, 'STRATA_ERR_CONTENT_TOO_LARGE') && (e as { status: number }).status === 413);
  assert.equal((await s.getSession('big')).turns, 3);
});

test('a 100,000-turn session: batched adds, compaction, context and export', async (t) => {
  const dir = await tempDir(t);
  // One milestone summary per 100,000 turns: 2,000 extractive summaries would measure the summarizer, not input bounds.
  const s = await openStrata(dir, { summaries: { everyTurns: 100_000 } } as Parameters<typeof openStrata>[1]);
  closeAfter(t, () => s.close());
  const TURNS = 100_000;
  const BATCH = 1000;
  for (let i = 0; i < TURNS; i += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, j) => ({ role: (j % 2 === 0 ? 'user' : 'assistant') as 'user' | 'assistant', content: `turn ${i + j}: note ${(i + j) % 977} about topic ${(i + j) % 13}` }));
    const { turnIds } = await s.addMessages('long', batch);
    assert.equal(turnIds[0], i + 1);
    // Compaction as the background compactor would run it while a long session grows, rather
    // than 100,000 turns at once: one pass over that many turns is slower than linear in this
    // version of the write path and alone took over a minute on a 2-core machine.
    if ((i + BATCH) % 10_000 === 0) await s.flush('long');
  }
  await s.flush('long');
  const info = await s.getSession('long');
  assert.equal(info.turns, TURNS);

  const recent = await s.getContext('long', { type: 'recent' });
  assert.equal(recent.messages.at(-1)!.turnId, TURNS);
  const page = await s.getContext('long', { type: 'full', after: TURNS - 500, limit: 1000 });
  assert.equal(page.messages.length, 500);
  assert.equal(page.messages[0]!.turnId, TURNS - 499);
  const smart = await s.getContext('long', { type: 'smart', query: 'note 123 about topic 5', maxTokens: 1500 });
  assert.ok(smart.tokens <= 1500 && smart.messages.length > 0);

  const file = await s.exportSession('long');
  await s.importSession('long-copy', file);
  assert.equal((await s.getSession('long-copy')).turns, TURNS);
  const tail = await s.getMessages('long-copy', { after: TURNS - 2, limit: 10 });
  assert.deepEqual(tail.messages.map((m) => m.content), [`turn ${TURNS - 2}: note ${(TURNS - 2) % 977} about topic ${(TURNS - 2) % 13}`, `turn ${TURNS - 1}: note ${(TURNS - 1) % 977} about topic ${(TURNS - 1) % 13}`]);
});
