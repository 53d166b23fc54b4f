import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { ConversationMemory } from '../../src/cache/api.js';
import type { DeepPartial, StrataConfig } from '../../src/config.js';
import { loadConfig } from '../../src/config.js';
import { openMemory } from '../../src/cli/commands/common.js';
import { buildServer } from '../../src/server/app.js';
import { createServerMetrics } from '../../src/server/metrics.js';

export const KEY_A = 'key-tenant-a-0001';
export const KEY_B = 'key-tenant-b-0002';
export const authA = { authorization: `Bearer ${KEY_A}` };
export const authB = { authorization: `Bearer ${KEY_B}` };

export interface Harness {
  app: FastifyInstance;
  memory: ConversationMemory;
  config: StrataConfig;
  dataDir: string;
}

/**
 * A real core (createStrata) in a temp data directory with the memory hot tier and the hash
 * embedder, served by buildServer. `wrap` may replace the core with a fault-injecting wrapper.
 */
export async function startHarness(t: { after(fn: () => Promise<void>): void }, options: { flags?: DeepPartial<StrataConfig>; wrap?: (m: ConversationMemory) => ConversationMemory } = {}): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-http-'));
  const flags = options.flags ?? {};
  const config = loadConfig({
    env: {},
    cwd: dataDir,
    flags: {
      ...flags,
      dataDir,
      embedder: { provider: 'hash', ...flags.embedder },
      hot: { driver: 'memory', ...flags.hot },
      compaction: { intervalMs: 3_600_000, ...flags.compaction },
      server: { logLevel: 'silent', apiKeys: { [KEY_A]: 'tenantA', [KEY_B]: 'tenantB' }, ...flags.server },
    },
  });
  const logger = pino({ level: 'silent' });
  const metrics = createServerMetrics({ defaultMetrics: false });
  const real = await openMemory(config, { metrics: metrics.hooks, logger });
  const memory = options.wrap ? options.wrap(real) : real;
  const app = buildServer({ memory, config, logger, metrics });
  t.after(async () => {
    await app.close();
    await real.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { app, memory, config, dataDir };
}
