import type { Journal } from '../../src/journal/journal.js';
import type { TurnRecord } from '../../src/journal/types.js';

export const KILL9_TENANT = 'k9';

/** Deterministic content of varying length, so a record's bytes prove which turn it is. */
export function kill9Content(sessionId: string, turnId: number): string {
  return `${sessionId}#${turnId} ${'x'.repeat((turnId * 7919) % 300)}`;
}

/** The archive side of the kill -9 child: recover = replay the journal into it. */
export interface Kill9Archive {
  recover(journal: Journal): Promise<void>;
  append(sessionId: string, turns: TurnRecord[]): Promise<void>;
  read(sessionId: string): Promise<Array<{ turnId: number; content: string }>>;
}

export async function openKill9Archive(_dataDir: string): Promise<Kill9Archive> {
  throw new Error('archive mode needs FsArchiveStore');
}
