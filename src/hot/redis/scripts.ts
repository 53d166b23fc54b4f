import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ErrorReply } from 'redis';
import { StrataError } from '../../errors.js';
import type { ErrorCode } from '../../errors.js';

/**
 * The Lua scripts of `scripts/<name>-<numKeys>.lua` (`-n`: any number of keys), each preceded by
 * `shard-lib.lua` (the shard state checks they share), read once per process, called by EVALSHA
 * with a fallback to EVAL on NOSCRIPT (after a Redis restart, SCRIPT FLUSH or failover; EVAL
 * also puts the script back into the server's cache). Every Redis error is mapped to a coded
 * StrataError here and nowhere else.
 */

/** The smallest client surface the hot store needs; a node-redis v5+ client satisfies it. */
export interface RedisCommandClient {
  sendCommand(args: ReadonlyArray<string>): Promise<unknown>;
}

/** Sends one command to the node serving `key`'s slot (a single primary serves every key). */
export type RedisSend = (key: string, args: string[]) => Promise<unknown>;

export const SCRIPT_NAMES = ['append-n', 'confirm-4', 'seed-11', 'recent-4', 'range-3', 'meta-2', 'markarchived-7', 'deleteturns-6', 'remove-10', 'acquirelease-3', 'renewlease-1', 'releaselease-1', 'releaseownerlease-1', 'epoch-1', 'epochs-n', 'epochinit-5', 'settokens-n'] as const;
export type ScriptName = (typeof SCRIPT_NAMES)[number];

interface LoadedScript {
  readonly name: ScriptName;
  readonly body: string;
  readonly sha: string;
  /** Null for a script taking any number of keys (name `<name>-n`). */
  readonly numKeys: number | null;
}

let loaded: ReadonlyMap<ScriptName, LoadedScript> | null = null;

/** Reads every script file beside this module (src/ under tsx, dist/ after the build). */
export function loadScripts(): ReadonlyMap<ScriptName, LoadedScript> {
  if (loaded !== null) return loaded;
  const map = new Map<ScriptName, LoadedScript>();
  const lib = readFileSync(new URL('./shard-lib.lua', import.meta.url), 'utf8');
  for (const name of SCRIPT_NAMES) {
    const body = `${lib}\n${readFileSync(new URL(`./scripts/${name}.lua`, import.meta.url), 'utf8')}`;
    const suffix = name.slice(name.lastIndexOf('-') + 1);
    const numKeys = suffix === 'n' ? null : Number(suffix);
    map.set(name, { name, body, numKeys, sha: createHash('sha1').update(body).digest('hex') });
  }
  loaded = map;
  return map;
}

/**
 * Error replies a script raises on purpose (`redis.error_reply('STRATA_<REASON> …')`), each
 * mapped to a catalog code. A reply with an unknown reason is a bug: STRATA_ERR_INTERNAL.
 */
const SCRIPT_ERRORS: Readonly<Record<string, ErrorCode>> = {
  STRATA_UPTO_BEYOND_LAST: 'STRATA_ERR_VALIDATION',
  STRATA_FENCED: 'STRATA_ERR_FENCED',
};

/**
 * True for errors the server sent (an error reply), as opposed to connection failures. The name
 * check covers a caller's client built from another copy of the redis package.
 */
export function isErrorReply(err: unknown): err is Error {
  return err instanceof ErrorReply || (err instanceof Error && ['ErrorReply', 'SimpleError', 'BlobError'].includes(err.constructor.name));
}

/**
 * Error replies that mean "not now" rather than a bug: a cluster between a primary's failure and
 * its replica's promotion (CLUSTERDOWN), a slot in migration (TRYAGAIN), a replica that has not
 * learnt it was promoted, a server loading its data.
 */
const TRANSIENT_REPLIES = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY|BUSY)\b/;

export function isNoScript(err: unknown): boolean {
  return isErrorReply(err) && err.message.startsWith('NOSCRIPT');
}

/** The one place where a failure talking to Redis becomes a coded StrataError. */
export function mapRedisError(err: unknown, operation: string): StrataError {
  if (err instanceof StrataError) return err;
  if (isErrorReply(err)) {
    const reason = /^(STRATA_[A-Z_]+)\b\s*(.*)$/.exec(err.message);
    if (reason !== null) {
      const code = SCRIPT_ERRORS[reason[1]!] ?? 'STRATA_ERR_INTERNAL';
      return new StrataError(code, `${operation}: ${reason[2] ?? reason[1]}`, { cause: err, details: { operation, reason: reason[1] } });
    }
    if (TRANSIENT_REPLIES.test(err.message)) {
      return new StrataError('STRATA_ERR_HOT_UNAVAILABLE', `${operation}: Redis is not available right now (${err.message})`, { cause: err, details: { operation } });
    }
    return new StrataError('STRATA_ERR_INTERNAL', `${operation}: Redis replied with an error: ${err.message}`, { cause: err, details: { operation } });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new StrataError('STRATA_ERR_HOT_UNAVAILABLE', `${operation}: Redis is unreachable (${message})`, { cause: err, details: { operation } });
}

/** Runs one script on the node of its first key: EVALSHA, and on NOSCRIPT the full body with EVAL. */
export async function runScript(send: RedisSend, name: ScriptName, keys: readonly string[], args: readonly string[]): Promise<unknown> {
  const script = loadScripts().get(name)!;
  if (script.numKeys === null ? keys.length === 0 : keys.length !== script.numKeys) {
    throw new StrataError('STRATA_ERR_INTERNAL', `script ${name} takes ${script.numKeys ?? 'one or more'} keys, got ${keys.length}`);
  }
  const tail = [String(keys.length), ...keys, ...args];
  try {
    try {
      return await send(keys[0]!, ['EVALSHA', script.sha, ...tail]);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return await send(keys[0]!, ['EVAL', script.body, ...tail]);
    }
  } catch (err) {
    throw mapRedisError(err, name.slice(0, name.lastIndexOf('-')));
  }
}
