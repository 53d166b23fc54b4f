import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SearchHit } from '../../src/cache/api.js';
import { getTokenizer } from '../../src/context/gpt-tokenizer.js';
import { packContext } from '../../src/context/packer.js';
import { decodeTurn, decodeTurnWithKey, encodeTurn, encodedTurnKey } from '../../src/hot/encoding.js';
import { FRAME_HEADER_BYTES, decodePayload, encodeFrame } from '../../src/journal/format.js';
import type { TurnRecord } from '../../src/journal/types.js';
import { countMessageTokens, IMAGE_TOKENS, searchText, toolGroups, type MessageFields } from '../../src/message.js';
import { BLOCK_KINDS, SEGMENT_FLAGS } from '../../src/archive/format.js';
import { blockReader, parseSegment, parseSegmentHeader, type SegmentHeader } from '../../src/archive/segment.js';
import { decodeLargeFrames, decodeSegment } from '../../src/archive/segment-decode.js';
import { encodeSegment, encodeSegmentAsync } from '../../src/archive/segment-encode.js';
import { brotliFastCodec } from '../../src/codec/zlib.js';
import { isStrataError } from '../../src/errors.js';
import { decodeFrame, decodeFrameAsync, getCodec } from '../../src/codec/codec.js';
import '../../src/archive/options.js';
import type { Turn } from '../../src/types.js';

const tk = getTokenizer();

/** The one frame of a block-layout text column (after its per-turn lengths). */
function textFrame(body: Uint8Array, header: SegmentHeader): Uint8Array {
  const r = blockReader(body, header, BLOCK_KINDS.text);
  for (let i = 0; i < header.count; i++) r.varint();
  return body.subarray(r.pos, r.end);
}

const call: MessageFields = {
  role: 'assistant',
  content: null,
  tool_calls: [
    { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lisbon"}' } },
    { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Lisbon"}' } },
  ],
};
const parts: MessageFields = {
  role: 'user',
  name: 'ada',
  content: [
    { type: 'text', text: 'Where was this taken?' },
    { type: 'image_url', image_url: { url: 'https://example.com/p.jpg', detail: 'high' } },
  ],
};
const result: MessageFields = { role: 'tool', tool_call_id: 'call_1', name: 'get_weather', content: '{"temp":21}' };
const KINDS: MessageFields[] = [{ role: 'user', content: 'plain, with a comma, and 🦀' }, call, parts, result, { role: 'assistant', content: '', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '' } }] }];

test('hot encoding: every message kind round-trips, with and without metadata and append key; plain turns keep the old encoding', () => {
  for (const m of KINDS) {
    for (const metadata of [undefined, { a: 1, s: 'x,y' }]) {
      for (const key of [undefined, 'k:abc#0/1']) {
        const turn = { ...m, createdAt: 1_700_000_000_000, tokens: 12, ...(metadata ? { metadata } : {}), ...(key ? { key } : {}) };
        const encoded = encodeTurn(turn);
        const { key: _k, ...expected } = { turnId: 7, ...turn };
        assert.deepEqual(decodeTurn(7, encoded), expected);
        assert.equal(encodedTurnKey(encoded), key ?? null);
        assert.equal(decodeTurnWithKey(7, encoded).key, key);
      }
    }
  }
  assert.equal(encodeTurn({ role: 'user', content: 'Hello', createdAt: 1_700_000_000_000, tokens: 48 }), 'uloyw3v28,1c,,Hello');
});

test('journal records carry every message field', () => {
  const records: TurnRecord[] = KINDS.map((m, i) => ({ type: 'turn', tenant: 't', sessionId: 'user@example.com', turnId: i + 1, ...m, createdAt: 1_000 + i, key: `n:${i}` }));
  const frame = encodeFrame(records);
  assert.deepEqual(decodePayload(frame.subarray(FRAME_HEADER_BYTES), 'mem', 0), records);
});

test('a segment encoded off the event loop (compressAsync) is byte for byte the synchronous one', async () => {
  const turns: Turn[] = KINDS.map((m, i) => ({ turnId: i + 1, ...m, createdAt: 1_000 + i, tokens: i + 3, ...(i % 2 ? { metadata: { note: 'x'.repeat(80 * i) } } : {}), embedding: Float32Array.from({ length: 8 }, (_, k) => Math.sin(i + k)) }));
  for (const codec of [getCodec('raw'), getCodec('brotli'), brotliFastCodec, getCodec('huffman-tokens')]) {
    for (const layout of ['turn', 'block'] as const) {
      for (const encoding of ['none', 'int8', 'f16'] as const) {
        const options = { codec, layout, encoding, embedderId: 'e' };
        assert.deepEqual(await encodeSegmentAsync(turns, options), encodeSegment(turns, options), `${codec.name} ${layout} ${encoding}`);
      }
    }
  }
});

test('large columns are decoded off the event loop first (decodeLargeFrames); the turns are the same, a corrupt column fails as before', async () => {
  const place = { file: 'mem', segment: 0 };
  const turns: Turn[] = KINDS.map((m, i) => ({ turnId: i + 1, ...m, createdAt: 1_000 + i, ...(i % 2 ? { metadata: { note: `n${i} `.repeat(40) } } : {}) }));
  for (const codec of [getCodec('raw'), getCodec('deflate'), getCodec('gzip'), getCodec('brotli'), brotliFastCodec, getCodec('huffman-tokens')]) {
    for (const layout of ['turn', 'block'] as const) {
      const body = encodeSegment(turns, { codec, layout, encoding: 'none', embedderId: null });
      const header = parseSegment(body, place);
      assert.equal((await decodeLargeFrames(body, header)).size, 0, 'small columns stay on the caller');
      const frames = await decodeLargeFrames(body, header, {}, 1);
      const perTurn = (header.flags & SEGMENT_FLAGS.textPerTurn) !== 0;
      // Text (unless one frame per turn), metadata and message extensions: one frame each.
      assert.equal(frames.size, perTurn ? 2 : 3, `${codec.name} ${layout}`);
      assert.deepEqual(decodeSegment(body, header, place, { frames }), turns, `${codec.name} ${layout}`);
    }
  }
  // A 600 KiB message: its text column is decoded ahead, from the real archive read path too.
  const big: Turn[] = [{ turnId: 1, role: 'user', content: 'lorem ipsum dolor sit amet '.repeat(24_000), createdAt: 1 }];
  const body = encodeSegment(big, { codec: brotliFastCodec, layout: 'block', encoding: 'none', embedderId: null });
  const header = parseSegment(body, place);
  const frames = await decodeLargeFrames(body, header);
  assert.equal(frames.size, 1);
  assert.deepEqual(decodeSegment(body, header, place, { frames }), big);
  // A damaged payload: left to decodeSegment, which reports the column as corrupt, as without.
  const text = header.blocks.find((b) => b.kind === BLOCK_KINDS.text)!;
  const damaged = body.slice();
  damaged[text.offset + text.length - 3]! ^= 0xff;
  const damagedHeader = parseSegmentHeader(damaged, place);
  const ahead = await decodeLargeFrames(damaged, damagedHeader);
  assert.equal(ahead.size, 0);
  assert.throws(() => decodeSegment(damaged, damagedHeader, place, { frames: ahead }), (e) => isStrataError(e, 'STRATA_ERR_ARCHIVE_CORRUPT') && /block text/.test(e.message));
  const payload = textFrame(body, header);
  await assert.rejects(decodeFrameAsync(payload.subarray(0, payload.length - 9)), (e) => isStrataError(e, 'STRATA_ERR_CODEC_TRUNCATED') || isStrataError(e, 'STRATA_ERR_CODEC_CORRUPT'));
  assert.deepEqual(await decodeFrameAsync(payload), decodeFrame(payload));
});

test('archive segment v2: message block round-trips with every codec; plain segments have no message block', () => {
  const turns: Turn[] = KINDS.map((m, i) => ({ turnId: i + 1, ...m, createdAt: 1_000 + i }));
  for (const codec of ['raw', 'deflate', 'brotli', 'huffman-tokens']) {
    for (const layout of ['turn', 'block'] as const) {
      const body = encodeSegment(turns, { codec: getCodec(codec), layout, encoding: 'none', embedderId: null });
      const header = parseSegment(body, { file: 'mem', segment: 0 });
      assert.ok(header.blocks.some((b) => b.kind === 8));
      assert.deepEqual(decodeSegment(body, header, { file: 'mem', segment: 0 }), turns);
    }
  }
  const plain = encodeSegment([{ turnId: 1, role: 'user', content: 'hi', createdAt: 1 }], { codec: getCodec('raw'), layout: 'block', encoding: 'none', embedderId: null });
  assert.ok(!parseSegment(plain, { file: 'mem', segment: 0 }).blocks.some((b) => b.kind === 8));
  // A version-1 record may not carry the message block.
  const body = encodeSegment(turns, { codec: getCodec('raw'), layout: 'block', encoding: 'none', embedderId: null });
  assert.throws(() => parseSegmentHeader(body, { file: 'mem', segment: 0 }, 1), (e) => isStrataError(e, 'STRATA_ERR_ARCHIVE_CORRUPT') && /unknown in format version 1/.test(e.message));
});

test('search text and token counts cover text parts, tool names, arguments and results', () => {
  assert.equal(searchText(call), 'get_weather {"city":"Lisbon"}\nget_time {"tz":"Europe/Lisbon"}');
  assert.equal(searchText(parts), 'Where was this taken?');
  assert.equal(searchText(result), 'get_weather\n{"temp":21}');
  const count = (t: string) => tk.count(t);
  assert.equal(countMessageTokens(parts, count), tk.count('Where was this taken?') + IMAGE_TOKENS.high + tk.count('ada'));
  assert.equal(countMessageTokens(call, count), ['get_weather', '{"city":"Lisbon"}', 'call_1', 'get_time', '{"tz":"Europe/Lisbon"}', 'call_2'].reduce((n, s) => n + tk.count(s), 0));
  assert.equal(countMessageTokens({ role: 'user', content: 'hello world' }, count), tk.count('hello world'));
});

/** A session: chat, then a tool round (call at 11, results at 12-13), then more chat. */
function session(): Turn[] {
  const turns: Turn[] = [];
  for (let i = 1; i <= 30; i++) {
    if (i === 11) turns.push({ turnId: i, role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'lookup', arguments: '{"q":"zebra"}' } }, { id: 'b', type: 'function', function: { name: 'lookup', arguments: '{"q":"okapi"}' } }], createdAt: i });
    else if (i === 12 || i === 13) turns.push({ turnId: i, role: 'tool', tool_call_id: i === 12 ? 'a' : 'b', content: `result ${i} ${'fact '.repeat(10)}`, createdAt: i });
    else turns.push({ turnId: i, role: i % 2 ? 'user' : 'assistant', content: `turn ${i} ${'word '.repeat(15)}`, createdAt: i });
  }
  return turns;
}
const hitOf = (t: Turn, score: number): SearchHit => ({ tenant: 't', sessionId: 's', turnId: t.turnId, role: t.role, content: t.content, ...(t.tool_calls ? { tool_calls: t.tool_calls } : {}), ...(t.tool_call_id ? { tool_call_id: t.tool_call_id } : {}), createdAt: t.createdAt, score, scores: { dense: null, lexical: null, fused: score }, neighbour: false });

test('packer: a tool call and its results are packed together or not at all, and explain says so', () => {
  const all = session();
  for (const maxTokens of [40, 80, 120, 200, 300, 500, 800]) {
    for (const recentFrom of [10, 11, 12, 13, 14, 20]) {
      const recent = all.slice(recentFrom);
      // A relevant hit on one result of the group.
      const r = packContext({ recent, relevant: [hitOf(all[12]!, 1)], summaries: [], known: all, maxTokens, tokenizer: tk });
      const ids = new Set(r.messages.map((m) => m.turnId));
      const group = [11, 12, 13].filter((id) => ids.has(id));
      assert.ok(group.length === 0 || group.length === 3, `budget ${maxTokens}, recent from ${recentFrom + 1}: ${[...ids].join(',')}`);
      for (const e of r.explain) if (e.turnId !== undefined && [11, 12, 13].includes(e.turnId)) assert.deepEqual(e.toolGroup, [11, 12, 13]);
      assert.ok(r.tokens <= maxTokens);
      assert.deepEqual(
        r.messages.map((m) => m.turnId),
        [...r.messages.map((m) => m.turnId)].sort((a, b) => a - b),
      );
    }
  }
  // The group is reached through its result: all three come in.
  const r = packContext({ recent: all.slice(25), relevant: [hitOf(all[12]!, 1)], summaries: [], known: all, maxTokens: 400, tokenizer: tk });
  assert.deepEqual(r.messages.map((m) => m.turnId).filter((id) => id >= 11 && id <= 13), [11, 12, 13]);
  assert.deepEqual(r.messages.find((m) => m.turnId === 11)!.tool_calls, all[10]!.tool_calls);
  assert.ok(!r.messages.some((m) => 'embedding' in m));
  // A unit that alone exceeds the budget is left out whole, never cut.
  const tiny = packContext({ recent: all.slice(10, 13), relevant: [], summaries: [], known: all, maxTokens: 20, tokenizer: tk });
  assert.deepEqual(tiny.messages, []);
  assert.deepEqual(toolGroups(all).get(12), [11, 12, 13]);
});
