import { Queue, type QueueOptions } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import type { RedisKeys } from '../redis/redis-keys';

export const QUEUE = {
  intercepts: 'intercepts',
  webhooks: 'webhooks',
  archive: 'archive',
} as const;

/**
 * Producers fail fast while Redis is away (no offline queue), so the caller
 * can fall back to PostgreSQL instead of hanging.
 */
export function producerConnection(redisUrl: string): RedisOptions {
  const u = new URL(redisUrl);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: Number(u.pathname.slice(1) || 0),
    tls: u.protocol === 'rediss:' ? {} : undefined,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  };
}

/** Workers block on Redis: BullMQ requires `maxRetriesPerRequest: null`. */
export function workerConnection(redisUrl: string): RedisOptions {
  return { ...producerConnection(redisUrl), enableOfflineQueue: true, maxRetriesPerRequest: null };
}

export function createQueue(
  name: string,
  redisUrl: string,
  keys: RedisKeys,
  extra: Partial<QueueOptions> = {},
): Queue {
  const q = new Queue(name, { connection: producerConnection(redisUrl), prefix: keys.bullPrefix, ...extra });
  q.on('error', () => undefined); // connection errors are handled by the callers' fallbacks
  return q;
}
