import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeMetaRecord, encodeSummaryRecord, indexFile, readTurns } from '../../src/archive/file.js';
import { RECORD_TYPES, encodeRecord } from '../../src/archive/format.js';
import '../../src/archive/options.js';
import { encodeSegment } from '../../src/archive/segment-encode.js';
import { getCodec } from '../../src/codec/codec.js';
import { isStrataError } from '../../src/errors.js';
import type { ArchivedTurn } from '../../src/types.js';
import { makeTurns } from '../conformance/archive-store.js';

/*
 * Invariant 3 on a small archive file: every single-bit flip and every truncation either reads
 * back the original turns or throws a coded error — never wrong text, never a crash or a hang.
 */

function smallArchive(codec: string, layout: 'turn' | 'block', encoding: 'int8' | 'f16'): { bytes: Uint8Array; turns: ArchivedTurn[]; boundaries: number[] } {
  const turns = makeTurns(1, 6, { dims: 4 });
  const c = getCodec(codec);
  const parts = [
    encodeMetaRecord({ userId: 'u', createdAt: 1 }),
    encodeRecord(RECORD_TYPES.segment, encodeSegment(turns.slice(0, 3), { codec: c, layout, encoding, embedderId: 'e' })),
    encodeRecord(RECORD_TYPES.segment, encodeSegment(turns.slice(3), { codec: c, layout, encoding, embedderId: 'e' })),
    encodeSummaryRecord({ fromTurn: 1, toTurn: 6, text: 'summary', createdAt: 2 }),
  ];
  const boundaries: number[] = [];
  let pos = 0;
  for (const p of parts) boundaries.push((pos += p.length));
  return { bytes: Buffer.concat(parts), turns, boundaries };
}


async function readAsync(bytes: Uint8Array): Promise<ArchivedTurn[]> {
  const index = indexFile('x', bytes);
  return readTurns(index, {}, async (s) => bytes.subarray(s.bodyOffset, s.bodyOffset + s.bodyLength));
}

for (const [codec, layout, encoding] of [['deflate', 'block', 'int8'], ['raw', 'turn', 'f16'], ['huffman-tokens', 'turn', 'int8']] as const) {
  test(`every single-bit flip of a small ${codec}/${layout}/${encoding} archive reads the original or throws a coded error`, async () => {
    const { bytes } = smallArchive(codec, layout, encoding);
    const original = await readAsync(bytes);
    assert.equal(original.length, 6);
    const expected = JSON.stringify(original, (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v));
    let coded = 0;
    let intact = 0;
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const copy = bytes.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      try {
        const got = await readAsync(copy);
        assert.equal(JSON.stringify(got, (_k, v: unknown) => (v instanceof Float32Array ? Array.from(v) : v)), expected, `bit ${bit} returned different turns`);
        intact++;
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        assert.ok(isStrataError(err), `bit ${bit}: ${String(err)}`);
        assert.ok(err.code.startsWith('STRATA_ERR_ARCHIVE_') || err.code.startsWith('STRATA_ERR_CODEC_'), `bit ${bit}: ${err.code}`);
        coded++;
      }
    }
    assert.equal(coded + intact, bytes.length * 8);
    assert.ok(coded > bytes.length * 6, 'almost every flip outside the summary record must be detected');
  });
}

test('every truncation of a small archive reads a prefix of complete segments and never throws', async () => {
  const { bytes, boundaries } = smallArchive('deflate', 'block', 'int8');
  const original = await readAsync(bytes);
  for (let len = 0; len <= bytes.length; len++) {
    const cut = bytes.subarray(0, len);
    const index = indexFile('x', cut);
    const got = await readAsync(cut);
    const expectedCount = len >= boundaries[2]! ? 6 : len >= boundaries[1]! ? 3 : 0;
    assert.equal(got.length, expectedCount, `length ${len}`);
    assert.deepEqual(got.map((t) => t.content), original.slice(0, expectedCount).map((t) => t.content));
    const lastBoundary = [0, ...boundaries].filter((b) => b <= len).pop()!;
    assert.equal(index.validEnd, lastBoundary, `length ${len}: valid end`);
    assert.equal(index.tornBytes, len - lastBoundary);
    assert.deepEqual(index.damage, []);
  }
});

test('a zero-filled tail (an interrupted append after the size grew) counts as torn, not as damage', async () => {
  const { bytes } = smallArchive('raw', 'block', 'int8');
  const padded = Buffer.concat([bytes, Buffer.alloc(100)]);
  const index = indexFile('x', padded);
  assert.equal(index.tornBytes, 100);
  assert.deepEqual(index.damage, []);
  assert.equal((await readAsync(padded)).length, 6);
});
