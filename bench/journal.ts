import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal } from '../src/journal/journal.js';
import { nodeJournalIo } from '../src/journal/options.js';
import type { JournalIo } from '../src/journal/options.js';
import type { Durability, TurnRecord } from '../src/journal/types.js';

/*
 * Journal benchmarks: durable append throughput with group commit against a baseline of one
 * write + fdatasync per message (what an application without a group-committing log does), and
 * replay speed. `bench/archive.ts` calls `measureAppends` and `measureReplay` for
 * `strata bench archive`; `strata bench journal` prints the comparison table.
 */

export interface AppendMeasurement {
  appendsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** fdatasync calls made (group commit makes this far smaller than the append count). */
  fsyncs: number;
}

export interface ReplayMeasurement {
  replayMBps: number;
  recordsPerSec: number;
  records: number;
}

const SESSIONS = 64;
const WORDS = 'the a to of and in is it you that for on with as are this be have not but what can your so if about'.split(' ');

/** A deterministic message of ~40 words (≈ 200 bytes, a typical chat turn) for append `i`. */
export function benchRecord(i: number): TurnRecord {
  const words: string[] = [];
  let x = (i * 2654435761) >>> 0;
  for (let w = 0; w < 40; w++) {
    x = (x * 1103515245 + 12345) >>> 0;
    words.push(WORDS[x % WORDS.length]!);
  }
  return { type: 'turn', tenant: 'bench', sessionId: `s${i % SESSIONS}`, turnId: Math.floor(i / SESSIONS) + 1, role: i % 2 ? 'assistant' : 'user', content: words.join(' '), createdAt: 1_700_000_000_000 + i };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `count` appends spread over `concurrency` writers, each awaiting its append before the next. */
export async function drive(concurrency: number, count: number, appendOne: (i: number) => Promise<unknown>): Promise<{ seconds: number; latencies: number[] }> {
  const latencies = new Array<number>(count);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        const start = performance.now();
        await appendOne(i);
        latencies[i] = performance.now() - start;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { seconds, latencies };
}

/** Journal appends with group commit. `dir` is used as the data directory (a fresh one per call is best). */
export async function measureAppends(options: { dir: string; concurrency: number; count: number; durability?: Durability }): Promise<AppendMeasurement> {
  let fsyncs = 0;
  const io: JournalIo = { write: nodeJournalIo.write, fdatasync: (fd) => (fsyncs++, nodeJournalIo.fdatasync(fd)) };
  const journal = await Journal.open({ dataDir: options.dir, instanceId: `bench-appends-${process.pid}-${Date.now()}`, durability: options.durability ?? 'fsync', io });
  const records = Array.from({ length: options.count }, (_, i) => benchRecord(i));
  try {
    const { seconds, latencies } = await drive(options.concurrency, options.count, (i) => journal.append(records[i]!));
    return { appendsPerSec: options.count / seconds, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), fsyncs };
  } finally {
    await journal.close();
  }
}

/** Baseline: every message is its own write + fdatasync on one append-mode file (JSON lines), no group commit. */
export async function measureBaselineAppends(options: { dir: string; concurrency: number; count: number }): Promise<AppendMeasurement> {
  const fh = await open(join(options.dir, `baseline-${process.pid}-${Date.now()}.jsonl`), 'a');
  const lines = Array.from({ length: options.count }, (_, i) => `${JSON.stringify(benchRecord(i))}\n`);
  try {
    const { seconds, latencies } = await drive(options.concurrency, options.count, async (i) => {
      await fh.appendFile(lines[i]!);
      await fh.datasync();
    });
    return { appendsPerSec: options.count / seconds, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), fsyncs: options.count };
  } finally {
    await fh.close();
  }
}

/** Writes `records` records, then measures a cold-process-style replay of all of them (verifying every CRC). */
export async function measureReplay(options: { dir: string; records: number }): Promise<ReplayMeasurement> {
  const instanceId = `bench-replay-${process.pid}-${Date.now()}`;
  const writer = await Journal.open({ dataDir: options.dir, instanceId, durability: 'none' });
  const chunk = 1000;
  for (let i = 0; i < options.records; i += chunk) {
    await Promise.all(Array.from({ length: Math.min(chunk, options.records - i) }, (_, k) => writer.append(benchRecord(i + k))));
  }
  await writer.close();
  const jdir = join(options.dir, 'journal', instanceId);
  let bytes = 0;
  for (const name of await readdir(jdir)) if (name.endsWith('.wal')) bytes += (await stat(join(jdir, name))).size;

  const t0 = performance.now();
  const reader = await Journal.open({ dataDir: options.dir, instanceId });
  let records = 0;
  try {
    for await (const batch of reader.replayBatches()) records += batch.length;
  } finally {
    await reader.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  if (records !== options.records) throw new Error(`replayed ${records} records, wrote ${options.records}`);
  return { replayMBps: bytes / 1e6 / seconds, recordsPerSec: records / seconds, records };
}

export interface JournalBenchRow {
  name: string;
  writers: number;
  result: AppendMeasurement;
}

export interface JournalBenchResult {
  rows: JournalBenchRow[];
  replay: ReplayMeasurement;
  /** Group-committed fsync appends/s per writer count, and the baseline's. */
  appendsPerSec: Record<'1' | '64', number>;
  baselineAppendsPerSec: Record<'1' | '64', number>;
}

function median(results: AppendMeasurement[]): AppendMeasurement {
  return [...results].sort((a, b) => a.appendsPerSec - b.appendsPerSec)[Math.floor(results.length / 2)]!;
}

/**
 * The whole comparison in one run, in a temp directory removed afterwards. The durable rows are
 * measured `repeats` times, baseline and journal interleaved, and the median run is reported:
 * fsync latency on a shared machine drifts by an order of magnitude within seconds, and
 * interleaving exposes both sides to the same drift.
 */
export async function runJournalBench(options: { count?: number; replayRecords?: number; repeats?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<JournalBenchResult> {
  const count = options.count ?? 20_000;
  const repeats = options.repeats ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'strata-bench-journal-'));
  const plan: Array<{ name: string; writers: number; repeats: number; run: () => Promise<AppendMeasurement> }> = [];
  for (const writers of [1, 64]) {
    // One writer waits a full fsync per append on both sides; a smaller count keeps the run short.
    const n = writers === 1 ? Math.min(count, 2000) : count;
    plan.push({ name: 'baseline: write + fdatasync per message', writers, repeats, run: () => measureBaselineAppends({ dir, concurrency: writers, count: n }) });
    plan.push({ name: "journal, group commit, durability 'fsync'", writers, repeats, run: () => measureAppends({ dir, concurrency: writers, count: n }) });
  }
  plan.push({ name: "journal, durability 'batch' (50 ms)", writers: 64, repeats: 1, run: () => measureAppends({ dir, concurrency: 64, count, durability: 'batch' }) });
  plan.push({ name: "journal, durability 'none'", writers: 64, repeats: 1, run: () => measureAppends({ dir, concurrency: 64, count, durability: 'none' }) });
  const total = repeats * 4 + 3;
  let done = 0;
  const step = () => options.onProgress?.(++done, total);
  try {
    const results = plan.map(() => [] as AppendMeasurement[]);
    for (let r = 0; r < repeats; r++) {
      for (const [i, p] of plan.entries()) {
        if (r >= p.repeats) continue;
        results[i]!.push(await p.run());
        step();
      }
    }
    const rows: JournalBenchRow[] = plan.map((p, i) => ({ name: p.name, writers: p.writers, result: median(results[i]!) }));
    const replay = await measureReplay({ dir, records: options.replayRecords ?? 200_000 });
    step();
    const pick = (prefix: string, writers: number) => rows.find((r) => r.name.startsWith(prefix) && r.writers === writers)!.result.appendsPerSec;
    return {
      rows,
      replay,
      appendsPerSec: { '1': pick("journal, group commit, durability 'fsync'", 1), '64': pick("journal, group commit, durability 'fsync'", 64) },
      baselineAppendsPerSec: { '1': pick('baseline', 1), '64': pick('baseline', 64) },
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
