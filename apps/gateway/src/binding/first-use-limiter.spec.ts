import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisKeys } from '../infra/redis/redis-keys';
import { clientNetwork, FirstUseLimiter, LocalFirstUseLog } from './first-use-limiter';

describe('clientNetwork', () => {
  it('is the /24 of an IPv4 address and the /48 of an IPv6 one', () => {
    expect(clientNetwork('203.0.113.77')).toBe('203.0.113.0/24');
    expect(clientNetwork('2001:db8:1234:5678::1')).toBe('2001:db8:1234::/48');
    expect(clientNetwork('::ffff:198.51.100.9')).toBe('198.51.100.0/24');
    expect(clientNetwork('not an ip')).toBeNull();
  });
});

describe('LocalFirstUseLog', () => {
  it('allows `limit` uses per sliding window, then says how long to wait', () => {
    const sut = new LocalFirstUseLog(3, 60_000);
    expect(sut.reserve('n', 1_000)).toBe(0);
    expect(sut.reserve('n', 2_000)).toBe(0);
    expect(sut.reserve('n', 3_000)).toBe(0);
    expect(sut.reserve('n', 4_000)).toBe(57_000); // the use at 1 s leaves at 61 s
    expect(sut.reserve('other', 4_000)).toBe(0);
    // No minute boundary to burst across: still full just before 61 s…
    expect(sut.reserve('n', 60_999)).toBe(1);
    // …and one slot frees at a time.
    expect(sut.reserve('n', 61_000)).toBe(0);
    expect(sut.reserve('n', 61_000)).toBeGreaterThan(0);
  });

  it('forgets networks idle for a window', () => {
    const sut = new LocalFirstUseLog(3, 60_000);
    sut.reserve('a', 0);
    sut.reserve('b', 30_000);
    sut.reserve('c', 65_000);
    expect(sut.networks).toBe(2); // a went quiet at 0
  });
});

describe('FirstUseLimiter', () => {
  const keys = new RedisKeys('t:');

  it('counts in memory while Redis is not connected, in whole seconds for Retry-After', async () => {
    const offline = { status: 'reconnecting' } as unknown as Redis;
    let now = 0;
    const sut = new FirstUseLimiter(offline, keys, 2, () => now);
    expect(await sut.reserve('10.1.2.3')).toBe(0);
    expect(await sut.reserve('10.1.2.200')).toBe(0); // same /24
    now = 500;
    expect(await sut.reserve('10.1.2.4')).toBe(60);
    expect(await sut.reserve('10.1.3.4')).toBe(0); // another /24
  });

  it('asks Redis once per use, under the prefix, and falls back to memory when it fails', async () => {
    const calls: unknown[][] = [];
    let fail = false;
    const redis = {
      status: 'ready',
      eval: (...args: unknown[]) => {
        calls.push(args);
        return fail ? Promise.reject(new Error('timeout')) : Promise.resolve(1500);
      },
    } as unknown as Redis;
    const sut = new FirstUseLimiter(redis, keys, 1, () => 0);
    expect(await sut.reserve('192.0.2.9')).toBe(2); // 1.5 s → Retry-After 2
    expect(calls[0]!.slice(1, 5)).toEqual([1, 't:first-use:192.0.2.0/24', 60_000, 1]);
    fail = true;
    expect(await sut.reserve('192.0.2.9')).toBe(0); // memory: first use there
    expect(await sut.reserve('192.0.2.9')).toBe(60);
  });
});
