import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, loadConfig, parseApiKeys, coreConfig } from '../../src/config.js';
import { isStrataError } from '../../src/errors.js';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function configFailure(fn: () => unknown): { message: string; option: unknown } {
  try {
    fn();
  } catch (err) {
    assert.ok(isStrataError(err, 'STRATA_ERR_CONFIG_INVALID'), `expected STRATA_ERR_CONFIG_INVALID, got ${String(err)}`);
    return { message: err.message, option: err.details?.option };
  }
  assert.fail('expected loadConfig to throw');
}

test('defaults: memory hot tier, ./data resolved against cwd, fsync, auth off, frozen', (t) => {
  const cwd = tempDir(t);
  const config = loadConfig({ env: {}, cwd });
  assert.equal(config.hot.driver, 'memory');
  assert.equal(config.dataDir, join(cwd, 'data'));
  assert.equal(config.durability, 'fsync');
  assert.equal(config.recentTurns, DEFAULTS.recentTurns);
  assert.equal(config.hotBudgetBytes, 256 * 1024 * 1024);
  assert.equal(config.retentionDays, null);
  assert.equal(config.embedder.provider, 'glove');
  assert.equal(config.server.port, 8080);
  assert.equal(config.server.apiKeys, null);
  assert.match(config.instanceId, /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.server) && Object.isFrozen(config.compaction));
  assert.throws(() => {
    (config.server as { port: number }).port = 1;
  }, TypeError);
  assert.equal('server' in coreConfig(config), false);
});

test('precedence: flags > env > file > defaults', (t) => {
  const cwd = tempDir(t);
  writeFileSync(join(cwd, 'strata.config.json'), JSON.stringify({ recentTurns: 5, durability: 'batch', server: { port: 9001, logLevel: 'warn' } }));
  const fileOnly = loadConfig({ env: {}, cwd });
  assert.deepEqual([fileOnly.recentTurns, fileOnly.durability, fileOnly.server.port, fileOnly.server.logLevel], [5, 'batch', 9001, 'warn']);
  const withEnv = loadConfig({ env: { STRATA_PORT: '9002', STRATA_DURABILITY: 'none' }, cwd });
  assert.deepEqual([withEnv.recentTurns, withEnv.durability, withEnv.server.port, withEnv.server.logLevel], [5, 'none', 9002, 'warn']);
  const withFlags = loadConfig({ env: { STRATA_PORT: '9002' }, flags: { server: { port: 9003 } }, cwd });
  assert.equal(withFlags.server.port, 9003);
  assert.equal(withFlags.server.logLevel, 'warn', 'a flag for one nested option keeps the others');
});

test('REDIS_URL switches the hot tier to redis unless a driver is set explicitly', (t) => {
  const cwd = tempDir(t);
  const redis = loadConfig({ env: { REDIS_URL: 'redis://127.0.0.1:6390' }, cwd });
  assert.equal(redis.hot.driver, 'redis');
  assert.equal(redis.hot.redisUrl, 'redis://127.0.0.1:6390');
  const forced = loadConfig({ env: { REDIS_URL: 'redis://127.0.0.1:6390', STRATA_HOT_DRIVER: 'memory' }, cwd });
  assert.equal(forced.hot.driver, 'memory');
  const failure = configFailure(() => loadConfig({ env: { STRATA_HOT_DRIVER: 'redis' }, cwd, flags: { hot: { redisUrl: 'http://x' } } }));
  assert.equal(failure.option, 'hot.redisUrl');
});

test('STRATA_API_KEYS maps keys to tenants; empty means auth off', (t) => {
  const cwd = tempDir(t);
  const config = loadConfig({ env: { STRATA_API_KEYS: 'key-aaaaaaaa:tenantA, key-bbbbbbbb:tenantB' }, cwd });
  assert.deepEqual({ ...config.server.apiKeys }, { 'key-aaaaaaaa': 'tenantA', 'key-bbbbbbbb': 'tenantB' });
  assert.equal(loadConfig({ env: { STRATA_API_KEYS: '' }, cwd }).server.apiKeys, null);
  assert.equal(parseApiKeys('  '), null);
  assert.match(configFailure(() => loadConfig({ env: { STRATA_API_KEYS: 'key-aaaaaaaa' }, cwd })).message, /server\.apiKeys/);
  const badTenant = configFailure(() => loadConfig({ env: { STRATA_API_KEYS: 'key-aaaaaaaa:../etc' }, cwd }));
  assert.match(badTenant.message, /server\.apiKeys\.key-aaaaaaaa \(env STRATA_API_KEYS\).*received "\.\.\/etc"/);
  assert.match(configFailure(() => loadConfig({ env: { STRATA_API_KEYS: 'short:tenantA' }, cwd })).message, /at least 8 characters, received key "short"/);
});

test('invalid values name the option, the source, what was expected and what was received', (t) => {
  const cwd = tempDir(t);
  const port = configFailure(() => loadConfig({ env: { STRATA_PORT: 'eighty' }, cwd }));
  assert.equal(port.option, 'server.port');
  assert.match(port.message, /option server\.port \(env STRATA_PORT\): expected a number, received "eighty"/);
  const durability = configFailure(() => loadConfig({ env: { STRATA_DURABILITY: 'sometimes' }, cwd }));
  assert.match(durability.message, /durability .*expected one of "fsync" \| "batch" \| "none", received "sometimes"/);
  const flag = configFailure(() => loadConfig({ env: {}, cwd, flags: { server: { port: 70000 } } }));
  assert.match(flag.message, /server\.port \(flag\): expected a number <= 65535, received 70000/);
  writeFileSync(join(cwd, 'strata.config.json'), JSON.stringify({ recentTurns: 'many', hotBudget: 1 }));
  const file = configFailure(() => loadConfig({ env: {}, cwd }));
  assert.match(file.message, /strata\.config\.json/);
  assert.ok(['recentTurns', 'hotBudget'].includes(String(file.option)));
});

test('config files: an unknown option, invalid JSON and a missing named file are rejected', (t) => {
  const cwd = tempDir(t);
  writeFileSync(join(cwd, 'unknown.json'), JSON.stringify({ compaction: { everyMinute: true } }));
  const unknown = configFailure(() => loadConfig({ env: {}, cwd, file: 'unknown.json' }));
  assert.equal(unknown.option, 'compaction.everyMinute');
  assert.match(unknown.message, /known option/);
  writeFileSync(join(cwd, 'broken.json'), '{"port": ');
  assert.match(configFailure(() => loadConfig({ env: {}, cwd, file: 'broken.json' })).message, /invalid JSON/);
  assert.match(configFailure(() => loadConfig({ env: {}, cwd, file: 'missing.json' })).message, /does not exist/);
  assert.match(configFailure(() => loadConfig({ env: { STRATA_CONFIG: join(cwd, 'nope.json') }, cwd })).message, /does not exist/);
  writeFileSync(join(cwd, 'list.json'), '[]');
  assert.match(configFailure(() => loadConfig({ env: {}, cwd, file: 'list.json' })).message, /expected a JSON object, received an array/);
});

test('retention: STRATA_RETENTION_DAYS accepts days or forever', (t) => {
  const cwd = tempDir(t);
  assert.equal(loadConfig({ env: { STRATA_RETENTION_DAYS: '30' }, cwd }).retentionDays, 30);
  assert.equal(loadConfig({ env: { STRATA_RETENTION_DAYS: 'forever' }, cwd }).retentionDays, null);
  assert.equal(configFailure(() => loadConfig({ env: { STRATA_RETENTION_DAYS: '-3' }, cwd })).option, 'retentionDays');
});
