import { StrataError } from '../errors.js';

/** Value at quantile q (0–1) of the values, nearest-rank. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Fraction of `evidence` keys among the first k of `retrieved`. */
export function recallAt(retrieved: readonly string[], evidence: ReadonlySet<string>, k: number): number {
  if (evidence.size === 0) return 0;
  let found = 0;
  for (const key of retrieved.slice(0, k)) if (evidence.has(key)) found++;
  return found / evidence.size;
}

export type RecallTable = Record<string, Record<string, number>>;

/** Averages per-query recall values into {group: {k: mean}}. */
export function averageRecall(rows: Array<{ groups: string[]; recall: Record<number, number> }>, ks: readonly number[]): RecallTable {
  const sums: Record<string, { n: number; r: Record<number, number> }> = {};
  for (const row of rows) {
    for (const g of row.groups) {
      const s = (sums[g] ??= { n: 0, r: {} });
      s.n++;
      for (const k of ks) s.r[k] = (s.r[k] ?? 0) + row.recall[k]!;
    }
  }
  const out: RecallTable = {};
  for (const [g, s] of Object.entries(sums)) out[g] = Object.fromEntries(ks.map((k) => [String(k), s.r[k]! / s.n]));
  return out;
}

export function parseKs(value: string | undefined): number[] {
  const ks = (value ?? '5,10,25').split(',').map((x) => Number(x.trim()));
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1 || k > 1000)) {
    throw new StrataError('STRATA_ERR_VALIDATION', `--k: expected comma-separated integers 1-1000, got ${JSON.stringify(value)}`);
  }
  return ks;
}
