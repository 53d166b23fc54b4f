import { randomBytes } from 'node:crypto';
import { createClient, createCluster } from 'redis';
import { StrataError } from '../../errors.js';
import type { SessionRef, Turn } from '../../types.js';
import { decodeTurn, decodeTurnWithKey, encodeTurn, encodedTurnKey, turnBytes } from '../encoding.js';
import type { HotAppendOptions, HotAppendResult, HotSeed, HotSeedOptions, HotSessionMeta, HotStore, NewHotTurn } from '../store.js';
import { MAX_READ_TURNS, checkInt, checkNewTurn, checkRef, checkSeed, checkTime, checkToken, checkTokenCounts } from '../validate.js';
import { DEFAULT_KEY_PREFIX, HotKeys, SHARD_COUNT, parseSessionMember, sessionMember } from './keys.js';
import type { ShardKeys } from './keys.js';
import { CommandDeadlines } from './deadline.js';
import { rediscoverTopology, sendOnceRouted, sendToSlotPrimary } from './cluster-routing.js';
import { mapRedisError, runScript } from './scripts.js';
import type { RedisCommandClient, RedisSend } from './scripts.js';

export interface RedisHotStoreOptions {
  /**
   * Redis URL; the store creates, connects and closes its own client. Exactly one of `url` and
   * `client`. `redis://host:port/db` (or `rediss://`) is a single primary;
   * `redis+cluster://host:port,host:port` (or `rediss+cluster://`) a Redis Cluster, found
   * through any of the nodes listed (node-redis `createCluster`; replicas are not read).
   */
  url?: string;
  /**
   * A node-redis v5+ client (or anything with `sendCommand`), already connected; the caller keeps
   * ownership (`close()` does not close it). Exactly one of `url` and `client`.
   */
  client?: RedisCommandClient;
  /** Prefix of every key. Default `strata:`. Several stores on one Redis need distinct prefixes. */
  keyPrefix?: string;
  /** CLIENT SETNAME of the connection the store creates (only with `url`), to find it in CLIENT LIST. Default: none. */
  clientName?: string;
  /**
   * How long a command waits for its reply before it fails with STRATA_ERR_HOT_UNAVAILABLE (only
   * with `url`): a server that stops answering without closing its connections (SIGSTOP, a
   * network partition) then fails calls instead of holding them. Default 5000 ms.
   */
  commandTimeoutMs?: number;
}

/** What the store does with a client it created itself. */
interface OwnedClient extends RedisCommandClient {
  readonly isOpen: boolean;
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
}

/** `redis+cluster://h:p,h:p` → the root node URLs, or null for a single-primary URL. */
export function parseClusterUrl(url: string): string[] | null {
  const match = /^(rediss?)\+cluster:\/\/(.+)$/.exec(url);
  if (match === null) return null;
  const nodes = match[2]!.split(',').map((n) => n.trim());
  if (nodes.length === 0 || nodes.some((n) => !/^[^\s/,]+:\d{1,5}$/.test(n))) return [];
  return nodes.map((n) => `${match[1]!}://${n}`);
}

/** How long a void marker outlives the confirm that wrote it: far longer than any append takes. */
const VOID_WINDOW_MS = 24 * 3600 * 1000;

const META_FIELDS = ['nextTurnId', 'archivedUpTo', 'turnCount', 'unarchivedCount', 'oldestUnarchivedAt', 'bytes', 'lastAccess', 'createdAt', 'userId'] as const;

function configError(option: string, expected: string, got: unknown): StrataError {
  const shown = typeof got === 'string' ? JSON.stringify(got) : typeof got;
  return new StrataError('STRATA_ERR_CONFIG_INVALID', `RedisHotStore option \`${option}\`: expected ${expected}, got ${shown}`, { details: { option } });
}

/** A sorted-set reply with scores, RESP2 `[member, score, …]` or RESP3 `[[member, score], …]`, as pairs. */
function scored(reply: unknown): Array<{ member: string; score: number }> {
  const flat = (reply as unknown[]).flatMap((e) => (Array.isArray(e) ? e : [e])) as Array<string | number>;
  const out: Array<{ member: string; score: number }> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: String(flat[i]), score: Number(flat[i + 1]) });
  return out;
}

/** How long a command may wait for its reply by default (node-redis's own default timeout). */
const COMMAND_TIMEOUT_MS = 5000;

/** Sessions whose newest turn id the store remembers for its read guesses. */
const LAST_TURN_ENTRIES = 10_000;

/** Turn ids per HMGET when a read fetches turns outside its script (as the scripts batch them). */
const HMGET_BATCH = 1000;

function toTurns(reply: unknown, descending: boolean, withKeys = false): Turn[] {
  const flat = reply as string[];
  const out: Turn[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push((withKeys ? decodeTurnWithKey : decodeTurn)(Number(flat[i]), flat[i + 1]!));
  return descending ? out.reverse() : out;
}

/**
 * A call waiting to share a `-n` script call with the others of its tick: its keys and
 * arguments, how many values of the flat reply are its own, and its bytes (for the call's cap).
 */
interface AskedCall {
  keys: string[];
  args: string[];
  values: number;
  bytes: number;
  resolve(values: unknown[]): void;
  reject(err: unknown): void;
}

/** What one `-n` script call carries at most (a larger first call goes alone). */
interface CallLimits {
  values: number;
  bytes: number;
}

/** `append-n`: 64 turns (two reply values each) or ~1 MiB of encoded turns per call. */
const APPEND_LIMITS: CallLimits = { values: 2 * 64, bytes: 1 << 20 };
/** `settokens-n`: 512 turns (one reply value each) per call. */
const COUNT_LIMITS: CallLimits = { values: 512, bytes: Number.POSITIVE_INFINITY };

/** A confirm waiting for its shard's epoch. */
interface EpochWaiter {
  epoch: string;
  resolve(same: boolean): void;
  reject(err: unknown): void;
}

/**
 * Items asked for while the current microtasks run, by group, handed to `send` together once all
 * of them asked (process.nextTick): a group commit of the journal releases many appends at once.
 */
class TickBatches<T> {
  readonly #groups = new Map<string, T[]>();

  constructor(private readonly send: (groups: Array<[string, T[]]>) => void) {}

  add(group: string, item: T): void {
    if (this.#groups.size === 0) {
      process.nextTick(() => {
        const groups = [...this.#groups];
        this.#groups.clear();
        this.send(groups);
      });
    }
    const items = this.#groups.get(group);
    if (items === undefined) this.#groups.set(group, [item]);
    else items.push(item);
  }
}

/** An epoch as a script answers it: null for a missing or broken shard. */
function epochReply(v: unknown): number | null {
  return v === null || v === undefined || v === false ? null : Number(v);
}

/**
 * The hot tier in Redis (a single primary or a Redis Cluster), shared by every app instance that
 * uses the same Redis and key prefix. Layout and scripts: docs/redis-keys.md. Every multi-step
 * update is one Lua script within one shard (one Cluster slot); turn ids are assigned inside the
 * append script, so concurrent instances agree on order. Global reads (LRU, backlog, bytes,
 * epoch) fan out over the shards. No key that holds turns ever gets a TTL: idle expiry goes
 * through compaction in the cache. Requires `maxmemory-policy noeviction` (the default) for the
 * same reason.
 */
export class RedisHotStore implements HotStore {
  readonly keys: HotKeys;
  readonly #send: RedisSend;
  readonly #owned: OwnedClient | null;
  /** True on Redis Cluster: the layout before sharding cannot exist there, so there is nothing to migrate. */
  readonly #cluster: boolean;
  #legacyChecked = false;
  #connecting: Promise<void> | null = null;
  #everConnected = false;
  #closed = false;
  readonly #deadlines: CommandDeadlines;
  /** Newest turn id seen per session turns key (append, recent): the guess of a recent read. */
  readonly #lastTurn = new Map<string, number>();
  /** Confirms waiting for their shard's epoch, by epoch key: one read answers those of a tick. */
  readonly #epochChecks = new TickBatches<EpochWaiter>((asked) => this.#readAskedEpochs(asked));
  /** Appends waiting to go out, by group (all on a single primary, per shard on a Cluster). */
  readonly #appends = new TickBatches<AskedCall>((groups) => this.#sendInParts('append-n', groups, APPEND_LIMITS));
  /** Token counts waiting to go out, grouped as appends are. */
  readonly #counts = new TickBatches<AskedCall>((groups) => this.#sendInParts('settokens-n', groups, COUNT_LIMITS));

  constructor(options: RedisHotStoreOptions) {
    if (typeof options !== 'object' || options === null) throw configError('options', 'an object', options);
    const { url, client, keyPrefix = DEFAULT_KEY_PREFIX, clientName, commandTimeoutMs = COMMAND_TIMEOUT_MS } = options;
    if (!Number.isInteger(commandTimeoutMs) || commandTimeoutMs < 1 || commandTimeoutMs > 600_000) throw configError('commandTimeoutMs', 'an integer from 1 to 600000', commandTimeoutMs);
    this.#deadlines = new CommandDeadlines(commandTimeoutMs);
    if ((url === undefined) === (client === undefined)) throw configError('url/client', 'exactly one of `url` and `client`', url === undefined ? 'neither' : 'both');
    if (clientName !== undefined && (typeof clientName !== 'string' || !/^[!-~]{1,64}$/.test(clientName))) {
      throw configError('clientName', '1-64 printable characters without spaces', clientName);
    }
    this.keys = new HotKeys(keyPrefix);
    if (client !== undefined) {
      if (typeof client !== 'object' || client === null || typeof client.sendCommand !== 'function') throw configError('client', 'a node-redis client with sendCommand()', client);
      this.#send = (_key, args) => client.sendCommand(args);
      this.#owned = null;
      this.#cluster = false;
      this.#everConnected = true;
    } else {
      const clusterNodes = typeof url === 'string' ? parseClusterUrl(url) : null;
      if (typeof url !== 'string' || (clusterNodes === null && !/^rediss?:\/\//.test(url)) || clusterNodes?.length === 0) {
        throw configError('url', 'a redis:// or rediss:// URL, or redis+cluster://host:port,host:port', url);
      }
      const clientOptions = {
        ...(clientName === undefined ? {} : { name: clientName }),
        // No per-command timer: one deadline keeper covers every command (deadline.ts says why).
        commandOptions: { timeout: 0 },
        // Fail fast while disconnected instead of queueing: the cache's journal already holds
        // every acknowledged turn, and callers get STRATA_ERR_HOT_UNAVAILABLE at once.
        disableOfflineQueue: true,
        socket: {
          connectTimeout: 5000,
          // The first connection gives up after a few tries (so a wrong URL fails quickly);
          // once connected, reconnect forever with capped backoff.
          reconnectStrategy: (retries: number, cause: Error) => (this.#everConnected ? Math.min(50 * 2 ** retries, 2000) : retries >= 3 ? cause : 100),
        },
      };
      if (clusterNodes !== null) {
        const cluster = createCluster({
          rootNodes: clusterNodes.map((nodeUrl) => ({ url: nodeUrl })),
          defaults: clientOptions,
          // The cluster passes its own per-command options to the node clients: no timer here either.
          commandOptions: { timeout: 0 },
          RESP: 2,
          // A primary that stops answering is usually being replaced by its replica: look at the
          // topology again soon (node-redis waits 5 s by default), so writes move over quickly.
          topologyRefreshOnReconnectionAttemptStrategy: 300,
        });
        cluster.on('error', () => {});
        this.#send = (key, args) => this.#deadlines.watch(sendOnceRouted(() => sendToSlotPrimary(cluster, key, args), () => this.#closed, () => rediscoverTopology(cluster)));
        this.#owned = cluster as unknown as OwnedClient;
        this.#cluster = true;
      } else {
        const owned = createClient({ url, RESP: 2, ...clientOptions });
        // Without a listener an 'error' event would crash the process; failures surface per call.
        owned.on('error', () => {});
        this.#send = (_key, args) => this.#deadlines.watch(owned.sendCommand(args));
        this.#owned = owned as unknown as OwnedClient;
        this.#cluster = false;
      }
    }
  }

  /** Whether this store talks to a Redis Cluster. */
  get isCluster(): boolean {
    return this.#cluster;
  }

  async #ready(): Promise<RedisSend> {
    if (this.#closed) throw new StrataError('STRATA_ERR_CLOSED', 'the Redis hot store is closed');
    if (this.#owned !== null && !this.#everConnected) {
      this.#connecting ??= this.#owned.connect().then(
        () => {
          this.#everConnected = true;
        },
        (err: unknown) => {
          this.#connecting = null;
          throw mapRedisError(err, 'connect');
        },
      );
      await this.#connecting;
    }
    return this.#send;
  }

  /** One command, sent to the node serving `key` (its first key). */
  async #command(operation: string, key: string, args: string[]): Promise<unknown> {
    const send = await this.#ready();
    try {
      return await send(key, args);
    } catch (err) {
      throw mapRedisError(err, operation);
    }
  }

  /** Runs `fn` on every shard at once (node-redis pipelines the commands per node). */
  async #eachShard<T>(fn: (shard: ShardKeys, n: number) => Promise<T>): Promise<T[]> {
    return Promise.all(this.keys.shards.map((shard, n) => fn(shard, n)));
  }

  async #script(name: Parameters<typeof runScript>[1], keys: string[], args: string[]): Promise<unknown> {
    return runScript(await this.#ready(), name, keys, args);
  }

  /** The session's meta and turns, then its shard's lru, backlog, age and bytes. */
  #sessionAndShard(ref: SessionRef): string[] {
    const s = this.keys.session(ref);
    const g = this.keys.shardOf(ref);
    return [s.meta, s.turns, g.lru, g.backlog, g.age, g.bytes];
  }

  /**
   * Appends one turn. The appends asked for while the current microtasks run go out together,
   * after all of them asked: on a single primary as one `append-n` call (up to 64 turns or about
   * 1 MiB of them per call), on a Redis Cluster as one call per shard. Each turn is appended as
   * if alone and gets its own answer; a failed call fails the turns it carried.
   */
  append(ref: SessionRef, turn: NewHotTurn, now: number, options: HotAppendOptions = {}): Promise<HotAppendResult> {
    try {
      checkRef(ref);
      checkNewTurn(turn);
      checkTime('now', now);
    } catch (err) {
      return Promise.reject(err);
    }
    const s = this.keys.session(ref);
    const idem = options.idempotency;
    const epochKey = this.keys.shardOf(ref).epoch;
    const keys = [...this.#sessionAndShard(ref), epochKey, s.idem, s.idemAge];
    const args = [
      sessionMember(ref),
      encodeTurn(turn),
      String(turn.createdAt),
      String(now),
      turn.userId ?? '',
      options.epoch === undefined ? '' : String(options.epoch),
      idem?.key ?? '',
      idem?.hash ?? '',
      String(idem?.windowMs ?? 1),
    ];
    return new Promise<unknown[]>((resolve, reject) => {
      this.#appends.add(this.#cluster ? epochKey : '', { keys, args, values: 2, bytes: args[1]!.length, resolve, reject });
    }).then((reply) => {
      const status = Number(reply[0]);
      const turnId = Number(reply[1]);
      if (status === 1) {
        this.#sawTurn(s.turns, turnId);
        return { turnId };
      }
      if (status === 2) return { turnId, known: true };
      if (status === 0) return { needsSeed: true };
      if (status === -1) return { epochChanged: true };
      return { mismatch: true, knownTurnId: turnId };
    });
  }

  /**
   * Sends the calls asked for in one tick: per group, as few `script` calls as `limits` allow,
   * each call's keys and arguments one after another; each caller gets its own values of the
   * flat reply, and a failed call fails only the callers it carried.
   */
  #sendInParts(script: 'append-n' | 'settokens-n', groups: Array<[string, AskedCall[]]>, limits: CallLimits): void {
    for (const [, waiting] of groups) {
      for (let from = 0; from < waiting.length; ) {
        let to = from + 1;
        let values = waiting[from]!.values;
        let bytes = waiting[from]!.bytes;
        while (to < waiting.length && values + waiting[to]!.values <= limits.values && bytes + waiting[to]!.bytes <= limits.bytes) {
          values += waiting[to]!.values;
          bytes += waiting[to++]!.bytes;
        }
        const part = waiting.slice(from, to);
        from = to;
        this.#script(script, part.flatMap((c) => c.keys), part.flatMap((c) => c.args)).then(
          (reply) => {
            if (!Array.isArray(reply) || reply.length !== values) {
              const err = new StrataError('STRATA_ERR_INTERNAL', `${script}: expected ${values} values, got ${JSON.stringify(reply)}`);
              for (const c of part) c.reject(err);
              return;
            }
            let at = 0;
            for (const c of part) c.resolve(reply.slice(at, (at += c.values)));
          },
          (err: unknown) => {
            for (const c of part) c.reject(err);
          },
        );
      }
    }
  }

  /**
   * Records token counts (HotStore.setTokens). The calls of one tick go out together, as appends
   * do: on a single primary as one `settokens-n` call (up to 512 turns per call), on a Redis
   * Cluster as one call per shard.
   */
  setTokens(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string; tokens: number }>): Promise<number> {
    try {
      checkRef(ref);
      checkTokenCounts(turns);
    } catch (err) {
      return Promise.reject(err);
    }
    if (turns.length === 0) return Promise.resolve(0);
    const s = this.keys.session(ref);
    const g = this.keys.shardOf(ref);
    const keys: string[] = [];
    const args: string[] = [];
    for (const t of turns) {
      keys.push(s.meta, s.turns, g.bytes);
      args.push(String(t.turnId), t.key, t.tokens.toString(36));
    }
    return new Promise<unknown[]>((resolve, reject) => this.#counts.add(this.#cluster ? g.epoch : '', { keys, args, values: turns.length, bytes: 0, resolve, reject })).then((flags) =>
      flags.reduce<number>((changed, flag) => changed + Number(flag), 0),
    );
  }

  async confirm(ref: SessionRef, epoch: number, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]> {
    checkRef(ref);
    if (turns.length === 0) return [];
    const epochKey = this.keys.shardOf(ref).epoch;
    // The common case, the shard's epoch unchanged since the ids were assigned, is what the
    // script's first check decides; concurrent confirms of one shard share one read of it.
    if (await this.#epochIs(epochKey, String(epoch))) return turns.map(() => true);
    const s = this.keys.session(ref);
    const args = [String(epoch), String(VOID_WINDOW_MS)];
    for (const t of turns) args.push(String(t.turnId), t.key);
    const reply = (await this.#script('confirm-4', [epochKey, s.turns, s.idem, s.voids], args)) as unknown[];
    return reply.map((v) => Number(v) === 1);
  }

  /**
   * Whether the shard's epoch (shard-lib.lua, with its replication-id check) is `epoch` now. The
   * checks asked for while the current microtasks run (a group commit of the journal resolves
   * many appends at once) go out after all of them asked, so each caller's journal write
   * completed before the read, as the confirm script requires: on a single primary as one
   * `epochs-n` call for every shard asked about (one INFO for all), on a Redis Cluster as one
   * `epoch-1` call per shard (a script's keys must share a slot there).
   */
  #epochIs(epochKey: string, epoch: string): Promise<boolean> {
    return new Promise((resolve, reject) => this.#epochChecks.add(epochKey, { epoch, resolve, reject }));
  }

  #readAskedEpochs(asked: Array<[string, EpochWaiter[]]>): void {
    const reads = this.#readEpochs(asked.map(([key]) => key));
    asked.forEach(([, waiters], i) => {
      reads[i]!.then(
        (epoch) => {
          const held = epoch === null ? null : String(epoch);
          for (const w of waiters) w.resolve(held === w.epoch);
        },
        (err: unknown) => {
          for (const w of waiters) w.reject(err);
        },
      );
    });
  }

  /**
   * The epochs of these shards (null: missing or broken), one answer per shard: on a single
   * primary one `epochs-n` call for all of them (one INFO), on a Redis Cluster (or for one
   * shard) one `epoch-1` call each, so a node that fails fails only its own shards.
   */
  #readEpochs(epochKeys: string[]): Array<Promise<number | null>> {
    if (this.#cluster || epochKeys.length === 1) return epochKeys.map(async (key) => epochReply(await this.#script('epoch-1', [key], [])));
    const all = this.#script('epochs-n', epochKeys, []).then((values) => {
      if (!Array.isArray(values) || values.length !== epochKeys.length) throw new StrataError('STRATA_ERR_INTERNAL', `epochs: expected ${epochKeys.length} values, got ${JSON.stringify(values)}`);
      return values.map(epochReply);
    });
    return epochKeys.map((_, i) => all.then((epochs) => epochs[i]!));
  }

  async holds(ref: SessionRef, turns: ReadonlyArray<{ turnId: number; key: string }>): Promise<boolean[]> {
    checkRef(ref);
    if (turns.length === 0) return [];
    const values = (await this.#command('holds', this.keys.session(ref).turns, ['HMGET', this.keys.session(ref).turns, ...turns.map((t) => String(t.turnId))])) as Array<string | null>;
    return turns.map((t, i) => typeof values[i] === 'string' && encodedTurnKey(values[i]) === t.key);
  }

  async voided(ref: SessionRef): Promise<string[]> {
    checkRef(ref);
    const key = this.keys.session(ref).voids;
    return (await this.#command('voided', key, ['SMEMBERS', key])) as string[];
  }

  async floor(ref: SessionRef): Promise<number> {
    checkRef(ref);
    const key = this.keys.session(ref).floor;
    return Number((await this.#command('floor', key, ['GET', key])) ?? 0);
  }

  async seed(ref: SessionRef, seed: HotSeed, now: number, options: HotSeedOptions = {}): Promise<boolean | 'epochChanged' | 'conflict'> {
    checkRef(ref);
    const { unarchived, oldestUnarchivedAt } = checkSeed(seed);
    checkTime('now', now);
    const turnArgs: string[] = [];
    let bytes = 0;
    for (const t of seed.turns) {
      const encoded = encodeTurn(t);
      bytes += turnBytes(t.turnId, encoded);
      turnArgs.push(String(t.turnId), encoded);
    }
    const idem = options.idempotency ?? [];
    const idemArgs: string[] = [];
    for (const e of idem) idemArgs.push(e.key, `${e.turnId}:${e.hash}`, String(e.createdAt));
    const voidCandidates = seed.turns.filter((t) => t.turnId > seed.archivedUpTo && t.key !== undefined).map((t) => `${t.key}#${t.turnId}#${t.epoch ?? 0}`);
    const first = seed.turns[0]?.turnId ?? seed.nextTurnId;
    const s = this.keys.session(ref);
    const args = [
      sessionMember(ref),
      String(now),
      String(seed.nextTurnId),
      String(seed.archivedUpTo),
      seed.userId ?? '',
      String(first),
      String(unarchived.length),
      oldestUnarchivedAt === null ? '' : String(oldestUnarchivedAt),
      String(bytes),
      options.epoch === undefined ? '' : String(options.epoch),
      String(options.windowMs ?? 1),
      String(idem.length),
      ...idemArgs,
      String(voidCandidates.length),
      ...voidCandidates,
      ...turnArgs,
    ];
    const reply = Number(await this.#script('seed-11', [...this.#sessionAndShard(ref), this.keys.shardOf(ref).epoch, s.floor, s.voids, s.idem, s.idemAge], args));
    if (reply === 1) return true;
    if (reply === 0) return false;
    return reply === -1 ? 'epochChanged' : 'conflict';
  }

  async recent(ref: SessionRef, count: number, now: number): Promise<Turn[]> {
    checkRef(ref);
    checkInt('count', count, 0, MAX_READ_TURNS);
    checkTime('now', now);
    const s = this.keys.session(ref);
    const g = this.keys.shardOf(ref);
    const keys = [s.meta, s.turns, g.lru, g.epoch];
    const args = [sessionMember(ref), String(count), String(now)];
    const last = this.#lastTurn.get(s.turns);
    const guess = last === undefined || count === 0 || count > HMGET_BATCH ? undefined : { lo: Math.max(1, last - count + 1), hi: last };
    return this.#turnsOutsideLua(s.turns, (mode) => this.#script('recent-4', keys, [...args, mode]), true, false, { guess, newest: true });
  }

  /** Remembers the newest turn id seen for a session (bounded: the oldest entries go first). */
  #sawTurn(turnsKey: string, turnId: number): void {
    this.#lastTurn.delete(turnsKey);
    this.#lastTurn.set(turnsKey, turnId);
    if (this.#lastTurn.size > LAST_TURN_ENTRIES) this.#lastTurn.delete(this.#lastTurn.keys().next().value!);
  }

  /**
   * Turns a read script chose (recent-4, range-3): `read('ids')` runs the script so that it answers
   * `{'ids', lo, hi}` when the session has no holes, and the values are then read by plain HMGETs
   * (a turn value that passes through Lua costs Redis ten times what HMGET does: recent-4.lua).
   * A turn missing from the HMGET was trimmed or deleted since the script ran; the read then runs
   * once more with the values inside the script (`read('')`), which is atomic. `descending` is how
   * the inline reply is ordered.
   *
   * `newest`: the script's last id is the session's newest turn (recent). With a `guess` of the ids
   * (from the newest turn id this store has seen for the session), the HMGET of the guessed ids is
   * sent right behind the script, on the same connection: Redis runs them in that order, so when
   * the script's ids fall within the guess, the read took one round trip and its values are what
   * a second HMGET would have read.
   */
  async #turnsOutsideLua(
    turnsKey: string,
    read: (mode: 'ids' | '') => Promise<unknown>,
    descending: boolean,
    withKeys = false,
    { guess, newest = false }: { guess?: { lo: number; hi: number } | undefined; newest?: boolean } = {},
  ): Promise<Turn[]> {
    const scripted = read('ids');
    const guessed = guess === undefined ? null : this.#hmget(turnsKey, guess.lo, guess.hi);
    // A guess that goes unused must not become an unhandled rejection.
    guessed?.catch(() => undefined);
    const reply = (await scripted) as unknown[];
    if (reply[0] !== 'ids') return toTurns(reply, descending, withKeys);
    const lo = Number(reply[1]);
    const hi = Number(reply[2]);
    // The last id of a recent read is the session's newest turn; a range read's need not be.
    if (newest && hi >= lo) this.#sawTurn(turnsKey, hi);
    let values: Array<string | null>;
    if (guessed !== null && guess!.lo <= lo && hi <= guess!.hi) {
      values = (await guessed).slice(lo - guess!.lo, hi - guess!.lo + 1);
    } else {
      values = [];
      for (let from = lo; from <= hi; from += HMGET_BATCH) values.push(...(await this.#hmget(turnsKey, from, Math.min(hi, from + HMGET_BATCH - 1))));
    }
    const out: Turn[] = [];
    for (let j = 0; j < values.length; j++) {
      const value = values[j];
      if (typeof value !== 'string') return toTurns(await read(''), descending, withKeys);
      out.push((withKeys ? decodeTurnWithKey : decodeTurn)(lo + j, value));
    }
    return out;
  }

  /** The values of turns lo..hi (null where a turn is not held), one HMGET. */
  async #hmget(turnsKey: string, lo: number, hi: number): Promise<Array<string | null>> {
    const args = ['HMGET', turnsKey];
    for (let id = lo; id <= hi; id++) args.push(String(id));
    return (await this.#command('read', turnsKey, args)) as Array<string | null>;
  }

  async unarchived(ref: SessionRef, limit: number): Promise<Turn[]> {
    checkRef(ref);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    const s = this.keys.session(ref);
    const keys = [s.meta, s.turns, this.keys.shardOf(ref).epoch];
    const args = ['0', String(Number.MAX_SAFE_INTEGER), String(limit), 'unarchived'];
    return this.#turnsOutsideLua(s.turns, (mode) => this.#script('range-3', keys, [...args, mode]), false, true);
  }

  async idempotencyEntries(ref: SessionRef, keys: readonly string[]): Promise<Array<{ turnId: number; hash: string } | null>> {
    checkRef(ref);
    if (keys.length === 0) return [];
    const values = (await this.#command('idempotencyEntries', this.keys.session(ref).idem, ['HMGET', this.keys.session(ref).idem, ...keys])) as Array<string | null>;
    return values.map((v) => {
      if (typeof v !== 'string') return null;
      const sep = v.indexOf(':');
      return { turnId: Number(v.slice(0, sep)), hash: v.slice(sep + 1) };
    });
  }

  async range(ref: SessionRef, fromTurn: number, toTurn: number): Promise<Turn[]> {
    checkRef(ref);
    checkInt('fromTurn', fromTurn, 0);
    checkInt('toTurn', toTurn, 0);
    const s = this.keys.session(ref);
    const keys = [s.meta, s.turns, this.keys.shardOf(ref).epoch];
    const args = [String(fromTurn), String(toTurn), String(MAX_READ_TURNS), ''];
    return this.#turnsOutsideLua(s.turns, (mode) => this.#script('range-3', keys, [...args, mode]), false);
  }

  async markArchived(ref: SessionRef, upTo: number, keepRecent: number, leaseToken?: string): Promise<void> {
    checkRef(ref);
    checkInt('upTo', upTo, 0);
    checkInt('keepRecent', keepRecent, 0);
    if (leaseToken !== undefined) checkToken(leaseToken);
    const s = this.keys.session(ref);
    const g = this.keys.shardOf(ref);
    await this.#script('markarchived-7', [s.meta, s.turns, g.backlog, g.age, g.bytes, s.lease, g.epoch], [sessionMember(ref), String(upTo), String(keepRecent), leaseToken ?? '']);
  }

  async meta(ref: SessionRef): Promise<HotSessionMeta | null> {
    checkRef(ref);
    // A script, not a plain HMGET: the session of a broken shard is not held (meta-2.lua).
    const v = (await this.#script('meta-2', [this.keys.session(ref).meta, this.keys.shardOf(ref).epoch], [...META_FIELDS])) as Array<string | null> | null;
    if (!Array.isArray(v) || v[0] === null || v[0] === undefined) return null;
    const num = (i: number): number => Number(v[i] ?? 0);
    return {
      nextTurnId: num(0),
      archivedUpTo: num(1),
      turnCount: num(2),
      unarchivedCount: num(3),
      oldestUnarchivedAt: v[4] === null || v[4] === '' || v[4] === undefined ? null : Number(v[4]),
      bytes: num(5),
      lastAccess: num(6),
      createdAt: num(7),
      userId: v[8] ?? null,
    };
  }

  async dropIfArchived(ref: SessionRef): Promise<boolean> {
    checkRef(ref);
    const s = this.keys.session(ref);
    const reply = (await this.#script('remove-10', [...this.#sessionAndShard(ref), s.floor, s.idem, s.idemAge, this.keys.shardOf(ref).epoch], [sessionMember(ref), 'ifArchived', '', '0'])) as number[];
    return Number(reply[0]) === 1;
  }

  async deleteSession(ref: SessionRef, options: { epoch?: number; minFloor?: number } = {}): Promise<{ turns: number; lastTurnId: number } | 'epochChanged'> {
    checkRef(ref);
    const s = this.keys.session(ref);
    const reply = (await this.#script('remove-10', [...this.#sessionAndShard(ref), s.floor, s.idem, s.idemAge, this.keys.shardOf(ref).epoch], [sessionMember(ref), 'always', options.epoch === undefined ? '' : String(options.epoch), String(options.minFloor ?? 0)])) as number[];
    if (Number(reply[0]) === -1) return 'epochChanged';
    return { turns: Number(reply[1]), lastTurnId: Number(reply[2]) };
  }

  async deleteTurns(ref: SessionRef, turnIds: readonly number[]): Promise<number> {
    checkRef(ref);
    if (!Array.isArray(turnIds)) throw new StrataError('STRATA_ERR_VALIDATION', 'turnIds: expected an array of turn ids');
    for (const id of turnIds) checkInt('turn id', id, 1);
    if (turnIds.length === 0) return 0;
    const s = this.keys.session(ref);
    const g = this.keys.shardOf(ref);
    const unique = [...new Set(turnIds)].map(String);
    return Number(await this.#script('deleteturns-6', [s.meta, s.turns, g.backlog, g.age, g.bytes, g.epoch], [sessionMember(ref), ...unique]));
  }

  async lruSessions(limit: number): Promise<Array<{ ref: SessionRef; lastAccess: number }>> {
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    if (limit === 0) return [];
    // The first `limit` of every shard, merged: the global first `limit` are among them.
    const perShard = await this.#eachShard(async (g) => scored(await this.#command('lruSessions', g.lru, ['ZRANGE', g.lru, '0', String(limit - 1), 'WITHSCORES'])));
    return perShard
      .flat()
      .sort((a, b) => a.score - b.score)
      .slice(0, limit)
      .map((e) => ({ ref: parseSessionMember(e.member), lastAccess: e.score }));
  }

  async idleSessions(before: number, limit: number): Promise<SessionRef[]> {
    checkTime('before', before);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    if (limit === 0) return [];
    const perShard = await this.#eachShard(async (g) => scored(await this.#command('idleSessions', g.lru, ['ZRANGEBYSCORE', g.lru, '-inf', `(${before}`, 'WITHSCORES', 'LIMIT', '0', String(limit)])));
    return perShard
      .flat()
      .sort((a, b) => a.score - b.score)
      .slice(0, limit)
      .map((e) => parseSessionMember(e.member));
  }

  async sessionsToCompact(minUnarchived: number, oldestBefore: number, limit: number): Promise<SessionRef[]> {
    checkInt('minUnarchived', minUnarchived, 1);
    checkTime('oldestBefore', oldestBefore);
    checkInt('limit', limit, 0, MAX_READ_TURNS);
    if (limit === 0) return [];
    // Oldest backlog first (age), then the biggest backlog; a session in both appears once.
    const perShard = await this.#eachShard(async (g) => {
      const [byAge, byCount] = await Promise.all([
        this.#command('sessionsToCompact', g.age, ['ZRANGEBYSCORE', g.age, '-inf', `(${oldestBefore}`, 'WITHSCORES', 'LIMIT', '0', String(limit)]),
        this.#command('sessionsToCompact', g.backlog, ['ZREVRANGEBYSCORE', g.backlog, '+inf', String(minUnarchived), 'WITHSCORES', 'LIMIT', '0', String(limit)]),
      ]);
      return { byAge: scored(byAge), byCount: scored(byCount) };
    });
    const byAge = perShard.flatMap((p) => p.byAge).sort((a, b) => a.score - b.score);
    const byCount = perShard.flatMap((p) => p.byCount).sort((a, b) => b.score - a.score);
    return [...new Set([...byAge, ...byCount].map((e) => e.member))].slice(0, limit).map(parseSessionMember);
  }

  async totalBytes(): Promise<number> {
    const perShard = await this.#eachShard(async (g) => Number((await this.#command('totalBytes', g.bytes, ['GET', g.bytes])) ?? 0));
    return perShard.reduce((a, b) => a + b, 0);
  }

  async acquireLease(ref: SessionRef, owner: string, ttlMs: number, now: number): Promise<{ token: string; fence: number } | null> {
    checkRef(ref);
    if (typeof owner !== 'string' || owner.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'owner: expected a non-empty string');
    checkInt('ttlMs', ttlMs, 1);
    checkTime('now', now);
    // Expiry is Redis's own clock (PX), the same for every instance; `now` is not needed here.
    const token = `${owner}:${randomBytes(12).toString('hex')}`;
    const s = this.keys.session(ref);
    const reply = (await this.#script('acquirelease-3', [s.lease, s.fence, this.keys.shardOf(ref).epoch], [token, String(ttlMs)])) as unknown[];
    const status = Number(reply[0]);
    if (status === 0) return null;
    return { token, fence: Number(reply[2]) * 2 ** 32 + Number(reply[1]) };
  }

  async renewLease(ref: SessionRef, token: string, ttlMs: number, now: number): Promise<boolean> {
    checkRef(ref);
    checkToken(token);
    checkInt('ttlMs', ttlMs, 1);
    checkTime('now', now);
    return Number(await this.#script('renewlease-1', [this.keys.session(ref).lease], [token, String(ttlMs)])) === 1;
  }

  async releaseLease(ref: SessionRef, token: string): Promise<void> {
    checkRef(ref);
    checkToken(token);
    await this.#script('releaselease-1', [this.keys.session(ref).lease], [token]);
  }

  async releaseOwnerLease(ref: SessionRef, owner: string): Promise<boolean> {
    checkRef(ref);
    if (typeof owner !== 'string' || owner.length === 0) throw new StrataError('STRATA_ERR_VALIDATION', 'owner: expected a non-empty string');
    return Number(await this.#script('releaseownerlease-1', [this.keys.session(ref).lease], [owner])) === 1;
  }

  /** Every shard's epoch (null: missing or broken). */
  #shardEpochs(): Promise<Array<number | null>> {
    return Promise.all(this.#readEpochs(this.keys.shards.map((g) => g.epoch)));
  }

  /**
   * The dataset's epoch: the one every shard holds, null when a shard has none (its node lost
   * its data, or a failover or restart of its primary was detected) or shards disagree (an
   * initEpoch is under way). docs/consistency.md, "Shards".
   */
  async epoch(): Promise<number | null> {
    const epochs = await this.#shardEpochs();
    const first = epochs[0] ?? null;
    return first !== null && epochs.every((e) => e === first) ? first : null;
  }

  /**
   * Makes `candidate` (freshly allocated, larger than any epoch allocated before) the epoch of
   * every shard unless they already agree on one: a missing shard gets it, a broken one is wiped
   * first, an intact one is raised to it and keeps its sessions. Racing callers converge on the
   * largest candidate; a shard is only ever given a caller's own fresh candidate, never a number
   * some instance may already have recovered in. Returns the epoch in force.
   */
  async initEpoch(candidate: number): Promise<number> {
    checkInt('epoch', candidate, 1);
    const before = await this.#shardEpochs();
    if (before[0] !== null && before.every((e) => e === before[0])) return before[0]!;
    await this.#migrateLegacy();
    await this.#eachShard(async (g, n) => {
      for (;;) {
        const [status] = (await this.#script('epochinit-5', [g.epoch, g.lru, g.backlog, g.age, g.bytes], [String(candidate), 'create', this.keys.shardSessionBase(n)])) as unknown[];
        if (Number(status) === 1) return;
      }
    });
    for (let attempt = 0; attempt < 3; attempt++) {
      const epochs = await this.#shardEpochs();
      if (epochs[0] !== null && epochs.every((e) => e === epochs[0])) return epochs[0]!;
      if (epochs.includes(null)) break;
      // Another instance is giving the shards its larger candidate: help it finish.
      const target = Math.max(...(epochs as number[]));
      await this.#eachShard((g, n) => this.#script('epochinit-5', [g.epoch, g.lru, g.backlog, g.age, g.bytes], [String(target), 'raise', this.keys.shardSessionBase(n)]));
    }
    throw new StrataError('STRATA_ERR_RECOVERING', `the Redis hot tier lost data again while its ${SHARD_COUNT} shards were given epoch ${candidate}; retry`, { details: { epoch: candidate } });
  }

  /**
   * The layout before sharding (untagged `<p>lru`, `<p>epoch`, … and `<p>{<t>:<s>}:…` session
   * keys, single primary only) is dropped the first time an epoch is set: its sessions are
   * re-seeded from the archive and every instance's journal, exactly as after a FLUSHALL, so
   * nothing acknowledged is lost. First the old byte counter becomes the text `migrated`, so an
   * instance of the previous version still running fails every write (its scripts INCRBY it)
   * instead of handing out ids this layout does not know; the old epoch key goes last, so a
   * migration cut short runs again. docs/redis-keys.md, "Upgrading".
   */
  async #migrateLegacy(): Promise<void> {
    if (this.#cluster || this.#legacyChecked) return;
    const legacy = this.keys.legacy;
    const bytes = await this.#command('migrate', legacy.bytes, ['GET', legacy.bytes]);
    const present = Number(await this.#command('migrate', legacy.epoch, ['EXISTS', legacy.epoch, legacy.lru, legacy.backlog, legacy.age]));
    if (present > 0 || (bytes !== null && bytes !== 'migrated')) {
      await this.#command('migrate', legacy.bytes, ['SET', legacy.bytes, 'migrated']);
      let cursor = '0';
      do {
        const [next, found] = (await this.#command('migrate', legacy.epoch, ['SCAN', cursor, 'MATCH', `${this.keys.prefix}*`, 'COUNT', '1000'])) as [string, string[]];
        cursor = String(next);
        const doomed = found.filter((k) => this.keys.isLegacyKey(k) && k !== legacy.bytes && k !== legacy.epoch);
        if (doomed.length > 0) await this.#command('migrate', legacy.epoch, ['UNLINK', ...doomed]);
      } while (cursor !== '0');
      await this.#command('migrate', legacy.epoch, ['DEL', legacy.epoch]);
    }
    this.#legacyChecked = true;
  }

  async ping(): Promise<void> {
    // Every shard's node answers (on a single primary: the same server 64 times, pipelined).
    await this.#eachShard((g) => this.#command('ping', g.epoch, ['PING']));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#deadlines.close();
    if (this.#owned !== null && this.#owned.isOpen) {
      try {
        await this.#owned.close();
      } catch {
        this.#owned.destroy();
      }
    }
  }
}
