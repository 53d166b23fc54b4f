import { readFileSync } from 'node:fs';

/**
 * The package's version, read once from its package.json: two directories up from
 * `src/version.ts` in the sources, three from `dist/src/version.js` in the build and in an
 * installed package. Reported in `strata_instance_info` and the OpenAPI document.
 */
export const STRATA_VERSION: string = (() => {
  const up = import.meta.url.includes('/dist/src/') ? '../../' : '../';
  try {
    const pkg = JSON.parse(readFileSync(new URL(`${up}package.json`, import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
})();
