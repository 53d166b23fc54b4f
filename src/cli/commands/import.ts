import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { asImportError } from '../../archive/validate.js';
import { StrataError } from '../../errors.js';
import { IMPORT_FORMATS, detectFormat, parseConversations, toId } from '../importers.js';
import type { ImportFormat } from '../importers.js';
import { printJson } from '../io.js';
import type { CliIo } from '../io.js';
import type { CommonFlags } from './common.js';
import { addCommonOptions, addTenantOption, progress, withMemory } from './common.js';

/** Messages per `addMessages` call: one journal group commit each, and the API's batch limit. */
const BATCH = 1000;

interface ImportFlags extends CommonFlags {
  format?: string;
  user?: string;
  session?: string;
  prefix?: string;
}

export function registerImport(parent: Command, io: CliIo): void {
  addTenantOption(addCommonOptions(parent.command('import').argument('<file>', 'conversation file or Strata archive').description('import conversations (ShareGPT/LongMemEval sessions, OpenAI chat JSONL, LoCoMo) or an exported archive')))
    .option('-f, --format <format>', `${IMPORT_FORMATS.join(' | ')} (default: detected from the content)`)
    .option('-u, --user <id>', 'owner of every imported session')
    .option('-s, --session <id>', 'session id (archive files; for conversation files, the id of a single conversation)')
    .option('--prefix <text>', 'prefix for imported session ids')
    .option('--json', 'print JSON')
    .action(async (file: string, flags: ImportFlags) => {
      const bytes = new Uint8Array(await readFile(file));
      if (flags.format !== undefined && !(IMPORT_FORMATS as readonly string[]).includes(flags.format)) {
        throw new StrataError('STRATA_ERR_VALIDATION', `--format: expected one of ${IMPORT_FORMATS.join(', ')}, received ${JSON.stringify(flags.format)}`);
      }
      if (bytes.length === 0) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${file} is empty: nothing to import`);
      const format = (flags.format as ImportFormat | undefined) ?? detectFormat(bytes);
      const tenant = flags.tenant ?? 'default';
      const userOption = flags.user !== undefined ? { userId: flags.user } : {};

      if (format === 'archive') {
        const sessionId = flags.session ?? toId(file.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, ''), 'imported');
        const info = await withMemory(io, flags, (memory) =>
          memory.importSession(sessionId, bytes, { tenant, ...userOption }).catch((err: unknown) => {
            throw asImportError(err);
          }),
        );
        if (flags.json) printJson(io, { format, sessions: 1, messages: info.turns, sessionIds: [info.sessionId] });
        else io.stdout.write(`imported archive as session ${info.sessionId}: ${info.turns} turn(s)\n`);
        return;
      }

      const conversations = parseConversations(bytes, format).filter((c) => c.messages.length > 0);
      if (flags.session !== undefined) {
        if (conversations.length !== 1) throw new StrataError('STRATA_ERR_VALIDATION', `--session names one session, but the file holds ${conversations.length} conversations`);
        conversations[0]!.sessionId = flags.session;
      }
      const total = conversations.reduce((n, c) => n + c.messages.length, 0);
      const result = await withMemory(io, flags, async (memory) => {
        const bar = progress(io, total, 'import');
        let messages = 0;
        try {
          for (const c of conversations) {
            const sessionId = `${flags.prefix ?? ''}${c.sessionId}`;
            const userId = flags.user ?? c.userId;
            for (let i = 0; i < c.messages.length; i += BATCH) {
              const batch = c.messages.slice(i, i + BATCH);
              await memory.addMessages(sessionId, batch, { tenant, ...(userId !== undefined ? { userId } : {}) });
              messages += batch.length;
              bar.increment(batch.length);
            }
          }
        } finally {
          bar.stop();
        }
        return { format, sessions: conversations.length, messages };
      });
      if (flags.json) printJson(io, result);
      else io.stdout.write(`imported ${result.messages} message(s) in ${result.sessions} session(s) (${format})\n`);
    });
}
