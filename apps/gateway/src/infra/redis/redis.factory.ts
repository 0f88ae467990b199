import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/**
 * A command client that fails fast while Redis is away (no offline queue,
 * short command timeout): the hot path then falls back to PostgreSQL rather
 * than waiting. It reconnects by itself.
 */
export function createCommandClient(
  url: string,
  logger: Logger,
  name: string,
  /** Overrides, e.g. a shorter `commandTimeout` for a client on the hot path. */
  overrides: Pick<RedisOptions, 'commandTimeout' | 'enableAutoPipelining'> = {},
): Redis {
  const client = new Redis(url, {
    connectionName: `keypin-${name}`,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(200 * times, 2000),
    lazyConnect: false,
    ...overrides,
  } satisfies RedisOptions);
  watch(client, logger, name);
  return client;
}

/** A subscriber connection (pub/sub): offline queue on so subscriptions are restored. */
export function createSubscriberClient(url: string, logger: Logger, name: string): Redis {
  const client = new Redis(url, {
    connectionName: `keypin-${name}`,
    maxRetriesPerRequest: null,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(200 * times, 2000),
  });
  watch(client, logger, name);
  return client;
}

function watch(client: Redis, logger: Logger, name: string): void {
  let down = false;
  client.on('error', (err: Error) => {
    if (!down) logger.warn({ redis: name, err: err.message }, 'redis connection error');
    down = true;
  });
  client.on('ready', () => {
    if (down) logger.info({ redis: name }, 'redis connection restored');
    down = false;
  });
}
