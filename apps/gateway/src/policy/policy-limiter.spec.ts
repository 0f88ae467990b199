import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RedisKeys } from '../infra/redis/redis-keys';
import { compilePolicy, type CompiledPolicy } from './compiled-policy';
import { PolicyLimiter } from './policy-limiter';

/** A Redis client that is never ready: the limiter enforces from memory (its fallback). */
function offlineRedis(): Redis {
  const r = new EventEmitter() as EventEmitter & { status: string; defineCommand(): void };
  r.status = 'reconnecting';
  r.defineCommand = () => undefined;
  return r as unknown as Redis;
}

const T0 = Date.UTC(2026, 11, 3, 23, 59, 58);

function limiter(clock: { now: number }) {
  return new PolicyLimiter(offlineRedis(), new RedisKeys('t:'), pino({ level: 'silent' }), {
    now: () => clock.now,
  });
}
const policy = (p: Parameters<typeof compilePolicy>[0]): CompiledPolicy => compilePolicy(p, 'binding')!;

describe('PolicyLimiter without Redis (each instance enforces alone)', () => {
  it('says it is degraded once it had to count alone', async () => {
    const l = limiter({ now: T0 });
    expect(l.degraded).toBe(false);
    await l.admit(1, policy({ rate_per_second: 1 }));
    expect(l.degraded).toBe(true);
  });

  it('token bucket: burst, then 429 rate_limited with Retry-After and headers', async () => {
    const clock = { now: T0 };
    const l = limiter(clock);
    const p = policy({ rate_per_second: 2, burst: 3 });
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await l.admit(7, p));
    expect(results.slice(0, 3).every((r) => r.ok)).toBe(true);
    const refused = results[3]!;
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.code).toBe('rate_limited');
    expect(refused.retryAfter).toBe(1);
    expect(refused.headers).toEqual([
      'x-ratelimit-limit-requests',
      '3',
      'x-ratelimit-remaining-requests',
      '0',
      'x-ratelimit-reset-requests',
      '1.5s',
    ]);
    clock.now += 500; // one token back
    expect((await l.admit(7, p)).ok).toBe(true);
    expect((await l.admit(7, p)).ok).toBe(false);
  });

  it('daily quota: refused at the limit, open again at UTC midnight, Retry-After to midnight', async () => {
    const clock = { now: T0 }; // 2 s before midnight
    const l = limiter(clock);
    const p = policy({ requests_per_day: 2 });
    expect((await l.admit(1, p)).ok).toBe(true);
    const second = await l.admit(1, p);
    expect(second.ok && second.headers).toEqual([
      'x-ratelimit-limit-requests',
      '2',
      'x-ratelimit-remaining-requests',
      '0',
      'x-ratelimit-reset-requests',
      '2s',
    ]);
    const third = await l.admit(1, p);
    expect(third.ok).toBe(false);
    if (!third.ok) {
      expect(third.code).toBe('quota_exceeded');
      expect(third.retryAfter).toBe(2);
      expect(third.message).toMatch(/daily quota of 2 requests/);
    }
    clock.now = Date.UTC(2026, 11, 4, 0, 0, 0);
    expect((await l.admit(1, p)).ok).toBe(true);
  });

  it('monthly quota counts across days and resets with the month', async () => {
    const clock = { now: Date.UTC(2026, 10, 30, 10) };
    const l = limiter(clock);
    const p = policy({ requests_per_month: 3 });
    for (let i = 0; i < 3; i++) expect((await l.admit(2, p)).ok).toBe(true);
    clock.now = Date.UTC(2026, 10, 30, 23);
    const r = await l.admit(2, p);
    expect(!r.ok && r.code).toBe('quota_exceeded');
    clock.now = Date.UTC(2026, 11, 1, 0, 0, 1);
    expect((await l.admit(2, p)).ok).toBe(true);
  });

  it('a refusal charges nothing: a quota is not used up by refused requests', async () => {
    const clock = { now: T0 - 3600_000 };
    const l = limiter(clock);
    const p = policy({ rate_per_second: 1, burst: 1, requests_per_day: 5 });
    expect((await l.admit(3, p)).ok).toBe(true);
    for (let i = 0; i < 10; i++) expect((await l.admit(3, p)).ok).toBe(false); // rate
    clock.now += 1000;
    const r = await l.admit(3, p);
    expect(r.ok && r.headers?.[3]).toBe('3'); // 5 - 2 remaining
  });

  it('max_concurrent: slots are taken and given back', async () => {
    const l = limiter({ now: T0 });
    const p = policy({ max_concurrent: 2 });
    const a = await l.admit(4, p);
    const b = await l.admit(4, p);
    const c = await l.admit(4, p);
    expect([a.ok, b.ok, c.ok]).toEqual([true, true, false]);
    expect(!c.ok && c.code).toBe('rate_limited');
    expect(l.leasesHeld).toBe(2);
    if (a.ok && a.lease) l.release(a.lease);
    expect(l.leasesHeld).toBe(1);
    expect((await l.admit(4, p)).ok).toBe(true);
    // Keys are independent.
    expect((await l.admit(5, p)).ok).toBe(true);
  });

  it('a key with only models / max_tokens is not counted and gets no headers', () => {
    const p = policy({ models: ['gpt-4o*'], max_tokens: 100 });
    expect(p.counts).toBe(false);
    expect(p.announces).toBe(false);
    expect(p.readsRequest).toBe(true);
  });
});
