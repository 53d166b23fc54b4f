import { stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { StrataError } from '../errors.js';
import { validateId } from '../ids.js';
import type { InspectReport } from './file.js';
import { segmentsFor } from './file.js';
import type { SessionFiles } from './fs-files.js';
import { SHARD_PATTERN, readdirSafe, tenants, walkTenant } from './fs-walk.js';
import { isTempName } from './io.js';
import { decodeSegment } from './segment-decode.js';

/** Result of `verify` for one file. */
export interface VerifyFileReport {
  tenant: string;
  sessionId: string;
  file: string;
  ok: boolean;
  tornBytes: number;
  damage: InspectReport['damage'];
  versionError: string | null;
  repaired: boolean;
}

export interface VerifyReport {
  files: number;
  ok: number;
  damaged: number;
  repaired: number;
  reports: VerifyFileReport[];
}

/**
 * Walks every file: reports damage and torn tails; with `repair`, cuts torn tails (under the
 * session lock) and removes temp files left by interrupted rewrites more than an hour old.
 */
export async function verify(files: SessionFiles, options: { repair?: boolean; tenant?: string }): Promise<VerifyReport> {
  const report: VerifyReport = { files: 0, ok: 0, damaged: 0, repaired: 0, reports: [] };
  const names = options.tenant === undefined ? await tenants(files) : [validateId('tenant', options.tenant)];
  for (const tenant of names) {
    for await (const f of walkTenant(files, tenant, null)) {
      const ref = { tenant, sessionId: f.sessionId };
      // Checking only reads (it must work while a server runs); repairing writes, under the locks.
      const guard = <T>(fn: () => Promise<T>): Promise<T> => (options.repair ? files.exclusive(ref, f.path, fn) : fn());
      const r = await guard(async () => {
        const snap = await files.snapshot(f.path, options.repair ? 'r+' : 'r');
        if (!snap) return null;
        try {
          const ix = snap.index;
          const fileReport: VerifyFileReport = { tenant, sessionId: f.sessionId, file: f.path, ok: ix.damage.length === 0 && !ix.versionError && ix.tornBytes === 0, tornBytes: ix.tornBytes, damage: ix.damage, versionError: ix.versionError?.message ?? null, repaired: false };
          // Codec-level check of undamaged segments: block CRCs passed, frames must decode too.
          for (const s of segmentsFor(ix)) {
            try {
              decodeSegment(await files.bodyReader(snap)(s), s.header!, { file: ix.file, segment: s.ordinal }, { maxDecodedBytes: files.options.maxDecodedBytes });
            } catch (err) {
              const e = err as StrataError;
              fileReport.ok = false;
              fileReport.damage = [...fileReport.damage, { offset: s.recordOffset, kind: 'segment', segment: s.ordinal, block: (e.details?.block as string | undefined) ?? 'text', code: e.code ?? 'STRATA_ERR_INTERNAL', message: e.message }];
            }
          }
          if (options.repair && ix.tornBytes > 0) {
            await snap.fh.truncate(ix.validEnd);
            await snap.fh.sync();
            files.forget(f.path);
            fileReport.repaired = true;
          }
          return fileReport;
        } finally {
          await snap.fh.close();
        }
      });
      if (!r) continue;
      report.files++;
      if (r.ok) report.ok++;
      else report.damaged++;
      if (r.repaired) report.repaired++;
      report.reports.push(r);
    }
    if (options.repair) await removeStaleTemps(files, tenant);
  }
  return report;
}

async function removeStaleTemps(files: SessionFiles, tenant: string): Promise<void> {
  const dir = files.tenantDir(tenant);
  for (const shard of await readdirSafe(dir)) {
    if (!SHARD_PATTERN.test(shard)) continue;
    for (const name of await readdirSafe(join(dir, shard))) {
      if (!isTempName(name)) continue;
      const p = join(dir, shard, name);
      const st = await stat(p).catch(() => null);
      if (st && files.options.clock.now() - st.mtimeMs > 3_600_000) await unlink(p).catch(() => undefined);
    }
  }
}
