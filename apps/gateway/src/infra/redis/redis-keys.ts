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
  /** Pub/sub: binding changed (message: key hash hex, or `*` for all). */
  get bindingChannel(): string {
    return `${this.prefix}events:binding`;
  }
  /** Pub/sub: settings changed. */
  get settingsChannel(): string {
    return `${this.prefix}events:settings`;
  }
  /** BullMQ's own prefix (its keys become `<prefix>bull:<queue>:…`). */
  get bullPrefix(): string {
    return `${this.prefix}bull`;
  }
}
