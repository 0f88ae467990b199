/** Every Redis key and channel KeyPin uses, all under REDIS_PREFIX. */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Cached binding decision data, by key hash (hex). */
  binding(hashHex: string): string {
    return `${this.prefix}binding:${hashHex}`;
  }
  /** Short-lived marker set when a binding changes: stops a racing reader re-caching the old value. */
  bindingInvalidated(hashHex: string): string {
    return `${this.prefix}binding-inv:${hashHex}`;
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
  /** BullMQ's own prefix (its keys become `<prefix>bull:<queue>:…`). */
  get bullPrefix(): string {
    return `${this.prefix}bull`;
  }
}
