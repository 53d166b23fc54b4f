import { FsArchiveStore } from '../../src/archive/fs-store.js';
import type { Journal } from '../../src/journal/journal.js';
import { replayInto } from '../../src/journal/replay.js';
import type { TurnRecord } from '../../src/journal/types.js';
import type { ArchivedTurn } from '../../src/types.js';

export const KILL9_TENANT = 'k9';

/** Deterministic content of varying length, so a record's bytes prove which turn it is. */
export function kill9Content(sessionId: string, turnId: number): string {
  return `${sessionId}#${turnId} ${'x'.repeat((turnId * 7919) % 300)}`;
}

/** The archive side of the kill -9 child: recover = replay the journal into it. */
export interface Kill9Archive {
  /** Replays the journal into the archive; returns how many turn records were replayed. */
  recover(journal: Journal): Promise<number>;
  append(sessionId: string, turns: TurnRecord[]): Promise<void>;
  read(sessionId: string): Promise<Array<{ turnId: number; content: unknown }>>;
}

function toArchived(t: TurnRecord): ArchivedTurn {
  return { turnId: t.turnId, role: t.role, content: t.content, createdAt: t.createdAt, ...(t.metadata ? { metadata: t.metadata } : {}) };
}

/** The real filesystem archive (FsArchiveStore) under `dataDir`, fed by `replayInto` on recovery. */
export async function openKill9Archive(dataDir: string): Promise<Kill9Archive> {
  const store = new FsArchiveStore({ dataDir });
  const ref = (sessionId: string) => ({ tenant: KILL9_TENANT, sessionId });
  return {
    async recover(journal) {
      const summary = await replayInto(journal, {
        archiveTurns: async (r, turns) => void (await store.append(r, turns.map(toArchived))),
        deleteTurns: async (r, ids) => void (await store.deleteTurns(r, ids)),
        deleteSession: async (r) => void (await store.deleteSession(r)),
      });
      return summary.turns;
    },
    async append(sessionId, turns) {
      await store.append(ref(sessionId), turns.map(toArchived));
    },
    async read(sessionId) {
      return store.read(ref(sessionId));
    },
  };
}
