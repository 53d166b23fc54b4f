import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStrataError } from '../../src/errors.js';
import { decodePayload, encodeFileHeader, encodeFrame, FILE_HEADER_BYTES, FRAME_HEADER_BYTES } from '../../src/journal/format.js';
import { Journal, walFileName } from '../../src/journal/journal.js';
import { defaultInstanceId } from '../../src/journal/options.js';
import { replayInto } from '../../src/journal/replay.js';
import type { JournalTimers } from '../../src/journal/options.js';
import type { JournalRecord, TurnRecord } from '../../src/journal/types.js';
import type { SessionRef } from '../../src/types.js';
import { countingIo, tempDir, turn } from '../helpers/journal.js';

async function replayAll(journal: Journal): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  for await (const { record } of journal.replay()) out.push(record);
  return out;
}

test('record framing round-trips turns (unicode, metadata, user) and deletes', () => {
  const records: JournalRecord[] = [
    { ...turn('s1', 1, 'héllo wörld 你好 🎉'), metadata: { a: 1, nested: { b: [true, null] } }, userId: 'u-1' },
    turn('s1', 2, ''),
    { type: 'turn', tenant: 't', sessionId: 's', turnId: 2 ** 40, role: 'tool', content: 'x'.repeat(70_000), createdAt: Date.now() },
    { type: 'delete', tenant: 't1', sessionId: 's1', turnIds: [1, 300, 2 ** 31], at: 5 },
    { type: 'delete', tenant: 't1', sessionId: 's1', at: 0 },
  ];
  const frame = encodeFrame(records);
  assert.equal(frame.readUInt32LE(0), frame.length - FRAME_HEADER_BYTES);
  assert.deepEqual(decodePayload(frame.subarray(FRAME_HEADER_BYTES), 'f', 0), records);
  for (const r of records) assert.deepEqual(decodePayload(encodeFrame([r]).subarray(FRAME_HEADER_BYTES), 'f', 0), [r]);
});

test('options are validated eagerly with the option name, the expectation and the value', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ dataDir: '' }, 'dataDir'],
      [{ dataDir: dir, durability: 'sometimes' }, 'durability'],
      [{ dataDir: dir, maxFileBytes: 10 }, 'maxFileBytes'],
      [{ dataDir: dir, batchIntervalMs: 0 }, 'batchIntervalMs'],
      [{ dataDir: dir, instanceId: '../escape' }, 'instanceId'],
      [{ dataDir: dir, io: { write: 1 } }, 'io'],
    ];
    for (const [options, name] of cases) {
      await assert.rejects(Journal.open(options as never), (e) => isStrataError(e, 'STRATA_ERR_CONFIG_INVALID') && e.message.includes(name) && e.message.includes('received'));
    }
    assert.deepEqual(await readdir(dir), [], 'a rejected configuration creates nothing');
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    assert.ok(Object.isFrozen(journal.options));
    assert.equal(journal.options.durability, 'fsync');
    await journal.close();
    assert.equal(defaultInstanceId('my host/x'), 'my-host-x');
    assert.equal(defaultInstanceId('..'), 'default');
  } finally {
    await cleanup();
  }
});

test('appends replay in order after reopen; bad records are rejected and change nothing', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const records = [turn('s1', 1), turn('s2', 1), turn('s1', 2), { type: 'delete', tenant: 't1', sessionId: 's2', at: 9 } as const];
    const lsns = await Promise.all(records.map((r) => journal.append(r)));
    for (let i = 1; i < lsns.length; i++) assert.ok(lsns[i]!.offset > lsns[i - 1]!.offset, 'LSNs increase in call order');
    const end = journal.endLsn();
    await assert.rejects(journal.append({ ...turn('s1', 3), role: 'robot' as never }), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ROLE'));
    await assert.rejects(journal.append({ ...turn('s1', 3), sessionId: 'a\u0000b' }), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
    await assert.rejects(journal.append({ ...turn('s1', 3), tenant: '../x' }), (e) => isStrataError(e, 'STRATA_ERR_INVALID_ID'));
    await assert.rejects(journal.append({ ...turn('s1', 3), turnId: 0 }), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
    await assert.rejects(journal.appendMany([]), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await assert.rejects(journal.append({ ...turn('s1', 3), metadata: circular }), (e) => isStrataError(e, 'STRATA_ERR_METADATA_INVALID'));
    assert.deepEqual(journal.endLsn(), end, 'rejected records wrote nothing');
    await journal.close();
    await assert.rejects(journal.append(turn('s1', 3)), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_CLOSED'));

    const reopened = await Journal.open({ dataDir: dir, instanceId: 'a' });
    assert.deepEqual(await replayAll(reopened), records);
    assert.equal(reopened.recovery.tornTail, null);
    await reopened.append(turn('s1', 3));
    assert.deepEqual(await replayAll(reopened), records, "this run's appends are not part of its replay");
    await reopened.close();
  } finally {
    await cleanup();
  }
});

test('group commit: 200 concurrent appends take far fewer fsyncs than appends', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const io = countingIo();
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a', io });
    await Promise.all(Array.from({ length: 200 }, (_, i) => journal.append(turn(`s${i % 7}`, i + 1))));
    // The first append starts a batch alone; everything queued during its fsync forms the next.
    assert.ok(io.fsyncs >= 1 && io.fsyncs <= 10, `expected a few fsyncs, got ${io.fsyncs}`);
    assert.equal(io.writes, io.fsyncs, 'one write per batch');
    const sequential = io.fsyncs;
    for (let i = 0; i < 5; i++) await journal.append(turn('solo', i + 1));
    assert.equal(io.fsyncs, sequential + 5, "durability 'fsync': an awaited append is covered by its own fsync");
    await journal.close();
  } finally {
    await cleanup();
  }
});

test('appendMany is one frame: all its records share one LSN and replay together', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const lsn = await journal.appendMany([turn('s', 1), turn('s', 2), turn('s', 3)]);
    await journal.close();
    const reopened = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const entries = [];
    for await (const e of reopened.replay()) entries.push(e);
    assert.deepEqual(entries.map((e) => e.lsn), [lsn, lsn, lsn]);
    assert.deepEqual(entries.map((e) => (e.record as TurnRecord).turnId), [1, 2, 3]);
    await reopened.close();
  } finally {
    await cleanup();
  }
});

test('rotation by size, checkpoint deletes files wholly below it and survives reopen', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const jdir = join(dir, 'journal', 'a');
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a', maxFileBytes: 4096 });
    const lsns = [];
    for (let i = 1; i <= 60; i++) lsns.push(await journal.append(turn('s', i, 'y'.repeat(300))));
    const files = (await readdir(jdir)).filter((f) => f.endsWith('.wal'));
    assert.ok(files.length >= 4, `expected rotation into several files, got ${files.join(',')}`);
    for (const f of files.slice(0, -1)) assert.ok((await stat(join(jdir, f))).size <= 4096);
    const cut = lsns[40]!;
    await journal.checkpoint(cut);
    const left = (await readdir(jdir)).filter((f) => f.endsWith('.wal'));
    assert.equal(left[0], walFileName(cut.file), 'files below the checkpoint file are gone, its own file stays');
    await assert.rejects(journal.checkpoint({ file: 999, offset: 0 }), (e) => isStrataError(e, 'STRATA_ERR_VALIDATION'));
    await journal.checkpoint(lsns[10]!); // lower: a no-op
    assert.deepEqual(journal.checkpointLsn(), cut);
    await journal.close();

    const reopened = await Journal.open({ dataDir: dir, instanceId: 'a', maxFileBytes: 4096 });
    assert.deepEqual(reopened.recovery.checkpoint, cut);
    const ids = (await replayAll(reopened)).map((r) => (r as TurnRecord).turnId);
    assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => 41 + i), 'replay starts exactly at the checkpoint');
    await reopened.close();
  } finally {
    await cleanup();
  }
});

test('pending ledger: safeCheckpoint is the oldest unarchived record; deletes drop pending turns', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const a1 = await journal.append(turn('a', 1));
    const b1 = await journal.append(turn('b', 1));
    await journal.append(turn('a', 2));
    assert.deepEqual(journal.safeCheckpoint(), a1);
    journal.markArchived('t1', 'a', 1);
    assert.deepEqual(journal.safeCheckpoint(), b1);
    journal.markArchived('t1', 'b', 1);
    assert.deepEqual(journal.pending.records().map((r) => [r.sessionId, r.turnId]), [['a', 2]], 'only a/2 is pending');
    const del = await journal.append({ type: 'delete', tenant: 't1', sessionId: 'a', turnIds: [2], at: 1 });
    assert.deepEqual(journal.safeCheckpoint(), del, 'the delete dropped turn a/2 but is pending itself');
    journal.markDeleteApplied('t1', 'a');
    assert.deepEqual(journal.safeCheckpoint(), journal.endLsn(), 'nothing pending: the end of the journal');
    assert.equal(journal.pending.size, 0);
    assert.equal(journal.pending.lowest(), null);
    await journal.checkpoint(journal.safeCheckpoint());
    await journal.close();
    const reopened = await Journal.open({ dataDir: dir, instanceId: 'a' });
    assert.deepEqual(await replayAll(reopened), []);
    await reopened.close();
  } finally {
    await cleanup();
  }
});

test('safeCheckpoint never passes records of a previous run before replay finished', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const first = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await first.append(turn('a', 1));
    await first.close();
    const second = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await second.append(turn('a', 2));
    second.markArchived('t1', 'a', 2);
    assert.deepEqual(second.safeCheckpoint(), second.recovery.checkpoint);
    const archived: Array<[SessionRef, number[]]> = [];
    const summary = await replayInto(second, { archiveTurns: async (ref, turns) => void archived.push([ref, turns.map((t) => t.turnId)]) });
    assert.deepEqual(archived, [[{ tenant: 't1', sessionId: 'a' }, [1]]]);
    assert.equal(summary.turns, 1);
    assert.deepEqual(second.safeCheckpoint(), second.endLsn());
    await second.close();
  } finally {
    await cleanup();
  }
});

test('replayInto groups per session and never resurrects deleted turns', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    for (let i = 1; i <= 5; i++) {
      await journal.append(turn('x', i));
      await journal.append(turn('y', i));
    }
    await journal.append({ type: 'delete', tenant: 't1', sessionId: 'x', turnIds: [2, 4], at: 1 });
    await journal.append(turn('x', 6));
    await journal.append({ type: 'delete', tenant: 't1', sessionId: 'y', at: 2 });
    await journal.close();

    const reopened = await Journal.open({ dataDir: dir, instanceId: 'a' });
    const state = new Map<string, number[]>();
    const calls: string[] = [];
    const summary = await replayInto(
      reopened,
      {
        archiveTurns: async (ref, turns) => {
          calls.push(`archive ${ref.sessionId} ${turns.length}`);
          state.set(ref.sessionId, [...(state.get(ref.sessionId) ?? []), ...turns.map((t) => t.turnId)]);
        },
        deleteTurns: async (ref, ids) => void state.set(ref.sessionId, (state.get(ref.sessionId) ?? []).filter((id) => !ids.includes(id))),
        deleteSession: async (ref) => void state.delete(ref.sessionId),
      },
      { maxBufferedTurns: 4 },
    );
    assert.deepEqual(state.get('x'), [1, 3, 5, 6]);
    assert.equal(state.has('y'), false);
    assert.equal(summary.records, 13);
    assert.equal(summary.deletes, 2);
    assert.ok(calls.length < summary.turns, 'turns are handed over in groups, not one by one');
    await reopened.close();
  } finally {
    await cleanup();
  }
});

test("durability 'batch' resolves after the write and fsyncs on the injected timer; 'none' never fsyncs", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const timers: Array<{ fn: () => void; ms: number }> = [];
    const fakeTimers: JournalTimers = { setTimeout: (fn, ms) => timers.push({ fn, ms }), clearTimeout: () => undefined };
    const io = countingIo();
    const batch = await Journal.open({ dataDir: dir, instanceId: 'b', durability: 'batch', batchIntervalMs: 25, io, timers: fakeTimers });
    for (let i = 1; i <= 5; i++) await batch.append(turn('s', i));
    assert.equal(io.fsyncs, 0, 'acknowledged before any fsync');
    assert.equal(timers.length, 1, 'one pending interval');
    assert.equal(timers[0]!.ms, 25);
    timers[0]!.fn();
    await batch.sync();
    assert.equal(io.fsyncs, 1, 'the interval fsyncs once for all five');
    await batch.append(turn('s', 6));
    assert.equal(timers.length, 2, 'the next write arms the interval again');
    await batch.close();
    assert.equal(io.fsyncs, 2, 'close fsyncs what the interval had not');

    const none = countingIo();
    const j = await Journal.open({ dataDir: dir, instanceId: 'n', durability: 'none', io: none, timers: fakeTimers });
    for (let i = 1; i <= 5; i++) await j.append(turn('s', i));
    assert.equal(none.fsyncs, 0);
    assert.equal(timers.length, 2, "'none' arms no interval");
    await j.close();
    const reopened = await Journal.open({ dataDir: dir, instanceId: 'n' });
    assert.equal((await replayAll(reopened)).length, 5);
    await reopened.close();
  } finally {
    await cleanup();
  }
});

test('a failed fsync refuses its batch, takes it back and moves to a fresh file; the next append succeeds without a restart', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const io = countingIo();
    let fail = false;
    const faulty = { ...io, write: io.write, fdatasync: (fd: number) => (fail ? Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) : io.fdatasync(fd)) };
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a', io: faulty });
    const first = await journal.append(turn('s', 1));
    assert.deepEqual(journal.health(), { ok: true });
    fail = true;
    await assert.rejects(journal.append(turn('s', 2)), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_IO'));
    assert.equal(journal.health().ok, false);
    assert.equal(journal.health().code, 'STRATA_ERR_JOURNAL_IO');
    // While the device keeps failing, appends keep being refused (the fresh file's fsync fails too).
    await assert.rejects(journal.append(turn('s', 2)), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_IO'));
    fail = false;
    const third = await journal.append(turn('s', 3));
    assert.ok(third.file > first.file, `after a failed fsync the journal writes to a fresh file (${first.file} -> ${third.file})`);
    assert.deepEqual(journal.health(), { ok: true });
    await journal.close();
    const reopened = await Journal.open({ dataDir: dir, instanceId: 'a' });
    assert.deepEqual((await replayAll(reopened)).map((r) => (r as TurnRecord).turnId), [1, 3], 'the refused record is never replayed');
    assert.deepEqual(reopened.recovery.corrupt, []);
    await reopened.close();
  } finally {
    await cleanup();
  }
});

test('the file header carries magic, version and sequence', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const journal = await Journal.open({ dataDir: dir, instanceId: 'a' });
    await journal.append(turn('s', 1));
    await journal.close();
    const bytes = await readFile(join(dir, 'journal', 'a', walFileName(1)));
    assert.equal(bytes.subarray(0, 4).toString('latin1'), 'STRJ');
    assert.equal(bytes[4], 1);
    assert.equal(bytes.readUInt32LE(8), 1);
    // A header failing its CRC is damage, reported; the frames after it are still checked and replayed.
    bytes[5] = 0xff;
    await writeFile(join(dir, 'journal', 'a', walFileName(1)), bytes);
    const j = await Journal.open({ dataDir: dir, instanceId: 'a' });
    try {
      assert.deepEqual((await replayAll(j)).map((r) => (r as TurnRecord).turnId), [1]);
      assert.deepEqual(j.recovery.corrupt.map((c) => [c.offset, c.bytes, c.recovered]), [[0, FILE_HEADER_BYTES, false]]);
    } finally {
      await j.close();
    }
    // A header that checks but names another sequence is a misplaced file: refused, never guessed at.
    const misplaced = Buffer.concat([encodeFileHeader(7), bytes.subarray(FILE_HEADER_BYTES)]);
    await writeFile(join(dir, 'journal', 'a', walFileName(1)), misplaced);
    await assert.rejects(Journal.open({ dataDir: dir, instanceId: 'a' }), (e) => isStrataError(e, 'STRATA_ERR_JOURNAL_CORRUPT') && e.message.includes(walFileName(1)));
    assert.ok(FILE_HEADER_BYTES === 16);
  } finally {
    await cleanup();
  }
});
