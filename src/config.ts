import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { StrataError } from './errors.js';
import { MAX_TENANT_ID_LENGTH as MAX_ID_LENGTH } from './ids.js';

/**
 * Strata's configuration: defaults < file (`strata.config.json`) < environment (`STRATA_*`,
 * `REDIS_URL`) < flags. Validated eagerly — a bad value fails at start with
 * `STRATA_ERR_CONFIG_INVALID` naming the option, where it came from, what was expected and what
 * was received — then deep-frozen. `docs/config.md` lists every option with its environment
 * variable and flag.
 */
export interface StrataConfig {
  /** Directory of the archive, journal and indexes. Default `./data` (resolved against the working directory). */
  readonly dataDir: string;
  /**
   * Names this process among the instances sharing one Redis and one archive directory (journal
   * directory, lease owner). Must be stable across restarts so the journal is found again.
   * Default: derived from the host name.
   */
  readonly instanceId: string;
  readonly hot: {
    /** `memory` (in-process, embedded default) or `redis`. Default `redis` when `redisUrl` is set, else `memory`. */
    readonly driver: 'memory' | 'redis';
    /**
     * Redis URL, e.g. `redis://127.0.0.1:6379` (a single primary) or
     * `redis+cluster://10.0.0.1:6379,10.0.0.2:6379` (a Redis Cluster, found through any listed
     * node; `STRATA_REDIS_CLUSTER_NODES=host:port,…` sets the same). Default none.
     */
    readonly redisUrl: string | null;
    /** Prefix of every Redis key. Default `strata:`. */
    readonly keyPrefix: string;
  };
  readonly store: {
    /**
     * Where the journal and the archive live: `fs` (files in `dataDir`, default) or `postgres`
     * (tables in one PostgreSQL database; instances keep no state of their own, no data directory
     * is used). docs/postgres.md.
     */
    readonly driver: 'fs' | 'postgres';
    /**
     * `postgres://user:pass@host:5432/db?sslmode=require&schema=strata&pool_size=10&statement_timeout_ms=30000`:
     * libpq parameters (TLS: `sslmode`, `sslrootcert`, `sslcert`, `sslkey`) plus Strata's `schema`,
     * `pool_size`, `statement_timeout_ms`, `max_waiting`, `connect_timeout_ms`. Required with `postgres`.
     */
    readonly postgresUrl: string | null;
  };
  /** When a message is acknowledged: `fsync` (durable on disk, default), `batch` (group fsync without waiting), `none`. */
  readonly durability: 'fsync' | 'batch' | 'none';
  /** Archived turns kept in the hot tier besides the unarchived ones. Default 20. */
  readonly recentTurns: number;
  readonly compaction: {
    /** Compact a session once it holds this many unarchived turns. Default 100. */
    readonly maxUnarchivedTurns: number;
    /** Compact a session once its oldest unarchived turn is this old. Default 3 600 000 (1 h). */
    readonly maxUnarchivedAgeMs: number;
    /** How often the background compactor looks for work. Default 5 000. */
    readonly intervalMs: number;
    /** Lifetime of a session's compaction lease (renewed while working). Default 30 000. */
    readonly leaseTtlMs: number;
  };
  /** A session idle this long is compacted and dropped from the hot tier. Default 1 800 000 (30 min). */
  readonly sessionIdleTtlMs: number;
  /** Hot-tier size above which least-recently-used sessions are evicted to disk. Default 268 435 456 (256 MiB). */
  readonly hotBudgetBytes: number;
  /** Sessions whose last turn is older than this are deleted by `gc`. Default null (keep forever). */
  readonly retentionDays: number | null;
  /** Largest accepted message content, UTF-8 bytes. Default 20 971 520 (20 MiB). */
  readonly maxMessageBytes: number;
  /** Largest accepted message metadata, JSON UTF-8 bytes. Default 16 384. */
  readonly maxMetadataBytes: number;
  /** Largest inline payload (data: URL, base64 file data) of one content part. Default 10 MiB. */
  readonly maxInlineDataBytes: number;
  /** Unarchived turns one instance may hold before writes answer STRATA_ERR_BACKPRESSURE (HTTP 429). Default 200 000. */
  readonly maxPendingTurns: number;
  /** How long an idempotency key answers its first call's turn ids (ms). Default 86 400 000 (24 h). */
  readonly idempotencyWindowMs: number;
  readonly embedder: {
    /** `glove` (local, offline, default), `hash` (local, no model, for tests), `openai` (any OpenAI-compatible endpoint). */
    readonly provider: 'glove' | 'hash' | 'openai';
    /** Base URL of the OpenAI-compatible endpoint. Default none (the provider's own default). */
    readonly url: string | null;
    /** Model name. Default none (the provider's own default). */
    readonly model: string | null;
    /** API key for the endpoint. Default none. */
    readonly apiKey: string | null;
    /** Vector size, when the provider lets you choose. Default none (the model's). */
    readonly dimensions: number | null;
    /** Texts per embedding request. Default 64. */
    readonly batchSize: number;
  };
  /** Token counting: `o200k_base` (default, GPT-4o family) or `cl100k_base`. */
  readonly tokenizer: 'o200k_base' | 'cl100k_base';
  /**
   * Worker threads for compaction's CPU work (token counts, `glove`/`hash` embeddings); 0 runs it
   * on the request thread. Default null: `min(4, max(1, availableParallelism() - 1))`;
   * each thread holds ~95 MB (its own BPE ranks and GloVe table).
   */
  readonly workers: number | null;
  readonly summaries: {
    /** A milestone summary every this many turns. Default 50. */
    readonly everyTurns: number;
    /** `extractive` (offline, default) or `openai` (OpenAI-compatible chat endpoint). */
    readonly provider: 'extractive' | 'openai';
    readonly url: string | null;
    readonly model: string | null;
    readonly apiKey: string | null;
  };
  readonly archive: {
    /** How embeddings are stored: `int8` (with scale, default), `f16`, or `none` (not stored). */
    readonly embeddingEncoding: 'int8' | 'f16' | 'none';
  };
  readonly server: ServerConfig;
}

export interface ServerConfig {
  /** Listen address. Default `127.0.0.1` (loopback: auth is off until keys are set); containers set `0.0.0.0`. */
  readonly host: string;
  /** Listen port. Default 8080. */
  readonly port: number;
  /** API key → tenant. Default null: auth off, every request uses the `default` tenant (the server warns at start). */
  readonly apiKeys: Readonly<Record<string, string>> | null;
  /** Largest accepted JSON request body. Default 67 108 864 (64 MiB): a maxMessageBytes message even when JSON escaping triples it. */
  readonly bodyLimitBytes: number;
  /** Largest accepted archive file on `POST /v1/import`. Default 268 435 456 (256 MiB). */
  readonly importLimitBytes: number;
  /** pino log level. Default `info`. */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** What `createStrata` takes from the configuration: everything but the server part. */
export type CoreConfig = Omit<StrataConfig, 'server'>;

const MiB = 1024 * 1024;

/** Every default in one place (`hot.driver` and `instanceId` are derived at load time). */
export const DEFAULTS = {
  dataDir: './data',
  hot: { redisUrl: null, keyPrefix: 'strata:' },
  store: { driver: 'fs', postgresUrl: null },
  durability: 'fsync',
  recentTurns: 20,
  compaction: { maxUnarchivedTurns: 100, maxUnarchivedAgeMs: 3_600_000, intervalMs: 5_000, leaseTtlMs: 30_000 },
  sessionIdleTtlMs: 1_800_000,
  hotBudgetBytes: 256 * MiB,
  retentionDays: null,
  maxMessageBytes: 20 * MiB,
  maxMetadataBytes: 16_384,
  maxInlineDataBytes: 10 * MiB,
  maxPendingTurns: 200_000,
  idempotencyWindowMs: 24 * 3600 * 1000,
  embedder: { provider: 'glove', url: null, model: null, apiKey: null, dimensions: null, batchSize: 64 },
  tokenizer: 'o200k_base',
  workers: null,
  summaries: { everyTurns: 50, provider: 'extractive', url: null, model: null, apiKey: null },
  archive: { embeddingEncoding: 'int8' },
  server: { host: '127.0.0.1', port: 8080, apiKeys: null, bodyLimitBytes: 64 * MiB, importLimitBytes: 256 * MiB, logLevel: 'info' },
} as const;

const ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const id = z.string().min(1).max(MAX_ID_LENGTH).regex(ID_RE, `1-${MAX_ID_LENGTH} characters of [A-Za-z0-9_.-], not starting with '.'`);
const posInt = z.number().int().positive();
const nullableString = z.string().min(1).nullable();

const schema = z.strictObject({
  dataDir: z.string().min(1),
  instanceId: id,
  hot: z.strictObject({ driver: z.enum(['memory', 'redis']), redisUrl: z.string().regex(/^rediss?(\+cluster)?:\/\//, 'a redis:// or rediss:// URL, or redis+cluster://host:port,host:port').nullable(), keyPrefix: z.string() }),
  store: z.strictObject({ driver: z.enum(['fs', 'postgres']), postgresUrl: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL').nullable() }),
  durability: z.enum(['fsync', 'batch', 'none']),
  recentTurns: z.number().int().min(0).max(10_000),
  compaction: z.strictObject({ maxUnarchivedTurns: posInt, maxUnarchivedAgeMs: posInt, intervalMs: posInt, leaseTtlMs: posInt }),
  sessionIdleTtlMs: posInt,
  hotBudgetBytes: posInt,
  retentionDays: z.number().positive().nullable(),
  maxMessageBytes: posInt,
  maxMetadataBytes: posInt,
  maxInlineDataBytes: posInt,
  maxPendingTurns: posInt,
  idempotencyWindowMs: posInt,
  embedder: z.strictObject({
    provider: z.enum(['glove', 'hash', 'openai']),
    url: z.url().nullable(),
    model: nullableString,
    apiKey: nullableString,
    dimensions: posInt.nullable(),
    batchSize: posInt.max(4096),
  }),
  tokenizer: z.enum(['o200k_base', 'cl100k_base']),
  workers: z.number().int().min(0).max(256).nullable(),
  summaries: z.strictObject({ everyTurns: posInt, provider: z.enum(['extractive', 'openai']), url: z.url().nullable(), model: nullableString, apiKey: nullableString }),
  archive: z.strictObject({ embeddingEncoding: z.enum(['int8', 'f16', 'none']) }),
  server: z.strictObject({
    host: z.string().min(1),
    port: z.number().int().min(0).max(65_535),
    apiKeys: z.record(z.string().min(8, 'API keys of at least 8 characters'), id).nullable(),
    bodyLimitBytes: posInt,
    importLimitBytes: posInt,
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  }),
});

// Compile-time check that the schema and the documented interface describe the same shape.
type SchemaOutput = z.infer<typeof schema>;
const _shapeCheck: (s: SchemaOutput) => StrataConfig = (s) => s;
void _shapeCheck;

type ValueKind = 'string' | 'int' | 'number-or-null' | 'api-keys' | 'redis-cluster-nodes';

/** Environment variables: name → option path and how the string is parsed. */
export const ENV_VARS: ReadonlyArray<readonly [name: string, path: string, kind: ValueKind]> = [
  ['STRATA_DATA_DIR', 'dataDir', 'string'],
  ['STRATA_INSTANCE_ID', 'instanceId', 'string'],
  ['STRATA_HOT_DRIVER', 'hot.driver', 'string'],
  ['REDIS_URL', 'hot.redisUrl', 'string'],
  ['STRATA_REDIS_URL', 'hot.redisUrl', 'string'],
  ['STRATA_REDIS_CLUSTER_NODES', 'hot.redisUrl', 'redis-cluster-nodes'],
  ['STRATA_REDIS_KEY_PREFIX', 'hot.keyPrefix', 'string'],
  ['STRATA_STORE', 'store.driver', 'string'],
  ['STRATA_POSTGRES_URL', 'store.postgresUrl', 'string'],
  ['STRATA_DURABILITY', 'durability', 'string'],
  ['STRATA_RECENT_TURNS', 'recentTurns', 'int'],
  ['STRATA_COMPACTION_MAX_UNARCHIVED_TURNS', 'compaction.maxUnarchivedTurns', 'int'],
  ['STRATA_COMPACTION_MAX_UNARCHIVED_AGE_MS', 'compaction.maxUnarchivedAgeMs', 'int'],
  ['STRATA_COMPACTION_INTERVAL_MS', 'compaction.intervalMs', 'int'],
  ['STRATA_COMPACTION_LEASE_TTL_MS', 'compaction.leaseTtlMs', 'int'],
  ['STRATA_SESSION_IDLE_TTL_MS', 'sessionIdleTtlMs', 'int'],
  ['STRATA_HOT_BUDGET_BYTES', 'hotBudgetBytes', 'int'],
  ['STRATA_RETENTION_DAYS', 'retentionDays', 'number-or-null'],
  ['STRATA_MAX_MESSAGE_BYTES', 'maxMessageBytes', 'int'],
  ['STRATA_MAX_METADATA_BYTES', 'maxMetadataBytes', 'int'],
  ['STRATA_MAX_INLINE_DATA_BYTES', 'maxInlineDataBytes', 'int'],
  ['STRATA_MAX_PENDING_TURNS', 'maxPendingTurns', 'int'],
  ['STRATA_IDEMPOTENCY_WINDOW_MS', 'idempotencyWindowMs', 'int'],
  ['STRATA_EMBEDDER', 'embedder.provider', 'string'],
  ['STRATA_EMBEDDER_URL', 'embedder.url', 'string'],
  ['STRATA_EMBEDDER_MODEL', 'embedder.model', 'string'],
  ['STRATA_EMBEDDER_API_KEY', 'embedder.apiKey', 'string'],
  ['STRATA_EMBEDDER_DIMENSIONS', 'embedder.dimensions', 'int'],
  ['STRATA_EMBEDDER_BATCH_SIZE', 'embedder.batchSize', 'int'],
  ['STRATA_TOKENIZER', 'tokenizer', 'string'],
  ['STRATA_WORKERS', 'workers', 'int'],
  ['STRATA_SUMMARIES_EVERY_TURNS', 'summaries.everyTurns', 'int'],
  ['STRATA_SUMMARIES_PROVIDER', 'summaries.provider', 'string'],
  ['STRATA_SUMMARIES_URL', 'summaries.url', 'string'],
  ['STRATA_SUMMARIES_MODEL', 'summaries.model', 'string'],
  ['STRATA_SUMMARIES_API_KEY', 'summaries.apiKey', 'string'],
  ['STRATA_EMBEDDING_ENCODING', 'archive.embeddingEncoding', 'string'],
  ['STRATA_HOST', 'server.host', 'string'],
  ['STRATA_PORT', 'server.port', 'int'],
  ['STRATA_API_KEYS', 'server.apiKeys', 'api-keys'],
  ['STRATA_BODY_LIMIT_BYTES', 'server.bodyLimitBytes', 'int'],
  ['STRATA_IMPORT_LIMIT_BYTES', 'server.importLimitBytes', 'int'],
  ['STRATA_LOG_LEVEL', 'server.logLevel', 'string'],
];

export type DeepPartial<T> = { -readonly [K in keyof T]?: T[K] extends object | null ? DeepPartial<NonNullable<T[K]>> | (null extends T[K] ? null : never) : T[K] };

export interface LoadConfigOptions {
  /** Config file path. Default `strata.config.json` in `cwd` when it exists; `STRATA_CONFIG` names one too. A named file must exist. `null` reads no file. */
  file?: string | null;
  /** Environment. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Command-line flags, already in option shape (e.g. `{ server: { port: 9000 } }`). */
  flags?: DeepPartial<StrataConfig>;
  /** Directory relative paths are resolved against. Default `process.cwd()`. */
  cwd?: string;
}

type Layer = Record<string, unknown>;

function configError(message: string, details: Record<string, unknown>): StrataError {
  return new StrataError('STRATA_ERR_CONFIG_INVALID', message, { details });
}

function isPlainObject(v: unknown): v is Layer {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setPath(target: Layer, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!isPlainObject(node[part])) node[part] = {};
    node = node[part] as Layer;
  }
  node[parts[parts.length - 1]!] = value;
}

function getPath(source: unknown, path: readonly PropertyKey[]): { found: boolean; value?: unknown } {
  let node: unknown = source;
  for (const part of path) {
    if (!isPlainObject(node) || !(String(part) in node)) return { found: false };
    node = node[String(part)];
  }
  return { found: true, value: node };
}

/** Deep merge where `over` wins; records like `server.apiKeys` are replaced, not merged. */
function merge(base: Layer, over: Layer): Layer {
  const out: Layer = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    out[key] = isPlainObject(value) && isPlainObject(out[key]) && key !== 'apiKeys' ? merge(out[key] as Layer, value) : value;
  }
  return out;
}

/** Parses `key1:tenantA,key2:tenantB`; empty means auth off. */
export function parseApiKeys(text: string): Record<string, string> | null {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  const keys: Record<string, string> = {};
  for (const pair of trimmed.split(',')) {
    const at = pair.lastIndexOf(':');
    if (at <= 0 || at === pair.length - 1) {
      throw configError(`option server.apiKeys (env STRATA_API_KEYS): expected "key1:tenantA,key2:tenantB", received an entry without a key or tenant`, { option: 'server.apiKeys', source: 'env STRATA_API_KEYS' });
    }
    keys[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return keys;
}

function parseEnvValue(raw: string, kind: ValueKind): unknown {
  switch (kind) {
    case 'redis-cluster-nodes':
      return `redis+cluster://${raw.trim()}`;
    case 'string':
      return raw;
    case 'int':
      // A non-numeric string is passed through so validation reports what was received.
      return /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
    case 'number-or-null': {
      const t = raw.trim().toLowerCase();
      if (t === '' || t === 'null' || t === 'forever' || t === 'none') return null;
      return Number.isFinite(Number(t)) ? Number(t) : raw;
    }
    case 'api-keys':
      return parseApiKeys(raw);
  }
}

function envLayer(env: Record<string, string | undefined>): Layer {
  const layer: Layer = {};
  for (const [name, path, kind] of ENV_VARS) {
    const raw = env[name];
    if (raw === undefined || (raw === '' && kind !== 'api-keys' && kind !== 'number-or-null')) continue;
    setPath(layer, path, parseEnvValue(raw, kind));
  }
  return layer;
}

function readFileLayer(path: string, required: boolean): Layer {
  if (!existsSync(path)) {
    if (required) throw configError(`config file ${path} does not exist`, { option: 'config', file: path });
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw configError(`config file ${path}: expected JSON, received invalid JSON (${(err as Error).message})`, { option: 'config', file: path });
  }
  if (!isPlainObject(parsed)) throw configError(`config file ${path}: expected a JSON object, received ${Array.isArray(parsed) ? 'an array' : typeof parsed}`, { option: 'config', file: path });
  return parsed;
}

/** A stable id from the host name, reduced to the id alphabet. */
export function defaultInstanceId(): string {
  const cleaned = hostname().replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^\.+/, '').slice(0, 64);
  return cleaned === '' ? 'strata' : cleaned;
}

function describeReceived(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : String(value);
}

function expectedOf(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return 'a known option (see docs/config.md)';
    case 'invalid_type':
      return `a ${issue.expected}`;
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}`;
    case 'too_small':
      return issue.origin === 'string' ? `a string of at least ${String(issue.minimum)} characters` : `a number ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}`;
    case 'too_big':
      return issue.origin === 'string' ? `a string of at most ${String(issue.maximum)} characters` : `a number ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}`;
    case 'invalid_format':
      return issue.format === 'regex' || issue.format === 'url' ? (issue.message.startsWith('Invalid') ? `a valid ${issue.format}` : issue.message) : `a valid ${issue.format}`;
    case 'invalid_key':
      return issue.issues[0]?.message ?? 'a valid key';
    default:
      return issue.message;
  }
}

function freeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) freeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Loads, validates and freezes the configuration. Throws `STRATA_ERR_CONFIG_INVALID` on the
 * first bad option (and lists the others in `details.issues`).
 */
export function loadConfig(options: LoadConfigOptions = {}): StrataConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const namedFile = options.file === null ? undefined : (options.file ?? env.STRATA_CONFIG);
  const filePath = resolve(cwd, namedFile ?? 'strata.config.json');
  const fileLayer = options.file === null ? {} : readFileLayer(filePath, namedFile !== undefined);
  const fromEnv = envLayer(env);
  const flags = (options.flags ?? {}) as Layer;

  const layers: Array<[string, Layer]> = [['flag', flags], ['env', fromEnv], [`file ${filePath}`, fileLayer]];
  let merged = merge(merge(merge(structuredClone(DEFAULTS) as unknown as Layer, fileLayer), fromEnv), flags);
  const hot = merged.hot as Layer;
  if (hot.driver === undefined) hot.driver = typeof hot.redisUrl === 'string' && hot.redisUrl !== '' ? 'redis' : 'memory';
  if (merged.instanceId === undefined) merged = { ...merged, instanceId: defaultInstanceId() };

  const result = schema.safeParse(merged);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => {
      let path = issue.path.map(String);
      // An unknown key is reported at its own path, not at its parent object.
      if (issue.code === 'unrecognized_keys') path = [...path, ...issue.keys.slice(0, 1)];
      const option = path.join('.') || '(root)';
      const source = layers.find(([, layer]) => getPath(layer, path).found)?.[0] ?? 'default';
      const envName = source === 'env' ? ENV_VARS.find(([name, p]) => (option === p || option.startsWith(`${p}.`)) && env[name] !== undefined)?.[0] : undefined;
      const received = issue.code === 'invalid_key' ? `key ${describeReceived(path[path.length - 1])}` : describeReceived(getPath(merged, path).value);
      const expected = expectedOf(issue);
      return { option, source: envName ? `env ${envName}` : source, expected, received };
    });
    const first = issues[0]!;
    throw configError(`option ${first.option} (${first.source}): expected ${first.expected}, received ${first.received}`, { option: first.option, issues });
  }
  const config = result.data;
  const dataDir = resolve(cwd, config.dataDir);
  return freeze({ ...config, dataDir });
}

/** The configuration without its server part, as `createStrata` takes it. */
export function coreConfig(config: StrataConfig): CoreConfig {
  const { server: _server, ...core } = config;
  return core;
}
