import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import {
  clusterOptions,
  serverOptions,
  topologyOf,
  type RedisTarget,
  type RedisTopology,
} from './redis-topology';

/** A URL (standalone) or a topology served by one `Redis` connection. */
type SingleTarget = string | Exclude<RedisTopology, { kind: 'cluster' }>;

/**
 * A command or subscriber connection: one `Redis` (standalone server or the
 * primary a Sentinel group names) or a `Cluster` (docs/redis.md). Both have
 * the same commands, `status`, events, `eval`, `multi` and `publish`.
 */
export type RedisClient = Redis | Cluster;

/**
 * A command client that fails fast while Redis is away (no offline queue,
 * short command timeout): the hot path then falls back to PostgreSQL rather
 * than waiting. It reconnects by itself. On a cluster the same holds: no
 * offline queue while the cluster is not ready, the command timeout on
 * every node's connection.
 */
export function createCommandClient(
  target: SingleTarget,
  logger: Logger,
  name: string,
  overrides?: Pick<RedisOptions, 'commandTimeout' | 'enableAutoPipelining'>,
): Redis;
export function createCommandClient(
  target: RedisTarget,
  logger: Logger,
  name: string,
  overrides?: Pick<RedisOptions, 'commandTimeout' | 'enableAutoPipelining'>,
): RedisClient;
export function createCommandClient(
  target: RedisTarget,
  logger: Logger,
  name: string,
  /** Overrides, e.g. a shorter `commandTimeout` for a client on the hot path. */
  overrides: Pick<RedisOptions, 'commandTimeout' | 'enableAutoPipelining'> = {},
): RedisClient {
  const t = topologyOf(target);
  const behaviour = {
    connectionName: `keypin-${name}`,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: overrides.commandTimeout ?? 1000,
    connectTimeout: 2000,
  } satisfies RedisOptions;
  let client: RedisClient;
  if (t.kind === 'cluster') {
    client = new Cluster(
      t.nodes,
      clusterOptions(t, behaviour, {
        enableOfflineQueue: false,
        enableAutoPipelining: overrides.enableAutoPipelining ?? false,
      }),
    );
  } else {
    client = new Redis({
      ...serverOptions(t),
      ...behaviour,
      retryStrategy: (times) => Math.min(200 * times, 2000),
      lazyConnect: false,
      ...overrides,
    } satisfies RedisOptions);
  }
  watch(client, logger, name);
  return client;
}

/** A subscriber connection (pub/sub): offline queue on so subscriptions are restored. */
export function createSubscriberClient(target: SingleTarget, logger: Logger, name: string): Redis;
export function createSubscriberClient(target: RedisTarget, logger: Logger, name: string): RedisClient;
export function createSubscriberClient(target: RedisTarget, logger: Logger, name: string): RedisClient {
  const t = topologyOf(target);
  const behaviour = {
    connectionName: `keypin-${name}`,
    maxRetriesPerRequest: null,
    connectTimeout: 2000,
  } satisfies RedisOptions;
  // A cluster subscriber holds one node's connection for its channels and
  // moves them to another node when that one goes (classic pub/sub is
  // broadcast to every node of the cluster).
  const client: RedisClient =
    t.kind === 'cluster'
      ? new Cluster(t.nodes, clusterOptions(t, behaviour))
      : new Redis({
          ...serverOptions(t),
          ...behaviour,
          retryStrategy: (times) => Math.min(200 * times, 2000),
        });
  watch(client, logger, name);
  return client;
}

function watch(client: RedisClient, logger: Logger, name: string): void {
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
