import type { RedisClient } from '../infra/redis/redis.factory';
import type { DataSource } from 'typeorm';
import type { RedisKeys } from '../infra/redis/redis-keys';

export const MAX_FAILURES = 5;
export const WINDOW_MS = 15 * 60 * 1000;

/** Advisory lock namespace (two-key form) for one username+IP pair's attempts. */
const LOGIN_LOCK_NAMESPACE = 728_461_533;

/** A login attempt may go ahead (and counts as a failure until it succeeds), or the pair is locked. */
export type Reservation =
  | {
      ok: true;
      /** Takes the attempt back when it could not be checked (an internal error). */
      release(): Promise<void>;
    }
  | { ok: false; retryAfterMs: number };

/**
 * Login lockout: 5 failures for one username from one IP within 15 minutes
 * lock that pair until the 5th most recent of them is 15 minutes old.
 *
 * Exact under concurrency: an attempt is counted *before* its password is
 * checked (`reserve`), under a per-pair PostgreSQL advisory lock, so of any
 * number of parallel attempts at most 5 reach the password check; a
 * successful login then clears the pair. Checking first and counting after
 * the (slow, scrypt) check would let every parallel attempt through.
 *
 * PostgreSQL (`login_failures`) is the record and the only place an attempt
 * is admitted. Redis keeps a copy (a sorted set per pair) so that a locked
 * pair is refused without a database transaction; neither a Redis restart
 * nor an outage lifts a lock, as PostgreSQL still has it.
 */
export class LockoutRepository {
  constructor(
    private readonly ds: DataSource,
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  private key(username: string, ip: string): string {
    return `${this.keys.prefix}login-failures:${ip}:${username.toLowerCase()}`;
  }

  /** Counts an attempt for the pair, unless it is locked. */
  async reserve(username: string, ip: string): Promise<Reservation> {
    const now = Date.now();
    const cached = await this.lockedInRedis(username, ip, now);
    if (cached > 0) return { ok: false, retryAfterMs: cached };

    const at = new Date(now);
    const recent = await this.ds.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock($1, hashtext(lower($2) || ' ' || $3))`, [
        LOGIN_LOCK_NAMESPACE,
        username,
        ip,
      ]);
      const rows: { at: Date }[] = await tx.query(
        `SELECT at FROM login_failures WHERE lower(username) = lower($1) AND ip = $2::inet AND at > $3
          ORDER BY at DESC LIMIT ${MAX_FAILURES}`,
        [username, ip, new Date(now - WINDOW_MS)],
      );
      const times = rows.map((r) => new Date(r.at).getTime());
      if (times.length < MAX_FAILURES) {
        await tx.query('INSERT INTO login_failures (username, ip, at) VALUES ($1, $2::inet, $3)', [
          username.toLowerCase(),
          ip,
          at,
        ]);
      }
      return times;
    });

    if (recent.length >= MAX_FAILURES) {
      // Redis had forgotten the lock (restart, outage): give it PostgreSQL's failures.
      await this.copyToRedis(username, ip, recent, now, true);
      // A concurrent attempt may carry a time a little after `now`: never more than the window.
      return { ok: false, retryAfterMs: Math.min(WINDOW_MS, lockedUntil(recent) - now) };
    }
    const member = await this.copyToRedis(username, ip, [now], now, false);
    return {
      ok: true,
      release: async () => {
        await this.ds.query(
          `DELETE FROM login_failures WHERE ctid = (SELECT ctid FROM login_failures
             WHERE lower(username) = lower($1) AND ip = $2::inet AND at = $3 LIMIT 1)`,
          [username, ip, at],
        );
        if (member[0] !== undefined) await this.redis.zrem(this.key(username, ip), member[0]).catch(() => 0);
      },
    };
  }

  /** A successful login: the pair starts again from zero. */
  async clear(username: string, ip: string): Promise<void> {
    await this.ds.query('DELETE FROM login_failures WHERE lower(username) = lower($1) AND ip = $2::inet', [
      username,
      ip,
    ]);
    await this.redis.del(this.key(username, ip)).catch(() => undefined);
  }

  /** Milliseconds the Redis copy says the pair is locked for; 0 when not (or Redis cannot say). */
  private async lockedInRedis(username: string, ip: string, now: number): Promise<number> {
    try {
      const members = await this.redis.zrevrangebyscore(
        this.key(username, ip),
        '+inf',
        now - WINDOW_MS,
        'WITHSCORES',
        'LIMIT',
        0,
        MAX_FAILURES,
      );
      const times: number[] = [];
      for (let i = 1; i < members.length; i += 2) times.push(Number(members[i]));
      return times.length >= MAX_FAILURES ? Math.min(WINDOW_MS, lockedUntil(times) - now) : 0;
    } catch {
      return 0;
    }
  }

  /**
   * Adds failure times to the Redis copy (or replaces it with them); returns
   * the members written (none when Redis is down).
   */
  private async copyToRedis(
    username: string,
    ip: string,
    times: number[],
    now: number,
    replace: boolean,
  ): Promise<string[]> {
    const k = this.key(username, ip);
    const members = times.map((t) => `${t}-${Math.random().toString(36).slice(2)}`);
    try {
      const m = this.redis.multi();
      if (replace) m.del(k);
      times.forEach((t, i) => m.zadd(k, t, members[i]!));
      await m
        .zremrangebyscore(k, 0, now - WINDOW_MS)
        .pexpire(k, WINDOW_MS)
        .exec();
      return members;
    } catch {
      return [];
    }
  }
}

/** A locked pair may try again once the MAX_FAILURES-th most recent failure leaves the window. */
function lockedUntil(times: number[]): number {
  const sorted = [...times].sort((a, b) => b - a);
  return Math.max(Date.now() + 1000, sorted[MAX_FAILURES - 1]! + WINDOW_MS);
}
