import { StrataError } from '../src/errors.js';

/**
 * Packages some benchmarks load only for their baselines. They are devDependencies: an installed
 * `@strata-memory/strata` does not pull a load generator and LangChain into every application
 * that only wants the library. The versions are the ones the benchmarks were run with (a unit
 * test keeps them equal to package.json's devDependencies).
 */
export const OPTIONAL_BENCH_PACKAGES = {
  autocannon: '8.0.0',
  '@langchain/core': '1.4.0',
  '@langchain/redis': '1.1.2',
} as const;

export type OptionalBenchPackage = keyof typeof OPTIONAL_BENCH_PACKAGES;

/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/**
 * Imports a benchmark's optional package. When the package is not installed, throws
 * STRATA_ERR_NOT_AVAILABLE naming it and the command that installs it, instead of node's
 * ERR_MODULE_NOT_FOUND from deep inside the benchmark. A package that is installed but fails to
 * load (one of its own dependencies missing) keeps its original error.
 */
export async function importOptional<T>(specifier: string, benchmark: string): Promise<T> {
  const name = packageOf(specifier);
  const version: string | undefined = OPTIONAL_BENCH_PACKAGES[name as OptionalBenchPackage];
  const install = version === undefined ? name : `${name}@${version}`;
  try {
    return (await import(specifier)) as T;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && (err as Error).message.includes(`'${name}'`);
    if (!missing) throw err;
    throw new StrataError('STRATA_ERR_NOT_AVAILABLE', `${benchmark} needs the package ${name}, which is not installed: run \`npm install ${install}\` where @strata-memory/strata is installed`, { cause: err, details: { package: name, ...(version === undefined ? {} : { version }) } });
  }
}
