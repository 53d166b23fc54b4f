/**
 * How the Redis hot store sends one command on a Redis Cluster: to the slot's primary on that
 * node's own client, following MOVED/ASK through the cluster client, and sending again (after a
 * fresh look at the topology) while the client has no node for the slot during a failover.
 */
import { isErrorReply } from './scripts.js';

/** The two calls the store makes on node-redis's cluster client. */
export interface ClusterClient {
  getNodeClientForKey(key: string, isReadonly: boolean): Promise<{ sendCommand(args: string[]): Promise<unknown> }>;
  sendCommand(key: string, isReadonly: boolean, args: string[]): Promise<unknown>;
}

/**
 * One command on the primary serving `key`'s slot, sent on that node's own client: the cluster
 * client's generic path (command policies, a parser per command) costs about three times the
 * client CPU per command. A MOVED or ASK reply (the slot has moved; the command did not run)
 * sends it again through the cluster client, which follows the redirection and refreshes its
 * slot map.
 */
export async function sendToSlotPrimary(cluster: ClusterClient, key: string, args: string[]): Promise<unknown> {
  const client = await cluster.getNodeClientForKey(key, false);
  try {
    return await client.sendCommand(args);
  } catch (err) {
    if (isErrorReply(err) && /^(MOVED|ASK) /.test(err.message)) return cluster.sendCommand(key, false, args);
    throw err;
  }
}

/** Sends of one command while the cluster client has no node for its slot: about 3 s in all. */
const TOPOLOGY_RETRIES = 9;

/**
 * Asks node-redis's cluster client to read the topology again. It has no public call for this
 * (redis/node-redis#2187): a refresh that ran while a failover was under way can leave a slot
 * without a node, and since nothing is then sent to any node for that slot (no MOVED, no
 * reconnection of a dead node's client), the client would never look again. The internal
 * `rediscover` it uses itself after a MOVED does; without it, the sends are only retried.
 */
export function rediscoverTopology(cluster: unknown): Promise<void> {
  const slots = (cluster as { _slots?: { rediscover?: () => Promise<void> } })._slots;
  if (typeof slots?.rediscover !== 'function') return Promise.resolve();
  return slots.rediscover().catch(() => undefined);
}

/**
 * node-redis's cluster client, while it rediscovers the topology after a failover, can find no
 * node for a slot and throws a TypeError before sending anything: the command never left, so it
 * is sent again after a fresh look at the topology (usually back within a few hundred ms).
 */
export async function sendOnceRouted<T>(send: () => Promise<T>, closed: () => boolean, refresh: () => Promise<void>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (!(err instanceof TypeError) || attempt >= TOPOLOGY_RETRIES || closed()) throw err;
      await Promise.all([refresh(), new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 500)))]);
    }
  }
}
