import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeFrame, getCodec, readVarint, writeVarint } from '../../src/codec/codec.js';
import { isStrataError } from '../../src/errors.js';
import '../../src/codec/zlib.js';

const text = new TextEncoder().encode('Hello, Strata! '.repeat(50) + 'héllo wörld 你好 🎉');

for (const name of ['raw', 'deflate', 'gzip', 'brotli']) {
  test(`${name}: round-trips, and rejects truncation and a flipped CRC with coded errors`, () => {
    const codec = getCodec(name);
    for (const input of [new Uint8Array(0), new Uint8Array([7]), text]) {
      const frame = encodeFrame(codec, input);
      assert.deepEqual(decodeFrame(frame), input);
    }
    const frame = encodeFrame(codec, text);
    for (const cut of [0, 1, 5, frame.length - 1]) {
      assert.throws(() => decodeFrame(frame.subarray(0, cut)), (e) => isStrataError(e) && e.code.startsWith('STRATA_ERR_CODEC_'));
    }
    const bad = frame.slice();
    bad[bad.length > 8 ? 3 : 2]! ^= 1;
    assert.throws(() => decodeFrame(bad), (e) => isStrataError(e) && e.code.startsWith('STRATA_ERR_CODEC_'));
    assert.throws(() => decodeFrame(frame, { maxDecodedBytes: 10 }), (e) => isStrataError(e, 'STRATA_ERR_CODEC_TOO_LARGE'));
  });
}

test('varints round-trip at their boundaries and reject overlong encodings', () => {
  const buf = new Uint8Array(5);
  for (const v of [0, 1, 127, 128, 16383, 16384, 2 ** 32 - 1]) {
    const end = writeVarint(buf, 0, v);
    assert.deepEqual(readVarint(buf, 0), [v, end]);
  }
  assert.throws(() => readVarint(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), 0), (e) => isStrataError(e, 'STRATA_ERR_CODEC_CORRUPT'));
  assert.throws(() => decodeFrame(new Uint8Array([0x7f, 1, 0, 0, 0, 0, 0])), (e) => isStrataError(e, 'STRATA_ERR_CODEC_UNKNOWN'));
});
