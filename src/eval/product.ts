import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NewMessage } from '../cache/api.js';
import { StrataError } from '../errors.js';
import type { RetrieverOptions } from '../retrieval/retriever.js';
import { createStrata, type Strata } from '../strata.js';
import type { Clock } from '../types.js';

/** Tenant every evaluation loads its sessions into. */
export const EVAL_TENANT = 'eval';

export type EvalEmbedder = 'glove' | 'hash';

export function parseEvalEmbedder(value: string): EvalEmbedder {
  if (value !== 'glove' && value !== 'hash') throw new StrataError('STRATA_ERR_VALIDATION', `--embedder: expected glove or hash, got ${value}`);
  return value;
}

/** A clock the loader sets to each conversation's own dates, so turns carry them as `createdAt`. */
export class SettableClock implements Clock {
  constructor(public time = 1_600_000_000_000) {}
  now(): number {
    return this.time;
  }
}

/** How the evaluations run the product; printed with every result. */
export const PRODUCT_SETUP =
  'createStrata in a temporary data dir: memory hot tier, durability none (load speed; search is unaffected), background compaction off; ' +
  'turns added with addMessages and archived by flush() (token counts, int8 embeddings, summaries)';

export interface EvalStrataOptions {
  embedder: EvalEmbedder;
  retriever?: RetrieverOptions;
  /** Data dir to reuse (an earlier load); default a new temporary one. */
  dataDir?: string;
}

export interface EvalStrata {
  strata: Strata;
  clock: SettableClock;
  dataDir: string;
  /** Closes the core (flushing) and keeps the data dir for a reopen. */
  close(): Promise<void>;
  /** Closes the core and removes the data dir. */
  dispose(): Promise<void>;
}

/**
 * A real Strata core for an evaluation: the same `createStrata` an application calls, in a
 * throw-away data dir. Durability `none` only changes when journal writes reach the disk; the
 * maintenance timer is set to a day so the measured calls share the process with nothing.
 */
export async function openEvalStrata(o: EvalStrataOptions): Promise<EvalStrata> {
  const dataDir = o.dataDir ?? (await mkdtemp(join(tmpdir(), 'strata-eval-')));
  const clock = new SettableClock();
  let strata: Strata;
  try {
    strata = await createStrata({
      dataDir,
      instanceId: 'eval',
      hot: { driver: 'memory' },
      durability: 'none',
      embedder: { provider: o.embedder },
      compaction: { intervalMs: 86_400_000 },
      sessionIdleTtlMs: 86_400_000_000,
      clock,
      ...(o.retriever ? { retriever: o.retriever } : {}),
    });
  } catch (err) {
    if (!o.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await strata.close();
  };
  return {
    strata,
    clock,
    dataDir,
    close,
    dispose: async () => {
      await close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Adds one session's messages through `addMessages` (the API's page limit is 1000 per call). */
export async function addSession(
  strata: Strata,
  sessionId: string,
  messages: readonly NewMessage[],
  userId: string | undefined,
): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < messages.length; i += 1000) {
    const { turnIds } = await strata.addMessages(sessionId, messages.slice(i, i + 1000), { tenant: EVAL_TENANT, ...(userId !== undefined ? { userId } : {}) });
    ids.push(...turnIds);
  }
  return ids;
}
