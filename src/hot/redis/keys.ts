import { StrataError } from '../../errors.js';
import type { SessionRef } from '../../types.js';

/**
 * Every Redis key name the hot tier uses is built here (docs/redis-keys.md lists them).
 *
 * The keyspace is split into SHARD_COUNT **shards**. A session belongs to one shard (a stable
 * hash of `tenant:session`), and every key of a shard — its sessions' keys and the shard's own
 * indexes (LRU, backlog, age, bytes, epoch) — carries the shard's hash tag `{<tag>}`. So every
 * Lua script, which touches one session and its shard's indexes, stays within one Redis Cluster
 * slot, and the same layout serves a single primary. Global questions (LRU order, total bytes,
 * the epoch) are answered by reading every shard.
 *
 * The prefix may not contain braces, so the first `{…}` of every key is the shard tag whatever
 * the session id holds (session ids are any text without control characters, braces included).
 */
export const DEFAULT_KEY_PREFIX = 'strata:';

/**
 * Fixed: a session's shard is part of its key names, so changing it re-lays out the data. 64 slot
 * groups spread evenly over up to 64 masters (a resharding moves whole shards) while a fan-out
 * read costs 64 small commands, pipelined per node.
 */
export const SHARD_COUNT = 64;

/** Redis Cluster's hash slot count (CRC16 mod 16384). */
const CLUSTER_SLOTS = 16384;

export function checkKeyPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || prefix.length === 0 || prefix.length > 64 || /[{}\s]/.test(prefix)) {
    const shown = typeof prefix === 'string' ? JSON.stringify(prefix) : typeof prefix;
    throw new StrataError('STRATA_ERR_CONFIG_INVALID', `RedisHotStore option \`keyPrefix\`: expected 1-64 characters without braces or whitespace, got ${shown}`, { details: { option: 'keyPrefix' } });
  }
  return prefix;
}

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc;
}

const utf8 = new TextEncoder();

/** The Redis Cluster slot of a hash tag's content. */
export function tagSlot(tag: string): number {
  return crc16(utf8.encode(tag)) % CLUSTER_SLOTS;
}

/**
 * The hash tag of shard `n`: `<n>-<k>` with the smallest k whose slot lies in the n-th of
 * SHARD_COUNT equal slot ranges. `redis-cli --cluster create` and most managed offerings give
 * each master contiguous slot ranges, so shards spread as evenly as the master count allows.
 */
function shardTag(n: number): string {
  const lo = Math.floor((n * CLUSTER_SLOTS) / SHARD_COUNT);
  const hi = Math.floor(((n + 1) * CLUSTER_SLOTS) / SHARD_COUNT);
  for (let k = 0; ; k++) {
    const slot = tagSlot(`${n}-${k}`);
    if (slot >= lo && slot < hi) return `${n}-${k}`;
  }
}

const SHARD_TAGS: readonly string[] = Array.from({ length: SHARD_COUNT }, (_, n) => shardTag(n));

/** The member naming a session in its shard's sorted sets. */
export function sessionMember(ref: SessionRef): string {
  return `${ref.tenant}:${ref.sessionId}`;
}

export function parseSessionMember(member: string): SessionRef {
  const colon = member.indexOf(':');
  return { tenant: member.slice(0, colon), sessionId: member.slice(colon + 1) };
}

/** A session's shard: CRC16 of the UTF-8 member `tenant:session`, mod SHARD_COUNT. Stable forever. */
export function shardOf(ref: SessionRef): number {
  return crc16(utf8.encode(sessionMember(ref))) % SHARD_COUNT;
}

export interface SessionKeys {
  /** The session's shard (0 .. SHARD_COUNT-1). */
  shard: number;
  /** Hash: session metadata. */
  meta: string;
  /** Hash: turn id → encoded turn. */
  turns: string;
  /** String: compaction lease token, with PX expiry. */
  lease: string;
  /** String (integer): fencing counter, incremented by every lease taken. */
  fence: string;
  /** Hash: client idempotency key → "turnId:hash"; expires a window after its last write. */
  idem: string;
  /** Sorted set: client idempotency key → createdAt, to expire keys older than the window. */
  idemAge: string;
  /** Set: "key#turnId" of journaled turns whose writer could not confirm them (docs/consistency.md). */
  voids: string;
  /** String (integer): ids at or below it were deleted with the session and are never reused. */
  floor: string;
}

export interface ShardKeys {
  /** Sorted set: session member → last access (ms); every session of the shard held. */
  lru: string;
  /** Sorted set: session member → unarchived turn count, only sessions with unarchived turns. */
  backlog: string;
  /** Sorted set: session member → createdAt of its oldest unarchived turn, same sessions. */
  age: string;
  /** String (integer): sum of the shard's sessions' `bytes`. */
  bytes: string;
  /** Hash: `epoch` (the dataset's epoch number), `node` (replication id of the primary that set it), `broken`. */
  epoch: string;
}

/** The keys of the layout before sharding (one untagged set of indexes); only read to migrate. */
export interface LegacyKeys {
  lru: string;
  backlog: string;
  age: string;
  bytes: string;
  epoch: string;
}

export class HotKeys {
  readonly shards: readonly ShardKeys[];
  readonly legacy: LegacyKeys;

  constructor(readonly prefix: string) {
    checkKeyPrefix(prefix);
    this.shards = Object.freeze(
      SHARD_TAGS.map((tag) => {
        const base = `${prefix}{${tag}}`;
        return Object.freeze({ lru: `${base}lru`, backlog: `${base}backlog`, age: `${base}age`, bytes: `${base}bytes`, epoch: `${base}epoch` });
      }),
    );
    this.legacy = Object.freeze({ lru: `${prefix}lru`, backlog: `${prefix}backlog`, age: `${prefix}age`, bytes: `${prefix}bytes`, epoch: `${prefix}epoch` });
  }

  /** The shard keys of a session's shard. */
  shardOf(ref: SessionRef): ShardKeys {
    return this.shards[shardOf(ref)]!;
  }

  /** What precedes `<tenant>:<session>:<suffix>` in the keys of shard `n`'s sessions: `<prefix>{<tag>}`. */
  shardSessionBase(n: number): string {
    return `${this.prefix}{${SHARD_TAGS[n]!}}`;
  }

  /**
   * A session's keys: `<prefix>{<shard tag>}<tenant>:<session>:<suffix>`. The tenant has no `:`,
   * and no suffix contains one, so no two sessions' keys coincide; shard keys have no `:` after the tag.
   */
  session(ref: SessionRef): SessionKeys {
    const shard = shardOf(ref);
    const base = `${this.shardSessionBase(shard)}${ref.tenant}:${ref.sessionId}`;
    return { shard, meta: `${base}:m`, turns: `${base}:t`, lease: `${base}:lease`, fence: `${base}:fc`, idem: `${base}:i`, idemAge: `${base}:ia`, voids: `${base}:v`, floor: `${base}:f` };
  }

  /** Whether a key found under the prefix belongs to the layout before sharding (`<p>{<t>:<s>}:…`, or a legacy index). */
  isLegacyKey(key: string): boolean {
    if (!key.startsWith(this.prefix)) return false;
    const rest = key.slice(this.prefix.length);
    if (!rest.startsWith('{')) return Object.values(this.legacy).includes(key);
    const close = rest.indexOf('}');
    // A shard tag is `<n>-<k>`; a legacy session tag is `<tenant>:<session>` and always has a colon.
    return close > 0 && rest.slice(1, close).includes(':');
  }
}
