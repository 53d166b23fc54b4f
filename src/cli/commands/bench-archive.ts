import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatTable, printJson, type CliIo } from '../io.js';
import { parsePositiveInt } from './common.js';

function parseDims(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new StrataError('STRATA_ERR_VALIDATION', `--dims: expected an integer from 0 to 65535, received ${JSON.stringify(value)}`);
  return n;
}

export function registerBenchArchive(parent: Command, io: CliIo): void {
  parent
    .command('archive')
    .description('archive size vs the proposal JSON archive (raw, gzip -9), 1,000-turn load latency, durable appends, journal replay')
    .requiredOption('--input <file>', 'sessions file: [{session_id, turns:[{role, content}]}]')
    .option('--dims <n>', 'dimension of the deterministic pseudo-embeddings (0 = none)', parseDims, 384)
    .option('--embeddings <encoding>', 'int8 | f16 | none', 'int8')
    .option('--codec <name>', 'text codec (default: the archive default)')
    .option('--loads <n>', 'timed loads of a 1,000-turn session', parsePositiveInt('--loads'), 1000)
    .option('--store <driver>', 'fs (default), or postgres: fs and PostgreSQL side by side in the same run', 'fs')
    .option('--postgres-url <url>', 'PostgreSQL for --store postgres (default STRATA_POSTGRES_URL); a fresh schema is created and dropped')
    .option('--json', 'print one JSON object')
    .action(async (flags: { input: string; dims: number; embeddings: string; codec?: string; loads: number; store: string; postgresUrl?: string; json?: boolean }) => {
      if (flags.store !== 'fs' && flags.store !== 'postgres') throw new StrataError('STRATA_ERR_VALIDATION', `--store: expected fs or postgres, received ${JSON.stringify(flags.store)}`);
      const postgresUrl = flags.postgresUrl ?? (io.env ?? process.env).STRATA_POSTGRES_URL;
      if (flags.store === 'postgres' && !postgresUrl) throw new StrataError('STRATA_ERR_CONFIG_INVALID', '--store postgres needs --postgres-url or STRATA_POSTGRES_URL', { details: { option: 'store.postgresUrl' } });
      if (!['int8', 'f16', 'none'].includes(flags.embeddings)) throw new StrataError('STRATA_ERR_VALIDATION', `--embeddings: expected int8, f16 or none, received ${JSON.stringify(flags.embeddings)}`);
      const { runArchiveBench } = await import('../../../bench/archive.js');
      const onProgress = io.stderr.isTTY && !flags.json ? (stage: string) => io.stderr.write(`${stage}…\n`) : undefined;
      const r = await runArchiveBench({ input: flags.input, dims: flags.dims, embeddings: flags.embeddings as 'int8' | 'f16' | 'none', loads: flags.loads, ...(flags.codec ? { codec: flags.codec } : {}), ...(onProgress ? { onProgress } : {}) });
      if (flags.store === 'postgres') {
        onProgress?.('postgres');
        const { runPostgresArchiveBench } = await import('../../../bench/archive-postgres.js');
        const p = await runPostgresArchiveBench({ input: flags.input, postgresUrl: postgresUrl!, dims: flags.dims, embeddings: flags.embeddings as 'int8' | 'f16' | 'none', loads: flags.loads, ...(flags.codec ? { codec: flags.codec } : {}) });
        if (flags.json) return printJson(io, { fs: r, postgres: p });
        io.stdout.write(`${r.input.sessions} sessions, ${r.input.turns} turns; embeddings ${r.embeddings}${r.dims ? ` × ${r.dims}` : ''}; codec ${r.codec}\n\n`);
        io.stdout.write(
          formatTable(
            ['measure', 'fs', 'postgres', 'postgres / fs'],
            [
              ['bytes per turn (postgres: table + index + TOAST)', r.bytesPerTurn.toFixed(0), p.bytesPerTurn.toFixed(0), (p.bytesPerTurn / r.bytesPerTurn).toFixed(2)],
              [`load a ${r.loadTurns}-turn session, p50 ms`, r.loadP50Ms.toFixed(2), p.loadP50Ms.toFixed(2), (p.loadP50Ms / r.loadP50Ms).toFixed(2)],
              [`load a ${r.loadTurns}-turn session, p99 ms`, r.loadP99Ms.toFixed(2), p.loadP99Ms.toFixed(2), (p.loadP99Ms / r.loadP99Ms).toFixed(2)],
              [`first load in a fresh process, ms`, r.loadFirstMs.toFixed(2), p.loadFirstMs.toFixed(2), (p.loadFirstMs / r.loadFirstMs).toFixed(2)],
              ['durable appends/s, 1 writer', Math.round(r.appendsPerSec['1']).toString(), Math.round(p.appendsPerSec['1']).toString(), (p.appendsPerSec['1'] / r.appendsPerSec['1']).toFixed(2)],
              ['durable appends/s, 64 writers', Math.round(r.appendsPerSec['64']).toString(), Math.round(p.appendsPerSec['64']).toString(), (p.appendsPerSec['64'] / r.appendsPerSec['64']).toFixed(2)],
            ],
          ),
        );
        io.stdout.write(`\npostgres bytes: heap ${p.bytes.heap}, TOAST ${p.bytes.toast}, indexes ${p.bytes.indexes} (total ${p.bytes.total})\n`);
        return;
      }
      if (flags.json) return printJson(io, r);
      const mb = (b: number) => (b / 1e6).toFixed(2);
      io.stdout.write(`${r.input.sessions} sessions, ${r.input.turns} turns, ${mb(r.input.textBytes)} MB of text; embeddings ${r.embeddings}${r.dims ? ` × ${r.dims}` : ''}; codec ${r.codec}\n\n`);
      io.stdout.write(
        formatTable(
          ['store', 'MB', 'bytes/turn', 'ratio to strata'],
          [
            ['strata archive', mb(r.archiveBytes), r.bytesPerTurn.toFixed(0), '1.00'],
            ['proposal JSON', mb(r.jsonBytes), (r.jsonBytes / r.input.turns).toFixed(0), (r.jsonBytes / r.archiveBytes).toFixed(2)],
            ['proposal JSON, gzip -9', mb(r.jsonGzipBytes), (r.jsonGzipBytes / r.input.turns).toFixed(0), (r.jsonGzipBytes / r.archiveBytes).toFixed(2)],
          ],
        ),
      );
      io.stdout.write(`\nratio to JSON ${r.ratioToJson.toFixed(3)}, to JSON gzip -9 ${r.ratioToJsonGzip.toFixed(3)}\n\n`);
      io.stdout.write(
        formatTable(
          ['load a ' + r.loadTurns + '-turn session', 'p50 ms', 'p99 ms', 'first load in a fresh process, ms'],
          [
            ['strata archive (fresh store, cold index)', r.loadP50Ms.toFixed(2), r.loadP99Ms.toFixed(2), r.loadFirstMs.toFixed(2)],
            ['proposal JSON gzip -9 (gunzip + parse)', r.jsonGzipLoadP50Ms.toFixed(2), r.jsonGzipLoadP99Ms.toFixed(2), '-'],
          ],
        ),
      );
      io.stdout.write(`\ndurable appends (fsync, group commit): ${Math.round(r.appendsPerSec['1'])}/s with 1 writer, ${Math.round(r.appendsPerSec['64'])}/s with 64; journal replay ${r.replayMBps.toFixed(0)} MB/s\n`);
    });
}
