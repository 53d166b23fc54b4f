import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeFrame, encodeFrame, getCodec } from '../../src/codec/codec.js';
import { HuffmanConversationCodec } from '../../src/codec/huffman-codec.js';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(join(here, '../fixtures/codec/golden.json'), 'utf8')) as Array<{ codec: string; input?: string; inputHex?: string; frame: string }>;
/** zlib's and brotli's encoders may change output between library versions; their frames are checked by decoding only. */
const decodeOnly = new Set(['deflate', 'gzip', 'brotli']);

test('golden vectors: committed frames decode to their inputs, and ours encode to the same bytes', () => {
  const ids = new Set<number>();
  for (const v of vectors) {
    const frame = new Uint8Array(Buffer.from(v.frame, 'hex'));
    const input = v.inputHex !== undefined ? new Uint8Array(Buffer.from(v.inputHex, 'hex')) : v.input!;
    ids.add(frame[0]!);
    if (v.codec.startsWith('HuffmanConversationCodec/')) {
      const codec = new HuffmanConversationCodec({ mode: v.codec.endsWith('bytes') ? 'bytes' : 'tokens' });
      assert.deepEqual(codec.decode(frame), input);
      assert.equal(Buffer.from(codec.encode(input)).toString('hex'), v.frame, `${v.codec} ${JSON.stringify(input)}`);
      continue;
    }
    const bytes = new TextEncoder().encode(input as string);
    assert.deepEqual(decodeFrame(frame), bytes);
    if (!decodeOnly.has(v.codec)) assert.equal(Buffer.from(encodeFrame(getCodec(v.codec), bytes)).toString('hex'), v.frame, `${v.codec} ${JSON.stringify(input)}`);
  }
  assert.deepEqual([...ids].sort((a, b) => a - b), [0x00, 0x01, 0x02, 0x03, 0x10, 0x11]);
});
