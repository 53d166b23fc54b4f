import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERROR_CATALOG, StrataError, isStrataError } from '../../src/errors.js';

test('docs/errors.md lists exactly the codes of the catalog, with the same HTTP status', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map<string, number>();
  for (const m of doc.matchAll(/^\| `(STRATA_ERR_[A-Z0-9_]+)` \| (\d{3}) \|/gm)) documented.set(m[1]!, Number(m[2]));
  const catalog = new Map(Object.entries(ERROR_CATALOG).map(([code, [status]]) => [code, status]));
  assert.deepEqual([...documented.keys()].sort(), [...catalog.keys()].sort());
  for (const [code, status] of catalog) assert.equal(documented.get(code), status, `status of ${code}`);
});

test('StrataError carries its code, status and details', () => {
  const err = new StrataError('STRATA_ERR_INVALID_ID', 'bad', { details: { kind: 'session' } });
  assert.equal(err.code, 'STRATA_ERR_INVALID_ID');
  assert.equal(err.status, 400);
  assert.deepEqual(err.details, { kind: 'session' });
  const asUnknown: unknown = err;
  assert.ok(isStrataError(asUnknown, 'STRATA_ERR_INVALID_ID'));
  assert.ok(!isStrataError(asUnknown, 'STRATA_ERR_NOT_FOUND'));
  assert.ok(err.message.startsWith('STRATA_ERR_INVALID_ID'));
});
