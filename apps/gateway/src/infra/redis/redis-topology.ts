import type { ClusterOptions, RedisOptions } from 'ioredis';

/** A `host:port` from REDIS_SENTINELS or REDIS_CLUSTER_NODES. */
export interface RedisNode {
  host: string;
  port: number;
}

/**
 * Which Redis KeyPin talks to (docs/redis.md). In every kind, `url`
 * (REDIS_URL) gives the data nodes' credentials, TLS and database; with
 * Sentinel or Cluster its host and port are not used.
 */
export type RedisTopology =
  | { kind: 'standalone'; url: string }
  | {
      kind: 'sentinel';
      url: string;
      sentinels: RedisNode[];
      /** REDIS_SENTINEL_NAME: the primary's name in the Sentinels' configuration. */
      name: string;
      /** REDIS_SENTINEL_PASSWORD: for the Sentinels themselves (not the data nodes); a config Secret. */
      sentinelPassword: { revealText(): string } | null;
      /** REDIS_SENTINEL_TLS: the Sentinels themselves are reached over TLS (the data nodes: `rediss:`). */
      sentinelTls: boolean;
    }
  | { kind: 'cluster'; url: string; nodes: RedisNode[] };

/** A topology, or a `redis://` URL meaning a standalone server (tests, older callers). */
export type RedisTarget = string | RedisTopology;

export function topologyOf(target: RedisTarget): RedisTopology {
  return typeof target === 'string' ? { kind: 'standalone', url: target } : target;
}

/** Credentials, TLS and database of the data nodes, from REDIS_URL. */
export function urlOptions(
  url: string,
): Pick<RedisOptions, 'host' | 'port' | 'username' | 'password' | 'db' | 'tls'> {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: Number(u.pathname.slice(1) || 0),
    tls: u.protocol === 'rediss:' ? {} : undefined,
  };
}

/**
 * Options that pick the server for a standalone or Sentinel topology (for a
 * `Redis` client or a BullMQ connection); the caller adds its behaviour
 * (offline queue, retries, timeouts). Not for a cluster.
 */
export function serverOptions(t: Exclude<RedisTopology, { kind: 'cluster' }>): RedisOptions {
  const base = urlOptions(t.url);
  if (t.kind === 'standalone') return base;
  const { host: _host, port: _port, ...auth } = base;
  return {
    ...auth,
    sentinels: t.sentinels.map((n) => ({ host: n.host, port: n.port })),
    name: t.name,
    sentinelPassword: t.sentinelPassword?.revealText(),
    // TLS to the Sentinels, verified against the system CAs and NODE_EXTRA_CA_CERTS.
    sentinelTLS: t.sentinelTls ? {} : undefined,
    // TLS to the data nodes (`rediss:`); ioredis uses it in Sentinel mode only with this flag.
    enableTLSForSentinelMode: base.tls !== undefined ? true : undefined,
    // Subscribe to the Sentinels' +switch-master and move to the new
    // primary at once, not only when the old connection breaks.
    failoverDetector: true,
    // A primary demoted to replica by a failover answers writes with
    // READONLY while the connection stays up: reconnect, which asks the
    // Sentinels for the current primary.
    reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
  };
}

/**
 * Cluster-wide options shared by every cluster client; `redisOptions` go to
 * each node's connection (ioredis replaces their retry strategy and offline
 * queue with its own: a lost node is found again through slot refreshes).
 */
export function clusterOptions(
  t: Extract<RedisTopology, { kind: 'cluster' }>,
  redisOptions: RedisOptions,
  extra: ClusterOptions = {},
): ClusterOptions {
  const { host: _host, port: _port, db: _db, ...auth } = urlOptions(t.url);
  return {
    clusterRetryStrategy: (times: number) => Math.min(200 * times, 2000),
    // A node that fails over is replaced by its replica within the
    // cluster-node-timeout; ioredis retries a command meanwhile
    // (retryDelayOnFailover × maxRedirections should exceed that timeout).
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 100,
    maxRedirections: 16,
    slotsRefreshTimeout: 2000,
    slotsRefreshInterval: 5000,
    scaleReads: 'master',
    ...extra,
    redisOptions: { ...auth, ...redisOptions },
  };
}

/** How /ready and the logs name the topology: `standalone`, `sentinel mymaster (3 sentinels)`, `cluster (3 seed nodes)`. */
export function describeTopology(t: RedisTopology): string {
  if (t.kind === 'standalone') return 'standalone';
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  if (t.kind === 'sentinel') return `sentinel ${t.name} (${count(t.sentinels.length, 'sentinel')})`;
  return `cluster (${count(t.nodes.length, 'seed node')})`;
}
