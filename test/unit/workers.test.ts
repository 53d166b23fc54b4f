/**
 * The prepare pool on real worker threads: results identical to the main thread's, the queue
 * bound, reads before compaction, close, and a crashing worker (the one fault injected, through
 * a wrapper worker module).
 */
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { getTokenizer } from '../../src/context/gpt-tokenizer.js';
import { ExtractiveSummarizer } from '../../src/context/summarizer.js';
import { isStrataError } from '../../src/errors.js';
import { countMessageTokens, searchText, type MessageFields } from '../../src/message.js';
import type { Turn } from '../../src/types.js';
import { FsArchiveStore } from '../../src/archive/fs-store.js';
import { InProcessSessionLock } from '../../src/archive/lock.js';
import { ArchiveRetrieval } from '../../src/retrieval/archive-retrieval.js';
import { GloveEmbedder } from '../../src/retrieval/embedders/glove.js';
import { HashEmbedder } from '../../src/retrieval/embedders/hash.js';
import { MemoryHotStore } from '../../src/hot/memory/memory-store.js';
import type { HotStore } from '../../src/hot/store.js';
import type { Embedder } from '../../src/retrieval/embedder.js';
import { PreparePool, workerExecArgv, type PrepareLane, type PrepareOutput } from '../../src/workers/pool.js';
import { prepareSpec, type PrepareTask } from '../../src/workers/prepare.js';
import { BATCHED_COUNT_CHARS, INLINE_COUNT_CHARS, Preparer } from '../../src/workers/preparer.js';
import { CRASH } from '../fixtures/workers/crashing-worker.js';
import { closeAfter, openStrata, tempDir } from '../helpers/strata.js';

const run = promisify(execFile);
const CRASHING_WORKER = new URL('../fixtures/workers/crashing-worker.ts', import.meta.url);
const tokenizer = getTokenizer('o200k_base');

/** Messages of every shape the counters and search text read. */
const MESSAGES: MessageFields[] = [
  { role: 'user', content: 'What is the capital of France?' },
  { role: 'assistant', content: 'Paris. It has been the capital since 987 — ask me about the Capetians.' },
  { role: 'system', content: '' },
  { role: 'user', content: 'ünïcödé: 日本語のテキスト, emoji 🧪🚀👩‍👩‍👧, RTL مرحبا بالعالم, combining e\u0301' },
  { role: 'user', content: 'x'.repeat(5000) + ' ' + 'ab'.repeat(300) + '\n\n\t   ' + 'https://example.com/' + 'q'.repeat(400) },
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Look at this picture and the attached file.' },
      { type: 'image_url', image_url: { url: `data:image/png;base64,${'iVBORw0KGgo'.repeat(2000)}`, detail: 'low' } },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
      { type: 'file', file: { file_data: 'JVBERi0xLjQK', filename: 'quarterly report (final).pdf' } },
      { type: 'file', file: { file_id: 'file-abc123' } },
      { type: 'text', text: 'Second part, with "quotes" and <tags>.' },
    ],
  },
  {
    role: 'assistant',
    content: null,
    tool_calls: [
      { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Zürich","unit":"celsius"}' } },
      { id: 'call_2', type: 'function', function: { name: 'search_flights', arguments: '{"from":"ZRH","to":"NRT","date":"2026-03-01"}' } },
    ],
  },
  { role: 'tool', name: 'get_weather', tool_call_id: 'call_1', content: '{"temp":-3,"sky":"snow"}' },
  { role: 'assistant', name: 'planner', content: 'I will book the 10:40 flight.' },
];

/** What addMessage accepts (an empty content is refused). */
const STORED = MESSAGES.filter((m) => m.content !== '');

function inlineTokens(messages: readonly MessageFields[]): number[] {
  return messages.map((m) => countMessageTokens(m, (text) => tokenizer.count(text)));
}

function task(embedder: Embedder | null, items: MessageFields[] = MESSAGES, embed = embedder !== null): PrepareTask {
  return { spec: prepareSpec(tokenizer, embedder), items, count: items.map((_, i) => i), embed };
}

function openPool(t: { after(fn: () => Promise<void>): void }, options: ConstructorParameters<typeof PreparePool>[0]): PreparePool {
  const pool = new PreparePool(options);
  t.after(() => pool.destroy());
  return pool;
}

test('token counts and hash and glove embeddings from a worker equal the main thread\'s, bit for bit', async (t) => {
  const pool = openPool(t, { threads: 2 });
  for (const embedder of [new HashEmbedder(), new HashEmbedder(64), new GloveEmbedder()]) {
    const out = await pool.run(task(embedder), 'compaction');
    assert.deepEqual(out.tokens, inlineTokens(MESSAGES), embedder.id);
    const expected = await embedder.embed(MESSAGES.map(searchText));
    assert.equal(out.dimensions, embedder.dimensions);
    assert.ok(out.vectors instanceof Float32Array && out.vectors.length === MESSAGES.length * embedder.dimensions);
    expected.forEach((v, i) => assert.deepEqual(out.vectors!.subarray(i * out.dimensions, (i + 1) * out.dimensions), v, `${embedder.id}: message ${i}`));
  }
  // cl100k_base too: the worker builds the configured encoding.
  const cl100k = getTokenizer('cl100k_base');
  const out = await pool.run({ spec: prepareSpec(cl100k, null), items: MESSAGES, count: [0, 3, 6], embed: false }, 'read');
  assert.deepEqual(out.tokens, [0, 3, 6].map((i) => countMessageTokens(MESSAGES[i]!, (text) => cl100k.count(text))));
  assert.equal(out.vectors, null);
});

test('Preparer: pooled and inline results are identical; remote or custom embedders stay on this thread', async (t) => {
  const glove = new GloveEmbedder();
  const pooled = new Preparer(tokenizer, glove, 1);
  const inline = new Preparer(tokenizer, glove, 0);
  t.after(() => pooled.close());
  assert.ok(pooled.stats() && inline.stats() === null);
  const count = [0, 2, 4, 5, 6];
  const [a, b] = await Promise.all([pooled.prepare(MESSAGES, count), inline.prepare(MESSAGES, count)]);
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.tokens.filter((n) => n !== undefined), count.map((i) => inlineTokens(MESSAGES)[i]));
  a.vectors.forEach((v, i) => assert.deepEqual(v, b.vectors[i]));
  // Turns read without counts (re-seeded from the journal) get them, from the pool (large) or inline (small), equally.
  const turns = MESSAGES.map((m, i) => ({ ...m, turnId: i + 1, createdAt: 0, ...(i === 1 ? { tokens: 999 } : {}) }));
  const [x, y] = await Promise.all([pooled.withTokens(turns), inline.withTokens(turns)]);
  assert.deepEqual(x, y);
  assert.deepEqual(x.map((m) => m.tokens), inlineTokens(MESSAGES).map((n, i) => (i === 1 ? 999 : n)));
  // Where stored turns carry the count (after createdAt), so both serialise alike.
  assert.deepEqual(Object.keys(x[0]!), ['role', 'content', 'turnId', 'createdAt', 'tokens']);

  assert.deepEqual(await pooled.countTokens(MESSAGES), inlineTokens(MESSAGES));
  assert.deepEqual(await inline.countTokens(MESSAGES), inlineTokens(MESSAGES));
  assert.equal(await new Preparer(null, glove, 0).countTokens(MESSAGES), null);

  // A subclass may embed differently: it is not rebuilt in a worker, so it runs here.
  class Shifted extends HashEmbedder {
    override async embed(texts: readonly string[]): Promise<Float32Array[]> {
      return (await super.embed(texts)).map((v) => v.map((x) => x + 1));
    }
  }
  const custom = new Preparer(tokenizer, new Shifted(16), 1);
  t.after(() => custom.close());
  assert.equal(custom.spec.embedder, null);
  const shifted = await custom.prepare(MESSAGES.slice(0, 2), [0, 1]);
  assert.deepEqual(shifted.vectors, await new Shifted(16).embed(MESSAGES.slice(0, 2).map(searchText)));
  assert.deepEqual(shifted.tokens, inlineTokens(MESSAGES.slice(0, 2)));
});


test('the token counts a read waits for run on its thread up to INLINE_COUNT_CHARS of text, on the pool above', async (t) => {
  const preparer = new Preparer(tokenizer, null, 1, { workerUrl: CRASHING_WORKER, requestThreads: 0 });
  t.after(() => preparer.close());
  const crash: MessageFields = { role: 'user', content: CRASH };
  // Small: counted here (the crashing worker never sees it).
  assert.deepEqual(await preparer.countTokens([crash]), inlineTokens([crash]));
  const large: MessageFields = { role: 'user', content: 'word '.repeat(INLINE_COUNT_CHARS / 5) };
  assert.deepEqual(await preparer.countTokens([large]), inlineTokens([large]));
  // Together over the threshold: one task on the pool, where the fault is injected.
  await assert.rejects(preparer.countTokens([crash, large]), (err) => isStrataError(err, 'STRATA_ERR_WORKER_FAILED'));
  assert.deepEqual(await preparer.countTokens([large, large]), inlineTokens([large, large]));
});
test('with a request thread, the counts requests of one event-loop turn wait for share one task; a failed batch fails only the request that broke it', async (t) => {
  const preparer = new Preparer(tokenizer, null, 1, { workerUrl: CRASHING_WORKER, requestThreads: 1 });
  t.after(() => preparer.close());
  const small = STORED.slice(0, 3);
  // Warm the thread: the task counts below are of this test's calls only.
  assert.deepEqual(await preparer.countTokens(small), inlineTokens(small));
  const before = preparer.dispatched()!;
  const many = await Promise.all(STORED.map((m) => preparer.countTokens([m])));
  assert.deepEqual(many.flat(), inlineTokens(STORED));
  assert.equal(preparer.dispatched()! - before, 1, 'one task for every request of one event-loop turn');

  // A request whose messages kill the worker fails; the others of its batch are counted again, alone.
  const crash: MessageFields = { role: 'user', content: CRASH };
  const calls = [preparer.countTokens([STORED[0]!]), preparer.countTokens([crash]), preparer.countTokens([STORED[1]!, STORED[2]!])];
  const settled = await Promise.allSettled(calls);
  assert.deepEqual(settled[0], { status: 'fulfilled', value: inlineTokens([STORED[0]!]) });
  const failed = settled[1]!;
  assert.ok(failed.status === 'rejected' && isStrataError(failed.reason, 'STRATA_ERR_WORKER_FAILED'));
  assert.deepEqual(settled[2], { status: 'fulfilled', value: inlineTokens([STORED[1]!, STORED[2]!]) });

  // Over BATCHED_COUNT_CHARS: a task of its own, so small requests never wait behind it.
  const large: MessageFields = { role: 'user', content: 'word '.repeat(BATCHED_COUNT_CHARS / 5 + 1) };
  const mark = preparer.dispatched()!;
  const [big, tiny] = await Promise.all([preparer.countTokens([large]), preparer.countTokens([STORED[0]!])]);
  assert.deepEqual(big, inlineTokens([large]));
  assert.deepEqual(tiny, inlineTokens([STORED[0]!]));
  assert.equal(preparer.dispatched()! - mark, 2);
  // Without a pool every count runs here.
  assert.deepEqual(await new Preparer(tokenizer, null, 0).countTokens([crash]), inlineTokens([crash]));
});

test('counts nobody waits for (appended turns) run as one task on the request thread, else the pool, else here: the same numbers', async (t) => {
  const large: MessageFields = { role: 'user', content: 'word '.repeat(BATCHED_COUNT_CHARS / 5 + 1) };
  const messages = [...STORED, large];
  for (const requestThreads of [1, 0]) {
    const preparer = new Preparer(tokenizer, null, 1, { requestThreads });
    t.after(() => preparer.close());
    const before = preparer.dispatched()!;
    assert.deepEqual(await preparer.countInBackground(messages), inlineTokens(messages));
    assert.equal(preparer.dispatched()! - before, 1, `one task (request threads: ${requestThreads})`);
  }
  // Without a pool, here (yielding between slices of text), and nothing without a tokenizer.
  assert.deepEqual(await new Preparer(tokenizer, null, 0).countInBackground(messages), inlineTokens(messages));
  assert.equal(await new Preparer(null, null, 0).countInBackground(messages), null);
});

test('milestone summaries from a worker equal the main thread\'s; other summarizers run here', async (t) => {
  const pooled = new Preparer(tokenizer, null, 1);
  t.after(() => pooled.close());
  const turns: Turn[] = [...STORED, ...STORED.map((m) => ({ ...m, content: typeof m.content === 'string' ? `${m.content} And then we agreed to meet on Friday at noon.` : m.content }))].map((m, i) => ({ ...m, turnId: i + 1, createdAt: 1_700_000_000_000 + i, metadata: { n: i } }));
  for (const maxTokens of [16, 60, 200]) {
    const summarizer = new ExtractiveSummarizer({ tokenizer, maxTokens });
    const inline = await summarizer.summarize(turns);
    assert.ok(inline.startsWith(`Turns 1–${turns.length}:`) && inline.length > 20, inline);
    assert.equal(await pooled.summarize(summarizer, turns), inline);
  }
  const before = pooled.dispatched()!;
  // A subclass (or a chat model) is not rebuilt in a worker: its own summarize runs.
  class Shouting extends ExtractiveSummarizer {
    override async summarize(ts: readonly Turn[]): Promise<string> {
      return (await super.summarize(ts)).toUpperCase();
    }
  }
  const shouting = new Shouting({ tokenizer });
  assert.equal(await pooled.summarize(shouting, turns), (await new ExtractiveSummarizer({ tokenizer }).summarize(turns)).toUpperCase());
  assert.equal(pooled.dispatched(), before);
});

test('milestones of turns a compaction just wrote are summarized from them, not read back; the text is the same', async (t) => {
  const archive = new FsArchiveStore({ dataDir: await tempDir(t), lock: new InProcessSessionLock() });
  closeAfter(t, () => archive.close());
  let reads = 0;
  const counted = new Proxy(archive, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (prop === 'read') return (...args: Parameters<typeof archive.read>) => (reads++, target.read(...args));
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const retrieval = new ArchiveRetrieval({ archive: counted, embedder: new HashEmbedder(64), tokenizer, summarizer: new ExtractiveSummarizer({ tokenizer }) });
  const turns = (n: number): Turn[] => Array.from({ length: n }, (_, i) => ({ ...STORED[i % STORED.length]!, turnId: i + 1, createdAt: 1_700_000_000_000 + i }));
  const texts: string[][] = [];
  // Whole span in memory; the span from turn 51 (the first milestone is read); no span.
  for (const [name, from, expectedReads] of [['held', 1, 0], ['partly', 51, 1], ['none', null, 2]] as const) {
    const ref = { tenant: 't', sessionId: name };
    const written = turns(120);
    await archive.append(ref, written);
    reads = 0;
    const span = from === null ? undefined : { fromTurn: from, toTurn: 120, turns: written.filter((w) => w.turnId >= from) };
    assert.equal(await retrieval.writeMilestones(ref, false, undefined, span), 2);
    assert.equal(reads, expectedReads, name);
    texts.push((await archive.loadSummaries(ref)).map((m) => `${m.fromTurn}-${m.toTurn} ${m.text}`));
  }
  assert.deepEqual(texts[0], texts[2]);
  assert.deepEqual(texts[1], texts[2]);
  assert.equal(texts[2]!.length, 2);
});

test('a compaction of several batches writes each milestone as a summary of the archived turns in its range', async (t) => {
  const dataDir = await tempDir(t);
  const s = await openStrata(dataDir, { workers: 1, compaction: { maxUnarchivedTurns: 10_000, maxUnarchivedAgeMs: 3_600_000, intervalMs: 3_600_000, leaseTtlMs: 30_000 } });
  let closed = false;
  closeAfter(t, () => (closed ? Promise.resolve() : s.close()));
  // 620 turns compacted by one flush in batches of 256: milestones inside one batch, across two, and before the kept span.
  const messages = Array.from({ length: 620 }, (_, i) => ({ ...STORED[(i * 7) % STORED.length]!, content: `${String(STORED[(i * 7) % STORED.length]!.content)} Item ${i} of the list.` }));
  for (let i = 0; i < messages.length; i += 20) await s.addMessages('long', messages.slice(i, i + 20));
  await s.flush();
  await s.close();
  closed = true;
  const archive = new FsArchiveStore({ dataDir, lock: new InProcessSessionLock() });
  closeAfter(t, () => archive.close());
  const ref = { tenant: 'default', sessionId: 'long' };
  const summaries = await archive.loadSummaries(ref);
  assert.deepEqual(summaries.map((m) => [m.fromTurn, m.toTurn]), Array.from({ length: 12 }, (_, k) => [k * 50 + 1, k * 50 + 50]));
  const summarizer = new ExtractiveSummarizer({ tokenizer });
  for (const m of summaries) assert.equal(m.text, await summarizer.summarize(await archive.read(ref, m)), `milestone ${m.fromTurn}-${m.toTurn}`);
});

test('the queue is bounded: callers beyond maxQueue wait for room, reads before compaction', async (t) => {
  const pool = openPool(t, { threads: 1, maxQueue: 2 });
  const embedder = new GloveEmbedder();
  // Warm the thread so every task below is ordinary work.
  await pool.run(task(embedder), 'compaction');
  const finished: string[] = [];
  let maxQueued = 0;
  const submit = (name: string, lane: PrepareLane): Promise<PrepareOutput> =>
    pool.run(task(embedder, MESSAGES.map((m) => ({ ...m, name }))), lane).then((out) => {
      finished.push(name);
      maxQueued = Math.max(maxQueued, pool.stats().queued);
      return out;
    });
  const runs = [submit('c1', 'compaction'), submit('c2', 'compaction'), submit('c3', 'compaction'), submit('c4', 'compaction'), submit('c5', 'compaction'), submit('r1', 'read')];
  // One task runs, two wait in the queue, three callers wait for room in it.
  assert.deepEqual(pool.stats(), { threads: 1, busy: 1, queued: 2, waiting: 3 });
  const outs = await Promise.all(runs);
  assert.ok(maxQueued <= 2, `queue grew to ${maxQueued}`);
  // The read waited for room like the others, got the first room (c2 leaving the queue), and
  // ran before c3, which was queued earlier.
  assert.deepEqual(finished, ['c1', 'c2', 'r1', 'c3', 'c4', 'c5']);
  for (const [i, out] of outs.entries()) assert.deepEqual(out.tokens, inlineTokens(MESSAGES.map((m) => ({ ...m, name: ['c1', 'c2', 'c3', 'c4', 'c5', 'r1'][i]! }))));
  assert.deepEqual(pool.stats(), { threads: 1, busy: 0, queued: 0, waiting: 0 });
});

test('a crashing worker fails its task with STRATA_ERR_WORKER_FAILED and the pool keeps serving', async (t) => {
  const pool = openPool(t, { threads: 1, workerUrl: CRASHING_WORKER });
  const embedder = new HashEmbedder();
  const crash = pool.run(task(embedder, [{ role: 'user', content: CRASH }]), 'compaction');
  const queued = pool.run(task(embedder), 'compaction');
  await assert.rejects(crash, (err) => isStrataError(err, 'STRATA_ERR_WORKER_FAILED') && /exited with code: 7/.test((err as Error).message));
  // The task queued behind the crash runs on the replacement thread.
  assert.deepEqual((await queued).tokens, inlineTokens(MESSAGES));
  await assert.rejects(pool.run(task(embedder, [{ role: 'user', content: CRASH }]), 'read'), (err) => isStrataError(err, 'STRATA_ERR_WORKER_FAILED'));
  const after = await pool.run(task(embedder), 'read');
  assert.deepEqual(after.tokens, inlineTokens(MESSAGES));
  assert.equal(pool.workers().length, 1);
});

test('errors inside a task keep their code; destroy terminates the threads and fails what waits', async (t) => {
  const pool = openPool(t, { threads: 2 });
  const missing = new GloveEmbedder({ tablePath: '/nonexistent/glove.bin' });
  await assert.rejects(pool.run(task(missing), 'compaction'), (err) => isStrataError(err, 'STRATA_ERR_NOT_AVAILABLE') && /GloVe table/.test((err as Error).message));
  await pool.run(task(new HashEmbedder()), 'compaction');
  const threads = [...pool.workers()];
  assert.equal(threads.length, 2);
  assert.ok(threads.every((w) => w.threadId > 0));
  const pending = Promise.allSettled([0, 1, 2, 3, 4, 5, 6].map(() => pool.run(task(new GloveEmbedder()), 'compaction')));
  await pool.destroy();
  const settled = await pending;
  assert.ok(settled.every((s) => s.status === 'rejected' && isStrataError(s.reason, 'STRATA_ERR_CLOSED')), JSON.stringify(settled.map((s) => s.status)));
  // A terminated thread reports threadId -1.
  assert.deepEqual(threads.map((w) => w.threadId), [-1, -1]);
  await assert.rejects(pool.run(task(null), 'read'), (err) => isStrataError(err, 'STRATA_ERR_CLOSED'));
});

test('worker threads inherit the Node options, less those naming the main script (node -e), plus tsx from the sources', async () => {
  assert.equal(workerExecArgv(false, ['--import', 'tsx', '--max-old-space-size=512']), undefined);
  assert.deepEqual(workerExecArgv(true, ['--input-type=module', '-e', 'code', '--import', 'tsx']), ['--import', 'tsx']);
  assert.deepEqual(workerExecArgv(false, ['--input-type', 'module', '--eval', 'code', '--enable-source-maps']), ['--enable-source-maps']);
  assert.deepEqual(workerExecArgv(true, ['-p', 'code']), ['--import', 'tsx']);
  // For real: a process started with `node --import tsx --input-type=module -e` runs a pool, and
  // ends without destroying it (idle threads keep no process alive).
  const source = `import { PreparePool } from ${JSON.stringify(new URL('../../src/workers/pool.ts', import.meta.url).href)};
import { prepareSpec } from ${JSON.stringify(new URL('../../src/workers/prepare.ts', import.meta.url).href)};
import { getTokenizer } from ${JSON.stringify(new URL('../../src/context/gpt-tokenizer.ts', import.meta.url).href)};
const pool = new PreparePool({ threads: 1 });
const out = await pool.run({ spec: prepareSpec(getTokenizer('o200k_base'), null), items: [{ role: 'user', content: 'hello world' }], count: [0], embed: false }, 'read');
console.log(JSON.stringify(out.tokens));`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
  assert.equal(stdout.trim(), JSON.stringify(inlineTokens([{ role: 'user', content: 'hello world' }])));
});

test('pool options are validated eagerly', () => {
  assert.throws(() => new PreparePool({ threads: 0 }), (err) => isStrataError(err, 'STRATA_ERR_CONFIG_INVALID') && /workers\.threads/.test((err as Error).message));
  assert.throws(() => new PreparePool({ threads: 1, maxQueue: 0 }), (err) => isStrataError(err, 'STRATA_ERR_CONFIG_INVALID'));
});

test('a Strata core archives the same token counts and vectors with workers as without', async (t) => {
  const results = [];
  for (const workers of [0, 1]) {
    const dir = await tempDir(t);
    const s = await openStrata(dir, { workers, recentTurns: 2 });
    closeAfter(t, () => s.close());
    for (const m of STORED) await s.addMessages('s1', [m]);
    // Hot turns carry the counts made on add (on the pool for the large message).
    const before = await s.getContext('s1', { type: 'recent', limit: 5 });
    await s.flush();
    const page = await s.getMessages('s1');
    const hits = await s.searchDiskHistory('weather in Zürich', 5, { sessionId: 's1' });
    results.push({ before: [before.tokens, before.messages.map((m) => m.tokens)], tokens: page.messages.map((m) => m.tokens), hits: hits.map((h) => [h.turnId, h.score]) });
  }
  assert.deepEqual(results[0], results[1]);
  assert.deepEqual(results[1]!.tokens, inlineTokens(STORED));
  assert.ok(results[1]!.hits.length > 0);
});

test('flush compacts sessions concurrently, at most 4 + 4 × workers at once, each under its own lease', async (t) => {
  // The real memory store, wrapped to count the compaction leases held at once.
  const inner = new MemoryHotStore();
  let held = 0;
  let maxHeld = 0;
  const hot = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'acquireLease') {
        return async (...args: Parameters<HotStore['acquireLease']>) => {
          const token = await target.acquireLease(...args);
          if (token !== null) maxHeld = Math.max(maxHeld, ++held);
          // Hold it across a turn of the event loop, as an archive write would.
          await new Promise((r) => setImmediate(r));
          return token;
        };
      }
      if (prop === 'releaseLease') return (...args: Parameters<HotStore['releaseLease']>) => (held--, target.releaseLease(...args));
      const value: unknown = Reflect.get(target, prop);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const s = await openStrata(await tempDir(t), { workers: 1, hotStore: hot });
  closeAfter(t, () => s.close());
  const sessions = 30;
  for (let i = 0; i < sessions; i++) await s.addMessages(`s${i}`, STORED.slice(0, 4));
  assert.deepEqual(await s.flush(), { sessions, turns: sessions * 4 });
  assert.equal(held, 0);
  assert.ok(maxHeld >= 2 && maxHeld <= 8, `${maxHeld} leases held at once`);
  for (let i = 0; i < sessions; i += 7) assert.deepEqual((await s.getMessages(`s${i}`)).messages.map((m) => m.content), STORED.slice(0, 4).map((m) => m.content));
});
