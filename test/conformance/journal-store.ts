import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isStrataError } from '../../src/errors.js';
import type { JournalStore } from '../../src/journal/store.js';
import type { JournalRecord, TurnRecord } from '../../src/journal/types.js';
import type { StrataMetrics } from '../../src/metrics.js';
import { turn } from '../helpers/journal.js';

/**
 * The `JournalStore` conformance suite (src/journal/store.ts). Every driver must pass it.
 * `makeBacking` returns a fresh, empty backing (a data directory, a database schema) in which
 * journals of several instances are opened, closed and reopened.
 */
export interface JournalBacking {
  open(instanceId: string, options?: { metrics?: StrataMetrics }): Promise<JournalStore>;
  cleanup(): Promise<void>;
}

async function replayAll(journal: JournalStore): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  for await (const { record } of journal.replay()) out.push(record);
  return out;
}

const ids = (records: readonly JournalRecord[]): number[] => records.map((r) => (r as TurnRecord).turnId);

export function journalStoreSuite(name: string, makeBacking: () => Promise<JournalBacking>): void {
  describe(`JournalStore conformance: ${name}`, () => {
    const withBacking = (fn: (b: JournalBacking) => Promise<void>) => async () => {
      const b = await makeBacking();
      try {
        await fn(b);
      } finally {
        await b.cleanup();
      }
    };

    test(
      'appends replay in order after reopen (unicode, metadata, keys, epochs, deletes, voids); this run is not its own replay',
      withBacking(async (b) => {
        const journal = await b.open('a');
        assert.equal(journal.instanceId, 'a');
        const records: JournalRecord[] = [
          { ...turn('s1', 1, 'héllo wörld 你好 🎉'), metadata: { a: 1, nested: { b: [true, null] } }, userId: 'u-1', key: 'k:x#0/1', epoch: 3 },
          turn('s2', 1),
          turn('s1', 2, ''),
          { type: 'void', tenant: 't1', sessionId: 's1', turnId: 2, key: 'n:abc', epoch: 3 },
          { type: 'delete', tenant: 't1', sessionId: 's2', at: 9, upTo: 1 },
          { type: 'delete', tenant: 't1', sessionId: 's1', turnIds: [1], at: 10 },
        ];
        for (const r of records) await journal.append(r);
        assert.deepEqual(await replayAll(journal), [], 'a fresh journal has nothing to replay');
        await journal.close();
        const reopened = await b.open('a');
        assert.deepEqual(await replayAll(reopened), records);
        await reopened.append(turn('s1', 3));
        assert.deepEqual(await replayAll(reopened), records, "this run's appends are not part of its replay");
        await reopened.close();
      }),
    );

    test(
      'bad records are rejected with coded errors and store nothing; a closed journal refuses appends',
      withBacking(async (b) => {
        const journal = await b.open('a');
        await journal.append(turn('s1', 1));
        await assert.rejects(journal.append({ ...turn('s1', 3), role: 'robot' as never }), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ROLE'));
        await assert.rejects(journal.append({ ...turn('s1', 3), sessionId: 'a\u0000b' }), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
        await assert.rejects(journal.append({ ...turn('s1', 3), tenant: '../x' }), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
        await assert.rejects(journal.append({ ...turn('s1', 3), turnId: 0 }), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
        await assert.rejects(journal.appendMany([]), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
        // One bad record in a batch: nothing of the batch is stored.
        await assert.rejects(journal.appendMany([turn('s1', 4), { ...turn('s1', 5), role: 'robot' as never }]), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ROLE'));
        const circular: Record<string, unknown> = {};
        circular.self = circular;
        await assert.rejects(journal.append({ ...turn('s1', 3), metadata: circular }), (e) => isStrataError(e, 'STRATA_ERR_METADATA_INVALID'));
        assert.deepEqual(journal.health(), { ok: true });
        await journal.close();
        await journal.close();
        await assert.rejects(journal.append(turn('s1', 3)), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_CLOSED'));
        const reopened = await b.open('a');
        assert.deepEqual(ids(await replayAll(reopened)), [1]);
        await reopened.close();
      }),
    );

    test(
      'group commit: 200 concurrent appends are all durable, in far fewer commits than appends',
      withBacking(async (b) => {
        let commits = 0;
        let committed = 0;
        const journal = await b.open('a', { metrics: { journalFsync: (_s: number, n: number) => ((commits += 1), (committed += n)) } as StrataMetrics });
        await Promise.all(Array.from({ length: 200 }, (_, i) => journal.append(turn(`s${i % 7}`, i + 1))));
        assert.equal(committed, 200, 'every append was covered by a commit before it resolved');
        assert.ok(commits >= 1 && commits <= 20, `expected a few commits for 200 appends, got ${commits}`);
        await journal.close();
        const reopened = await b.open('a');
        const replayed = await replayAll(reopened);
        assert.equal(replayed.length, 200);
        assert.deepEqual(new Set(ids(replayed)).size, 200);
        await reopened.close();
      }),
    );

    test(
      'appendMany is one unit: its records replay together, in order',
      withBacking(async (b) => {
        const journal = await b.open('a');
        await journal.appendMany([turn('s', 1), turn('s', 2), turn('s', 3)]);
        await journal.close();
        const reopened = await b.open('a');
        assert.deepEqual(ids(await replayAll(reopened)), [1, 2, 3]);
        await reopened.close();
      }),
    );

    test(
      'checkpoint forgets what was marked archived or applied, and nothing else',
      withBacking(async (b) => {
        const journal = await b.open('a');
        for (let i = 1; i <= 5; i++) {
          await journal.append(turn('x', i));
          await journal.append(turn('y', i));
        }
        await journal.append({ type: 'delete', tenant: 't1', sessionId: 'z', at: 1, upTo: 3 });
        journal.markArchived('t1', 'x', 3);
        journal.markArchived('t1', 'y', 5);
        journal.markDeleteApplied('t1', 'z');
        journal.markReplayed();
        await journal.checkpoint();
        const pending = (await journal.readPending()).map((r) => `${r.sessionId}${r.type === 'delete' ? '-delete' : (r as TurnRecord).turnId}`);
        // Unmarked records stay; marked ones written before the oldest unmarked one are gone (a
        // driver may keep later marked ones: fs checkpoints a position).
        for (const kept of ['x4', 'x5']) assert.ok(pending.includes(kept), `${kept} is still pending: ${pending.join(',')}`);
        for (const gone of ['x1', 'x2', 'x3', 'y1', 'y2', 'y3']) assert.ok(!pending.includes(gone), `${gone} was checkpointed away: ${pending.join(',')}`);
        await journal.close();
        const reopened = await b.open('a');
        const replayed = ids((await replayAll(reopened)).filter((r) => r.sessionId === 'x'));
        assert.deepEqual(replayed, [4, 5], 'replay starts after what was checkpointed');
        reopened.markArchived('t1', 'x', 5);
        reopened.markReplayed();
        await reopened.checkpoint();
        assert.deepEqual(await reopened.readPending(), []);
        await reopened.close();
        const again = await b.open('a');
        assert.deepEqual(await replayAll(again), []);
        await again.close();
      }),
    );

    test(
      "readPending sees every instance's records, also those of an instance that is gone",
      withBacking(async (b) => {
        const a = await b.open('a');
        const c = await b.open('c');
        await a.append(turn('shared', 1));
        await c.append(turn('shared', 2));
        await a.append(turn('only-a', 1));
        // Instance c dies for good (closed, never reopened).
        await c.close();
        const seen = await a.readPending();
        assert.deepEqual(seen.map((r) => `${r.sessionId}/${(r as TurnRecord).turnId}`).sort(), ['only-a/1', 'shared/1', 'shared/2']);
        const d = await b.open('d');
        assert.equal((await d.readPending()).length, 3, 'a new instance sees them too');
        await d.close();
        await a.close();
      }),
    );

    test(
      'a second open of a live instance is refused; epochs increase, also when allocated concurrently',
      withBacking(async (b) => {
        const a = await b.open('a');
        await assert.rejects(b.open('a'), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_LOCKED'));
        const other = await b.open('other');
        const got = await Promise.all([...Array.from({ length: 6 }, () => a.allocateEpoch()), ...Array.from({ length: 6 }, () => other.allocateEpoch())]);
        assert.equal(new Set(got).size, 12, `epochs are unique: ${got.join(',')}`);
        const next = await other.allocateEpoch();
        assert.ok(got.every((e) => e < next), 'a later allocation is larger than every earlier one');
        await a.close();
        await other.close();
        const reopened = await b.open('a');
        assert.ok((await reopened.allocateEpoch()) > next, 'epochs survive a restart');
        await reopened.close();
      }),
    );
  });
}
