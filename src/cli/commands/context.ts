import { searchText } from '../../message.js';
import type { Command } from 'commander';
import type { ContextType } from '../../cache/api.js';
import { StrataError } from '../../errors.js';
import { printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, parsePositiveInt, withMemory } from './common.js';

const TYPES: readonly ContextType[] = ['recent', 'full', 'smart'];

export function registerContext(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('context').argument('<session>', 'session id').description('the context for the next LLM call')))
    .option('--type <type>', 'recent | full | smart', 'smart')
    .option('-q, --query <text>', 'smart: what to find relevant older turns for')
    .option('-m, --max-tokens <n>', 'smart: token budget', parsePositiveInt('--max-tokens'))
    .option('--json', 'print the whole result (messages, explain trace) as JSON')
    .action(async (session: string, flags: CommonFlags & { type: string; query?: string; maxTokens?: number }) => {
      if (!TYPES.includes(flags.type as ContextType)) throw new StrataError('STRATA_ERR_VALIDATION', `--type: expected one of ${TYPES.join(', ')}, received ${JSON.stringify(flags.type)}`);
      const result = await withMemory(io, flags, (memory) =>
        memory.getContext(session, { tenant: flags.tenant ?? 'default', type: flags.type as ContextType, ...(flags.query !== undefined ? { query: flags.query } : {}), ...(flags.maxTokens !== undefined ? { maxTokens: flags.maxTokens } : {}) }),
        { readOnly: true },
      );
      if (flags.json) return printJson(io, result);
      if (result.summary) io.stdout.write(`[summary] ${result.summary}\n\n`);
      for (const m of result.messages) io.stdout.write(`#${m.turnId} ${m.role}: ${searchText(m)}\n`);
      io.stderr.write(`${result.messages.length} messages, ${result.tokens} tokens\n`);
    });
}
