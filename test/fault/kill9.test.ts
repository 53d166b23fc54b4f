import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/journal.js';
import { prng } from '../helpers/strata.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const childScript = join(root, 'test', 'fixtures', 'kill9-child.ts');
const ROUNDS = 20;
const WRITERS = 8;
const SESSIONS = 4;
const SEED = 0x5eed9;

interface Round {
  have: Map<string, number>;
  acks: number;
  /** Turn records the child replayed from the journal at its start. */
  replayed: number;
}

/**
 * Starts the child, checks what it recovered against every turn acknowledged so far, lets it
 * append for `runMs` after it is ready, then kills it with SIGKILL. `acked` is updated with the
 * turns acknowledged in this round.
 */
function runRound(dataDir: string, mode: string, acked: Map<string, number>, runMs: number): Promise<Round> {
  return new Promise<Round>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', childScript, dataDir, mode, String(WRITERS), String(SESSIONS)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const round: Round = { have: new Map(), acks: 0, replayed: 0 };
    let pending = '';
    let stderr = '';
    let problem: Error | null = null;
    let killed = false;
    const kill = () => {
      killed = true;
      child.kill('SIGKILL');
    };
    const guard = setTimeout(() => {
      problem ??= new Error(`child did not get ready within 20 s; stderr: ${stderr}`);
      kill();
    }, 20_000);
    const onLine = (line: string) => {
      const [kind, session, n] = line.split(' ');
      if (kind === 'bad') problem ??= new Error(`child found damage after recovery: ${line}`);
      else if (kind === 'replayed') round.replayed = Number(session);
      else if (kind === 'have') {
        round.have.set(session!, Number(n));
        const expected = acked.get(session!) ?? 0;
        if (Number(n) < expected) problem ??= new Error(`${session}: recovered turns 1..${n}, but turn ${expected} was acknowledged`);
      } else if (kind === 'ready') {
        setTimeout(kill, runMs);
      } else if (kind === 'ack') {
        const id = Number(n);
        const before = acked.get(session!) ?? 0;
        if (id <= before) problem ??= new Error(`${session}: turn ${id} acknowledged after turn ${before}`);
        acked.set(session!, id);
        round.acks++;
      }
    };
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) onLine(line);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      // A partial last line was cut by the kill before it was fully written: the append it
      // reports had resolved, so count it only if it parses completely (it never does: no '\n').
      if (problem) reject(problem);
      else if (!killed || signal !== 'SIGKILL') reject(new Error(`child exited by itself (code ${code}, signal ${signal}); stderr: ${stderr}`));
      else resolve(round);
    });
  });
}

async function killLoop(mode: string): Promise<void> {
  const { dir, cleanup } = await tempDir('strata-kill9-');
  try {
    const random = prng(SEED);
    const acked = new Map<string, number>();
    let totalAcks = 0;
    let roundsWithAcks = 0;
    let roundsWithReplay = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const round = await runRound(dir, mode, acked, 10 + Math.floor(random() * 240));
      totalAcks += round.acks;
      if (round.acks > 0) roundsWithAcks++;
      if (round.replayed > 0) roundsWithReplay++;
    }
    // One more start only to check what the last round acknowledged (runRound checks the
    // recovered counts against `acked`; the snapshot guards against a child that reports none).
    const before = new Map(acked);
    const final = await runRound(dir, mode, acked, 0);
    for (const [session, n] of before) assert.ok((final.have.get(session) ?? 0) >= n, `${session}: turn ${n} acknowledged but not recovered`);
    assert.ok(roundsWithAcks >= ROUNDS / 2, `only ${roundsWithAcks} of ${ROUNDS} rounds acknowledged anything`);
    assert.ok(totalAcks > 0);
    // The kills landed between acknowledgement and archiving (replay had work) ...
    assert.ok(roundsWithReplay > 0, 'no restart had anything to replay: the kills never hit unarchived turns');
    // ... and checkpoints truncated the journal: far less is left than was written.
    const jdir = join(dir, 'journal', 'kill9');
    let walBytes = 0;
    for (const name of await readdir(jdir)) if (name.endsWith('.wal')) walBytes += (await stat(join(jdir, name))).size;
    assert.ok(walBytes < totalAcks * 20, `journal still holds ${walBytes} bytes after ${totalAcks} acknowledged turns of ~150 bytes each`);
  } finally {
    await cleanup();
  }
}

test(`kill -9 at random moments (${ROUNDS} rounds, seed ${SEED}) while appending, archiving and checkpointing: every acknowledged turn is in the archive exactly once, in order`, async () => {
  await killLoop('archive');
});
