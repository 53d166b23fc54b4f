import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeJournalIo } from '../../src/journal/options.js';
import type { JournalIo } from '../../src/journal/options.js';
import type { TurnRecord } from '../../src/journal/types.js';

/** A fresh temp directory per test, removed by the returned cleanup. */
export async function tempDir(prefix = 'strata-journal-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function turn(sessionId: string, turnId: number, content = `message ${turnId} of ${sessionId}`, tenant = 't1'): TurnRecord {
  return { type: 'turn', tenant, sessionId, turnId, role: turnId % 2 === 1 ? 'user' : 'assistant', content, createdAt: 1_700_000_000_000 + turnId * 1000 };
}

/** Real node:fs I/O that counts the calls (the fault-injection hook used to observe group commit). */
export function countingIo(): JournalIo & { writes: number; fsyncs: number } {
  const io = {
    writes: 0,
    fsyncs: 0,
    write: (fd: number, buffer: Buffer, offset: number, length: number, position: number) => {
      io.writes++;
      return nodeJournalIo.write(fd, buffer, offset, length, position);
    },
    fdatasync: (fd: number) => {
      io.fsyncs++;
      return nodeJournalIo.fdatasync(fd);
    },
  };
  return io;
}
