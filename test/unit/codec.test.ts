import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { decodeFrame, encodeFrame, getCodec } from '../../src/codec/codec.js';
import { HuffmanConversationCodec, HuffmanStreamDecoder, HuffmanStreamEncoder } from '../../src/codec/huffman-codec.js';
import { canonicalCodes, codeLengths, kraftSum } from '../../src/codec/huffman.js';
import { isStrataError } from '../../src/errors.js';
import { sharedDataFile } from '../../bench/data.js';

const corpus = JSON.parse(readFileSync(sharedDataFile('sharegpt-sessions.json'), 'utf8')) as Array<{ turns: Array<{ content: string }> }>;
const enc = new TextEncoder();

/** Deterministic PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const isCodecError = (e: unknown) => isStrataError(e) && e.code.startsWith('STRATA_ERR_CODEC_');
const modes = ['tokens', 'bytes'] as const;

const samples: Array<string | Uint8Array> = [
  '',
  'x',
  Uint8Array.from({ length: 256 }, (_, i) => i),
  Uint8Array.from({ length: 3000 }, (_, i) => (i * 7919) & 255),
  'a'.repeat(200_000),
  new Uint8Array(70_000),
  '😀 emoji 👩‍👩‍👧 and CJK 漢字かなカナ 한국어 — “quotes”',
  'function f(x: number): number {\n  return x * 2; // double\n}\n'.repeat(40),
  'lone surrogates \ud800 and \udc00 and a pair 😀 and a trailing high \ud83d',
  '<|endoftext|> special-token text stays text <|im_start|>',
  '\ufeffBOM first',
  Uint8Array.from([0xff, 0xfe, 0x41, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80]),
];

for (const mode of modes) {
  test(`HuffmanConversationCodec(${mode}) round-trips edge cases with the input's type`, () => {
    const codec = new HuffmanConversationCodec({ mode });
    for (const input of samples) {
      const frame = codec.encode(input);
      assert.equal(frame[0], mode === 'tokens' ? 0x11 : 0x10);
      const out = codec.decode(frame);
      assert.deepEqual(out, input);
      // Frames are also readable through the generic registry as bytes.
      const bytes = typeof input === 'string' ? null : input;
      if (bytes) assert.deepEqual(decodeFrame(frame), bytes);
    }
  });
}

test('every session of the shared corpus round-trips (bytes mode: all; tokens mode: every 4th)', () => {
  // Tokenizing all 11 MB takes several seconds; `strata bench codec` verifies every session,
  // message and the whole file in both modes.
  const tokens = new HuffmanConversationCodec({ mode: 'tokens' });
  const bytes = new HuffmanConversationCodec({ mode: 'bytes' });
  corpus.forEach((session, i) => {
    const text = session.turns.map((t) => t.content).join('\n');
    if (i % 4 === 0) assert.equal(tokens.decode(tokens.encode(text)), text);
    assert.equal(bytes.decode(bytes.encode(text)), text);
  });
});

test('huffman-tokens beats gzip -9 on real chat text (guarded floor)', () => {
  const codec = new HuffmanConversationCodec();
  let raw = 0;
  let ours = 0;
  let gzip = 0;
  let oursMsg = 0;
  let gzipMsg = 0;
  for (const session of corpus.slice(0, 150)) {
    const text = session.turns.map((t) => t.content).join('');
    raw += enc.encode(text).length;
    ours += codec.encode(text).length;
    gzip += zlib.gzipSync(text, { level: 9 }).length;
    for (const t of session.turns) {
      oursMsg += codec.encode(t.content).length;
      gzipMsg += zlib.gzipSync(t.content, { level: 9 }).length;
    }
  }
  assert.ok(raw > 100_000);
  assert.ok(ours < 0.85 * gzip, `per session: huffman-tokens ${ours} vs gzip ${gzip}`);
  assert.ok(oursMsg < 0.7 * gzipMsg, `per message: huffman-tokens ${oursMsg} vs gzip ${gzipMsg}`);
});

test('streaming: random chunk boundaries on both sides give the same bytes', () => {
  const rand = prng(42);
  const text = corpus.slice(0, 30).flatMap((s) => s.turns.map((t) => t.content)).join('\n');
  const data = enc.encode(text);
  for (let round = 0; round < 6; round++) {
    const encoder = new HuffmanStreamEncoder();
    const parts: Uint8Array[] = [];
    for (let p = 0; p < data.length; ) {
      const n = Math.floor(rand() ** 3 * 100_000) + 1;
      parts.push(encoder.push(data.subarray(p, p + n)));
      p += n;
    }
    parts.push(encoder.end());
    const stream = Buffer.concat(parts);
    const decoder = new HuffmanStreamDecoder();
    const out: Uint8Array[] = [];
    for (let p = 0; p < stream.length; ) {
      const n = Math.floor(rand() ** 4 * 20_000) + 1;
      out.push(decoder.push(stream.subarray(p, p + n)));
      p += n;
    }
    decoder.end();
    assert.deepEqual(new Uint8Array(Buffer.concat(out)), data);
  }
});

test('streaming: strings split inside a surrogate pair are encoded as one character', () => {
  const encoder = new HuffmanStreamEncoder();
  const text = 'ab😀cd🎉';
  const parts = [encoder.push(text.slice(0, 3)), encoder.push(text.slice(3, 7)), encoder.push(text.slice(7)), encoder.end()];
  const decoder = new HuffmanStreamDecoder();
  const out = decoder.push(Buffer.concat(parts));
  decoder.end();
  assert.equal(new TextDecoder().decode(out), text);
});

test('streaming: truncation, trailing bytes and the size limit give coded errors', () => {
  const encoder = new HuffmanStreamEncoder();
  const stream = Buffer.concat([encoder.push(enc.encode('hello '.repeat(20_000))), encoder.end()]);
  const truncated = new HuffmanStreamDecoder();
  truncated.push(stream.subarray(0, stream.length - 1));
  assert.throws(() => truncated.end(), (e) => isStrataError(e, 'STRATA_ERR_CODEC_TRUNCATED'));
  assert.throws(() => new HuffmanStreamDecoder().push(Buffer.concat([stream, Buffer.from([1])])), isCodecError);
  assert.throws(() => new HuffmanStreamDecoder({ maxDecodedBytes: 1000 }).push(stream), (e) => isStrataError(e, 'STRATA_ERR_CODEC_TOO_LARGE'));
});

test('package-merge: complete codes within the limit, deterministic, optimal on a known case', () => {
  const rand = prng(7);
  for (let round = 0; round < 50; round++) {
    const n = 2 + Math.floor(rand() * 300);
    const w = Array.from({ length: n }, () => (rand() < 0.2 ? 0 : Math.floor(rand() ** 6 * 1e6) + 1));
    w[0] = 1;
    w[1] = 1;
    const limit = Math.max(9, Math.ceil(Math.log2(n)) + 1);
    const l = codeLengths(w, limit);
    assert.deepEqual(codeLengths(w, limit), l);
    assert.equal(kraftSum(l, limit), 2 ** limit);
    for (let i = 0; i < n; i++) assert.ok(w[i] === 0 ? l[i] === 0 : l[i]! >= 1 && l[i]! <= limit);
  }
  // Fibonacci weights force a deep unconstrained tree: with a loose limit the cost must equal
  // plain Huffman's (sum of merged weights); with a tight one the limit must hold.
  const fib = [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144];
  const heap = [...fib];
  let huffmanCost = 0;
  while (heap.length > 1) {
    heap.sort((a, b) => a - b);
    const merged = heap.shift()! + heap.shift()!;
    huffmanCost += merged;
    heap.push(merged);
  }
  const cost = (l: Uint8Array) => fib.reduce((sum, w, i) => sum + w * l[i]!, 0);
  assert.equal(cost(codeLengths(fib, 15)), huffmanCost);
  const tight = codeLengths(fib, 4);
  assert.equal(kraftSum(tight, 4), 16);
  assert.ok(Math.max(...tight) <= 4 && cost(tight) > huffmanCost);
  const codes = canonicalCodes(Uint8Array.from([2, 1, 3, 3]), 3);
  assert.deepEqual([...codes], [0b10, 0b0, 0b110, 0b111]);
});

test('options are validated eagerly with coded errors', () => {
  assert.throws(() => new HuffmanConversationCodec({ mode: 'zip' as 'bytes' }), (e) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID'));
  assert.throws(() => new HuffmanConversationCodec({ maxDecodedBytes: -1 }), (e) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID'));
  const frame = new HuffmanConversationCodec().encode('x'.repeat(5000));
  assert.throws(() => new HuffmanConversationCodec({ maxDecodedBytes: 4999 }).decode(frame), (e) => isStrataError(e, 'STRATA_ERR_CODEC_TOO_LARGE'));
});

test('the codec reads frames of the zlib codecs too', () => {
  const data = enc.encode('read every codec the archive ever wrote');
  for (const name of ['raw', 'deflate', 'gzip', 'brotli']) assert.deepEqual(new HuffmanConversationCodec().decode(encodeFrame(getCodec(name), data)), data);
});
