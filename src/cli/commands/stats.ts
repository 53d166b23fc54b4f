import type { Command } from 'commander';
import { formatTable, printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, withMemory } from './common.js';

export function registerStats(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('stats').description("sessions, turns and bytes per tier of one tenant")))
    .option('--json', 'print JSON')
    .action(async (flags: CommonFlags) => {
      const tenant = flags.tenant ?? 'default';
      const totals = await withMemory(io, flags, async (memory) => {
        const t = { tenant, sessions: 0, turns: 0, hotTurns: 0, unarchivedTurns: 0, archivedTurns: 0, hotBytes: 0, archiveBytes: 0 };
        let cursor: string | null = null;
        do {
          const page: Awaited<ReturnType<typeof memory.listSessions>> = await memory.listSessions({ tenant, cursor, limit: 1000 });
          for (const s of page.sessions) {
            t.sessions++;
            t.turns += s.turns;
            t.hotTurns += s.hotTurns;
            t.unarchivedTurns += s.unarchivedTurns;
            t.archivedTurns += s.archivedTurns;
            t.hotBytes += s.bytes.hot;
            t.archiveBytes += s.bytes.archive;
          }
          cursor = page.nextCursor;
        } while (cursor !== null);
        return t;
      }, { readOnly: true });
      if (flags.json) return printJson(io, totals);
      io.stdout.write(formatTable(['metric', 'value'], Object.entries(totals).map(([k, v]) => [k, v])));
    });
}
