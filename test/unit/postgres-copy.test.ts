import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStrataError } from '../../src/errors.js';
import { integer, literal, parseBinaryCopy } from '../../src/postgres/copy.js';

const HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
function row(value: Buffer | null): Buffer {
  const head = Buffer.alloc(6);
  head.writeInt16BE(1, 0);
  head.writeInt32BE(value === null ? -1 : value.length, 2);
  return Buffer.concat([head, value ?? Buffer.alloc(0)]);
}
const TRAILER = Buffer.from([0xff, 0xff]);

test('a binary COPY stream of one bytea column gives its values in order; nulls are left out', () => {
  const a = Buffer.from([0, 1, 2, 255, 0x5c, 0x27]);
  const b = Buffer.alloc(0);
  const values = parseBinaryCopy(Buffer.concat([HEADER, row(a), row(null), row(b), TRAILER]));
  assert.deepEqual(values.map((v) => [...v]), [[...a], []]);
  assert.deepEqual(parseBinaryCopy(Buffer.concat([HEADER, TRAILER])), []);
});

test('a damaged binary COPY stream is refused with a coded error', () => {
  const good = Buffer.concat([HEADER, row(Buffer.from('abc')), TRAILER]);
  const cases = [
    Buffer.from('PGCOPY'),
    Buffer.concat([Buffer.from('XGCOPY\n\xff\r\n\0', 'latin1'), good.subarray(11)]),
    good.subarray(0, good.length - 2),
    good.subarray(0, good.length - 4),
    Buffer.concat([HEADER, Buffer.from([0, 2]), TRAILER]),
  ];
  for (const bad of cases) assert.throws(() => parseBinaryCopy(bad), (err) => isStrataError(err) && err.code === 'STRATA_ERR_INTERNAL');
});

test('COPY statements are built from escaped literals and safe integers only', () => {
  assert.equal(literal("it's"), "'it''s'");
  assert.equal(literal('a\\b'), " E'a\\\\b'");
  assert.equal(integer(42), '42');
  for (const bad of [1.5, Number.NaN, 2 ** 60]) assert.throws(() => integer(bad), (err) => isStrataError(err) && err.code === 'STRATA_ERR_INTERNAL');
});
