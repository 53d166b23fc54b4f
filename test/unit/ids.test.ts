import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateId, toSessionRef } from '../../src/ids.js';
import { isStrataError } from '../../src/errors.js';

test('ids that could name a path outside the data directory or break key syntax are rejected', () => {
  for (const bad of ['', '.', '..', '../x', '/etc/passwd', 'a/b', 'a\\b', 'a\0b', 'x'.repeat(300), '{a}', 'a:b', ' a', '.hidden', 5, null]) {
    assert.throws(() => validateId('session', bad), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'), String(bad));
  }
});

test('ordinary ids pass', () => {
  for (const ok of ['a', 'sharegpt_00qHEQ6_0', 'conv-26', 'A.b-c_d', 'x'.repeat(128)]) assert.equal(validateId('session', ok), ok);
  assert.deepEqual(toSessionRef('s1'), { tenant: 'default', sessionId: 's1' });
  assert.deepEqual(toSessionRef('s1', 't'), { tenant: 't', sessionId: 's1' });
});
