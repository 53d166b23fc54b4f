import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeFrame, frameFromPayload, getCodec } from '../../src/codec/codec.js';
import { HuffmanConversationCodec } from '../../src/codec/huffman-codec.js';
import { isStrataError } from '../../src/errors.js';

const isCodecError = (e: unknown) => isStrataError(e) && e.code.startsWith('STRATA_ERR_CODEC_');

function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Decoding must give back the original or throw a coded codec error: never other text, never a crash. */
function assertSafe(codec: HuffmanConversationCodec, frame: Uint8Array, original: string | Uint8Array): void {
  let out: string | Uint8Array;
  try {
    out = codec.decode(frame);
  } catch (e) {
    assert.ok(isCodecError(e), `uncoded error: ${String(e)}`);
    return;
  }
  // The kind (string or bytes) is guarded against single-bit flips only; content is CRC-checked.
  const bytes = (v: string | Uint8Array) => (typeof v === 'string' ? new TextEncoder().encode(v) : v);
  assert.deepEqual(bytes(out), bytes(original));
}

const small = ['Hi! 👋 How are you?', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab', 'def f(x):\n    return x  # 你好'];

for (const mode of ['tokens', 'bytes'] as const) {
  test(`${mode}: every single-bit flip of small frames decodes to the original or throws a coded error`, () => {
    const codec = new HuffmanConversationCodec({ mode, maxDecodedBytes: 1 << 20 });
    let detected = 0;
    for (const text of small) {
      const frame = codec.encode(text);
      for (let bit = 0; bit < frame.length * 8; bit++) {
        const bad = frame.slice();
        bad[bit >> 3]! ^= 0x80 >> (bit & 7);
        try {
          assert.deepEqual(codec.decode(bad), text);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.ok(isCodecError(e), `bit ${bit}: ${String(e)}`);
          detected++;
        }
      }
      for (let cut = 0; cut < frame.length; cut++) assert.throws(() => codec.decode(frame.subarray(0, cut)), isCodecError);
    }
    assert.ok(detected > 0);
  });
}

test('random corruption fuzz (time-bounded): no hang, no crash, no wrong output', () => {
  const rand = prng(1234);
  const codecs = [new HuffmanConversationCodec({ mode: 'tokens', maxDecodedBytes: 1 << 20 }), new HuffmanConversationCodec({ mode: 'bytes', maxDecodedBytes: 1 << 20 })];
  const alphabet = 'abc de\nfg的😀<>{}0123';
  const deadline = performance.now() + 2000;
  let rounds = 0;
  while (performance.now() < deadline) {
    rounds++;
    const len = Math.floor(rand() ** 2 * 3000);
    let text = '';
    for (let i = 0; i < len; i++) text += alphabet[Math.floor(rand() * alphabet.length)];
    const codec = codecs[rounds & 1]!;
    const frame = codec.encode(text);
    const bad = frame.slice(0, Math.max(1, frame.length - (rand() < 0.2 ? Math.floor(rand() * 4) : 0)));
    const edits = 1 + Math.floor(rand() * 4);
    for (let e = 0; e < edits; e++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
    assertSafe(codec, bad, text);
    // Random payloads behind a valid header with a matching length exercise the bit decoders.
    const garbage = Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256));
    const forged = frameFromPayload(rounds & 1 ? 0x10 : 0x11, new Uint8Array(Math.floor(rand() * 200)), garbage);
    try {
      decodeFrame(forged);
    } catch (e) {
      assert.ok(isCodecError(e), `uncoded error: ${String(e)}`);
    }
  }
  assert.ok(rounds > 10);
});

test('a hostile declared length is refused before allocation', () => {
  const frame = encodeFrame(getCodec('huffman-bytes'), new Uint8Array(10));
  const forged = Uint8Array.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0, 0, 2, 0]);
  assert.throws(() => decodeFrame(forged), (e) => isStrataError(e, 'STRATA_ERR_CODEC_TOO_LARGE'));
  assert.deepEqual(decodeFrame(frame), new Uint8Array(10));
});
