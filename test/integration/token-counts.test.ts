import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { TokenCounts } from '../../src/cache/token-counts.js';
import { getTokenizer } from '../../src/context/gpt-tokenizer.js';
import { StrataError } from '../../src/errors.js';
import { MemoryHotStore } from '../../src/hot/memory/memory-store.js';
import type { HotStore } from '../../src/hot/store.js';
import { countMessageTokens, type MessageFields } from '../../src/message.js';
import type { SessionRef } from '../../src/types.js';
import { Preparer } from '../../src/workers/preparer.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';

const tokenizer = getTokenizer();
const count = (m: MessageFields): number => countMessageTokens(m, (text) => tokenizer.count(text));
const REF: SessionRef = { tenant: 'default', sessionId: 's1' };
const T0 = 1_700_000_000_000;

function message(i: number): MessageFields {
  return { role: i % 2 ? 'assistant' : 'user', content: `message ${i}: ${'tokens and more tokens, '.repeat(i % 7)}🙂` };
}

test('TokenCounts writes counts after the fact, leaves turns uncounted beyond its limit, survives failed writes and stops', async (t) => {
  const hot = new MemoryHotStore();
  const preparer = new Preparer(tokenizer, null, 0);
  t.after(() => preparer.close());
  await hot.seed(REF, { nextTurnId: 1, archivedUpTo: 0, turns: [] }, T0);
  for (let i = 1; i <= 6; i++) await hot.append(REF, { ...message(i), createdAt: T0 + i, key: `n:${i}` }, T0 + i);
  const errors: unknown[] = [];
  const skips: number[] = [];
  const counts = new TokenCounts(hot, preparer, { onError: (err) => errors.push(err), onSkip: (n) => skips.push(n), limit: 3 });
  const turn = (i: number) => ({ turnId: i, key: `n:${i}`, message: message(i) });
  counts.add(REF, [turn(1), turn(2)]);
  counts.add(REF, [turn(3)]);
  counts.add(REF, [turn(4), turn(5)]); // 3 wait already: left uncounted
  assert.equal(counts.skipped, 2);
  assert.deepEqual(skips, [2]);
  await counts.settled();
  const held = await hot.range(REF, 1, 6);
  assert.deepEqual(held.map((x) => x.tokens), [count(message(1)), count(message(2)), count(message(3)), undefined, undefined, undefined]);
  assert.equal(errors.length, 0);

  // A write that fails is reported, never thrown, and the next batch still goes out.
  const failing = new Proxy(hot, {
    get(target, name, receiver) {
      if (name === 'setTokens') return () => Promise.reject(new StrataError('STRATA_ERR_HOT_UNAVAILABLE', 'injected'));
      const value = Reflect.get(target, name, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const broken = new TokenCounts(failing, preparer, { onError: (err) => errors.push(err) });
  broken.add(REF, [turn(4)]);
  await broken.settled();
  assert.equal(errors.length, 1);
  assert.equal((await hot.range(REF, 4, 4))[0]!.tokens, undefined);

  await counts.stop();
  counts.add(REF, [turn(6)]);
  assert.equal(counts.waiting, 0);
  await counts.settled();
  assert.equal((await hot.range(REF, 6, 6))[0]!.tokens, undefined);
});

test('appends store turns uncounted and count them off the request path; reads and compaction count what was missed', async (t) => {
  // Fault injection: the background counts fail while `failing` (a Redis outage, say).
  let failing = false;
  const memory = new MemoryHotStore();
  const hot = new Proxy(memory, {
    get(target, name, receiver) {
      if (name === 'setTokens') {
        return (...args: Parameters<HotStore['setTokens']>) => (failing ? Promise.reject(new StrataError('STRATA_ERR_HOT_UNAVAILABLE', 'injected')) : target.setTokens(...args));
      }
      const value = Reflect.get(target, name, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const s = await openStrata(await tempDir(t), { hotStore: hot });
  closeAfter(t, () => s.close());
  const sent = Array.from({ length: 12 }, (_, i) => message(i + 1));
  for (const m of sent.slice(0, 6)) await s.addMessage('s1', m.role, m.content as string);
  const counted = async (from: number, to: number): Promise<Array<number | undefined>> => (await memory.range(REF, from, to)).map((x) => x.tokens);
  const want = (from: number, to: number) => sent.slice(from - 1, to).map(count);
  for (let i = 0; i < 100 && (await counted(1, 6)).includes(undefined); i++) await sleep(20);
  assert.deepEqual(await counted(1, 6), want(1, 6));

  failing = true;
  for (const m of sent.slice(6)) await s.addMessage('s1', m.role, m.content as string);
  await sleep(100);
  assert.deepEqual(await counted(7, 12), [undefined, undefined, undefined, undefined, undefined, undefined]);
  // A read counts the turns it returns that have no count yet.
  const recent = await s.getContext('s1', { type: 'recent', limit: 12 });
  assert.deepEqual(recent.messages.map((m) => m.tokens), want(1, 12));
  assert.equal(recent.tokens, want(1, 12).reduce((a, b) => a + b, 0));

  // Compaction counts them for the archive and hands the counts to the turns that stay hot.
  failing = false;
  await s.flush('s1');
  assert.deepEqual(await counted(1, 12), want(1, 12));
  const page = await s.getMessages('s1');
  assert.deepEqual(page.messages.map((m) => m.tokens), want(1, 12));
});
