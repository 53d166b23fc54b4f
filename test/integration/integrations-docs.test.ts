/**
 * The LangChain.js and AI SDK examples of docs/integrations.md run as they are written, each in
 * its own directory as an application would have it (the package's entry points mapped to these
 * sources), and type-check under `strict`; what they print and what they stored is checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStrata } from '../../src/strata.js';
import { ROOT } from '../helpers/serve.js';

const TSX = import.meta.resolve('tsx');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** The package's entry points, as the sources they are built from. */
const ENTRY_POINTS: Record<string, string> = {
  '@strata-memory/strata': 'src/index.ts',
  '@strata-memory/strata/langchain': 'src/integrations/langchain.ts',
  '@strata-memory/strata/ai': 'src/integrations/ai.ts',
};

async function docBlock(marker: string): Promise<string> {
  const doc = await readFile(join(ROOT, 'docs/integrations.md'), 'utf8');
  const at = doc.indexOf(`<!-- ${marker}`);
  assert.ok(at >= 0, `docs/integrations.md has no <!-- ${marker} marker`);
  const match = /```ts\n([\s\S]*?)\n```/.exec(doc.slice(at));
  assert.ok(match, `no ts block after <!-- ${marker}`);
  return match[1]!;
}

/** The block with the package's specifiers pointing at the sources; every other import is left to node_modules. */
function withSources(code: string): string {
  return code.replace(/from '(@strata-memory\/strata(?:\/[a-z]+)?)'/g, (whole, specifier: string) => {
    const source = ENTRY_POINTS[specifier];
    assert.ok(source, `the example imports ${specifier}, which is not an entry point of the package`);
    return `from '${join(ROOT, source)}'`;
  });
}

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

/** An application directory holding the example as `app.mts`, with the repository's node_modules. */
async function app(t: { after(fn: () => Promise<void>): void }, marker: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-docs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  await writeFile(join(dir, 'app.mts'), withSources(await docBlock(marker)));
  return dir;
}

async function storedTurns(dataDir: string, sessionId: string) {
  const strata = await createStrata({ dataDir, instanceId: 'docs-check' });
  try {
    return (await strata.getMessages(sessionId)).messages;
  } finally {
    await strata.close();
  }
}

test('the LangChain.js example runs: the second answer streams, the history is in Strata', async (t) => {
  const dir = await app(t, 'integrations-example:langchain');
  const result = await run(process.execPath, ['--import', TSX, 'app.mts'], dir);
  assert.equal(result.code, 0, result.err);
  assert.equal(result.out, ['Your name is Ada.', 'human: Hi, I am Ada.', 'ai: Nice to meet you, Ada.', 'human: What is my name?', 'ai: Your name is Ada.', ''].join('\n'));
  const turns = await storedTurns(join(dir, 'strata-data'), 'chat-1');
  assert.deepEqual(
    turns.map((m) => [m.role, m.content]),
    [
      ['user', 'Hi, I am Ada.'],
      ['assistant', 'Nice to meet you, Ada.'],
      ['user', 'What is my name?'],
      ['assistant', 'Your name is Ada.'],
    ],
  );
});

test('the AI SDK example runs: a tool round, a follow-up that sees it, six messages stored', async (t) => {
  const dir = await app(t, 'integrations-example:ai');
  const result = await run(process.execPath, ['--import', TSX, 'app.mts'], dir);
  assert.equal(result.code, 0, result.err);
  assert.equal(result.out, ['It is 21 °C in Lisbon.', 'You asked about Lisbon.', 'user assistant tool assistant user assistant', ''].join('\n'));
  const turns = await storedTurns(join(dir, 'strata-data'), 'chat-1');
  assert.deepEqual(
    turns.map((m) => m.role),
    ['user', 'assistant', 'tool', 'assistant', 'user', 'assistant'],
  );
  assert.deepEqual(turns[1]?.tool_calls, [{ id: 'call-1', type: 'function', function: { name: 'weather', arguments: '{"city":"Lisbon"}' } }]);
  assert.equal(turns[2]?.content, '{"city":"Lisbon","celsius":21}');
});

test('both examples type-check under strict', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-docs-tsc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  await writeFile(join(dir, 'langchain.mts'), withSources(await docBlock('integrations-example:langchain')));
  await writeFile(join(dir, 'ai.mts'), withSources(await docBlock('integrations-example:ai')));
  const tsconfig = { compilerOptions: { strict: true, target: 'ES2022', lib: ['ES2023'], module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: true, skipLibCheck: true, allowImportingTsExtensions: true, types: ['node'] }, files: ['langchain.mts', 'ai.mts'] };
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
  const result = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], dir);
  assert.equal(result.code, 0, result.out + result.err);
});
