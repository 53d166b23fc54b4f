/** Where the CLI writes. `main(argv, io)` takes it so tests capture output without spawning. */
export interface CliIo {
  stdout: { write(chunk: string): unknown; isTTY?: boolean };
  stderr: { write(chunk: string): unknown; isTTY?: boolean };
  /** Environment variables; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** A command that ends without throwing but must report failure (e.g. `verify` found damage) sets this. */
  exitCode?: number;
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Renders rows as an aligned plain-text table (also valid Markdown). */
export function formatTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  // A reduce, not Math.max(...column): a table may have more rows than a call takes arguments.
  const widths = headers.map((_, i) => cells.reduce((w, r) => Math.max(w, (r[i] ?? '').length), 0));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(cells[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n') + '\n';
}
