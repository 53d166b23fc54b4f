/**
 * The recovery index (docs/consistency.md, "Redis loss"): which journaled records a re-seed
 * may bring back after the hot tier lost its data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecoveryIndex, allocateEpoch, clientKey, parseClientKey } from '../../src/cache/recovery.js';
import type { JournalRecord, TurnRecord } from '../../src/journal/types.js';

const REF = { tenant: 't', sessionId: 's' };
function turn(turnId: number, key: string, epoch: number, content = `m${turnId}`): TurnRecord {
  return { type: 'turn', ...REF, turnId, role: 'user', content, createdAt: 1, key, epoch };
}

test('a void cancels only the record of its epoch: a retry journaled under the same id and key later survives', async () => {
  const key = clientKey('req-1', 0, 1).appendKey;
  const records: JournalRecord[] = [
    turn(213, key, 4),
    { type: 'void', ...REF, turnId: 213, key, epoch: 4 },
    turn(213, key, 5),
  ];
  const index = await RecoveryIndex.build(undefined, records);
  assert.deepEqual(index.turns(REF, 0).turns.map((r) => [r.turnId, r.epoch]), [[213, 5]]);
  const onlyVoided = await RecoveryIndex.build(undefined, records.slice(0, 2));
  assert.deepEqual(onlyVoided.turns(REF, 0).turns, [], 'the voided record alone never comes back');
});

test('two records claiming one id: the later epoch wins; ids at or below a deletion floor are gone', async () => {
  const index = await RecoveryIndex.build(undefined, [
    turn(7, 'n:a', 2, 'paused writer'),
    turn(7, 'n:b', 3, 'after the loss'),
    turn(8, 'n:c', 3),
    { type: 'delete', ...REF, at: 1, upTo: 7 },
    turn(9, 'n:d', 3),
  ]);
  const { turns, deletedUpTo } = index.turns(REF, 0);
  assert.equal(deletedUpTo, 7);
  assert.deepEqual(turns.map((r) => r.turnId), [8, 9]);
  const raw = await RecoveryIndex.build(undefined, [turn(7, 'n:a', 2, 'paused writer'), turn(7, 'n:b', 3, 'after the loss')]);
  assert.deepEqual(raw.turns(REF, 0).turns.map((r) => r.content), ['after the loss']);
});

test('client append keys carry the batch size; the idempotency entry does not', () => {
  const k = clientKey('a/b#c', 2, 3);
  assert.equal(k.entry, 'k:a/b#c#2');
  assert.deepEqual(parseClientKey(k.appendKey), { entry: 'k:a/b#c#2', batchSize: 3 });
});

test('epochs are allocated durably and strictly increasing, also by concurrent allocators', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-epochs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const got = await Promise.all(Array.from({ length: 12 }, () => allocateEpoch(dir)));
  assert.equal(new Set(got).size, 12, 'no number given twice');
  const next = await allocateEpoch(dir);
  assert.ok(next > Math.max(...got));
  assert.ok((await readdir(join(dir, 'epochs'))).length <= 10, 'old markers are pruned');
});
