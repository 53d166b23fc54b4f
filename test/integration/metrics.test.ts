/**
 * Metrics an operator alerts on, read from `/metrics` of a real server over HTTP: the backlog and
 * the compaction lag are computed when scraped (a fake clock moves while no compaction runs), the
 * archive bytes follow every write and deletion to the byte, fsyncs and appends are counted once
 * each, the instance is named; and every query of docs/grafana-dashboard.json and every alert rule
 * of docs/operations.md reads a metric the server exposes.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.js';
import { buildServer } from '../../src/server/app.js';
import { createServerMetrics } from '../../src/server/metrics.js';
import { createStrata } from '../../src/strata.js';
import { STRATA_VERSION } from '../../src/version.js';
import { defaultWorkerThreads } from '../../src/workers/pool.js';
import { startRedis } from '../helpers/redis.js';
import { ROOT } from '../helpers/serve.js';
import { FakeClock, closeAfter, tempDir } from '../helpers/strata.js';

type Samples = Map<string, number>;

/** `name{labels}` → value for every sample line, plus `# TYPE` names (also metrics without samples yet). */
function parseExposition(text: string): { samples: Samples; names: Set<string> } {
  const samples: Samples = new Map();
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      names.add(type[1]!);
      if (type[2] === 'histogram' || type[2] === 'summary') for (const suffix of ['_bucket', '_count', '_sum']) names.add(type[1]! + suffix);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  return { samples, names };
}

interface Served {
  base: string;
  dataDir: string;
  clock: FakeClock;
  scrape(): Promise<Samples>;
  post(path: string, body: unknown): Promise<Response>;
}

async function serve(t: Parameters<typeof tempDir>[0], hot: { driver: 'memory' } | { driver: 'redis'; redisUrl: string; keyPrefix: string }): Promise<Served> {
  const dataDir = await tempDir(t, 'strata-metrics-');
  const clock = new FakeClock(Date.UTC(2026, 5, 1));
  const metrics = createServerMetrics({ snapshotReuseMs: 0 }); // every scrape reads the core afresh
  // No maintenance tick during the test (compaction would hide whether the lag is computed at scrape time).
  const memory = await createStrata({ dataDir, clock, hot, instanceId: 'metrics-1', embedder: { provider: 'hash' }, compaction: { intervalMs: 3_600_000 }, hotBudgetBytes: 64 * 1024 * 1024, metrics: metrics.hooks });
  closeAfter(t, () => memory.close());
  const config = loadConfig({ env: {}, cwd: dataDir, flags: { dataDir, server: { logLevel: 'silent' } } });
  const app = buildServer({ memory, config, logger: pino({ level: 'silent' }), metrics });
  closeAfter(t, () => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    base,
    dataDir,
    clock,
    async scrape() {
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      return parseExposition(await res.text()).samples;
    },
    post: (path, body) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  };
}

/** Bytes of every archive file under the data directory (recognised by the "STRA" magic). */
async function archiveBytesOnDisk(dataDir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dataDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const bytes = await readFile(join(entry.parentPath, entry.name));
    if (bytes.subarray(0, 4).toString('latin1') === 'STRA') total += bytes.length;
  }
  return total;
}

for (const driver of ['memory', 'redis'] as const) {
  test(`${driver} hot tier: unarchived turns and compaction lag are computed when scraped`, async (t) => {
    let hot: Parameters<typeof serve>[1] = { driver: 'memory' };
    let redis: Awaited<ReturnType<typeof startRedis>> | null = null;
    if (driver === 'redis') {
      redis = await startRedis({ private: true }); // stopped below
      closeAfter(t, () => redis!.stop());
      hot = { driver: 'redis', redisUrl: redis.url, keyPrefix: redis.prefix('metrics-lag') };
    }
    const s = await serve(t, hot);
    let m = await s.scrape();
    assert.deepEqual([m.get('strata_unarchived_turns'), m.get('strata_compaction_lag_seconds')], [0, 0], 'nothing written yet');
    assert.equal(m.get('strata_unarchived_turns_limit'), 200_000);
    assert.equal(m.get('strata_hot_budget_bytes'), 64 * 1024 * 1024);
    // The worker pool (default size), idle: threads start with the first compaction.
    assert.deepEqual([m.get('strata_worker_threads'), m.get('strata_worker_busy_threads'), m.get('strata_worker_queue_depth')], [defaultWorkerThreads(), 0, 0]);

    assert.equal((await s.post('/v1/sessions/a/messages', { messages: [{ role: 'user', content: 'one' }, { role: 'assistant', content: 'two' }] })).status, 201);
    s.clock.advance(30_000);
    assert.equal((await s.post('/v1/sessions/b/messages', { role: 'user', content: 'three' })).status, 201);
    s.clock.advance(60_000);
    // Nothing ran in between: only a scrape-time computation can know the lag is now 90 s.
    m = await s.scrape();
    assert.equal(m.get('strata_unarchived_turns'), 3);
    assert.equal(m.get('strata_compaction_lag_seconds'), 90);
    assert.ok((m.get('strata_tier_bytes{tier="hot"}') ?? 0) > 0, 'the hot tier holds the turns');

    assert.equal((await s.post('/v1/sessions/a/flush', {})).status, 200);
    m = await s.scrape();
    assert.equal(m.get('strata_unarchived_turns'), 1, 'b is still unarchived');
    assert.equal(m.get('strata_compaction_lag_seconds'), 60, 'the oldest unarchived turn is now b\'s');
    assert.equal((await s.post('/v1/sessions/b/flush', {})).status, 200);
    m = await s.scrape();
    assert.deepEqual([m.get('strata_unarchived_turns'), m.get('strata_compaction_lag_seconds')], [0, 0]);
    assert.equal(m.get('strata_metrics_snapshot_errors_total'), 0);

    if (redis) {
      // Fault: the hot tier is gone. /metrics still answers; the backlog reads NaN, not an old value.
      await redis.stop();
      m = await s.scrape();
      assert.ok(Number.isNaN(m.get('strata_compaction_lag_seconds')), String(m.get('strata_compaction_lag_seconds')));
      assert.ok(Number.isNaN(m.get('strata_unarchived_turns')));
      assert.ok((m.get('strata_metrics_snapshot_errors_total') ?? 0) >= 1, JSON.stringify([...m].filter(([k]) => k.includes('snapshot'))));
    }
  });
}

test('archive bytes follow compaction, import and deletion to the byte; journal and instance metrics', async (t) => {
  const s = await serve(t, { driver: 'memory' });
  const archive = async (): Promise<number> => (await s.scrape()).get('strata_tier_bytes{tier="archive"}') ?? -1;
  assert.equal(await archive(), 0);

  for (let i = 0; i < 5; i++) assert.equal((await s.post('/v1/sessions/kept/messages', { role: 'user', content: `message number ${i} about Lisbon trams` })).status, 201);
  await s.post('/v1/sessions/kept/flush', {});
  await s.post('/v1/sessions/gone/messages', { role: 'user', content: 'to be deleted', userId: 'ana' });
  await s.post('/v1/sessions/gone/flush', {});
  const afterCompaction = await archiveBytesOnDisk(s.dataDir);
  assert.ok(afterCompaction > 0);
  assert.equal(await archive(), afterCompaction, 'compaction');

  const file = new Uint8Array(await (await fetch(`${s.base}/v1/sessions/kept/export`)).arrayBuffer());
  const imported = await fetch(`${s.base}/v1/import?sessionId=copy`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: file });
  assert.equal(imported.status, 201);
  assert.equal(await archive(), await archiveBytesOnDisk(s.dataDir), 'import');
  assert.ok((await archive()) > afterCompaction);

  assert.equal((await fetch(`${s.base}/v1/sessions/copy`, { method: 'DELETE' })).status, 200);
  assert.equal((await fetch(`${s.base}/v1/users/ana`, { method: 'DELETE' })).status, 200);
  assert.equal(await archive(), await archiveBytesOnDisk(s.dataDir), 'deletion');

  const m = await s.scrape();
  // 7 appends (5 + 1 + the deletions' tombstones are journaled by the core, not by appends).
  assert.equal(m.get('strata_journal_append_duration_seconds_count'), 6, 'one observation per durable append');
  const fsyncs = m.get('strata_journal_fsync_duration_seconds_count') ?? 0;
  assert.ok(fsyncs >= 6, `every append and tombstone was fsynced (${fsyncs} fsyncs)`);
  assert.equal(m.get('strata_journal_records_total'), 6, 'records counted once');
  assert.equal(m.get(`strata_instance_info{version="${STRATA_VERSION}",instance_id="metrics-1",hot_driver="memory",durability="fsync"}`), 1);
  await fetch(`${s.base}/no/such/route`);
  assert.equal((await s.scrape()).get('strata_errors_total{code="STRATA_ERR_NOT_FOUND",route="unmatched"}'), 1);
});

test('every query of docs/grafana-dashboard.json and every alert of docs/operations.md reads a metric that /metrics exposes', async (t) => {
  const dashboard = JSON.parse(await readFile(join(ROOT, 'docs/grafana-dashboard.json'), 'utf8')) as { panels: Array<{ type: string; title: string; panels?: unknown[]; targets?: Array<{ expr: string }> }> };
  const panels = dashboard.panels.flatMap((p) => [p, ...((p.panels ?? []) as typeof dashboard.panels)]).filter((p) => p.type !== 'row');
  assert.ok(panels.length >= 15, `${panels.length} panels`);

  const s = await serve(t, { driver: 'memory' });
  // Some traffic, so that labelled series exist too.
  await s.post('/v1/sessions/x/messages', { role: 'user', content: 'hello' });
  await s.post('/v1/sessions/x/flush', {});
  const { names } = parseExposition(await (await fetch(`${s.base}/metrics`)).text());

  const missing: string[] = [];
  for (const panel of panels) {
    assert.ok(panel.targets && panel.targets.length > 0, `panel "${panel.title}" has a query`);
    for (const { expr } of panel.targets) {
      const used = [...expr.matchAll(/\b(strata_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
      assert.ok(used.length > 0, `panel "${panel.title}": ${expr} reads no strata metric`);
      for (const name of used) if (!names.has(name)) missing.push(`${panel.title}: ${name}`);
    }
  }
  assert.deepEqual(missing, []);

  const guide = await readFile(join(ROOT, 'docs/operations.md'), 'utf8');
  const rules = /<!-- alert-rules[^>]*-->\n```yaml\n([\s\S]*?)```/.exec(guide)?.[1];
  assert.ok(rules, 'docs/operations.md has the alert-rules block');
  const alerts = [...rules.matchAll(/- alert: (\S+)\n\s+(?:#.*\n\s+)?expr: (.+)/g)].map((m) => ({ alert: m[1]!, expr: m[2]! }));
  assert.ok(alerts.length >= 10, `${alerts.length} alerts`);
  assert.equal(alerts.length, rules.split('- alert:').length - 1, 'every rule has an expr the test read');
  const unknown = alerts.flatMap(({ alert, expr }) => [...expr.matchAll(/\b(strata_[a-z0-9_]+)\b/g)].map((m) => m[1]!).filter((name) => !names.has(name)).map((name) => `${alert}: ${name}`));
  assert.deepEqual(unknown, []);
  assert.ok(alerts.every(({ expr }) => /strata_/.test(expr)), 'every alert reads a Strata metric');
});
