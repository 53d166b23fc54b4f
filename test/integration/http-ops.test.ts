/**
 * Operability of the service under faults it must report (docs/consistency.md): readiness
 * follows the journal, outages answer 503 with Retry-After, and every error answer is counted by
 * code and route in /metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConversationMemory, HealthReport } from '../../src/cache/api.js';
import { StrataError } from '../../src/errors.js';
import { authA, startHarness } from './http-harness.js';

test('readiness fails while the journal cannot write, and a refused append is a 503 with Retry-After', async (t) => {
  // Fault injection: the core reports a journal that just failed with a full disk.
  let diskFull = false;
  const { app } = await startHarness(t, {
    wrap: (real) =>
      new Proxy(real, {
        get(target, prop, receiver) {
          if (prop === 'health') {
            return async (): Promise<HealthReport> => {
              const report = await target.health();
              return diskFull ? { ...report, ok: false, journal: { ok: false, code: 'STRATA_ERR_STORAGE_FULL', error: 'ENOSPC' } } : report;
            };
          }
          if (prop === 'addMessage' && diskFull) {
            return () => Promise.reject(new StrataError('STRATA_ERR_STORAGE_FULL', 'journal write failed: ENOSPC'));
          }
          return Reflect.get(target, prop, receiver) as unknown;
        },
      }) as ConversationMemory,
  });
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  diskFull = true;
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  assert.equal(ready.statusCode, 503);
  assert.equal(ready.json().journal.code, 'STRATA_ERR_STORAGE_FULL');
  const add = await app.inject({ method: 'POST', url: '/v1/sessions/s1/messages', headers: authA, payload: { role: 'user', content: 'hello' } });
  assert.equal(add.statusCode, 503);
  assert.equal(add.headers['retry-after'], '1');
  assert.equal(add.json().error.code, 'STRATA_ERR_STORAGE_FULL');
  diskFull = false;
  assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'ready again when the journal writes again');
});

test('every error answer is counted by code and route in /metrics', async (t) => {
  const { app } = await startHarness(t);
  await app.inject({ method: 'POST', url: '/v1/sessions/s1/messages', headers: authA, payload: { role: 'user', content: 123 } });
  await app.inject({ method: 'POST', url: '/v1/sessions/s1/messages', headers: authA, payload: { role: 'user', content: 'ok' } });
  await app.inject({ method: 'POST', url: '/v1/sessions/s1/messages', headers: { ...authA, 'idempotency-key': 'k1' }, payload: { role: 'user', content: 'first' } });
  const mismatch = await app.inject({ method: 'POST', url: '/v1/sessions/s1/messages', headers: { ...authA, 'idempotency-key': 'k1' }, payload: { role: 'user', content: 'other' } });
  assert.equal(mismatch.statusCode, 422);
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  assert.match(text, /strata_errors_total\{code="STRATA_ERR_VALIDATION",route="\/v1\/sessions\/:id\/messages"\} 1/);
  assert.match(text, /strata_errors_total\{code="STRATA_ERR_IDEMPOTENCY_MISMATCH",route="\/v1\/sessions\/:id\/messages"\} 1/);
});
