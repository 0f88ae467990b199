import { randomBytes } from 'node:crypto';
import { formatCidr, networkOf, parseIp } from '@keypin/shared';
import type { RedisClient } from '../infra/redis/redis.factory';
import type { RedisKeys } from '../infra/redis/redis-keys';

/** First uses are counted over a sliding minute. */
export const FIRST_USE_WINDOW_MS = 60_000;

/**
 * The network whose first uses are counted together: the /24 of an IPv4
 * address, the /48 of an IPv6 one (what one site or customer usually holds,
 * so hopping addresses inside it does not buy more new keys).
 */
export function clientNetwork(ipText: string): string | null {
  const ip = parseIp(ipText);
  if (ip === null) return null;
  return formatCidr(networkOf(ip, ip.version === 4 ? 24 : 48));
}

/**
 * One atomic round trip: drop uses older than the window, then count this
 * one if there is room. A sliding log rather than a per-minute counter, so
 * no burst at a minute boundary gets twice the limit. Redis's own clock
 * (TIME) keeps instances with drifting clocks on one window. Returns 0 when
 * the use was counted, else the milliseconds until the oldest use leaves
 * the window.
 */
const RESERVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)`;

/** The same sliding log in this process's memory: the fallback while Redis cannot answer. */
export class LocalFirstUseLog {
  private readonly logs = new Map<string, number[]>();
  private nextSweep = 0;

  constructor(
    private readonly limit: number,
    private readonly windowMs = FIRST_USE_WINDOW_MS,
  ) {}

  /** 0 when the use was counted, else milliseconds until one may be. */
  reserve(network: string, now: number): number {
    this.sweep(now);
    let log = this.logs.get(network);
    if (log === undefined) {
      log = [];
      this.logs.set(network, log);
    }
    const horizon = now - this.windowMs;
    while (log.length > 0 && log[0]! <= horizon) log.shift();
    if (log.length < this.limit) {
      log.push(now);
      return 0;
    }
    return Math.max(1, log[0]! + this.windowMs - now);
  }

  get networks(): number {
    return this.logs.size;
  }

  /** Forgets networks with no use inside the window, at most once per window. */
  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + this.windowMs;
    const horizon = now - this.windowMs;
    for (const [network, log] of this.logs) {
      if (log.length === 0 || log[log.length - 1]! <= horizon) this.logs.delete(network);
    }
  }
}

/**
 * docs/contract.md 2.3 item 7: at most `limit` first uses per minute from one
 * client network, shared by every instance through Redis; while Redis
 * cannot answer, each instance counts alone in memory. Consulted only when
 * the binding store is about to create a binding, so known keys never pay
 * for it.
 */
export class FirstUseLimiter {
  private readonly local: LocalFirstUseLog;
  /** Makes every member of the shared log unique across instances. */
  private readonly instanceTag = randomBytes(6).toString('hex');
  private seq = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly limit: number,
    private readonly now: () => number = Date.now,
  ) {
    this.local = new LocalFirstUseLog(limit);
  }

  /**
   * Counts one first use from the network of `clientIp`. Resolves 0 when it
   * may go ahead, else the seconds to wait (for `Retry-After`). Never rejects.
   */
  async reserve(clientIp: string): Promise<number> {
    const network = clientNetwork(clientIp);
    if (network === null) return 0; // the proxy only passes addresses it parsed
    const waitMs = (await this.reserveShared(network)) ?? this.local.reserve(network, this.now());
    return waitMs === 0 ? 0 : Math.ceil(waitMs / 1000);
  }

  private async reserveShared(network: string): Promise<number | null> {
    if (this.redis.status !== 'ready') return null;
    try {
      const member = `${this.instanceTag}:${++this.seq}`;
      const waitMs = await this.redis.eval(
        RESERVE,
        1,
        this.keys.firstUses(network),
        FIRST_USE_WINDOW_MS,
        this.limit,
        member,
      );
      return Number(waitMs);
    } catch {
      return null;
    }
  }
}
