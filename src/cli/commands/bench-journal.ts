import type { Command } from 'commander';
import { formatTable, printJson, type CliIo } from '../io.js';
import { parsePositiveInt } from './common.js';

export function registerBenchJournal(parent: Command, io: CliIo): void {
  parent
    .command('journal')
    .description('durable append throughput (group commit vs one fdatasync per message) and journal replay speed')
    .option('--count <n>', 'appends per measurement', parsePositiveInt('--count'), 20_000)
    .option('--replay-records <n>', 'records written, then replayed', parsePositiveInt('--replay-records'), 200_000)
    .option('--json', 'print one JSON object')
    .action(async (flags: { count: number; replayRecords: number; json?: boolean }) => {
      const { runJournalBench } = await import('../../../bench/journal.js');
      const onProgress = io.stderr.isTTY && !flags.json ? (done: number, total: number) => io.stderr.write(`\rmeasuring ${done}/${total}${done === total ? '\n' : ''}`) : undefined;
      const r = await runJournalBench({ count: flags.count, replayRecords: flags.replayRecords, ...(onProgress ? { onProgress } : {}) });
      if (flags.json) {
        return printJson(io, { appendsPerSec: r.appendsPerSec, baselineAppendsPerSec: r.baselineAppendsPerSec, replayMBps: r.replay.replayMBps, replayRecordsPerSec: r.replay.recordsPerSec, rows: r.rows.map((row) => ({ name: row.name, writers: row.writers, ...row.result })) });
      }
      io.stdout.write(
        formatTable(
          ['append path', 'writers', 'appends/s', 'p50 ms', 'p99 ms', 'fsyncs'],
          r.rows.map((row) => [row.name, row.writers, Math.round(row.result.appendsPerSec), row.result.p50Ms.toFixed(2), row.result.p99Ms.toFixed(2), row.result.fsyncs]),
        ),
      );
      io.stdout.write(`\nreplay: ${r.replay.records} records, ${r.replay.replayMBps.toFixed(0)} MB/s, ${Math.round(r.replay.recordsPerSec)} records/s (every CRC verified)\n`);
    });
}
