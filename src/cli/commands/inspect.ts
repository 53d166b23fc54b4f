import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { inspectBytes } from '../../archive/file.js';
import type { InspectReport } from '../../archive/file.js';
import { formatTable, printJson } from '../io.js';
import type { CliIo } from '../io.js';

function render(file: string, report: InspectReport): string {
  const lines = [`${file}: ${report.size} bytes, ${report.records.length} record(s), ${report.ok ? 'OK' : 'DAMAGED'}${report.tornBytes > 0 ? `, torn tail of ${report.tornBytes} bytes after offset ${report.validEnd}` : ''}`];
  const rows: Array<Array<string | number>> = [];
  for (const record of report.records) {
    const seg = record.segment;
    if (!seg) {
      rows.push([record.offset, record.type, '', '', '', record.bytes, '']);
      continue;
    }
    const bad = seg.blocks.filter((b) => !b.crcOk).map((b) => b.name);
    rows.push([record.offset, `segment ${seg.ordinal}`, `${seg.firstTurn}-${seg.lastTurn} (${seg.turns})`, seg.codec, `${seg.embeddings}${seg.dims ? `×${seg.dims}` : ''}`, record.bytes, bad.length === 0 ? `${seg.blocks.length} ok` : `BAD: ${bad.join(', ')}`]);
  }
  lines.push(formatTable(['offset', 'record', 'turns', 'codec', 'embeddings', 'bytes', 'blocks (CRC)'], rows).trimEnd());
  for (const d of report.damage) lines.push(`damage at ${d.offset}: ${d.code} ${d.message}`);
  return `${lines.join('\n')}\n`;
}

export function registerInspect(parent: Command, io: CliIo): void {
  parent
    .command('inspect')
    .argument('<file>', 'a Strata archive file')
    .description('show an archive file: records, segments, blocks, codec, sizes and CRC status')
    .option('--json', 'print JSON')
    .action(async (file: string, flags: { json?: boolean }) => {
      const report = inspectBytes(new Uint8Array(await readFile(file)), file);
      if (flags.json) printJson(io, report);
      else io.stdout.write(render(file, report));
      if (!report.ok || report.tornBytes > 0) io.exitCode = 2;
    });
}
