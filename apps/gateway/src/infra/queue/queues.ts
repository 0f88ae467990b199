import { Queue, type ConnectionOptions, type QueueOptions } from 'bullmq';
import { Cluster, type RedisOptions } from 'ioredis';
import type { RedisKeys } from '../redis/redis-keys';
import { clusterOptions, serverOptions, topologyOf, type RedisTarget } from '../redis/redis-topology';

export const QUEUE = {
  intercepts: 'intercepts',
  webhooks: 'webhooks',
  archive: 'archive',
} as const;

/**
 * Producers fail fast while Redis is away (no offline queue), so the caller
 * can fall back to PostgreSQL instead of hanging. Standalone and Sentinel:
 * options (BullMQ makes and closes its own connection). Cluster: an ioredis
 * `Cluster` BullMQ shares and does not close; release it with
 * `releaseConnection` after the queue is closed.
 */
export function producerConnection(target: RedisTarget): ConnectionOptions {
  const t = topologyOf(target);
  const behaviour = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
  } satisfies RedisOptions;
  if (t.kind === 'cluster')
    return new Cluster(t.nodes, clusterOptions(t, behaviour, { enableOfflineQueue: false }));
  return { ...serverOptions(t), ...behaviour, retryStrategy: (times: number) => Math.min(200 * times, 2000) };
}

/** Workers block on Redis: BullMQ requires `maxRetriesPerRequest: null`. Same ownership as `producerConnection`. */
export function workerConnection(target: RedisTarget): ConnectionOptions {
  const t = topologyOf(target);
  const behaviour = {
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    connectTimeout: 2000,
  } satisfies RedisOptions;
  if (t.kind === 'cluster') return new Cluster(t.nodes, clusterOptions(t, behaviour));
  return { ...serverOptions(t), ...behaviour, retryStrategy: (times: number) => Math.min(200 * times, 2000) };
}

/** Closes a connection made by `producerConnection`/`workerConnection` that BullMQ does not own (a cluster). */
export function releaseConnection(conn: ConnectionOptions): void {
  if (conn instanceof Cluster) conn.disconnect();
}

export function createQueue(
  name: string,
  target: RedisTarget,
  keys: RedisKeys,
  extra: Partial<QueueOptions> = {},
): Queue {
  const connection = producerConnection(target);
  const q = new Queue(name, { connection, prefix: keys.bullPrefix, ...extra });
  q.on('error', () => undefined); // connection errors are handled by the callers' fallbacks
  if (connection instanceof Cluster) {
    connection.on('error', () => undefined);
    const close = q.close.bind(q);
    q.close = async () => {
      try {
        await close();
      } finally {
        releaseConnection(connection);
      }
    };
  }
  return q;
}
