import { searchText } from '../src/message.js';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { FsArchiveStore } from '../src/archive/fs-store.js';
import { StrataError } from '../src/errors.js';
import type { ArchivedTurn, Role } from '../src/types.js';
import { ROLES } from '../src/types.js';
import { measureAppends, measureReplay } from './journal.js';

/*
 * `strata bench archive`: archives every session of a sessions file and compares it, in the same
 * run, with the proposal's JSON archive (one JSON document per session, raw and gzip -9):
 * bytes per turn, size ratios, time to load a ~1,000-turn session from a file no cache has seen
 * (a fresh store instance per load; the OS page cache is warm), durable journal appends with 1
 * and 64 writers, and journal replay speed.
 */

export interface ArchiveBenchOptions {
  input: string;
  /** Dimension of the pseudo-embeddings; 0 = none. Default 384. */
  dims?: number;
  embeddings?: 'int8' | 'f16' | 'none';
  /** Text codec name; default: the archive's default. */
  codec?: string;
  /** Turns per append (one segment each), as compaction batches them. Default 100. */
  batch?: number;
  loads?: number;
  appendCount?: number;
  replayRecords?: number;
  onProgress?: (stage: string) => void;
}

export interface ArchiveBenchResult {
  input: { sessions: number; turns: number; textBytes: number };
  codec: string;
  embeddings: string;
  dims: number;
  archiveBytes: number;
  jsonBytes: number;
  jsonGzipBytes: number;
  bytesPerTurn: number;
  ratioToJson: number;
  ratioToJsonGzip: number;
  appendsPerSec: { '1': number; '64': number };
  loadTurns: number;
  loadP50Ms: number;
  loadP99Ms: number;
  /** The very first load of a fresh process (before JIT compilation and heap growth). */
  loadFirstMs: number;
  jsonGzipLoadP50Ms: number;
  jsonGzipLoadP99Ms: number;
  replayMBps: number;
}

interface InputSession {
  session_id: string;
  date?: string;
  turns: Array<{ role: string; content: string }>;
}

export async function readSessions(path: string): Promise<InputSession[]> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${path}: not a readable JSON file (${(err as Error).message})`, { cause: err });
  }
  const ok = Array.isArray(data) && data.every((s: InputSession) => typeof s === 'object' && s !== null && typeof s.session_id === 'string' && Array.isArray(s.turns) && s.turns.every((t) => typeof t?.content === 'string' && typeof t?.role === 'string'));
  if (!ok) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${path}: expected [{session_id, turns:[{role, content}]}]`);
  return data as InputSession[];
}

/** Deterministic pseudo-embedding of one turn (xorshift seeded by session and turn), roughly unit length. */
export function pseudoEmbedding(dims: number, session: number, turn: number): Float32Array {
  const v = new Float32Array(dims);
  let x = (session * 0x9e3779b1) ^ (turn * 0x85ebca6b) ^ 0x2545f491;
  const scale = 1 / Math.sqrt(dims);
  for (let i = 0; i < dims; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = (((x >>> 0) / 0xffffffff) * 2 - 1) * scale * 1.7;
  }
  return v;
}

export function toRole(role: string): Role {
  if ((ROLES as readonly string[]).includes(role)) return role as Role;
  return role === 'human' ? 'user' : 'assistant';
}

export function sessionStart(s: InputSession, i: number): number {
  const m = s.date ? /^(\d{4})\/(\d{2})\/(\d{2})\D+(\d{2}):(\d{2})/.exec(s.date) : null;
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!) : Date.UTC(2023, 0, 1) + i * 3_600_000;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** The proposal's JSON archive document of one session. */
function proposalJson(sessionId: string, createdAt: number, turns: ArchivedTurn[]): string {
  return JSON.stringify({
    session_id: sessionId,
    created_at: new Date(createdAt).toISOString(),
    turns: turns.map((t) => ({ turn_id: t.turnId, timestamp: new Date(t.createdAt).toISOString(), role: t.role, content: t.content, embedding: t.embedding ? Array.from(t.embedding) : [], metadata: t.metadata ?? {} })),
  });
}

export async function runArchiveBench(options: ArchiveBenchOptions): Promise<ArchiveBenchResult> {
  const dims = options.dims ?? 384;
  const embeddings = options.embeddings ?? 'int8';
  const batch = options.batch ?? 100;
  const progress = options.onProgress ?? (() => undefined);
  const sessions = await readSessions(options.input);
  const root = await mkdtemp(join(tmpdir(), 'strata-bench-archive-'));
  try {
    const store = new FsArchiveStore({ dataDir: join(root, 'data'), embeddingEncoding: embeddings, ...(options.codec ? { textCodec: options.codec } : {}) });
    const ref = (sessionId: string) => ({ tenant: 'bench', sessionId: sessionId.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^\./, '_').slice(0, 128) });
    const withVectors = dims > 0 && embeddings !== 'none';
    let turnsTotal = 0;
    let textBytes = 0;
    let archiveBytes = 0;
    let jsonBytes = 0;
    let jsonGzipBytes = 0;
    const seen = new Set<string>();
    progress(`archiving ${sessions.length} sessions`);
    for (const [si, s] of sessions.entries()) {
      let r = ref(s.session_id);
      if (seen.has(r.sessionId)) r = ref(`${s.session_id}-${si}`);
      seen.add(r.sessionId);
      const start = sessionStart(s, si);
      const turns: ArchivedTurn[] = s.turns.map((t, i) => ({ turnId: i + 1, role: toRole(t.role), content: t.content, createdAt: start + i * 45_000, ...(withVectors ? { embedding: pseudoEmbedding(dims, si, i) } : {}) }));
      if (turns.length === 0) continue;
      for (let i = 0; i < turns.length; i += batch) await store.append(r, turns.slice(i, i + batch), withVectors ? { embedderId: `pseudo-${dims}` } : {});
      archiveBytes += (await stat(store.pathOf(r))).size;
      const json = Buffer.from(proposalJson(s.session_id, start, turns));
      jsonBytes += json.length;
      jsonGzipBytes += gzipSync(json, { level: 9 }).length;
      turnsTotal += turns.length;
      for (const t of turns) textBytes += Buffer.byteLength(searchText(t));
    }

    // ~1,000-turn sessions made of consecutive real turns; archived in compaction-sized batches.
    progress('load latency');
    const longSessions: ArchivedTurn[][] = [];
    let cur: ArchivedTurn[] = [];
    for (const [si, s] of sessions.entries()) {
      for (const t of s.turns) {
        cur.push({ turnId: cur.length + 1, role: toRole(t.role), content: t.content, createdAt: Date.UTC(2024, 0, 1) + cur.length * 30_000, ...(withVectors ? { embedding: pseudoEmbedding(dims, 100_000 + si, cur.length) } : {}) });
        if (cur.length === 1000) {
          longSessions.push(cur);
          cur = [];
        }
      }
      if (longSessions.length === 5) break;
    }
    if (longSessions.length === 0 && cur.length > 0) longSessions.push(cur);
    const longPaths: string[] = [];
    for (const [i, turns] of longSessions.entries()) {
      const r = { tenant: 'bench', sessionId: `long-${i}` };
      for (let k = 0; k < turns.length; k += batch) await store.append(r, turns.slice(k, k + batch), withVectors ? { embedderId: `pseudo-${dims}` } : {});
      await store.compact(r);
      const jsonPath = join(root, `long-${i}.json.gz`);
      await writeFile(jsonPath, gzipSync(proposalJson(r.sessionId, 0, turns), { level: 9 }));
      longPaths.push(jsonPath);
    }
    // Every loaded session is checked once here; the timed loads run in a fresh process.
    for (const [k, turns] of longSessions.entries()) {
      const back = await new FsArchiveStore({ dataDir: join(root, 'data') }).read({ tenant: 'bench', sessionId: `long-${k}` });
      if (back.length !== turns.length || back[back.length - 1]!.content !== turns[turns.length - 1]!.content) throw new Error('load returned different turns');
    }
    const { times, baseTimes, firstMs, turns: loadTurns } = await loadInChild(join(root, 'data'), options.loads ?? 1000, longPaths.length, longPaths);
    times.sort((a, b) => a - b);
    baseTimes.sort((a, b) => a - b);

    progress('durable appends (1 writer)');
    const a1 = await measureAppends({ dir: await mkdtemp(join(root, 'j1-')), concurrency: 1, count: options.appendCount ?? 2000 });
    progress('durable appends (64 writers)');
    const a64 = await measureAppends({ dir: await mkdtemp(join(root, 'j64-')), concurrency: 64, count: (options.appendCount ?? 2000) * 10 });
    progress('journal replay');
    const replay = await measureReplay({ dir: await mkdtemp(join(root, 'jr-')), records: options.replayRecords ?? 100_000 });

    return {
      input: { sessions: sessions.length, turns: turnsTotal, textBytes },
      codec: store.options.textCodec.name,
      embeddings: withVectors ? embeddings : 'none',
      dims: withVectors ? dims : 0,
      archiveBytes,
      jsonBytes,
      jsonGzipBytes,
      bytesPerTurn: archiveBytes / turnsTotal,
      ratioToJson: archiveBytes / jsonBytes,
      ratioToJsonGzip: archiveBytes / jsonGzipBytes,
      appendsPerSec: { '1': a1.appendsPerSec, '64': a64.appendsPerSec },
      loadTurns,
      loadP50Ms: percentile(times, 50),
      loadP99Ms: percentile(times, 99),
      loadFirstMs: firstMs,
      jsonGzipLoadP50Ms: percentile(baseTimes, 50),
      jsonGzipLoadP99Ms: percentile(baseTimes, 99),
      replayMBps: replay.replayMBps,
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * Runs bench/archive-load in a new process (same loader flags, so it works from sources and from
 * dist): `where` is the data directory or a PostgreSQL URL with its schema.
 */
export async function loadInChild(where: string, loads: number, sessions: number, jsonPaths: string[] = []): Promise<{ times: number[]; baseTimes: number[]; firstMs: number; turns: number }> {
  const script = fileURLToPath(new URL(`./archive-load${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));
  const { stdout } = await promisify(execFile)(process.execPath, [...process.execArgv, script, where, String(loads), String(sessions), ...jsonPaths], { maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { times: number[]; baseTimes: number[]; firstMs: number; turns: number };
}
