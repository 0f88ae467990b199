import { describe, expect, it } from 'vitest';
import { InflightLimiter } from './inflight-limiter';

describe('InflightLimiter', () => {
  it('admits up to the limit per IP, then refuses without taking a slot', () => {
    const sut = new InflightLimiter(2);
    expect(sut.tryAcquire('10.0.0.1')).toBe(true);
    expect(sut.tryAcquire('10.0.0.1')).toBe(true);
    expect(sut.tryAcquire('10.0.0.1')).toBe(false);
    expect(sut.held('10.0.0.1')).toBe(2);
    expect(sut.tryAcquire('10.0.0.2')).toBe(true); // another IP has its own slots
    sut.release('10.0.0.1');
    expect(sut.tryAcquire('10.0.0.1')).toBe(true);
  });

  it('forgets an IP once it holds nothing, and ignores a release it never gave', () => {
    const sut = new InflightLimiter(5);
    for (let i = 0; i < 3; i++) sut.tryAcquire('::1');
    expect(sut).toMatchObject({ requests: 3, clientIps: 1 });
    for (let i = 0; i < 3; i++) sut.release('::1');
    expect(sut).toMatchObject({ requests: 0, clientIps: 0 });
    sut.release('::1');
    expect(sut).toMatchObject({ requests: 0, clientIps: 0 });
  });

  it('0 means unlimited but still counts', () => {
    const sut = new InflightLimiter(0);
    for (let i = 0; i < 1000; i++) expect(sut.tryAcquire('10.0.0.1')).toBe(true);
    expect(sut.requests).toBe(1000);
  });
});
