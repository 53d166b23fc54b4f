import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, withMemory } from './common.js';

export function registerExport(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('export').argument('<session>', 'session id').description('write a session as its archive file (flushed first)')))
    .option('-o, --output <file>', 'output file (default <session>.strata; - for stdout)')
    .action(async (session: string, flags: CommonFlags & { output?: string }) => {
      const bytes = await withMemory(io, flags, (memory) => memory.exportSession(session, { tenant: flags.tenant ?? 'default' }), { readOnly: true });
      const output = flags.output ?? `${session}.strata`;
      if (output === '-') {
        const out = io.stdout as { write(chunk: string | Uint8Array): unknown };
        out.write(bytes);
        return;
      }
      await writeFile(output, bytes);
      io.stderr.write(`exported ${session}: ${bytes.byteLength} bytes to ${output}\n`);
    });
}
