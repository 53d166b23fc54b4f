/**
 * The package manifest tells the truth: the Node versions `engines` admits run every dependency
 * the lockfile installs (npm prints no EBADENGINE), the optional benchmark packages are named with
 * the versions the repository pins, and a missing one is a coded error naming it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import semver from 'semver';
import { isStrataError } from '../../src/errors.js';
import { OPTIONAL_BENCH_PACKAGES, importOptional } from '../../bench/optional.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { name: string; engines: { node: string }; exports: Record<string, unknown>; devDependencies: Record<string, string>; dependencies: Record<string, string> };
const lock = JSON.parse(readFileSync(`${ROOT}package-lock.json`, 'utf8')) as { packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } | string[] }> };

function nodeRange(entry: { engines?: { node?: string } | string[] }): string | undefined {
  return Array.isArray(entry.engines) ? undefined : entry.engines?.node;
}

test('every runtime dependency in the lockfile runs on the oldest Node that engines admits', () => {
  const floor = semver.minVersion(pkg.engines.node);
  assert.ok(floor, `engines.node ${pkg.engines.node} has a minimum`);
  const refused = Object.entries(lock.packages)
    .filter(([path, entry]) => path !== '' && !entry.dev)
    .filter(([, entry]) => {
      const range = nodeRange(entry);
      return range !== undefined && !semver.satisfies(floor, range);
    })
    .map(([path, entry]) => `${path}@${entry.version} needs node ${nodeRange(entry)}`);
  assert.deepEqual(refused, [], `engines.node is ${pkg.engines.node}`);
});

test('no package of the lockfile (dev ones included) refuses the Node running the tests', () => {
  const refused = Object.entries(lock.packages)
    .filter(([path, entry]) => {
      const range = nodeRange(entry);
      return path !== '' && range !== undefined && !semver.satisfies(process.version, range);
    })
    .map(([path, entry]) => `${path}@${entry.version} needs node ${nodeRange(entry)}`);
  assert.deepEqual(refused, [], `npm ci on ${process.version} would print EBADENGINE`);
});

test('the package is scoped and exports the library and the client', () => {
  assert.equal(pkg.name, '@strata-memory/strata');
  assert.ok('.' in pkg.exports && './client' in pkg.exports);
});

test('optional benchmark packages are devDependencies at the versions the error message names', () => {
  for (const [name, version] of Object.entries(OPTIONAL_BENCH_PACKAGES)) {
    assert.equal(pkg.devDependencies[name], version, `${name} in devDependencies`);
    assert.equal(pkg.dependencies[name], undefined, `${name} is not a runtime dependency`);
  }
});

test('a missing optional package is STRATA_ERR_NOT_AVAILABLE naming the package to install', async () => {
  await assert.rejects(importOptional('@strata-memory/no-such-package/sub', 'strata bench example'), (err: unknown) => {
    assert.ok(isStrataError(err, 'STRATA_ERR_NOT_AVAILABLE'), String(err));
    assert.match(err.message, /strata bench example needs the package @strata-memory\/no-such-package/);
    assert.match(err.message, /npm install @strata-memory\/no-such-package/);
    assert.deepEqual(err.details, { package: '@strata-memory/no-such-package' });
    return true;
  });
  // An installed one loads.
  const mod = await importOptional<{ default: unknown }>('autocannon', 'strata bench http');
  assert.equal(typeof mod.default, 'function');
});
