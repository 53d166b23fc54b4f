import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateId, toSessionRef } from '../../src/ids.js';
import { isStrataError } from '../../src/errors.js';
import { archiveStem, sessionIdOfStem, stemNeedsRecordedId } from '../../src/archive/layout.js';

test('tenant ids keep the file-safe alphabet', () => {
  for (const bad of ['', '.', '..', '../x', '/etc/passwd', 'a/b', 'a\\b', 'a\0b', 'x'.repeat(300), '{a}', 'a:b', ' a', '.hidden', 5, null]) {
    assert.throws(() => validateId('tenant', bad), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'), String(bad));
  }
});

test('session and user ids: any text of 1-256 characters without control characters', () => {
  for (const ok of ['a', 'sharegpt_00qHEQ6_0', 'conv-26', 'user@example.com', 'user:42', '{a}', '../x', '..', ' a ', 'Grüße, 世界 🦀', 'x'.repeat(256)]) {
    assert.equal(validateId('session', ok), ok);
    assert.equal(validateId('user', ok), ok);
  }
  for (const bad of ['', 'x'.repeat(257), 'a\0b', 'a\nb', 'tab\there', '\u007f', '\u0085', 5, null, undefined]) {
    assert.throws(() => validateId('session', bad), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'), JSON.stringify(bad));
  }
  assert.throws(() => validateId('user', 'a\ud800'), (e) => isStrataError(e, 'STRATA_ERR_TEXT_INVALID'));
  assert.deepEqual(toSessionRef('s1'), { tenant: 'default', sessionId: 's1' });
  assert.deepEqual(toSessionRef('user@example.com', 't'), { tenant: 't', sessionId: 'user@example.com' });
});

test('archive file names: safe ids as they are, others encoded reversibly or hashed, never colliding', () => {
  const ids = ['a', 'conv-26', 'user@example.com', 'user:42', '..', '.', '../x', '/etc/passwd', 'A', '~a', '~~a', 'Grüße 🦀', 'x'.repeat(128), 'x'.repeat(129), 'é'.repeat(256), '🦀'.repeat(128), 'é'.repeat(255)];
  const stems = new Map<string, string>();
  for (const id of ids) {
    const stem = archiveStem(id);
    assert.ok(!stems.has(stem), `${id} and ${stems.get(stem)} share ${stem}`);
    stems.set(stem, id);
    assert.ok(/^[A-Za-z0-9_~.-]+$/.test(stem) && !stem.startsWith('.') && Buffer.byteLength(stem) < 200, stem);
    const back = sessionIdOfStem(stem);
    if (stemNeedsRecordedId(stem)) assert.equal(back, null);
    else assert.equal(back, id);
  }
  assert.equal(archiveStem('conv-26'), 'conv-26');
  assert.equal(sessionIdOfStem('~not base64!'), undefined);
  // Only the canonical spelling names an id: the raw id "a" is never also "~YQ".
  assert.equal(sessionIdOfStem('~YQ'), undefined);
});
