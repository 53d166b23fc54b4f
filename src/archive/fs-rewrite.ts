import { resolve } from 'node:path';
import { concat } from '../codec/codec.js';
import { StrataError } from '../errors.js';
import { searchText } from '../message.js';
import type { ArchivedTurn, SessionRef } from '../types.js';
import type { FileIndex, SessionMeta } from './file.js';
import { encodeMetaRecord, encodeSummaryRecord, segmentsFor } from './file.js';
import type { SessionFiles, Snapshot } from './fs-files.js';
import { assertWritable } from './fs-files.js';
import { atomicWrite } from './io.js';
import type { StoredTurn } from './rewrite.js';
import { dropTurns, rewriteRecords, storedTurns } from './rewrite.js';
import type { DeleteReceipt, Summary } from './store.js';
import { EMPTY_RECEIPT, validateTurnIds } from './validate.js';

/*
 * The fs driver's rewrites of a session's file — compaction, deletion of turns, re-embedding —
 * each as one atomic replacement of the file (temp file, fsync, rename, fsync the directory).
 * The caller of every function here but the exported entry points holds the session's locks.
 */

export async function deleteTurns(files: SessionFiles, ref: SessionRef, turnIds: readonly number[]): Promise<DeleteReceipt> {
  const path = files.pathOf(ref);
  validateTurnIds(turnIds);
  if (turnIds.length === 0) return { ...EMPTY_RECEIPT };
  return files.exclusive(ref, path, async () => {
    const existing = await files.withSnapshot(path, async (snap) => {
      assertWritable(snap.index, true);
      const drop = new Set(turnIds);
      return segmentsFor(snap.index).some((s) => s.ids!.some((id) => drop.has(id)));
    });
    if (!existing) return { ...EMPTY_RECEIPT };
    const r = await compactLocked(files, path, new Set(turnIds));
    if (!r) return { ...EMPTY_RECEIPT };
    return { sessions: 0, turns: r.turns.length, bytes: Math.max(0, r.before.size - r.after), vectors: r.turns.filter((t) => t.embedding).length, summaries: r.before.summaries.length - r.kept.length };
  });
}

/**
 * Re-embeds every turn whose vectors come from another embedder than `embedderId` (or have
 * none) and rewrites the file atomically. Returns how many turns got new vectors.
 */
export async function reembed(files: SessionFiles, ref: SessionRef, embedderId: string, embed: (texts: string[]) => Promise<Float32Array[]>): Promise<{ turns: number }> {
  const path = files.pathOf(ref);
  return files.exclusive(ref, path, async () => {
    const state = await files.withSnapshot(path, async (snap) => {
      assertWritable(snap.index, true);
      return { index: snap.index, turns: await turnsOf(files, snap) };
    });
    if (!state) throw new StrataError('STRATA_ERR_NOT_FOUND', `session ${ref.sessionId} has no archive`);
    const stale = state.turns.filter((t) => t.embedderId !== embedderId || !t.turn.embedding);
    if (stale.length === 0) return { turns: 0 };
    const vectors = await embed(stale.map((t) => searchText(t.turn)));
    if (vectors.length !== stale.length) throw new StrataError('STRATA_ERR_EMBEDDER_FAILED', `embedder returned ${vectors.length} vectors for ${stale.length} texts`);
    stale.forEach((t, i) => {
      t.turn.embedding = vectors[i]!;
      t.embedderId = embedderId;
    });
    await rewrite(files, path, state.index, state.turns, state.index.summaries);
    return { turns: stale.length };
  });
}

/** Rewrites a session's many small segments into one (a file of one segment and no torn tail stays as it is). */
export async function compact(files: SessionFiles, ref: SessionRef): Promise<void> {
  const path = files.pathOf(ref);
  await files.exclusive(ref, path, () => compactLocked(files, path).then(() => undefined));
}

/** Rewrites the file as: metadata, merged segments, current summaries. Caller holds the lock. */
export async function compactLocked(files: SessionFiles, path: string, drop?: ReadonlySet<number>): Promise<{ before: FileIndex; after: number; turns: ArchivedTurn[]; kept: Summary[] } | null> {
  const state = await files.withSnapshot(path, async (snap) => {
    assertWritable(snap.index, true);
    return { index: snap.index, turns: await turnsOf(files, snap) };
  });
  if (!state) return null;
  const { index } = state;
  if (!drop && index.segments.length <= 1 && index.tornBytes === 0) return { before: index, after: index.size, turns: [], kept: index.summaries };
  const { keep, removed } = dropTurns(state.turns, drop);
  const kept = index.summaries.filter((s) => !removed.some((t) => t.turnId >= s.fromTurn && t.turnId <= s.toTurn));
  const bytes = await rewrite(files, path, index, keep, kept);
  return { before: index, after: bytes.length, turns: removed, kept };
}

/** Writes the file as metadata, segments of `keep` (one embedder per segment) and `kept` summaries, atomically. Caller holds the lock. */
async function rewrite(files: SessionFiles, path: string, index: FileIndex, keep: readonly StoredTurn[], kept: readonly Summary[]): Promise<Uint8Array> {
  const meta: SessionMeta = { userId: index.meta.userId ?? null, highWater: index.highWater, createdAt: index.meta.createdAt ?? files.options.clock.now(), ...(index.meta.sessionId !== undefined ? { sessionId: index.meta.sessionId } : {}) };
  const parts: Uint8Array[] = [encodeMetaRecord(meta), ...(await rewriteRecords(files.options, keep))];
  for (const s of kept) parts.push(encodeSummaryRecord(s));
  const bytes = concat(parts);
  await atomicWrite(path, bytes, files.options.writeHook);
  files.forget(path);
  // Rewrites delete turns or replace vectors: searches over the owner's sessions must see it.
  const tenantDir = resolve(path, '..', '..');
  if (index.meta.userId) await files.users.bump(tenantDir, index.meta.userId);
  return bytes;
}

function turnsOf(files: SessionFiles, snap: Snapshot): Promise<StoredTurn[]> {
  return storedTurns(snap.index, files.bodyReader(snap), files.options.maxDecodedBytes);
}
