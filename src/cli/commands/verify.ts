import { open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { inspectBytes } from '../../archive/file.js';
import { verifyJournals } from '../../journal/verify.js';
import type { JournalFileReport } from '../../journal/verify.js';
import { formatTable, printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, configFromFlags, progress } from './common.js';

/** "STRA": archive files are recognised by content, not by name. */
const MAGIC = Buffer.from([0x53, 0x54, 0x52, 0x41]);

async function* walk(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

async function isArchive(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && head.equals(MAGIC);
  } finally {
    await handle.close();
  }
}

/** Cuts a torn tail (an incomplete last record from a crash mid-append) and fsyncs. */
async function cutTail(path: string, validEnd: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(validEnd);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface VerifyFileResult {
  file: string;
  bytes: number;
  segments: number;
  ok: boolean;
  tornBytes: number;
  repaired: boolean;
  damage: Array<{ offset: number; code: string; message: string }>;
}

/**
 * Checks every archive file under `dir` (CRC and lengths of every record and block). With
 * `repair`, torn tails are cut; damaged blocks in the middle of a file are reported, never
 * silently dropped. Run it while no instance writes to the directory.
 */
export async function verifyDirectory(dir: string, options: { repair?: boolean; io?: CliIo } = {}): Promise<VerifyFileResult[]> {
  const files: string[] = [];
  for await (const path of walk(dir)) if (await isArchive(path)) files.push(path);
  const bar = options.io ? progress(options.io, files.length, 'verify') : { increment() {}, stop() {} };
  const results: VerifyFileResult[] = [];
  try {
    for (const file of files) {
      const report = inspectBytes(new Uint8Array(await readFile(file)), file);
      let repaired = false;
      if (options.repair && report.tornBytes > 0) {
        await cutTail(file, report.validEnd);
        repaired = true;
      }
      results.push({
        file,
        bytes: report.size,
        segments: report.records.filter((r) => r.type === 'segment').length,
        ok: report.ok,
        tornBytes: report.tornBytes,
        repaired,
        damage: report.damage.map((d) => ({ offset: d.offset, code: d.code, message: d.message })),
      });
      bar.increment();
    }
  } finally {
    bar.stop();
  }
  return results;
}

/** Damage that remains: unrepaired damage. A torn journal tail is not damage (open cuts it quietly). */
function journalDamaged(r: JournalFileReport): boolean {
  return r.damage.length > 0 && !r.repaired;
}

export function registerVerify(parent: Command, io: CliIo): void {
  addCommonOptions(parent.command('verify').description('check every archive file and every instance journal (CRC, lengths); exit 2 on damage'))
    .option('--repair', 'cut torn tails; rewrite damaged journals keeping every intact record (the original is kept as <file>.corrupt-<ms>); run while the service is stopped')
    .option('--json', 'print JSON')
    .action(async (flags: CommonFlags & { repair?: boolean }) => {
      const config = configFromFlags(io, flags);
      const repair = flags.repair ?? false;
      const results = await verifyDirectory(config.dataDir, { repair, io });
      const journals = await verifyJournals(join(config.dataDir, 'journal'), { repair });
      const damaged = results.filter((r) => !r.ok || (r.tornBytes > 0 && !r.repaired));
      const damagedJournals = journals.filter(journalDamaged);
      if (flags.json) {
        printJson(io, { files: results.length, damaged: damaged.length, results, journalFiles: journals.length, damagedJournals: damagedJournals.length, journals });
      } else {
        const shown = results.filter((r) => !r.ok || r.tornBytes > 0);
        if (shown.length > 0) {
          io.stdout.write(formatTable(['file', 'bytes', 'segments', 'status'], shown.map((r) => [r.file, r.bytes, r.segments, [r.ok ? '' : `${r.damage.length} damaged record(s)`, r.tornBytes > 0 ? `torn tail ${r.tornBytes} B${r.repaired ? ' (cut)' : ''}` : ''].filter(Boolean).join('; ')])));
          for (const r of shown) for (const d of r.damage) io.stdout.write(`${r.file} @${d.offset}: ${d.code} ${d.message}\n`);
        }
        const shownJournals = journals.filter((r) => r.damage.length > 0 || r.torn !== null);
        if (shownJournals.length > 0) {
          io.stdout.write(formatTable(['journal file', 'bytes', 'records', 'status'], shownJournals.map((r) => [r.file, r.bytes, r.frames, [
            r.damage.length > 0 ? `${r.damage.length} damaged stretch(es)` : '',
            r.torn ? `torn tail ${r.torn.bytes} B` : '',
            r.repaired ? `repaired${r.copy ? `, original kept as ${r.copy}` : ''}` : '',
            r.note ?? '',
          ].filter(Boolean).join('; ')])));
          for (const r of shownJournals) for (const d of r.damage) io.stdout.write(`${r.file} @${d.offset}: STRATA_ERR_JOURNAL_CORRUPT ${d.bytes} B: ${d.why}\n`);
        }
        io.stdout.write(`${results.length} archive file(s) checked, ${damaged.length} damaged\n`);
        io.stdout.write(`${journals.length} journal file(s) checked, ${damagedJournals.length} damaged${repair ? '' : damagedJournals.length > 0 ? ' (strata verify --repair rewrites them keeping every intact record)' : ''}\n`);
      }
      if (damaged.length > 0 || damagedJournals.length > 0) io.exitCode = 2;
    });
}
