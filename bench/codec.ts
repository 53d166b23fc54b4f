import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';
import { SingleBar } from 'cli-progress';
import type { CliIo } from '../src/cli/io.js';
import { formatTable, printJson } from '../src/cli/io.js';
import { decodeFrame } from '../src/codec/codec.js';
import { HuffmanConversationCodec } from '../src/codec/huffman-codec.js';
import { getTokenModel } from '../src/codec/token-model.js';
import { getVocab } from '../src/codec/vocab.js';
import { getTokenizer } from '../src/context/gpt-tokenizer.js';
import { StrataError } from '../src/errors.js';

/*
 * `strata bench codec --input FILE [--json]`: every message's text compressed three ways (each
 * message alone, each session as one unit, the whole file as one unit) by every codec, each
 * round-trip verified. Baselines are node:zlib in the same run: gzip -9 (gzipSync/gunzipSync),
 * brotli -11, and raw deflate -9 with a preset dictionary. Ratios are compressed bytes over raw
 * UTF-8 bytes; Huffman sizes include the whole frame (id, length, CRC32C), zlib sizes are the
 * bare zlib output. MB/s are raw bytes per second.
 */

export interface CodecBenchOptions {
  input: string;
  json?: boolean;
}

/** One row of the worst-case table: the cost of one message of this shape. */
export interface WorstCaseResult {
  workload: string;
  bytes: number;
  countMs: number;
  tokensEncodeMs: number;
  gzipMs: number;
  roundTrip: boolean;
}

export interface CodecBenchResult {
  codec: string;
  unit: 'message' | 'session' | 'file';
  ratio: number;
  encodeMBps: number;
  decodeMBps: number;
  roundTrip: boolean;
}

interface Candidate {
  name: string;
  encode(text: string, bytes: Uint8Array): Uint8Array;
  /** Returns true when the output equals the input. */
  decodeCheck(coded: Uint8Array, text: string, bytes: Uint8Array): boolean;
}

/** Zlib's window: a preset dictionary longer than 32 KiB is not used by deflate. */
const DICTIONARY_BYTES = 32 * 1024;

/**
 * The preset dictionary for deflate: the bytes of the most probable o200k tokens under the
 * shipped huffman-tokens table (shortest start-of-text codes), the most probable last (closest,
 * so cheapest to reference), up to 32 KiB. Derived from the same training data as the token
 * table, not from the bytes being measured, so the two stand on equal footing.
 */
export function presetDictionary(): Uint8Array {
  const model = getTokenModel();
  const { bytes, offsets, size } = getVocab();
  const lengths = model.lengths[0]!;
  const ids = Array.from({ length: size }, (_, i) => i).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const picked: number[] = [];
  let total = 0;
  for (const id of ids) {
    const n = offsets[id + 1]! - offsets[id]!;
    if (n < 2) continue;
    if (total + n > DICTIONARY_BYTES) break;
    picked.push(id);
    total += n;
  }
  const dict = new Uint8Array(total);
  let o = 0;
  for (const id of picked.reverse()) {
    dict.set(bytes.subarray(offsets[id]!, offsets[id + 1]!), o);
    o += offsets[id + 1]! - offsets[id]!;
  }
  return dict;
}

function candidates(): Candidate[] {
  const tokens = new HuffmanConversationCodec({ mode: 'tokens' });
  const bytesMode = new HuffmanConversationCodec({ mode: 'bytes' });
  const dictionary = presetDictionary();
  const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;
  return [
    // Decoding is timed to bytes (with the frame's CRC32C check) for every codec alike; turning
    // the bytes into a JS string would cost the same for all of them.
    { name: 'huffman-tokens', encode: (t) => tokens.encode(t), decodeCheck: (c, _, b) => same(decodeFrame(c), b) },
    { name: 'huffman-bytes', encode: (t) => bytesMode.encode(t), decodeCheck: (c, _, b) => same(decodeFrame(c), b) },
    { name: 'gzip -9', encode: (_, b) => zlib.gzipSync(b, { level: 9 }), decodeCheck: (c, _, b) => same(zlib.gunzipSync(c), b) },
    {
      name: 'brotli -11',
      encode: (_, b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }),
      decodeCheck: (c, _, b) => same(zlib.brotliDecompressSync(c), b),
    },
    { name: 'deflate+dict', encode: (_, b) => zlib.deflateRawSync(b, { level: 9, dictionary }), decodeCheck: (c, _, b) => same(zlib.inflateRawSync(c, { dictionary }), b) },
  ];
}

function loadUnits(path: string): { units: Record<CodecBenchResult['unit'], string[]>; sessions: number; messages: number } {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new StrataError('STRATA_ERR_INPUT_FORMAT', `cannot read ${path} as JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(data)) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${path}: expected a JSON array of sessions [{session_id, turns:[{role, content}]}]`);
  const message: string[] = [];
  const session: string[] = [];
  data.forEach((s: unknown, i) => {
    const turns = (s as { turns?: unknown }).turns;
    if (!Array.isArray(turns) || !turns.every((t) => typeof (t as { content?: unknown }).content === 'string')) throw new StrataError('STRATA_ERR_INPUT_FORMAT', `${path}: session ${i} has no turns array of {role, content: string}`);
    const texts = turns.map((t) => (t as { content: string }).content);
    // A loop, not push(...texts): one session may hold more turns than a call takes arguments.
    for (const text of texts) message.push(text);
    session.push(texts.join(''));
  });
  return { units: { message, session, file: [message.join('')] }, sessions: data.length, messages: message.length };
}

/** 256 KiB: the default maxMessageBytes of earlier versions, and long enough that unbounded BPE took a minute. */
const WORST_CASE_BYTES = 256 * 1024;
/** Unbounded BPE is measured on a shorter run only: at 256 KiB it would take about a minute. */
const UNBOUNDED_SAMPLE_BYTES = 16 * 1024;

/**
 * One message of WORST_CASE_BYTES without a single space against ordinary text of the same size
 * (the start of the input file): token counting (the tokenizer used for context packing) and
 * huffman-tokens encoding must cost about the same for both, because long runs are cut before
 * BPE. gzip -9 of the same bytes is the baseline, and gpt-tokenizer called directly on a shorter
 * run shows the super-linear cost the cut avoids.
 */
export function worstCase(fileText: string): WorstCaseResult[] {
  const tokenizer = getTokenizer('o200k_base');
  const codec = new HuffmanConversationCodec({ mode: 'tokens' });
  const enc = new TextEncoder();
  tokenizer.count('warm up: load the BPE ranks outside the timings');
  let ordinary = fileText.slice(0, WORST_CASE_BYTES);
  while (enc.encode(ordinary).length > WORST_CASE_BYTES) ordinary = ordinary.slice(0, -1024);
  const samples = [
    { workload: 'ordinary text (input file)', text: ordinary },
    { workload: 'one run without spaces', text: 'x'.repeat(WORST_CASE_BYTES) },
    { workload: 'one run of random base64', text: pseudoBase64(WORST_CASE_BYTES) },
  ];
  const rows: WorstCaseResult[] = samples.map(({ workload, text }) => {
    const bytes = enc.encode(text);
    let t0 = performance.now();
    tokenizer.count(text);
    const countMs = performance.now() - t0;
    t0 = performance.now();
    const frame = codec.encode(text);
    const tokensEncodeMs = performance.now() - t0;
    t0 = performance.now();
    zlib.gzipSync(bytes, { level: 9 });
    const gzipMs = performance.now() - t0;
    return { workload, bytes: bytes.length, countMs: round(countMs, 1), tokensEncodeMs: round(tokensEncodeMs, 1), gzipMs: round(gzipMs, 1), roundTrip: codec.decode(frame) === text };
  });
  // The cost the bound avoids: the encoder on one unbounded piece (count only, no codec).
  const encoding = createRequire(import.meta.url)('gpt-tokenizer/cjs/encoding/o200k_base') as { countTokens(text: string): number };
  const run = 'x'.repeat(UNBOUNDED_SAMPLE_BYTES);
  const t0 = performance.now();
  encoding.countTokens(run);
  rows.push({ workload: `unbounded BPE, run of ${UNBOUNDED_SAMPLE_BYTES / 1024} KiB (gpt-tokenizer directly)`, bytes: UNBOUNDED_SAMPLE_BYTES, countMs: round(performance.now() - t0, 1), tokensEncodeMs: Number.NaN, gzipMs: Number.NaN, roundTrip: true });
  return rows;
}

/** Deterministic base64-looking text: letters, digits, '+' and '/', no whitespace. */
function pseudoBase64(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let x = 0x9e3779b9;
  let out = '';
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out += alphabet[(x >>> 0) % 64];
  }
  return out;
}

export async function runCodecBench(options: CodecBenchOptions, io: CliIo): Promise<{ input: Record<string, number>; results: CodecBenchResult[]; worstCase: WorstCaseResult[] }> {
  const { units, sessions, messages } = loadUnits(options.input);
  const enc = new TextEncoder();
  const encoded = Object.fromEntries(Object.entries(units).map(([k, texts]) => [k, texts.map((t) => enc.encode(t))])) as Record<CodecBenchResult['unit'], Uint8Array[]>;
  const rawBytes = encoded.file[0]!.length;
  const list = candidates();
  const bar = io.stderr.isTTY ? new SingleBar({ format: 'codec bench [{bar}] {value}/{total} {task}', stream: process.stderr, hideCursor: true }) : undefined;
  bar?.start(list.length * 3, 0, { task: '' });
  const results: CodecBenchResult[] = [];
  for (const unit of ['message', 'session', 'file'] as const) {
    const texts = units[unit];
    const bytes = encoded[unit];
    for (const c of list) {
      bar?.update({ task: `${c.name} / ${unit}` });
      const coded: Uint8Array[] = new Array<Uint8Array>(texts.length);
      let t0 = performance.now();
      for (let i = 0; i < texts.length; i++) coded[i] = c.encode(texts[i]!, bytes[i]!);
      const encodeMs = performance.now() - t0;
      let ok = true;
      t0 = performance.now();
      for (let i = 0; i < texts.length; i++) ok = c.decodeCheck(coded[i]!, texts[i]!, bytes[i]!) && ok;
      const decodeMs = performance.now() - t0;
      const size = coded.reduce((s, x) => s + x.length, 0);
      results.push({
        codec: c.name,
        unit,
        ratio: round(size / rawBytes, 4),
        encodeMBps: round(rawBytes / 1e6 / (encodeMs / 1000), 2),
        decodeMBps: round(rawBytes / 1e6 / (decodeMs / 1000), 1),
        roundTrip: ok,
      });
      bar?.increment();
    }
  }
  bar?.stop();
  const input = { sessions, messages, bytes: rawBytes };
  const worst = worstCase(units.file[0]!);
  if (options.json) printJson(io, { input, results, worstCase: worst });
  else io.stdout.write(report(input, results) + worstCaseReport(worst));
  if (results.some((r) => !r.roundTrip) || worst.some((r) => !r.roundTrip)) io.exitCode = 1;
  return { input, results, worstCase: worst };
}

function worstCaseReport(rows: WorstCaseResult[]): string {
  const ms = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(1));
  let out = '\nworst case: one message, long runs without spaces (cut into 64-character pieces before BPE) vs ordinary text:\n\n';
  out += formatTable(
    ['workload', 'bytes', 'count tokens ms', 'huffman-tokens encode ms', 'gzip -9 ms', 'round-trip'],
    rows.map((r) => [r.workload, r.bytes, ms(r.countMs), ms(r.tokensEncodeMs), ms(r.gzipMs), r.roundTrip ? 'ok' : 'FAILED']),
  );
  return out;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

function report(input: Record<string, number>, results: CodecBenchResult[]): string {
  const find = (codec: string, unit: string) => results.find((r) => r.codec === codec && r.unit === unit)!;
  let out = `input: ${input.sessions} sessions, ${input.messages} messages, ${input.bytes} bytes of UTF-8 text\n\n`;
  out += formatTable(
    ['codec', 'unit', 'ratio', 'encode MB/s', 'decode MB/s', 'round-trip'],
    results.map((r) => [r.codec, r.unit, r.ratio.toFixed(4), r.encodeMBps.toFixed(2), r.decodeMBps.toFixed(1), r.roundTrip ? 'ok' : 'FAILED']),
  );
  const perMessage = results.filter((r) => r.unit === 'message').sort((a, b) => a.ratio - b.ratio);
  out += '\ncodec decision for the archive (one frame per turn, unit = message):\n\n';
  out += formatTable(
    ['rank', 'codec', 'ratio', 'vs gzip -9', 'decode MB/s'],
    perMessage.map((r, i) => [i + 1, r.codec, r.ratio.toFixed(4), (r.ratio / find('gzip -9', 'message').ratio).toFixed(3), r.decodeMBps.toFixed(1)]),
  );
  const tokS = find('huffman-tokens', 'session').ratio / find('gzip -9', 'session').ratio;
  const tokM = find('huffman-tokens', 'message').ratio / find('gzip -9', 'message').ratio;
  const speed = find('huffman-bytes', 'file').decodeMBps / find('gzip -9', 'file').decodeMBps;
  out += `\nhuffman-tokens / gzip -9 ratio: per session ${tokS.toFixed(3)} (target ≤ 0.75), per message ${tokM.toFixed(3)} (target ≤ 0.6)\n`;
  out += `huffman-bytes / gunzip decode speed (file unit): ${speed.toFixed(2)} (target ≥ 0.35, goal 0.5)\n`;
  return out;
}
