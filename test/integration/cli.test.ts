/**
 * The CLI through `main(argv, io)`: every command runs against one temp data directory with the
 * memory hot tier and the hash embedder. Each command opens and closes the core (closing
 * flushes), so what one command writes the next one reads from the archive on disk.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.js';
import { captureIo } from '../helpers/io.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/cli/', import.meta.url));
const fixture = (name: string): string => join(FIXTURES, name);

interface Run {
  code: number;
  out: string;
  err: string;
}

interface Turn {
  turnId: number;
  role: string;
  content: string;
  metadata?: Record<string, unknown>;
}

let dataDir = '';
let workDir = '';

/** Runs `strata <argv>` with the test's data directory (unless `dataDir: false`) and no Redis. */
async function cli(argv: string[], options: { dataDir?: boolean | string; env?: Record<string, string> } = {}): Promise<Run> {
  const io = captureIo();
  io.env = { STRATA_EMBEDDER: 'hash', STRATA_LOG_LEVEL: 'error', ...options.env };
  const dir = typeof options.dataDir === 'string' ? options.dataDir : dataDir;
  const code = await main(options.dataDir === false ? argv : [...argv, '--data-dir', dir], io);
  return { code, out: io.out(), err: io.err() };
}

async function cliJson<T>(argv: string[]): Promise<T> {
  const run = await cli([...argv, '--json']);
  assert.equal(run.code, 0, `strata ${argv.join(' ')} failed: ${run.err}`);
  return JSON.parse(run.out) as T;
}

async function fullContext(session: string): Promise<Turn[]> {
  return (await cliJson<{ messages: Turn[] }>(['context', session, '--type', 'full'])).messages;
}

/** Every archive file under the data directory (recognised by the "STRA" magic, as verify does). */
async function archiveFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dataDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const head = (await readFile(path)).subarray(0, 4);
    if (head.toString('latin1') === 'STRA') files.push(path);
  }
  return files.sort();
}

/** A coded error on stderr, exit code non-zero, and no stack trace. */
function assertCodedError(run: Run, code: string): void {
  assert.notEqual(run.code, 0, `expected a failure, got exit 0 with ${run.out}`);
  assert.match(run.err, new RegExp(`^${code}: `, 'm'), run.err);
  assert.doesNotMatch(run.err, /\n\s+at .+[:(]/, `a stack trace leaked: ${run.err}`);
}

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'strata-cli-'));
  dataDir = join(workDir, 'data');
});
after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('strata import of conversation files', () => {
  test('ShareGPT/LongMemEval sessions JSON: one session per entry, empty turns skipped, ids kept', async () => {
    const entries = JSON.parse(await readFile(fixture('sessions.json'), 'utf8')) as Array<{ turns?: Array<{ content: string }>; conversations?: unknown[] }>;
    const expected = entries.map((e) => (e.turns ? e.turns.filter((t) => t.content !== '').length : e.conversations!.length));
    const result = await cliJson<{ format: string; sessions: number; messages: number }>(['import', fixture('sessions.json')]);
    assert.deepEqual(result, { format: 'sessions', sessions: entries.length, messages: expected[0]! + expected[1]! });

    const trip = await fullContext('trip-planning');
    assert.equal(trip.length, expected[0]);
    assert.deepEqual(trip.map((t) => t.turnId), Array.from({ length: trip.length }, (_, i) => i + 1));
    assert.equal(trip[0]!.role, 'user');
    assert.match(trip[0]!.content as string, /Zanzibar/);
    // Ids are any text ("recipes 2"); the ShareGPT {from, value} shape maps human/gpt to user/assistant.
    const recipes = await fullContext('recipes 2');
    assert.deepEqual(recipes.map((t) => t.role), ['user', 'assistant']);
  });

  test('OpenAI chat JSONL: one conversation per line, content parts kept, user id kept', async () => {
    const run = await cli(['import', fixture('chat.jsonl'), '--format', 'openai-jsonl']);
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /imported 6 message\(s\) in 2 session\(s\) \(openai-jsonl\)/);
    const support = await fullContext('support-42');
    assert.deepEqual(support.map((t) => t.role), ['system', 'user', 'assistant', 'user']);
    assert.deepEqual(support[2]!.content, [{ type: 'text', text: 'Let us check the firmware version first.' }]);
    // A line without an id is named after its line number (line 2 is blank).
    assert.equal((await fullContext('line-3')).length, 2);
    const info = await cliJson<{ hits: Array<{ sessionId: string }> }>(['search', 'router firmware', '--user', 'alice']);
    assert.ok(info.hits.length > 0 && info.hits.every((h) => h.sessionId === 'support-42'), JSON.stringify(info));
  });

  test('LoCoMo: each session_k becomes <sample_id>-s<k> owned by the sample, speakers mapped, dia ids in metadata', async () => {
    const result = await cliJson<{ format: string; sessions: number; messages: number }>(['import', fixture('locomo.json')]);
    // session_3_date_time has no session_3: date keys never make sessions.
    assert.deepEqual(result, { format: 'locomo', sessions: 2, messages: 5 });
    const s1 = await fullContext('conv-t1-s1');
    assert.deepEqual(s1.map((t) => t.role), ['user', 'assistant', 'user']);
    assert.deepEqual(s1[2]!.metadata, { speaker: 'Maya', diaId: 'D1:3' });
    const s2 = await fullContext('conv-t1-s2');
    assert.deepEqual(s2.map((t) => [t.role, t.metadata?.diaId]), [['assistant', 'D2:1'], ['user', 'D2:2']]);
  });

  test('an unrecognisable file is a coded error and imports nothing', async () => {
    const bad = join(workDir, 'notes.txt');
    await writeFile(bad, 'just some notes\n');
    const before = await cliJson<{ sessions: number }>(['stats']);
    assertCodedError(await cli(['import', bad]), 'STRATA_ERR_INPUT_FORMAT');
    assertCodedError(await cli(['import', fixture('sessions.json'), '--format', 'csv']), 'STRATA_ERR_VALIDATION');
    assert.equal((await cliJson<{ sessions: number }>(['stats'])).sessions, before.sessions);
  });
});

describe('strata read commands', () => {
  test('stats counts every imported session and turn, all archived', async () => {
    const stats = await cliJson<{ tenant: string; sessions: number; turns: number; unarchivedTurns: number; archivedTurns: number; archiveBytes: number }>(['stats']);
    assert.equal(stats.tenant, 'default');
    assert.equal(stats.sessions, 6);
    assert.equal(stats.turns, 6 + 2 + 4 + 2 + 3 + 2);
    // Every command closes the core, which flushes: nothing is left unarchived.
    assert.equal(stats.unarchivedTurns, 0);
    assert.equal(stats.archivedTurns, stats.turns);
    assert.ok(stats.archiveBytes > 0);
    const table = await cli(['stats']);
    assert.equal(table.code, 0);
    assert.match(table.out, /\| sessions +\| 6 +\|/);
  });

  test('context recent | full | smart', async () => {
    const full = await fullContext('trip-planning');
    const recent = await cliJson<{ messages: Turn[] }>(['context', 'trip-planning', '--type', 'recent']);
    assert.ok(recent.messages.length > 0 && recent.messages.length <= full.length);
    assert.deepEqual(recent.messages, full.slice(full.length - recent.messages.length));

    const smart = await cliJson<{ messages: Turn[]; tokens: number }>(['context', 'trip-planning', '--type', 'smart', '--query', 'airport taxi to Nungwi', '--max-tokens', '60']);
    assert.ok(smart.messages.length > 0);
    assert.ok(smart.tokens <= 60, `smart context of ${smart.tokens} tokens exceeds the budget of 60`);

    const text = await cli(['context', 'trip-planning', '--type', 'full']);
    assert.equal(text.code, 0, text.err);
    assert.equal(text.out, full.map((t) => `#${t.turnId} ${t.role}: ${t.content}\n`).join(''));
    assert.match(text.err, new RegExp(`^${full.length} messages, \\d+ tokens`));
  });

  test('search --session finds the turn that holds the words', async () => {
    const { hits } = await cliJson<{ hits: Array<{ sessionId: string; turnId: number; content: string; score: number }> }>(['search', 'snorkelling Mnemba Atoll', '--session', 'trip-planning', '--k', '3']);
    assert.ok(hits.length > 0 && hits.length <= 3);
    assert.ok(hits.every((h) => h.sessionId === 'trip-planning'));
    assert.ok(hits.slice(0, 2).some((h) => h.content.includes('Mnemba')), JSON.stringify(hits));
    const table = await cli(['search', 'lentil soup', '--session', 'recipes 2']);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /\| score +\| session +\| turn +\| role +\| content/);
    assert.match(table.out, /recipes 2 .*lentil/);
    assertCodedError(await cli(['search', 'x']), 'STRATA_ERR_VALIDATION');
  });
});

describe('strata export, inspect and import of an archive', () => {
  test('export -o writes the archive; inspect shows segments, codec and CRC status', async () => {
    const file = join(workDir, 'trip.strata');
    const exported = await cli(['export', 'trip-planning', '-o', file]);
    assert.equal(exported.code, 0, exported.err);
    const size = (await stat(file)).size;
    assert.match(exported.err, new RegExp(`exported trip-planning: ${size} bytes to `));

    const text = await cli(['inspect', file], { dataDir: false });
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, new RegExp(`: ${size} bytes, \\d+ record\\(s\\), OK`));
    assert.match(text.out, /segment 0 +\| 1-6 \(6\)/);
    assert.match(text.out, /\d+ ok +\|/);

    const report = JSON.parse((await cli(['inspect', file, '--json'], { dataDir: false })).out) as {
      ok: boolean;
      size: number;
      tornBytes: number;
      records: Array<{ type: string; segment?: { codec: string; turns: number; blocks: Array<{ crcOk: boolean }> } }>;
    };
    assert.equal(report.ok, true);
    assert.equal(report.size, size);
    assert.equal(report.tornBytes, 0);
    const segments = report.records.flatMap((r) => (r.segment ? [r.segment] : []));
    assert.equal(segments.reduce((n, s) => n + s.turns, 0), 6);
    for (const s of segments) {
      assert.match(s.codec, /^[a-z0-9-]+$/);
      assert.ok(s.blocks.length > 0 && s.blocks.every((b) => b.crcOk));
    }
  });

  test('import of the exported archive creates a new session with the same turns; a second import conflicts', async () => {
    const file = join(workDir, 'trip.strata');
    const run = await cli(['import', file, '--session', 'trip-copy']);
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /imported archive as session trip-copy: 6 turn\(s\)/);
    const strip = (turns: Turn[]) => turns.map((t) => ({ turnId: t.turnId, role: t.role, content: t.content }));
    assert.deepEqual(strip(await fullContext('trip-copy')), strip(await fullContext('trip-planning')));
    assertCodedError(await cli(['import', file, '--session', 'trip-copy']), 'STRATA_ERR_CONFLICT');
  });
});

describe('strata verify', () => {
  test('a clean data directory verifies with exit 0', async () => {
    const files = await archiveFiles();
    assert.ok(files.length >= 7, `expected an archive file per session, found ${files.length}`);
    const run = await cli(['verify']);
    assert.equal(run.code, 0, run.out + run.err);
    assert.match(run.out, new RegExp(`^${files.length} archive file\\(s\\) checked, 0 damaged$`, 'm'));
  });

  test('a corrupt byte in the middle of a file: non-zero exit naming the coded error; reads fail with a coded error', async () => {
    const files = await archiveFiles();
    // The file with the most bytes holds a segment; flip a byte in the middle of it.
    const sizes = await Promise.all(files.map(async (f) => (await stat(f)).size));
    const target = files[sizes.indexOf(Math.max(...sizes))]!;
    const original = await readFile(target);
    const damaged = Buffer.from(original);
    const middle = Math.floor(damaged.length / 2);
    damaged[middle] = damaged[middle]! ^ 0x5a;
    await writeFile(target, damaged);
    try {
      const run = await cli(['verify']);
      assert.notEqual(run.code, 0);
      assert.match(run.out, /1 damaged/);
      assert.match(run.out, /STRATA_ERR_(ARCHIVE_CORRUPT|CODEC_CHECKSUM|CODEC_CORRUPT)/);
      assert.ok(run.out.includes(target), run.out);
      const json = JSON.parse((await cli(['verify', '--json'])).out) as { damaged: number; results: Array<{ file: string; ok: boolean; damage: Array<{ code: string }> }> };
      assert.equal(json.damaged, 1);
      assert.deepEqual(json.results.filter((r) => !r.ok).map((r) => r.file), [target]);
      // Reading the damaged session is a coded error too, never a crash or a stack trace.
      const session = target.replace(/^.*[\\/]/, '').replace(/\.strata$/, '');
      assertCodedError(await cli(['context', session, '--type', 'full']), '(STRATA_ERR_ARCHIVE_CORRUPT|STRATA_ERR_CODEC_CHECKSUM|STRATA_ERR_CODEC_CORRUPT)');
      // --repair never drops damaged blocks in the middle of a file.
      const repair = await cli(['verify', '--repair']);
      assert.notEqual(repair.code, 0);
      assert.deepEqual(await readFile(target), damaged);
    } finally {
      await writeFile(target, original);
    }
    assert.equal((await cli(['verify'])).code, 0);
  });

  test('verify --repair cuts torn tails: half of a record appended, and a zero-filled tail', async () => {
    const [first, second] = await archiveFiles();
    assert.ok(first && second);
    const sizes = [(await stat(first)).size, (await stat(second)).size];
    // A crash in the middle of an append leaves a record whose body runs past the end of the file.
    const bytes = await readFile(first);
    const report = JSON.parse((await cli(['inspect', first, '--json'], { dataDir: false })).out) as { records: Array<{ offset: number; bytes: number }> };
    const last = report.records.at(-1)!;
    await appendFile(first, bytes.subarray(last.offset, last.offset + Math.ceil(last.bytes / 2)));
    // A file system may also extend the file with zeros before the data reaches the disk.
    await appendFile(second, Buffer.alloc(512));

    const found = await cli(['verify']);
    assert.notEqual(found.code, 0);
    assert.match(found.out, new RegExp(`torn tail ${Math.ceil(last.bytes / 2)} B`));
    assert.match(found.out, /torn tail 512 B/);
    assert.match(found.out, /2 damaged/);
    const repaired = await cli(['verify', '--repair']);
    assert.equal(repaired.code, 0, repaired.out);
    assert.equal(repaired.out.match(/torn tail \d+ B \(cut\)/g)?.length, 2, repaired.out);
    assert.deepEqual([(await stat(first)).size, (await stat(second)).size], sizes);
    assert.match((await cli(['verify'])).out, /checked, 0 damaged/);
  });

  test('garbage that is not the start of a record is damage: reported, never cut', async () => {
    const [target] = await archiveFiles();
    assert.ok(target);
    const original = await readFile(target);
    const garbage = Buffer.from('not a record header, not a torn append either', 'latin1');
    await appendFile(target, garbage);
    try {
      const run = await cli(['verify', '--repair']);
      assert.notEqual(run.code, 0);
      assert.match(run.out, /STRATA_ERR_ARCHIVE_CORRUPT/);
      assert.equal((await stat(target)).size, original.length + garbage.length);
    } finally {
      await writeFile(target, original);
    }
  });
});

describe('strata reindex', () => {
  test('after an embedder change, search names the mismatch; reindex re-embeds every archived turn and search works again', async () => {
    const dir = join(workDir, 'reindex-data');
    const hash = { dataDir: dir };
    const glove = { dataDir: dir, env: { STRATA_EMBEDDER: 'glove' } };
    assert.equal((await cli(['import', fixture('chat.jsonl')], hash)).code, 0);
    const query = ['search', 'router firmware', '--session', 'support-42', '--json'];
    assertCodedError(await cli(query, glove), 'STRATA_ERR_EMBEDDER_MISMATCH');
    const run = await cli(['reindex', '--json'], glove);
    assert.equal(run.code, 0, run.err);
    assert.deepEqual(JSON.parse(run.out), { sessions: 2, turns: 6 });
    const after = await cli(query, glove);
    assert.equal(after.code, 0, after.err);
    const { hits } = JSON.parse(after.out) as { hits: Array<{ content: string }> };
    assert.ok(hits.some((h) => h.content.includes('router')), after.out);
  });
});

describe('strata compact and gc', () => {
  test('compact archives every unarchived turn (none are left after a command closes the core)', async () => {
    const run = await cliJson<{ sessions: number; turns: number }>(['compact']);
    assert.equal(run.turns, 0);
    const one = await cli(['compact', 'trip-planning']);
    assert.equal(one.code, 0, one.err);
    assert.match(one.out, /^archived 0 turn\(s\) of 1 session\(s\)/);
    assertCodedError(await cli(['compact', 'no-such-session']), 'STRATA_ERR_NOT_FOUND');
  });

  test('gc --max-age-days keeps recent sessions and deletes expired ones', async () => {
    const before = await cliJson<{ sessions: number }>(['stats']);
    assert.deepEqual(await cliJson<{ deletedSessions: number }>(['gc', '--max-age-days', '1']), { deletedSessions: 0 });
    assert.equal((await cliJson<{ sessions: number }>(['stats'])).sessions, before.sessions);
    assertCodedError(await cli(['gc']), 'STRATA_ERR_VALIDATION');
    assertCodedError(await cli(['gc', '--max-age-days', '0']), 'STRATA_ERR_VALIDATION');
    // About 0.09 s: every session's last message is older than that by now.
    const gc = await cli(['gc', '--max-age-days', '0.000001']);
    assert.equal(gc.code, 0, gc.err);
    assert.equal(gc.out, `deleted ${before.sessions} expired session(s)\n`);
    assert.equal((await cliJson<{ sessions: number }>(['stats'])).sessions, 0);
    assertCodedError(await cli(['export', 'trip-planning', '-o', join(workDir, 'gone.strata')]), 'STRATA_ERR_NOT_FOUND');
    assert.deepEqual(await fullContext('trip-planning'), []);
  });
});

describe('strata errors', () => {
  test('an unknown session: export is STRATA_ERR_NOT_FOUND on stderr with no stack trace; its context and search are empty', async () => {
    const run = await cli(['export', 'ghost', '-o', join(workDir, 'ghost.strata')]);
    assertCodedError(run, 'STRATA_ERR_NOT_FOUND');
    assert.equal(run.out, '');
    assert.deepEqual(await fullContext('ghost'), []);
    assert.deepEqual((await cliJson<{ hits: unknown[] }>(['search', 'x', '--session', 'ghost'])).hits, []);
  });

  test('a bad flag value is STRATA_ERR_CONFIG_INVALID naming the option', async () => {
    const port = await cli(['serve', '--port', '99999']);
    assertCodedError(port, 'STRATA_ERR_CONFIG_INVALID');
    assert.match(port.err, /server\.port \(flag\)/);
    const redis = await cli(['stats', '--redis-url', 'http://127.0.0.1:6379']);
    assertCodedError(redis, 'STRATA_ERR_CONFIG_INVALID');
    assert.match(redis.err, /hot\.redisUrl/);
    const level = await cli(['serve', '--log-level', 'loud']);
    assertCodedError(level, 'STRATA_ERR_CONFIG_INVALID');
    const env = await cli(['stats'], { env: { STRATA_RECENT_TURNS: 'lots' } });
    assertCodedError(env, 'STRATA_ERR_CONFIG_INVALID');
    assert.match(env.err, /env STRATA_RECENT_TURNS/);
    assertCodedError(await cli(['context', 'x', '--type', 'summary']), 'STRATA_ERR_VALIDATION');
    assertCodedError(await cli(['context', 'x', '--max-tokens', 'many']), 'STRATA_ERR_VALIDATION');
  });

  test('a missing file and an unknown command fail without a stack trace', async () => {
    const missing = await cli(['inspect', join(workDir, 'nope.strata')], { dataDir: false });
    assert.notEqual(missing.code, 0);
    assert.doesNotMatch(missing.err, /\n\s+at /);
    assert.match(missing.err, /nope\.strata/);
    const unknown = await cli(['frobnicate'], { dataDir: false });
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.err, /unknown command 'frobnicate'/);
  });

  test('--help and --version exit 0', async () => {
    const help = await cli(['--help'], { dataDir: false });
    assert.equal(help.code, 0);
    for (const name of ['serve', 'import', 'export', 'inspect', 'verify', 'search', 'context', 'gc', 'compact', 'reindex', 'stats', 'bench', 'eval']) assert.match(help.out, new RegExp(`^  ${name}\\b`, 'm'));
    const version = await cli(['--version'], { dataDir: false });
    assert.equal(version.code, 0);
    assert.match(version.out, /^\d+\.\d+\.\d+/);
  });
});
