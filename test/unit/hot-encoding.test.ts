import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isStrataError } from '../../src/errors.js';
import { decodeTurn, encodeTurn, turnBytes } from '../../src/hot/encoding.js';
import { ROLES } from '../../src/types.js';
import type { Turn } from '../../src/types.js';

function randomText(n: number): string {
  const pool = ['a', ',', '{', '}', '"', '\n', 'é', '日', '🙂', ' ', '0', '\u0000'];
  let s = '';
  for (let i = 0; i < n; i++) s += pool[Math.floor(Math.random() * pool.length)];
  return s;
}

test('encode/decode round-trips random turns exactly', () => {
  const deadline = performance.now() + 300;
  let n = 0;
  while (performance.now() < deadline) {
    const t: Turn = { turnId: n + 1, role: ROLES[n % ROLES.length]!, content: randomText(Math.floor(Math.random() * 60)), createdAt: Math.floor(Math.random() * 2 ** 45) };
    if (Math.random() < 0.5) t.tokens = Math.floor(Math.random() * 1e6);
    if (Math.random() < 0.5) t.metadata = { k: randomText(10), n: [1, { x: randomText(3) }] };
    const { turnId, ...fields } = t;
    const encoded = encodeTurn(fields);
    assert.deepEqual(decodeTurn(turnId, encoded), t);
    assert.equal(turnBytes(turnId, encoded), String(turnId).length + Buffer.byteLength(encoded));
    n++;
  }
  assert.ok(n > 100);
});

test('the encoding is compact: a short header, no JSON envelope', () => {
  const encoded = encodeTurn({ role: 'user', content: 'Hello', createdAt: 1_700_000_000_000, tokens: 48 });
  assert.equal(encoded, 'uloyw3v28,1c,,Hello');
});

test('a value that is not an encoded turn gives a coded error', () => {
  for (const bad of ['', 'x123,,,hi', 'u123', 'u123,,', 'uzz$,,,', 'u1,,zz,{}', 'u1,,2,{x']) {
    assert.throws(() => decodeTurn(1, bad), (e: unknown) => isStrataError(e, 'STRATA_ERR_INTERNAL'), JSON.stringify(bad));
  }
});
