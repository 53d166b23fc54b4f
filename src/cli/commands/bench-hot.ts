import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatTable, printJson, type CliIo } from '../io.js';
import type { HotBenchResult } from '../../../bench/hot.js';
import { parsePositiveInt, progress } from './common.js';

interface BenchHotFlags {
  redis?: string;
  sessions: number;
  turns: number;
  input?: string;
  reads: number;
  cold: number;
  embedder: 'glove' | 'hash';
  json?: boolean;
}

function parseEmbedder(value: string): 'glove' | 'hash' {
  if (value !== 'glove' && value !== 'hash') throw new StrataError('STRATA_ERR_VALIDATION', `--embedder: expected glove or hash, received ${JSON.stringify(value)}`);
  return value;
}

function parseRedisUrl(value: string): string {
  if (!/^rediss?:\/\//.test(value)) throw new StrataError('STRATA_ERR_VALIDATION', `--redis: expected a redis:// or rediss:// URL, received ${JSON.stringify(value)}`);
  return value;
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const ms = (v: number): string => v.toFixed(3);
const rate = (v: number): string => String(Math.round(v));

/** `strata bench hot`: Redis memory, recent-context latency, durable adds and cold starts against the Redis-only designs. */
export function registerBenchHot(parent: Command, io: CliIo): void {
  parent
    .command('hot')
    .description('hot tier: Redis memory vs a JSON+embedding list per session, recent latency vs LangChain.js RedisChatMessageHistory, fsync adds, cold starts')
    .option('--redis <url>', 'use this Redis (keys under a unique prefix, deleted afterwards); default: a private redis-server')
    .option('--sessions <n>', 'sessions', parsePositiveInt('--sessions'), 1000)
    .option('--turns <n>', 'turns per session', parsePositiveInt('--turns'), 200)
    .option('--input <file>', 'JSON array of sessions [{turns:[{role, content}]}] (default: sharegpt-sessions.json in $STRATA_SHARED_DATA)')
    .option('--reads <n>', 'recent calls measured with one caller (4x that with 64 callers), per system', parsePositiveInt('--reads'), 2000)
    .option('--cold <n>', 'sessions evicted then read cold', parsePositiveInt('--cold'), 500)
    .option('--embedder <name>', 'embedder used at compaction: glove or hash', parseEmbedder, 'glove')
    .option('--json', 'print one JSON object')
    .action(async (flags: BenchHotFlags) => {
      const redisUrl = flags.redis === undefined ? undefined : parseRedisUrl(flags.redis);
      const { runHotBench } = await import('../../../bench/hot.js');
      const r = await runHotBench({
        sessions: flags.sessions,
        turns: flags.turns,
        reads: flags.reads,
        coldSessions: flags.cold,
        embedder: flags.embedder,
        ...(redisUrl ? { redisUrl } : {}),
        ...(flags.input ? { input: flags.input } : {}),
        ...(flags.json ? {} : { onPhase: (label: string, total: number) => progress(io, total, label) }),
      });
      if (flags.json) return printJson(io, r);
      io.stdout.write(formatHotBench(r));
    });
}

/** The comparison table (Markdown) and the notes that go with it. */
export function formatHotBench(r: HotBenchResult): string {
  const s = r.recent.strata;
  const lc = r.recent.langchain;
  const header = `${r.sessions} sessions × ${r.turns} turns (${r.messages} messages of real ShareGPT text), ${r.redis} Redis, recent = last ${r.recentTurns} turns, ${r.concurrency} concurrent callers\n\n`;
  const table = formatTable(
    ['measure', 'Strata', 'JSON + 384-float embedding, one list per session', 'LangChain.js RedisChatMessageHistory'],
    [
      ['Redis used_memory', mb(r.redisBytes.strata), mb(r.redisBytes.baseline), mb(r.redisBytes.langchain)],
      ['memory reduction vs JSON + embedding', `${(r.memoryReduction * 100).toFixed(1)}%`, '—', '—'],
      ['recent p50 ms (1 caller)', ms(s.p50Ms), '—', ms(lc.p50Ms)],
      ['recent p99 ms (1 caller)', ms(s.p99Ms), '—', ms(lc.p99Ms)],
      [`recent ops/s (${r.concurrency} callers)`, rate(s.opsPerSec), '—', rate(lc.opsPerSec)],
      [`recent p99 ms (${r.concurrency} callers)`, ms(s.concurrentP99Ms), '—', ms(lc.concurrentP99Ms)],
      ['adds/s, 1 writer', `${rate(r.add.sequentialPerSec)} (fsync)`, '—', '—'],
      [`adds/s, ${r.concurrency} writers`, `${rate(r.add.concurrentPerSec)} (fsync)`, '—', `${rate(r.add.langchainPerSec)} (no durability)`],
      ['cold recent p50 / p99 ms', `${ms(r.coldRecent.p50Ms)} / ${ms(r.coldRecent.p99Ms)}`, '—', '—'],
    ],
  );
  const notes =
    `\nLangChain's getMessages() reads and parses the whole list (${lc.listLength} messages per session); the last ${r.recentTurns} are sliced from it.\n` +
    `Load: ${r.add.loadSeconds.toFixed(1)} s for ${r.messages} addMessage calls (durability fsync; compaction with the ${r.embedder} embedder every 100 turns per session, in the same process), ` +
    `then flush ${r.add.flushSeconds.toFixed(1)} s (archived end to end: ${rate(r.add.archivedPerSec)} messages/s); event-loop delay p99 ${r.add.eventLoopDelayP99Ms.toFixed(0)} ms, max ${r.add.eventLoopDelayMaxMs.toFixed(0)} ms; ${r.add.backpressureRetries} backpressure retries.\n` +
    `Cold: ${r.coldRecent.sessions} evicted sessions, the first recent call rehydrates from the archive. Every answer was checked against the messages written. Total ${r.seconds.toFixed(0)} s.\n`;
  return header + table + notes;
}
