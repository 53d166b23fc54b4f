/**
 * The package as a user gets it: `npm pack` (whose prepare script builds dist/), the tarball
 * installed into an empty project, then
 * - the README's library snippet (taken from README.md by its marker) run from that project,
 *   against a private Redis, with checks of what it got appended;
 * - `npx strata serve` from that project (embedded defaults: memory hot tier, offline embedder)
 *   on a free port with a temp data directory, one message written and read back through the
 *   package's typed client (`@strata-memory/strata/client`), and a graceful SIGTERM;
 * - `npx strata bench http`, whose load generator is not a dependency: a coded error naming it.
 *
 * The sources are copied to a temp directory before packing, so the test never rewrites the
 * repository's own dist/.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis } from '../helpers/redis.js';
import { ChildServer, ROOT, freePort, serveEnv } from '../helpers/serve.js';

const run = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';
/** What `npm pack` needs from the repository: the manifest, the build inputs, and what `files` ships. */
const PACKAGE_INPUTS = ['package.json', 'package-lock.json', 'README.md', 'LICENSE', 'tsconfig.json', 'tsconfig.build.json', 'scripts', 'src', 'bench', 'bin', 'docs'];
const SNIPPET_MARKER = '<!-- readme-snippet:library';

/** The first ```ts block after the marker comment in README.md. */
export function readmeLibrarySnippet(readme: string): string {
  const at = readme.indexOf(SNIPPET_MARKER);
  assert.ok(at >= 0, `README.md has no ${SNIPPET_MARKER} marker`);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block, 'no ```ts block after the README marker');
  return block[1]!;
}

test('npm pack, install the tarball into an empty project, run the README snippet, npx strata serve', { timeout: 240_000 }, async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'strata-pack-'));
  const redis = await startRedis({ private: true });
  const servers: ChildServer[] = [];
  t.after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await redis.stop();
    await rm(work, { recursive: true, force: true });
  });

  const started = Date.now();
  const phase = (name: string): void => t.diagnostic(`${name}: ${Date.now() - started} ms`);
  // 1. Pack a copy of the sources (prepare builds its dist/ with the repository's toolchain).
  const source = join(work, 'source');
  await mkdir(source);
  for (const entry of PACKAGE_INPUTS) await cp(join(ROOT, entry), join(source, entry), { recursive: true });
  await symlink(join(ROOT, 'node_modules'), join(source, 'node_modules'), 'dir');
  await run(NPM, ['pack', '--pack-destination', work, '--no-audit', '--no-fund'], { cwd: source, maxBuffer: 64 * 1024 * 1024 });
  phase('packed');
  const tarballs = (await readdir(work)).filter((f) => f.endsWith('.tgz'));
  assert.equal(tarballs.length, 1, tarballs.join(', '));
  assert.match(tarballs[0]!, /^strata-memory-strata-\d+\.\d+\.\d+\.tgz$/, 'named after the scoped package');
  const tarball = join(work, tarballs[0]!);

  const { stdout: listing } = await run('tar', ['-tzf', tarball], { maxBuffer: 16 * 1024 * 1024 });
  const files = new Set(listing.split('\n').filter(Boolean).map((f) => f.replace(/^package\//, '')));
  for (const required of ['package.json', 'README.md', 'LICENSE', 'bin/strata.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/client/index.js', 'dist/src/client/index.d.ts', 'docs/operations.md', 'docs/grafana-dashboard.json']) {
    assert.ok(files.has(required), `the tarball lacks ${required}`);
  }
  assert.ok([...files].some((f) => f.endsWith('.lua')), 'the Redis scripts are shipped');
  const leaked = [...files].filter((f) => f.startsWith('test/') || f.startsWith('src/') || f.startsWith('node_modules/') || f.startsWith('dist/test/'));
  assert.deepEqual(leaked, [], 'sources and tests stay out of the tarball');

  // 2. An empty project installs the tarball (dependencies from the registry, the npm cache first).
  const app = join(work, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'strata-pack-test-app', version: '1.0.0', private: true, type: 'module' }));
  const install = await run(NPM, ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: app, maxBuffer: 64 * 1024 * 1024 });
  assert.doesNotMatch(install.stderr, /npm (error|ERR!)/, install.stderr);
  phase('installed');
  // The versions the package pins run on every Node its engines admit (npm would warn otherwise).
  assert.doesNotMatch(install.stderr, /EBADENGINE/, install.stderr);

  // 3. The README's library snippet, verbatim, plus checks of what it computed.
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const snippet = readmeLibrarySnippet(readme);
  assert.match(snippet, /from '@strata-memory\/strata'/, 'the README imports the published name');
  const checks = `
const text = (m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content));
console.log(JSON.stringify({
  turnId,
  recent: recent.messages.map(text),
  page: page.messages.map(text),
  smart: smart.messages.map(text),
  hits: Array.isArray(hits),
}));
`;
  await writeFile(join(app, 'snippet.mjs'), snippet + checks);
  const ran = await run(process.execPath, ['snippet.mjs'], { cwd: app, env: serveEnv({ REDIS_URL: redis.url }) });
  const result = JSON.parse(ran.stdout.trim().split('\n').at(-1)!) as { turnId: number; recent: string[]; page: string[]; smart: string[]; hits: boolean };
  assert.equal(result.turnId, 1);
  assert.deepEqual(result.recent, ['My cat is called Biscuit']);
  assert.deepEqual(result.page, ['My cat is called Biscuit']);
  assert.ok(result.smart.includes('My cat is called Biscuit'), JSON.stringify(result.smart));
  assert.equal(result.hits, true);

  phase('snippet');
  // 4. `npx strata serve` from the project: embedded defaults, a temp data dir, a free port.
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const serve = new ChildServer(NPX, ['--no', 'strata', 'serve'], { cwd: app, env: serveEnv({ STRATA_DATA_DIR: join(work, 'serve-data'), STRATA_PORT: String(port) }) });
  servers.push(serve);
  await serve.waitReady(base, 60_000);
  const client = join(app, 'client.mjs');
  await writeFile(
    client,
    `import { StrataClient } from '@strata-memory/strata/client';
const strata = new StrataClient({ baseUrl: ${JSON.stringify(base)} });
const added = await strata.addMessage('chat-1', { role: 'user', content: 'hello from the tarball' });
const page = await strata.getMessages('chat-1');
console.log(JSON.stringify({ added, contents: page.messages.map((m) => m.content) }));
`,
  );
  const clientRun = await run(process.execPath, [client], { cwd: app });
  assert.deepEqual(JSON.parse(clientRun.stdout), { added: { turnId: 1 }, contents: ['hello from the tarball'] });
  // SIGTERM reaches npx and the server beneath it (one process group); npx itself dies of the
  // signal, so the server's own last log line tells that it shut down gracefully.
  await serve.stop();
  const lastLines = serve.stdout().trim().split('\n').map((line) => JSON.parse(line) as { msg?: string });
  assert.ok(lastLines.some((line) => line.msg === 'strata listening'), serve.stdout());
  assert.equal(lastLines.at(-1)?.msg, 'stopped', `strata serve did not stop gracefully:\n${serve.stdout()}\n${serve.stderr()}`);

  phase('served');
  // 5. A benchmark whose baseline needs a package the library does not depend on.
  const bench = await run(NPX, ['--no', 'strata', 'bench', 'http', '--duration', '1'], { cwd: app }).then(
    () => assert.fail('strata bench http ran without autocannon installed'),
    (err: { code: number; stderr: string }) => err,
  );
  assert.notEqual(bench.code, 0);
  assert.match(bench.stderr, /STRATA_ERR_NOT_AVAILABLE/);
  assert.match(bench.stderr, /npm install autocannon@/);
});
