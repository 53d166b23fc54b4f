/**
 * Bounded input handling: no argument spreads over input-sized arrays, token counting that stays
 * linear on runs without spaces, strict types, text stored exactly as acknowledged, and import
 * files that fail with coded errors.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import test from 'node:test';
import { worstCase } from '../../bench/codec.js';
import { validateMessage as validateWhole } from '../../src/message.js';

/** The positional form the cache's addMessage(role, content, {metadata}) validates. */
function validateMessage(role: unknown, content: unknown, metadata: unknown, limits: Parameters<typeof validateWhole>[1]) {
  return validateWhole({ role, content, ...(metadata !== undefined ? { metadata } : {}) }, limits, '');
}
import { main } from '../../src/cli/main.js';
import { detectFormat, parseConversations } from '../../src/cli/importers.js';
import { HuffmanConversationCodec } from '../../src/codec/huffman-codec.js';
import { getTokenizer } from '../../src/context/gpt-tokenizer.js';
import { MAX_BPE_RUN_CHARS, boundedSegments } from '../../src/context/tokenizer.js';
import { isStrataError } from '../../src/errors.js';
import type { ErrorCode } from '../../src/errors.js';
import { captureIo } from '../helpers/io.js';
import { closeAfter, openStrata, prng, tempDir } from '../helpers/strata.js';

const PROSE = 'We could meet in Lisbon in May, or in Porto if the flights are cheaper. ';
const LIMITS = { maxMessageBytes: 1 << 20, maxMetadataBytes: 4096, maxInlineDataBytes: 1 << 16 };

function throwsCode(fn: () => unknown, code: ErrorCode, mention?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isStrataError(e, code), `expected ${code}, got ${String(e)}`);
    if (mention !== undefined) assert.match((e as Error).message, new RegExp(mention.replace(/[[\].*+?^${}()|\\]/g, '\\$&')));
    return true;
  });
}

/** Prose of about `bytes` bytes with varied words, so matches do not swallow it. */
function prose(bytes: number, seed: number): string {
  const random = prng(seed);
  const words = PROSE.split(' ');
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const w = `${words[Math.floor(random() * words.length)]!}${Math.floor(random() * 1000)} `;
    parts.push(w);
    n += w.length;
  }
  return parts.join('');
}

test('huffman-tokens round-trips a ~900 KB message with an 80-character run early (was RangeError)', () => {
  const codec = new HuffmanConversationCodec({ mode: 'tokens' });
  const message = `${'='.repeat(80)}\n${prose(900_000, 1)}`;
  assert.equal(codec.decode(codec.encode(message)), message);
});

test('huffman-tokens round-trips a 10 MB input, text and bytes', () => {
  const codec = new HuffmanConversationCodec({ mode: 'tokens' });
  const text = `${'-'.repeat(100)} ${prose(10_000_000, 2)}`;
  assert.equal(codec.decode(codec.encode(text)), text);
  // Bytes that are not UTF-8 take the one-byte-token path, which appended with a spread too.
  const bytes = new TextEncoder().encode(text.slice(0, 2_000_000));
  for (let i = 0; i < bytes.length; i += 1000) bytes[i] = 0xff;
  assert.deepEqual(codec.decode(codec.encode(bytes)), bytes);
});

test('boundedSegments: concatenation is the text, cuts only inside long runs, never inside a surrogate pair', () => {
  assert.deepEqual([...boundedSegments(PROSE.repeat(100))], [PROSE.repeat(100)]);
  const run = 'x'.repeat(MAX_BPE_RUN_CHARS * 3 + 5);
  const segments = [...boundedSegments(`a ${run} b`)];
  assert.equal(segments.join(''), `a ${run} b`);
  assert.equal(segments.length, 4);
  const emoji = '🦀'.repeat(200);
  const cut = [...boundedSegments(emoji)];
  assert.equal(cut.join(''), emoji);
  for (const s of cut) assert.ok(s.length <= MAX_BPE_RUN_CHARS + 1 && s.length > 0 && !/^[\uDC00-\uDFFF]/.test(s), `segment splits a pair: ${s.length}`);
});

test('token counting: a 256 KiB run without spaces costs milliseconds; prose counts exactly as before', () => {
  const tokenizer = getTokenizer('o200k_base');
  tokenizer.count('load the ranks before timing');
  for (const run of ['x'.repeat(256 * 1024), 'ab1/'.repeat(64 * 1024), ' '.repeat(256 * 1024)]) {
    const t0 = performance.now();
    const n = tokenizer.count(run);
    const ms = performance.now() - t0;
    // Unbounded, the first of these took 53–83 s; bounded it takes tens of ms. 3 s leaves room for a loaded CI machine.
    assert.ok(ms < 3_000, `count took ${Math.round(ms)} ms`);
    assert.ok(n > 0 && n <= run.length);
    const t1 = performance.now();
    assert.ok(tokenizer.truncate(run, 100).length > 0);
    assert.ok(performance.now() - t1 < 3_000);
  }
  // Text without long runs is one segment: the count is gpt-tokenizer's own.
  const raw = createRequire(import.meta.url)('gpt-tokenizer/cjs/encoding/o200k_base') as { countTokens(text: string): number };
  const text = prose(50_000, 3);
  assert.equal(tokenizer.count(text), raw.countTokens(text));
  assert.ok(tokenizer.count(tokenizer.truncate(text, 10)) <= 10);
  // A truncation point inside the third segment of a text with long runs keeps the whole prefix.
  const mixed = `${'y'.repeat(200)} tail words here`;
  const cut = tokenizer.truncate(mixed, tokenizer.count(mixed) - 1);
  assert.ok(mixed.startsWith(cut) && cut.length > 200);
});

test('bench codec worst case: the run without spaces costs about what ordinary text of the same size does', () => {
  const rows = worstCase(prose(300_000, 4));
  const ordinary = rows[0]!;
  const run = rows[1]!;
  assert.ok(ordinary.bytes > 250_000 && ordinary.bytes <= 256 * 1024, String(ordinary.bytes));
  assert.equal(run.bytes, 256 * 1024);
  assert.ok(rows.every((r) => r.roundTrip));
  assert.ok(run.countMs < 3_000 && run.tokensEncodeMs < 3_000, JSON.stringify(run));
});

test('validateMessage: no coercion of numbers, booleans, arrays or objects into text', () => {
  for (const content of [123, true, ['hi'], { type: 'text', text: 'hi' }]) {
    throwsCode(() => validateMessage('user', content, undefined, LIMITS), 'STRATA_ERR_VALIDATION', 'content');
  }
  // Missing content is empty content (valid only with tool calls).
  for (const content of [null, undefined, '']) throwsCode(() => validateMessage('user', content, undefined, LIMITS), 'STRATA_ERR_CONTENT_EMPTY', 'content');
  throwsCode(() => validateMessage(['user'], 'hi', undefined, LIMITS), 'STRATA_ERR_INVALID_ROLE');
  assert.equal(validateMessage('user', 'hi 🦀', undefined, LIMITS).content, 'hi 🦀');
});

test('validateMessage: lone surrogates are STRATA_ERR_TEXT_INVALID naming the field; pairs are fine', () => {
  throwsCode(() => validateMessage('user', 'a\ud800b', undefined, LIMITS), 'STRATA_ERR_TEXT_INVALID', 'content');
  throwsCode(() => validateMessage('user', '\udc00', undefined, LIMITS), 'STRATA_ERR_TEXT_INVALID', 'content');
  throwsCode(() => validateMessage('user', 'ok', { '\ud83d': 1 }, LIMITS), 'STRATA_ERR_TEXT_INVALID', 'metadata key');
  throwsCode(() => validateMessage('user', 'ok', { deep: { list: ['fine', 'x\udfff'] } }, LIMITS), 'STRATA_ERR_TEXT_INVALID', 'metadata.deep.list[1]');
  assert.deepEqual(validateMessage('user', '\ud83e\udd80', { '🦀': '𝄞' }, LIMITS).metadata, { '🦀': '𝄞' });
});

test('library: astral characters round-trip byte-exactly through add → flush → read; lone surrogates change nothing', async (t) => {
  const dir = await tempDir(t);
  const s = await openStrata(dir);
  closeAfter(t, () => s.close());
  const texts = ['🦀 crab, 𝄞 clef, 👩‍👩‍👧 family, 🇵🇹 flag', `${'😀'.repeat(5000)} and a tail`, 'plain'];
  await s.addMessages('astral', texts.map((content) => ({ role: 'user' as const, content, metadata: { note: '🎉' } })));
  await s.flush('astral');
  const read = (await s.getMessages('astral', { limit: 10 })).messages;
  assert.deepEqual(read.map((m) => Buffer.from(m.content as string, 'utf8').toString('hex')), texts.map((x) => Buffer.from(x, 'utf8').toString('hex')));
  assert.deepEqual(read.map((m) => m.content), texts);
  assert.deepEqual(read.map((m) => m.metadata), texts.map(() => ({ note: '🎉' })));

  await assert.rejects(s.addMessage('astral', 'user', 'x\ud800'), (e: unknown) => isStrataError(e, 'STRATA_ERR_TEXT_INVALID'));
  await assert.rejects(s.addMessage('astral', 'user', 123 as unknown as string), (e: unknown) => isStrataError(e, 'STRATA_ERR_VALIDATION') && /content/.test((e as Error).message));
  await assert.rejects(s.addMessage('astral', 'user', ['hi'] as unknown as string), (e: unknown) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
  await assert.rejects(s.addMessage('bad\ud800id', 'user', 'x'), (e: unknown) => isStrataError(e, 'STRATA_ERR_TEXT_INVALID') && /session id/.test((e as Error).message));
  await assert.rejects(s.addMessage('astral', 'user', 'x', { userId: '\udc00' }), (e: unknown) => isStrataError(e, 'STRATA_ERR_TEXT_INVALID'));
  await assert.rejects(s.addMessages('astral', [{ role: 'user', content: 'fine' }, { role: 'user', content: '\ud800' }]), (e: unknown) => isStrataError(e, 'STRATA_ERR_TEXT_INVALID'));
  assert.equal((await s.getMessages('astral', { limit: 10 })).messages.length, 3);
});

test('importers: malformed files of every format are STRATA_ERR_INPUT_FORMAT, never a TypeError', () => {
  const enc = (x: string) => new TextEncoder().encode(x);
  throwsCode(() => detectFormat(new Uint8Array(0)), 'STRATA_ERR_INPUT_FORMAT', 'empty');
  const cases: Array<[Parameters<typeof parseConversations>[1], string]> = [
    ['sessions', '[null]'],
    ['sessions', '[5]'],
    ['sessions', '[{"turns":[null]}]'],
    ['sessions', '[{"turns":[{"role":"user","content":123}]}]'],
    ['sessions', '[{"turns":[{"role":"user","content":true}]}]'],
    ['sessions', '[{"turns":"x"}]'],
    ['sessions', '{"turns":[]}'],
    ['sessions', '[{"turns":[{"role":"user","content":"x"}]'],
    ['openai-jsonl', '{"messages":[null]}'],
    ['openai-jsonl', '5'],
    ['openai-jsonl', 'null'],
    ['openai-jsonl', '{"messages":[{"role":"user","content":{"a":1}}]}'],
    ['openai-jsonl', '{"messages":[{"role":"user","content":"x"}]}\n{"messages":'],
    ['locomo', '[null]'],
    ['locomo', '[{"conversation":{"speaker_a":"A","session_1":[null]}}]'],
    ['locomo', '[{"conversation":{"speaker_a":"A","session_1":[{"speaker":"A","text":42}]}}]'],
    ['locomo', '[{"conversation":[]}]'],
    ['locomo', 'null'],
  ];
  for (const [format, text] of cases) {
    assert.throws(
      () => parseConversations(enc(text), format),
      (e: unknown) => isStrataError(e, 'STRATA_ERR_INPUT_FORMAT'),
      `${format}: ${text}`,
    );
  }
  // Invalid UTF-8 would be imported as U+FFFD: refused.
  throwsCode(() => parseConversations(Uint8Array.from([0x5b, 0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d, 0x5d]), 'sessions'), 'STRATA_ERR_INPUT_FORMAT', 'UTF-8');
});

test('strata import: malformed or empty files fail with a code and create no session', async (t) => {
  const dir = await tempDir(t);
  const dataDir = join(dir, 'data');
  const files = join(dir, 'files');
  await mkdir(files);
  const inputs: Array<[string, string | Uint8Array, string[]]> = [
    ['empty.json', '', []],
    ['empty.strata', new Uint8Array(0), ['--format', 'archive']],
    ['sessions.json', '[{"session_id":"s1","turns":[{"role":"user","content":"ok"}]},{"turns":[null]}]', []],
    ['chat.jsonl', '{"messages":[{"role":"user","content":5}]}', []],
    ['locomo.json', '[{"sample_id":"c1","conversation":{"speaker_a":"A","session_1":[7]}}]', ['--format', 'locomo']],
    ['garbage.strata', Uint8Array.from([0x53, 0x54, 0x52, 0x41, 1, 1, 0, 0, 0xff, 0xff, 0, 0, 1, 2, 3, 4, 5, 6, 7]), ['--format', 'archive', '--session', 'g1']],
    ['random.bin', Uint8Array.from({ length: 512 }, (_, i) => (i * 97 + 13) & 255), ['--format', 'archive', '--session', 'g2']],
  ];
  for (const [name, content, extra] of inputs) {
    const path = join(files, name);
    await writeFile(path, content);
    const io = captureIo();
    io.env = { STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'error' };
    const code = await main(['import', path, ...extra, '--data-dir', dataDir], io);
    assert.notEqual(code, 0, name);
    assert.match(io.err(), /STRATA_ERR_INPUT_FORMAT/, `${name}: ${io.err()}`);
  }
  const io = captureIo();
  io.env = { STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'error' };
  assert.equal(await main(['stats', '--json', '--data-dir', dataDir], io), 0, io.err());
  assert.equal((JSON.parse(io.out()) as { sessions: number }).sessions, 0);
});
