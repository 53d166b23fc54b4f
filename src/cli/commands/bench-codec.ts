import type { RegisterCommand } from './index.js';

/** `strata bench codec --input FILE [--json]`: Huffman codecs against node:zlib on a session file. */
export const registerBenchCodec: RegisterCommand = (parent, io) => {
  parent
    .command('codec')
    .description('compare huffman-tokens and huffman-bytes with gzip -9, brotli -11 and deflate+dictionary per message, session and file')
    .requiredOption('--input <file>', 'JSON array of sessions [{session_id, turns:[{role, content}]}]')
    .option('--json', 'print one JSON object instead of tables')
    .action(async (opts: { input: string; json?: boolean }) => {
      const { runCodecBench } = await import('../../../bench/codec.js');
      await runCodecBench({ input: opts.input, json: opts.json === true }, io);
    });
};
