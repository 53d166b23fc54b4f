import { searchText } from '../../message.js';
import type { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { formatTable, printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, parsePositiveInt, withMemory } from './common.js';

export function registerSearch(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('search').argument('<query>', 'what to look for').description('hybrid search over one session or every session of a user')))
    .option('-s, --session <id>', 'search this session')
    .option('-u, --user <id>', 'search every session of this user')
    .option('-k, --k <n>', 'number of hits', parsePositiveInt('--k'), 10)
    .option('--json', 'print JSON')
    .action(async (query: string, flags: CommonFlags & { session?: string; user?: string; k: number }) => {
      if ((flags.session === undefined) === (flags.user === undefined)) throw new StrataError('STRATA_ERR_VALIDATION', 'give exactly one of --session ID or --user ID');
      const tenant = flags.tenant ?? 'default';
      const scope = flags.session !== undefined ? { tenant, sessionId: flags.session } : { tenant, userId: flags.user! };
      const hits = await withMemory(io, flags, (memory) => memory.searchDiskHistory(query, flags.k, scope), { readOnly: true });
      if (flags.json) return printJson(io, { hits });
      const clip = (s: string) => (s.length > 80 ? `${s.slice(0, 79)}…` : s).replace(/\s+/g, ' ');
      io.stdout.write(formatTable(['score', 'session', 'turn', 'role', 'content'], hits.map((h) => [h.score.toFixed(4), h.sessionId, h.turnId, h.role, clip(searchText(h))])));
    });
}
