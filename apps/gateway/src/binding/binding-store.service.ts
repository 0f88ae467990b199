import type { RedisClient } from '../infra/redis/redis.factory';
import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import { RateLimitedLog } from '../infra/rate-limited-log';
import type { RedisKeys } from '../infra/redis/redis-keys';
import type { BindingRepository } from './binding.repository';
import { toBindingRule, toBindingRuleData } from './binding-rules';
import type { BindingRule, BindingRuleData, FirstUse } from './binding.types';

export type LoadOutcome =
  | { kind: 'found'; rule: BindingRule; created: boolean }
  | { kind: 'unavailable' }
  /** No binding, and this caller may not create one (`first_use_from`): nothing was bound. */
  | { kind: 'unbound' }
  /** A first use over FIRST_USE_LIMIT: nothing was bound. */
  | { kind: 'limited'; retryAfterSeconds: number };

/** Decides whether one more first use from a client may bind (the FIRST_USE_LIMIT gate). */
export interface FirstUseGate {
  /** 0 when it may, else seconds until one may. Never rejects. */
  reserve(clientIp: string): Promise<number>;
}

interface Entry {
  readonly key: string;
  rule: BindingRule;
  freshUntil: number;
  /** Past its TTL, and the last refresh found neither Redis nor PostgreSQL able to confirm it. */
  unconfirmed: boolean;
  /** Neighbours in the recency list (the list's sentinel at either end). */
  prev: Entry;
  next: Entry;
}

/**
 * The in-process cache, bounded and least-recently-used: a Map for lookup
 * plus a doubly linked list threaded through the entries themselves, least
 * recently used first. A hit relinks one entry (a few pointer writes: no
 * allocation, no Map churn); at the cap the least recently used entry goes.
 *
 * The links cost three fields per entry (about 24 bytes). Measured against
 * the alternatives with 100,000 entries: re-inserting on every hit (`delete`
 * + `set`, which keeps a Map in recency order) leaves a deleted slot per hit
 * in V8's table, costs 2–20× as much per hit and forces full garbage
 * collections as the table is rebuilt; the `lru-cache` package costs about
 * the same per hit, but its `get` allocates an options object unless one is
 * passed in, and it reserves arrays for `max` entries up front (13 MiB at the
 * default CACHE_MAX_ENTRIES of 500,000, whatever is cached).
 */
class RecencyCache {
  private readonly map = new Map<string, Entry>();
  /** Both ends of the list: `sentinel.next` is the least recently used entry, `sentinel.prev` the most. */
  private readonly sentinel: Entry;

  constructor(private readonly max: number) {
    // Shaped like every entry, so the list's links stay monomorphic.
    const s = {
      key: '',
      rule: null,
      freshUntil: 0,
      unconfirmed: false,
      prev: null,
      next: null,
    } as unknown as Entry;
    s.prev = s;
    s.next = s;
    this.sentinel = s;
  }

  get size(): number {
    return this.map.size;
  }

  /** The entry, now the most recently used (the hit path). */
  use(key: string): Entry | undefined {
    const e = this.map.get(key);
    if (e !== undefined && e.next !== this.sentinel) {
      this.unlink(e);
      this.append(e);
    }
    return e;
  }

  /** The entry, its recency unchanged. */
  get(key: string): Entry | undefined {
    return this.map.get(key);
  }

  /**
   * Stores a confirmed rule as the most recently used entry (updating the
   * entry in place when there is one); at the cap, the least recently used
   * entry makes room.
   */
  set(key: string, rule: BindingRule, freshUntil: number): void {
    const found = this.map.get(key);
    if (found !== undefined) {
      found.rule = rule;
      found.freshUntil = freshUntil;
      found.unconfirmed = false;
      if (found.next !== this.sentinel) {
        this.unlink(found);
        this.append(found);
      }
      return;
    }
    if (this.map.size >= this.max && this.map.size > 0) this.delete(this.sentinel.next.key);
    const s = this.sentinel;
    const e: Entry = { key, rule, freshUntil, unconfirmed: false, prev: s.prev, next: s };
    s.prev.next = e;
    s.prev = e;
    this.map.set(key, e);
  }

  delete(key: string): void {
    const e = this.map.get(key);
    if (e === undefined) return;
    this.map.delete(key);
    this.unlink(e);
  }

  clear(): void {
    this.map.clear();
    this.sentinel.prev = this.sentinel;
    this.sentinel.next = this.sentinel;
  }

  private unlink(e: Entry): void {
    e.prev.next = e.next;
    e.next.prev = e.prev;
  }

  private append(e: Entry): void {
    const s = this.sentinel;
    e.prev = s.prev;
    e.next = s;
    s.prev.next = e;
    s.prev = e;
  }
}

/** How long Redis keeps a cached binding; invalidation normally removes it sooner. */
const REDIS_TTL_MS = 10 * 60 * 1000;
/** How long a "changed" marker stops readers from re-caching an old value. */
const INVALIDATION_MARKER_MS = 5000;

const SET_UNLESS_INVALIDATED = `
if redis.call('exists', KEYS[2]) == 0 then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

export interface BindingStoreOptions {
  maxEntries: number;
  ttlMs: number;
  /**
   * Whether an entry past its TTL that no store can confirm still answers
   * (`FAILSAFE_MODE=open`), or counts as unknown (`closed`). Read on each use:
   * the setting can change at run time.
   */
  serveUnconfirmed: () => boolean;
  /** Asked right before a first-use insert; absent = unlimited. */
  firstUses?: FirstUseGate | null;
}

/**
 * Binding lookups: in-process cache → Redis → PostgreSQL.
 *
 * - A hit in the in-process cache is synchronous (`peek`).
 * - Concurrent misses for one key share one load.
 * - An entry past its TTL is served while it is refreshed in the background.
 *   If neither Redis nor PostgreSQL can confirm it, it stays usable only
 *   when `serveUnconfirmed()` says so (fail-open); fail-closed, the key is
 *   then as unknown as a key never seen, until a store answers again.
 * - Changes arrive as invalidations (Redis pub/sub and PostgreSQL NOTIFY);
 *   a load that overlaps an invalidation does not cache its result.
 */
export class BindingStoreService {
  private readonly entries: RecencyCache;
  private readonly loads = new Map<string, Promise<LoadOutcome>>();
  private readonly refreshing = new Set<string>();
  /** Shared-cache removals that failed while Redis was away: replayed before Redis is trusted again. */
  private readonly pendingEvictions = new Set<string>();
  private redisTrusted = true;
  private epoch = 0;
  /** One line per interval during an outage, not one per request. */
  private readonly unavailableLog: RateLimitedLog;

  constructor(
    private readonly repo: BindingRepository,
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly metrics: MetricsService,
    private readonly logger: Logger,
    private readonly options: BindingStoreOptions,
  ) {
    this.entries = new RecencyCache(options.maxEntries);
    this.unavailableLog = new RateLimitedLog(logger, 'binding store unavailable');
    redis.on('close', () => {
      this.redisTrusted = false;
    });
    redis.on('ready', () => void this.recoverRedis());
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached rule, if any (stale ones too, refreshed in the background).
   * A hit makes the entry the most recently used.
   */
  peek(hashHex: string): BindingRule | undefined {
    const e = this.entries.use(hashHex);
    if (e === undefined) return undefined;
    if (e.freshUntil < Date.now()) this.refresh(hashHex);
    // Fail-closed, an entry no store could confirm is not an answer: the
    // caller's load retries the stores and reports them unavailable.
    if (e.unconfirmed && !this.options.serveUnconfirmed()) return undefined;
    this.metrics.cacheLookup('memory');
    return e.rule;
  }

  /**
   * Finds the binding, or creates it from `first` (first use) when
   * `mayBind`; otherwise a key without a binding is `unbound`. Concurrent
   * calls for one key share the work; only the caller whose call did the
   * insert sees `created: true`.
   */
  load(hashHex: string, first: FirstUse, mayBind = true): Promise<LoadOutcome> {
    const running = this.loads.get(hashHex);
    if (running !== undefined) {
      return running.then((o) => {
        // Joined a load that was not allowed to bind: this caller is, so it tries itself.
        if (o.kind === 'unbound' && mayBind) return this.load(hashHex, first, true);
        return o.kind === 'found' && o.created ? { ...o, created: false } : o;
      });
    }
    const p = this.doLoad(hashHex, first, mayBind).finally(() => this.loads.delete(hashHex));
    this.loads.set(hashHex, p);
    return p;
  }

  /** Drops one cached binding (or all, for `*`) from this instance. */
  invalidateLocal(hashHex: string): void {
    this.epoch++;
    if (hashHex === '*') this.entries.clear();
    else this.entries.delete(hashHex);
    this.metrics.cachedBindings.set(this.entries.size);
  }

  /**
   * Undoes a first use the relay refused (CONTRACT 2.3 item 6): deletes the
   * binding if it is still exactly as that first use made it, then tells
   * every instance as an admin unbind does (this one at once, the shared
   * cache, Redis pub/sub; the bindings trigger's NOTIFY is the second path).
   * Resolves whether a binding was removed.
   */
  async revokeFirstUse(bindingId: number): Promise<boolean> {
    const hashHex = await this.repo.deleteUntouchedFirstUse(bindingId);
    if (hashHex === null) return false;
    await this.announceChange(hashHex);
    return true;
  }

  /**
   * The one place a binding change is announced (admin edits, a revoked
   * first use): this instance at once, then the shared Redis cache, then
   * every other instance over Redis pub/sub. The bindings table's trigger
   * NOTIFY is the second, independent path to the other instances.
   */
  async announceChange(hashHex: string): Promise<void> {
    this.invalidateLocal(hashHex);
    await Promise.all([this.evictShared(hashHex).catch(() => undefined), this.publishChange(hashHex)]);
  }

  /** Tells every instance through Redis pub/sub; best effort. */
  private async publishChange(hashHex: string): Promise<void> {
    if (this.redis.status !== 'ready') return;
    await this.redis.publish(this.keys.bindingChannel, hashHex).catch(() => undefined);
  }

  /**
   * Removes a binding from the shared Redis cache and marks it changed so a
   * racing reader does not put the old value back.
   */
  async evictShared(hashHex: string): Promise<void> {
    try {
      await this.redis
        .multi()
        .del(this.keys.binding(hashHex))
        .set(this.keys.bindingInvalidated(hashHex), '1', 'PX', INVALIDATION_MARKER_MS)
        .exec();
    } catch (err) {
      // Redis may come back with the old value (a snapshot, a partition):
      // remember the removal and do it before reading Redis again.
      this.pendingEvictions.add(hashHex);
      throw err;
    }
  }

  /** After Redis reconnects: replay missed removals, then trust it again. */
  private async recoverRedis(): Promise<void> {
    try {
      for (const hash of [...this.pendingEvictions]) {
        await this.evictShared(hash);
        this.pendingEvictions.delete(hash);
      }
      this.redisTrusted = true;
    } catch {
      // Lost the connection again; the next 'ready' retries.
    }
  }

  private async doLoad(hashHex: string, first: FirstUse, mayBind: boolean): Promise<LoadOutcome> {
    const epoch = this.epoch;
    const fromRedis = await this.readRedis(hashHex);
    if (fromRedis !== null) {
      this.metrics.cacheLookup('redis');
      return { kind: 'found', rule: this.remember(hashHex, fromRedis, epoch), created: false };
    }
    try {
      const existing = await this.repo.findRuleByHash(hashHex);
      this.metrics.cacheLookup('postgres');
      if (existing !== null) {
        this.writeRedis(hashHex, existing);
        return {
          kind: 'found',
          rule: this.remember(hashHex, toBindingRule(existing), epoch),
          created: false,
        };
      }
      if (!mayBind) return { kind: 'unbound' };
      // Only a key that is about to be bound pays for the limit check.
      const waitSeconds = (await this.options.firstUses?.reserve(first.ip)) ?? 0;
      if (waitSeconds > 0) return { kind: 'limited', retryAfterSeconds: waitSeconds };
      const { data, created } = await this.repo.bindFirstUse(hashHex, first);
      this.writeRedis(hashHex, data);
      return { kind: 'found', rule: this.remember(hashHex, toBindingRule(data), epoch), created };
    } catch (err) {
      this.metrics.cacheLookup('none');
      const stale = this.entries.get(hashHex);
      if (stale !== undefined) {
        stale.unconfirmed = true;
        if (this.options.serveUnconfirmed()) return { kind: 'found', rule: stale.rule, created: false };
      }
      this.unavailableLog.warn({ err: (err as Error).message });
      return { kind: 'unavailable' };
    }
  }

  private refresh(hashHex: string): void {
    if (this.refreshing.has(hashHex)) return;
    this.refreshing.add(hashHex);
    const epoch = this.epoch;
    void (async () => {
      try {
        const fromRedis = await this.readRedis(hashHex);
        if (fromRedis !== null) {
          this.remember(hashHex, fromRedis, epoch);
          return;
        }
        const data = await this.repo.findRuleByHash(hashHex);
        if (data === null) {
          if (epoch === this.epoch) this.entries.delete(hashHex);
          return;
        }
        this.writeRedis(hashHex, data);
        this.remember(hashHex, toBindingRule(data), epoch);
      } catch {
        // No store can confirm it. Try again in a while; meanwhile it answers
        // only if fail-open allows (see `peek`).
        const e = this.entries.get(hashHex);
        if (e !== undefined) {
          e.unconfirmed = true;
          e.freshUntil = Date.now() + Math.min(this.options.ttlMs, 5000);
        }
      } finally {
        this.refreshing.delete(hashHex);
      }
    })();
  }

  private remember(hashHex: string, rule: BindingRule, epoch: number): BindingRule {
    if (epoch !== this.epoch) return rule; // changed while we were loading
    this.entries.set(hashHex, rule, Date.now() + this.options.ttlMs);
    this.metrics.cachedBindings.set(this.entries.size);
    return rule;
  }

  private async readRedis(hashHex: string): Promise<BindingRule | null> {
    if (!this.redisTrusted || this.redis.status !== 'ready') return null;
    try {
      const raw = await this.redis.get(this.keys.binding(hashHex));
      if (raw === null) return null;
      return toBindingRule(JSON.parse(raw) as BindingRuleData);
    } catch {
      return null;
    }
  }

  private writeRedis(hashHex: string, data: BindingRuleData | BindingRule): void {
    if (!this.redisTrusted || this.redis.status !== 'ready') return;
    const payload = 'ruleType' in data ? toBindingRuleData(data) : data;
    this.redis
      .eval(
        SET_UNLESS_INVALIDATED,
        2,
        this.keys.binding(hashHex),
        this.keys.bindingInvalidated(hashHex),
        JSON.stringify(payload),
        REDIS_TTL_MS,
      )
      .catch(() => undefined);
  }
}
