/**
 * Every Redis key and channel KeyPin uses, all under REDIS_PREFIX. Keys one
 * script or transaction touches together share a Redis Cluster hash tag
 * (`{…}`), so they live in one slot on a cluster (docs/redis.md).
 */
export class RedisKeys {
  constructor(
    readonly prefix: string,
    /** The Redis is a Redis Cluster: BullMQ's prefix becomes a hash tag. */
    readonly opts: { cluster?: boolean } = {},
  ) {}

  /**
   * Cached binding decision data, by key hash (hex). On a cluster the hash
   * is a hash tag: the entry and its marker below are written by one
   * script or transaction. Standalone and Sentinel keep the untagged names
   * (the layout of earlier versions).
   */
  binding(hashHex: string): string {
    return `${this.prefix}binding:${this.tag(hashHex)}`;
  }
  /** Short-lived marker set when a binding changes: stops a racing reader re-caching the old value. */
  bindingInvalidated(hashHex: string): string {
    return `${this.prefix}binding-inv:${this.tag(hashHex)}`;
  }
  private tag(part: string): string {
    return this.opts.cluster ? `{${part}}` : part;
  }
  /** First uses from one client network in the last minute (sorted set of times), by network CIDR. */
  firstUses(network: string): string {
    return `${this.prefix}first-use:${network}`;
  }
  /**
   * A key policy's counters, by binding id (docs/contract.md 9). The id in
   * braces is a Redis Cluster hash tag: one policy script touches only keys
   * in one slot.
   */
  policyBucket(bindingId: number): string {
    return `${this.prefix}policy:{${bindingId}}:bucket`;
  }
  /** Forwarded requests of one UTC day (`YYYY-MM-DD`). */
  policyDay(bindingId: number, day: string): string {
    return `${this.prefix}policy:{${bindingId}}:day:${day}`;
  }
  /** Forwarded requests of one UTC month (`YYYY-MM`). */
  policyMonth(bindingId: number, month: string): string {
    return `${this.prefix}policy:{${bindingId}}:month:${month}`;
  }
  /** Requests in flight (sorted set of leases scored by expiry time). */
  policyLeases(bindingId: number): string {
    return `${this.prefix}policy:{${bindingId}}:leases`;
  }
  /** Pub/sub: binding changed (message: key hash hex, or `*` for all). */
  get bindingChannel(): string {
    return `${this.prefix}events:binding`;
  }
  /** Pub/sub: settings changed. */
  get settingsChannel(): string {
    return `${this.prefix}events:settings`;
  }
  /** Pub/sub: the routes changed (docs/contract.md 10); every instance rebuilds its routing table. */
  get routesChannel(): string {
    return `${this.prefix}events:routes`;
  }
  /**
   * BullMQ's own prefix (its keys become `<prefix>bull:<queue>:…`). On a
   * cluster the whole prefix is a hash tag (`{keypin:bull}`), as BullMQ
   * requires there: every key of every queue in one slot. Standalone and
   * Sentinel keep the untagged prefix so jobs queued before an upgrade are
   * still worked off.
   */
  get bullPrefix(): string {
    return this.opts.cluster ? `{${this.prefix}bull}` : `${this.prefix}bull`;
  }
}
