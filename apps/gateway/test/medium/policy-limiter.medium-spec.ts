import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createCommandClient } from '../../src/infra/redis/redis.factory';
import { RedisKeys } from '../../src/infra/redis/redis-keys';
import { compilePolicy, type CompiledPolicy } from '../../src/policy/compiled-policy';
import { type Admission, LEASE_MS, PolicyLimiter } from '../../src/policy/policy-limiter';
import { utcDay } from '../../src/policy/policy-math';
import { dropStores, freshStores, REDIS_URL } from '../support/stores';
import { startThrowawayRedis } from '../support/throwaway';

/**
 * The policy limiter's Redis script against the real Redis, several
 * "instances" (limiters with their own connections, built as runtime.ts
 * builds them) sharing one set of counters: exact quotas under concurrency,
 * the token bucket, leases in flight, and the fallback while Redis is away.
 */

const logger = pino({ level: 'silent' });
const stores = freshStores('policy_limiter');
const keys = new RedisKeys(stores.redisPrefix);
const clients: Redis[] = [];

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await dropStores(stores.dbName, stores.redisPrefix);
});

function instance(
  url = REDIS_URL,
  now?: () => number,
  leaseMs?: number,
  seed?: (id: number) => Promise<{ today: number; month: number }>,
): PolicyLimiter {
  const c = createCommandClient(url, logger, 'policy', { commandTimeout: 250, enableAutoPipelining: true });
  clients.push(c);
  return new PolicyLimiter(c, keys, logger, { now, leaseMs, seed });
}

async function ready(l: PolicyLimiter): Promise<void> {
  // The limiter's connection is private: wait for it through a first admit on a throwaway policy.
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    await l.admit(999_999, policy({ requests_per_day: 1_000_000_000 }));
    if (!l.degraded) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('limiter never reached Redis');
}

const policy = (p: Parameters<typeof compilePolicy>[0]): CompiledPolicy => compilePolicy(p, 'binding')!;
let nextId = 1;
const newId = () => nextId++;
const okCount = (rs: Admission[]) => rs.filter((r) => r.ok).length;

describe('shared counters (one Redis script per request)', () => {
  it('two instances admit exactly the daily quota between them under 400 concurrent requests', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([ready(a), ready(b)]);
    const id = newId();
    const p = policy({ requests_per_day: 137 });
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? a : b).admit(id, p)),
    );
    expect(okCount(results)).toBe(137);
    expect(a.degraded || b.degraded).toBe(false);
    const refused = results.filter((r) => !r.ok);
    expect(refused.every((r) => !r.ok && r.code === 'quota_exceeded')).toBe(true);
    expect(await a.liveCounts(id)).toEqual({ day: 137, month: 0 });
  });

  it('requests of one key in one turn share script calls, each judged in turn (600 at once, quota 250, 3 in flight)', async () => {
    const a = instance();
    await ready(a);
    const id = newId();
    const p = policy({ requests_per_day: 250, max_concurrent: 1000, rate_per_second: 1, burst: 400 });
    const results = await Promise.all(Array.from({ length: 600 }, () => a.admit(id, p)));
    // The bucket (400) would admit more: the quota decides, in arrival order.
    expect(results.slice(0, 250).every((r) => r.ok)).toBe(true);
    expect(results.slice(250).every((r) => !r.ok && r.code === 'quota_exceeded')).toBe(true);
    const remaining = results.slice(0, 250).map((r) => (r.ok ? Number(r.headers![3]) : -1));
    expect(remaining).toEqual(Array.from({ length: 250 }, (_, i) => 249 - i));
    expect(a.leasesHeld).toBe(250);
    for (const r of results) if (r.ok && r.lease) a.release(r.lease);
    expect(a.leasesHeld).toBe(0);
  });

  it('a quota counts the calendar day: a new counter starts from the stored counts, read once per key and day', async () => {
    let reads = 0;
    const a = instance(REDIS_URL, undefined, undefined, () => {
      reads++;
      return Promise.resolve({ today: 5, month: 40 });
    });
    await ready(a);
    const id = newId();
    const p = policy({ requests_per_day: 8, requests_per_month: 1000 });
    const results = await Promise.all(Array.from({ length: 6 }, () => a.admit(id, p)));
    expect(results.map((r) => r.ok)).toEqual([true, true, true, false, false, false]);
    expect(await a.liveCounts(id)).toEqual({ day: 8, month: 43 });
    for (let i = 0; i < 3; i++) expect((await a.admit(id, p)).ok).toBe(false);
    expect(reads).toBe(2); // the ready() probe's key and this one
    // A counter Redis already has is not seeded again (another instance's seed is ignored too).
    const b = instance(REDIS_URL, undefined, undefined, () => Promise.resolve({ today: 0, month: 0 }));
    await ready(b);
    expect((await b.admit(id, p)).ok).toBe(false);
  });

  it('a seed that cannot be read in time counts from 0 rather than holding requests', async () => {
    const a = instance(REDIS_URL, undefined, undefined, () => new Promise(() => undefined));
    await ready(a);
    const id = newId();
    const t0 = Date.now();
    expect((await a.admit(id, policy({ requests_per_day: 2 }))).ok).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await a.liveCounts(id)).toEqual({ day: 1, month: 0 });
  });

  it('the token bucket is shared: a burst of 20 across two instances, then refill', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([ready(a), ready(b)]);
    const id = newId();
    const p = policy({ rate_per_second: 10, burst: 20 });
    const first = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).admit(id, p)));
    // 20 from the bucket, plus at most what refilled while the 60 calls ran.
    expect(okCount(first)).toBeGreaterThanOrEqual(20);
    expect(okCount(first)).toBeLessThanOrEqual(22);
    const refused = first.find((r) => !r.ok)!;
    expect(!refused.ok && refused.code).toBe('rate_limited');
    expect(!refused.ok && refused.retryAfter).toBe(1);
    await new Promise((r) => setTimeout(r, 1000));
    const later = await Promise.all(Array.from({ length: 30 }, () => a.admit(id, p)));
    expect(okCount(later)).toBeGreaterThanOrEqual(9);
    expect(okCount(later)).toBeLessThanOrEqual(13);
  });

  it('forwarded answers get the tightest quota in x-ratelimit-* headers', async () => {
    const a = instance();
    await ready(a);
    const id = newId();
    const r = await a.admit(
      id,
      policy({ requests_per_day: 10, requests_per_month: 1000, rate_per_second: 100 }),
    );
    expect(r.ok && r.headers?.slice(0, 4)).toEqual([
      'x-ratelimit-limit-requests',
      '10',
      'x-ratelimit-remaining-requests',
      '9',
    ]);
  });

  it('max_concurrent across instances: leases taken, refused at the limit, released', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([ready(a), ready(b)]);
    const id = newId();
    const p = policy({ max_concurrent: 3 });
    const by = (i: number) => (i % 2 ? a : b);
    const held = await Promise.all(Array.from({ length: 10 }, (_, i) => by(i).admit(id, p)));
    expect(okCount(held)).toBe(3);
    expect(a.leasesHeld + b.leasesHeld).toBe(3);
    held.forEach((r, i) => {
      if (r.ok && r.lease) by(i).release(r.lease);
    });
    expect(a.leasesHeld + b.leasesHeld).toBe(0);
    // Releases are sent without waiting: give them a moment.
    await new Promise((r) => setTimeout(r, 100));
    const again = await Promise.all(Array.from({ length: 5 }, () => b.admit(id, p)));
    expect(okCount(again)).toBe(3);
  });

  it('a lease of an instance that died expires after LEASE_MS; a live one is renewed', async () => {
    const clock = { now: Date.now() };
    const leaseMs = 2000;
    const dying = instance(REDIS_URL, () => clock.now, leaseMs);
    const alive = instance(REDIS_URL, () => clock.now, leaseMs);
    await Promise.all([ready(dying), ready(alive)]);
    const id = newId();
    const p = policy({ max_concurrent: 1 });
    expect((await dying.admit(id, p)).ok).toBe(true); // never released: the instance "dies"
    expect((await alive.admit(id, p)).ok).toBe(false);
    clock.now += leaseMs + 1;
    const mine = await alive.admit(id, p);
    expect(mine.ok).toBe(true);
    alive.start(); // renews every max(1 s, leaseMs / 3)
    clock.now += leaseMs - 500;
    await new Promise((r) => setTimeout(r, 1300));
    clock.now += 1000; // past the first expiry: only a renewal keeps it
    expect((await dying.admit(id, p)).ok).toBe(false);
    alive.stop();
    expect(LEASE_MS).toBeGreaterThanOrEqual(30_000);
  });

  it('a clock behind the bucket refills nothing', async () => {
    const clock = { now: Date.now() };
    const a = instance(REDIS_URL, () => clock.now);
    await ready(a);
    const id = newId();
    const p = policy({ rate_per_second: 1, burst: 2 });
    expect(okCount(await Promise.all([a.admit(id, p), a.admit(id, p), a.admit(id, p)]))).toBe(2);
    clock.now -= 60_000;
    expect((await a.admit(id, p)).ok).toBe(false);
    clock.now += 61_000;
    expect((await a.admit(id, p)).ok).toBe(true);
  });
});

describe('Redis away in the middle of a burst', () => {
  /**
   * The stored counts as the usage batches would have written them: every
   * request admitted, by Redis or alone (the seed source runtime.ts gives).
   */
  function recordingInstance(url: string): {
    l: PolicyLimiter;
    admitted: () => number;
    admit: (n: number, id: number, p: CompiledPolicy) => Promise<Admission[]>;
  } {
    let stored = 0;
    const l = instance(url, undefined, undefined, () => Promise.resolve({ today: stored, month: stored }));
    const admit = async (n: number, id: number, p: CompiledPolicy) => {
      const rs = await Promise.all(Array.from({ length: n }, () => l.admit(id, p)));
      stored += okCount(rs);
      return rs;
    };
    return { l, admitted: () => stored, admit };
  }

  async function waitForKey(probe: Redis, key: string, value: string | null): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await probe.get(key).catch(() => 'unreachable')) !== value) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await probe.get(key)).toBe(value);
  }

  it('Redis keeps its counters: the requests admitted alone are added to them', async () => {
    const redis = await startThrowawayRedis();
    try {
      const { l: a, admit } = recordingInstance(redis.url);
      await ready(a);
      const id = newId();
      const p = policy({ requests_per_day: 30 });
      expect(okCount(await admit(12, id, p))).toBe(12);
      const probe = new Redis(redis.url, { maxRetriesPerRequest: null });
      probe.on('error', () => undefined); // the throwaway Redis stops and starts
      clients.push(probe);
      await probe.save();
      await redis.stop();
      const during = await admit(40, id, p);
      expect(a.degraded).toBe(true);
      // Continues from the 12 Redis last reported: 18 more, not 30.
      expect(okCount(during)).toBe(18);
      await redis.start();
      await waitForKey(probe, keys.policyDay(id, utcDay(Date.now())), '30');
      const after = await a.admit(id, p);
      expect(a.degraded).toBe(false);
      expect(!after.ok && after.code).toBe('quota_exceeded');
    } finally {
      await redis.destroy().catch(() => undefined);
    }
  });

  it('Redis comes back empty: the counter starts again from the stored counts, nothing counted twice', async () => {
    const redis = await startThrowawayRedis();
    try {
      const { l: a, admit, admitted } = recordingInstance(redis.url);
      await ready(a);
      const id = newId();
      const p = policy({ requests_per_day: 30 });
      expect(okCount(await admit(12, id, p))).toBe(12);
      await redis.stop(); // no SAVE: it forgets everything
      expect(okCount(await admit(10, id, p))).toBe(10);
      await redis.start();
      const probe = new Redis(redis.url, { maxRetriesPerRequest: null });
      probe.on('error', () => undefined); // the throwaway Redis stops and starts
      clients.push(probe);
      const dayKey = keys.policyDay(id, utcDay(Date.now()));
      // Not recreated from the 10 alone (that would forget the 12).
      await new Promise((r) => setTimeout(r, 500));
      expect(await probe.get(dayKey)).toBeNull();
      expect(admitted()).toBe(22);
      // The next requests start it from the stored 22: 8 more pass.
      const next = await admit(12, id, p);
      expect(okCount(next)).toBe(8);
      expect(await probe.get(dayKey)).toBe('30');
    } finally {
      await redis.destroy().catch(() => undefined);
    }
  });
});

describe('admitting ahead of Redis, far from every limit', () => {
  const turn = () => new Promise((r) => setImmediate(r));

  it('admits at once once a shared view exists, and every request is still charged in Redis', async () => {
    const a = instance();
    await ready(a);
    const id = newId();
    const p = policy({ requests_per_day: 1_000_000, rate_per_second: 100_000, burst: 100_000 });
    expect((await a.admit(id, p)).ok).toBe(true); // the first one waits: no view yet
    const before = a.admittedAhead;
    let sync = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 50; i++) {
        let answered = false;
        a.admitThen(id, p, (r) => {
          expect(r.ok).toBe(true);
          answered = true;
        });
        if (answered) sync++;
      }
      await turn();
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(a.admittedAhead - before).toBe(sync);
    expect(sync).toBeGreaterThan(900);
    await new Promise((r) => setTimeout(r, 50));
    expect(await a.liveCounts(id)).toEqual({ day: 1001, month: 0 });
  });

  it('answers ahead with the estimated x-ratelimit headers', async () => {
    const a = instance();
    await ready(a);
    const id = newId();
    const p = policy({ requests_per_day: 1_000_000 });
    await a.admit(id, p);
    let got: Admission | null = null;
    a.admitThen(id, p, (r) => (got = r));
    expect(got).not.toBeNull();
    const h = (got as unknown as Admission & { ok: true }).headers!;
    expect(h[h.indexOf('x-ratelimit-remaining-requests') + 1]).toBe(String(1_000_000 - 2));
  });

  it('never admits ahead under a small limit', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([ready(a), ready(b)]);
    const id = newId();
    const p = policy({ requests_per_day: 9000, rate_per_second: 100_000, burst: 100_000 });
    const before = a.admittedAhead + b.admittedAhead;
    const results: Admission[] = [];
    for (let round = 0; round < 20; round++) {
      const batch = Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).admit(id, p));
      results.push(...(await Promise.all(batch)));
    }
    expect(okCount(results)).toBe(2000);
    // A quota under AHEAD_MIN_LIMIT: every request waited for Redis.
    expect(a.admittedAhead + b.admittedAhead - before).toBe(0);
  });

  it('two instances hammering one quota admit exactly it, going ahead only while far from it', async () => {
    const a = instance();
    const b = instance();
    await Promise.all([ready(a), ready(b)]);
    const id = newId();
    const quota = 20_000;
    const p = policy({ requests_per_day: quota });
    const before = a.admittedAhead + b.admittedAhead;
    let ok = 0;
    let refused = 0;
    for (let round = 0; round < 250; round++) {
      const waits: Promise<void>[] = [];
      for (let i = 0; i < 100; i++) {
        const l = i % 2 === 0 ? a : b;
        waits.push(
          new Promise<void>((resolve) =>
            l.admitThen(id, p, (r) => {
              if (r.ok) ok++;
              else refused++;
              resolve();
            }),
          ),
        );
      }
      await Promise.all(waits);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(ok).toBe(quota);
    expect(refused).toBe(25_000 - quota);
    expect(a.admittedAhead + b.admittedAhead - before).toBeGreaterThan(1000);
    expect(await a.liveCounts(id)).toEqual({ day: quota, month: 0 });
  });
});
