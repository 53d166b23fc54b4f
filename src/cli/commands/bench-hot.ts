import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatTable, printJson, type CliIo } from '../io.js';
import type { HotBenchResult, HotClusterBenchResult } from '../../../bench/hot.js';
import { parseNonNegativeInt, parsePositiveInt, progress } from './common.js';

interface BenchHotFlags {
  redis?: string;
  redisCluster?: string;
  sessions: number;
  turns: number;
  input?: string;
  reads: number;
  cold: number;
  embedder: 'glove' | 'hash';
  workers?: number;
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

function parseClusterNodes(value: string): string {
  const nodes = value.split(',').map((n) => n.trim());
  if (nodes.length === 0 || nodes.some((n) => !/^[^\s/,]+:\d{1,5}$/.test(n))) throw new StrataError('STRATA_ERR_VALIDATION', `--redis-cluster: expected host:port,host:port, received ${JSON.stringify(value)}`);
  return nodes.join(',');
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
    .option('--workers <n>', "worker threads of Strata's core (default: CPUs − 1, 1 to 4; 0: compaction on the request thread)", parseNonNegativeInt('--workers'))
    .option('--redis-cluster <nodes>', 'instead: Strata on a single primary (--redis, or a private redis-server) and on this Redis Cluster (host:port,host:port), side by side; default 200 sessions × 100 turns, 4000 reads, hash embedder')
    .option('--json', 'print one JSON object')
    .action(async (flags: BenchHotFlags, command: Command) => {
      const redisUrl = flags.redis === undefined ? undefined : parseRedisUrl(flags.redis);
      if (flags.redisCluster !== undefined) {
        const clusterNodes = parseClusterNodes(flags.redisCluster);
        const given = (name: string): boolean => command.getOptionValueSource(name) !== 'default';
        const { runHotClusterBench } = await import('../../../bench/hot.js');
        const r = await runHotClusterBench({
          clusterNodes,
          ...(given('reads') ? { reads: flags.reads } : {}),
          ...(given('sessions') ? { sessions: flags.sessions } : {}),
          ...(given('turns') ? { turns: flags.turns } : {}),
          ...(given('embedder') ? { embedder: flags.embedder } : {}),
          ...(redisUrl ? { redisUrl } : {}),
          ...(flags.input ? { input: flags.input } : {}),
          ...(flags.json ? {} : { onPhase: (label: string, total: number) => progress(io, total, label) }),
        });
        if (flags.json) return printJson(io, r);
        io.stdout.write(formatHotClusterBench(r));
        return;
      }
      const { runHotBench } = await import('../../../bench/hot.js');
      const r = await runHotBench({
        sessions: flags.sessions,
        turns: flags.turns,
        reads: flags.reads,
        coldSessions: flags.cold,
        embedder: flags.embedder,
        ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
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
      ['Redis CPU µs per message stored', `${r.redisCpuUsPerMessage.strata.toFixed(1)} (load + flush)`, '—', `${r.redisCpuUsPerMessage.langchain.toFixed(1)}`],
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
    `Load: ${r.add.loadSeconds.toFixed(1)} s for ${r.messages} addMessage calls (durability fsync; compaction with the ${r.embedder} embedder every 100 turns per session, in the same process, ${r.workers} worker thread${r.workers === 1 ? "" : "s"}), ` +
    `then flush ${r.add.flushSeconds.toFixed(1)} s (archived end to end: ${rate(r.add.archivedPerSec)} messages/s); event-loop delay p99 ${r.add.eventLoopDelayP99Ms.toFixed(0)} ms, max ${r.add.eventLoopDelayMaxMs.toFixed(0)} ms; ${r.add.backpressureRetries} backpressure retries.\n` +
    `CPU per message (load + flush): ${r.cpuUsPerMessage.process.toFixed(0)} µs in this process${r.cpuUsPerMessage.requestThread === null ? '' : ` (${r.cpuUsPerMessage.requestThread.toFixed(0)} µs on the request thread)`}, ${r.cpuUsPerMessage.redis.toFixed(0)} µs in Redis; one exact token count ${r.cpuUsPerMessage.tokenCount.toFixed(0)} µs; at that cost ${r.cpuUsPerMessage.cores} cores sustain at most ${rate(r.cpuUsPerMessage.ceilingPerSec)} messages/s.\n` +
    `Cold: ${r.coldRecent.sessions} evicted sessions, the first recent call rehydrates from the archive. Every answer was checked against the messages written. Total ${r.seconds.toFixed(0)} s.\n`;
  return header + table + notes;
}

/** Single primary and Redis Cluster side by side (Markdown). */
export function formatHotClusterBench(r: HotClusterBenchResult): string {
  const a = r.single;
  const b = r.cluster;
  const header = `${r.sessions} sessions × ${r.turns} turns (${r.messages} messages of real ShareGPT text) through addMessage (fsync), flushed; recent = last 20 turns; ${r.concurrency} concurrent callers\n\n`;
  const table = formatTable(
    ['measure', 'single primary', `Redis Cluster (${b.masters} masters + replicas)`, 'cluster / single'],
    [
      ['Redis used_memory (sum over masters)', mb(a.redisBytes), mb(b.redisBytes), `${(b.redisBytes / a.redisBytes).toFixed(2)}×`],
      ['recent p50 / p99 ms (1 caller)', `${ms(a.recent.p50Ms)} / ${ms(a.recent.p99Ms)}`, `${ms(b.recent.p50Ms)} / ${ms(b.recent.p99Ms)}`, `${r.latencyRatio.p50.toFixed(2)}× / ${r.latencyRatio.p99.toFixed(2)}×`],
      [`recent p50 / p99 ms (${r.concurrency} callers)`, `${ms(a.recent.concurrentP50Ms)} / ${ms(a.recent.concurrentP99Ms)}`, `${ms(b.recent.concurrentP50Ms)} / ${ms(b.recent.concurrentP99Ms)}`, `${(b.recent.concurrentP50Ms / a.recent.concurrentP50Ms).toFixed(2)}× / ${r.latencyRatio.concurrentP99.toFixed(2)}×`],
      [`recent ops/s (${r.concurrency} callers)`, rate(a.recent.opsPerSec), rate(b.recent.opsPerSec), `${(b.recent.opsPerSec / a.recent.opsPerSec).toFixed(2)}×`],
      [`addMessage/s (fsync, ${r.concurrency} writers)`, rate(a.addPerSec), rate(b.addPerSec), `${(b.addPerSec / a.addPerSec).toFixed(2)}×`],
    ],
  );
  return `${header}${table}\nEvery recent answer (${r.verified} sessions per side) was checked against the messages written. Embedder ${r.embedder}. Total ${r.seconds.toFixed(0)} s.\n`;
}
