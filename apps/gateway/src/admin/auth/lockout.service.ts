import type { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import type { RedisKeys } from '../../infra/redis/redis-keys';

export const MAX_FAILURES = 5;
export const WINDOW_MS = 15 * 60 * 1000;

/**
 * Login lockout: 5 failures for one username from one IP within 15 minutes
 * lock that pair until the oldest of them is 15 minutes old. Counted in
 * Redis (a sorted set per pair) and kept in PostgreSQL as well, so a Redis
 * restart or outage does not lift a lock.
 */
export class LockoutService {
  constructor(
    private readonly ds: DataSource,
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private key(username: string, ip: string): string {
    return `${this.keys.prefix}login-failures:${ip}:${username.toLowerCase()}`;
  }

  /** Milliseconds until the pair may try again, or 0 when not locked. */
  async lockedFor(username: string, ip: string): Promise<number> {
    const now = Date.now();
    const times = await this.recentFailures(username, ip, now);
    if (times.length < MAX_FAILURES) return 0;
    // Locked until the MAX_FAILURES-th most recent failure leaves the window.
    const sorted = times.sort((a, b) => b - a);
    return Math.max(1000, sorted[MAX_FAILURES - 1]! + WINDOW_MS - now);
  }

  async recordFailure(username: string, ip: string): Promise<void> {
    const now = Date.now();
    await this.ds.query('INSERT INTO login_failures (username, ip, at) VALUES ($1, $2::inet, $3)', [
      username.toLowerCase(),
      ip,
      new Date(now),
    ]);
    try {
      const k = this.key(username, ip);
      await this.redis
        .multi()
        .zadd(k, now, `${now}-${Math.random().toString(36).slice(2)}`)
        .zremrangebyscore(k, 0, now - WINDOW_MS)
        .pexpire(k, WINDOW_MS)
        .exec();
    } catch {
      // PostgreSQL has it.
    }
  }

  async clear(username: string, ip: string): Promise<void> {
    await this.ds.query('DELETE FROM login_failures WHERE lower(username) = lower($1) AND ip = $2::inet', [
      username,
      ip,
    ]);
    await this.redis.del(this.key(username, ip)).catch(() => undefined);
  }

  private async recentFailures(username: string, ip: string, now: number): Promise<number[]> {
    let fromRedis: number[] = [];
    try {
      const members = await this.redis.zrangebyscore(
        this.key(username, ip),
        now - WINDOW_MS,
        '+inf',
        'WITHSCORES',
      );
      for (let i = 1; i < members.length; i += 2) fromRedis.push(Number(members[i]));
    } catch {
      fromRedis = [];
    }
    if (fromRedis.length >= MAX_FAILURES) return fromRedis;
    const rows: { at: Date }[] = await this.ds.query(
      `SELECT at FROM login_failures WHERE lower(username) = lower($1) AND ip = $2::inet AND at > $3
        ORDER BY at DESC LIMIT ${MAX_FAILURES}`,
      [username, ip, new Date(now - WINDOW_MS)],
    );
    const fromPg = rows.map((r) => new Date(r.at).getTime());
    return fromPg.length > fromRedis.length ? fromPg : fromRedis;
  }
}
