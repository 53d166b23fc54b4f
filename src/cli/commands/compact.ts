import type { Command } from 'commander';
import { printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, withMemory } from './common.js';

export function registerCompact(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('compact').argument('[session]', 'one session (default: every session with unarchived turns)').description('archive every unarchived turn now')))
    .option('--json', 'print JSON')
    .action(async (session: string | undefined, flags: CommonFlags) => {
      const result = await withMemory(io, flags, async (memory) => {
        if (session === undefined) return memory.flush();
        const tenant = flags.tenant ?? 'default';
        // flush() of an unknown session is a no-op; name the mistake like every other session command.
        await memory.getSession(session, { tenant });
        return memory.flush(session, { tenant });
      });
      if (flags.json) printJson(io, result);
      else io.stdout.write(`archived ${result.turns} turn(s) of ${result.sessions} session(s)\n`);
    });
}
