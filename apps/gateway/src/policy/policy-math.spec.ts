import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  type Bucket,
  formatResetDuration,
  msUntilFull,
  nextUtcDay,
  nextUtcMonth,
  retryAfterSeconds,
  takeToken,
  tokensAt,
  utcDay,
  utcMonth,
} from './policy-math';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

describe('token bucket', () => {
  it('starts full and admits a burst of `burst`, then refuses', () => {
    const b: Bucket = { tokens: 3, at: T0 };
    expect([takeToken(b, T0, 1, 3), takeToken(b, T0, 1, 3), takeToken(b, T0, 1, 3)]).toEqual([0, 0, 0]);
    expect(takeToken(b, T0, 1, 3)).toBe(1000);
  });

  it('refills at `rate` per second, never above `burst`', () => {
    const b: Bucket = { tokens: 0, at: T0 };
    expect(tokensAt(b, T0 + 500, 2, 5)).toBeCloseTo(1);
    expect(tokensAt(b, T0 + 60_000, 2, 5)).toBe(5);
  });

  it('says how long until the next token', () => {
    const b: Bucket = { tokens: 0.25, at: T0 };
    // 0.75 of a token at 0.5/s = 1.5 s
    expect(takeToken(b, T0, 0.5, 1)).toBe(1500);
    expect(b).toEqual({ tokens: 0.25, at: T0 }); // a refusal changes nothing
    expect(takeToken(b, T0 + 1500, 0.5, 1)).toBe(0);
  });

  it('a clock going backwards refills nothing and never moves `at` back', () => {
    const b: Bucket = { tokens: 1, at: T0 };
    expect(takeToken(b, T0 - 10_000, 1, 5)).toBe(0);
    expect(b.at).toBe(T0);
    expect(b.tokens).toBe(0);
    expect(takeToken(b, T0 - 5_000, 1, 5)).toBeGreaterThan(0);
    // Once time passes T0 again, refill resumes from T0.
    expect(tokensAt(b, T0 + 2000, 1, 5)).toBeCloseTo(2);
  });

  it('admits exactly burst + rate × t over any run of requests (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 50, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 300 }),
        (rate, burst, gaps) => {
          const b: Bucket = { tokens: burst, at: T0 };
          let now = T0;
          let admitted = 0;
          for (const g of gaps) {
            now += g;
            if (takeToken(b, now, rate, burst) === 0) admitted++;
          }
          const bound = burst + ((now - T0) * rate) / 1000;
          return admitted <= Math.floor(bound + 1e-9) && b.tokens >= -1e-9 && b.tokens <= burst;
        },
      ),
    );
  });

  it('time to full', () => {
    expect(msUntilFull(5, 1, 5)).toBe(0);
    expect(msUntilFull(3, 2, 5)).toBe(1000);
  });
});

describe('UTC day and month boundaries', () => {
  it('names the day and month in UTC, whatever the local zone', () => {
    const lateEvening = Date.UTC(2026, 11, 31, 23, 59, 59, 999);
    expect(utcDay(lateEvening)).toBe('2026-12-31');
    expect(utcMonth(lateEvening)).toBe('2026-12');
    expect(utcDay(lateEvening + 1)).toBe('2027-01-01');
    expect(utcMonth(lateEvening + 1)).toBe('2027-01');
  });

  it('finds the next day and month start', () => {
    expect(nextUtcDay(Date.UTC(2026, 11, 3, 12))).toBe(Date.UTC(2026, 11, 4));
    expect(nextUtcDay(Date.UTC(2026, 11, 4))).toBe(Date.UTC(2026, 11, 5));
    expect(nextUtcMonth(Date.UTC(2026, 11, 31, 23, 59))).toBe(Date.UTC(2027, 0, 1));
    expect(nextUtcMonth(Date.UTC(2028, 1, 29, 5))).toBe(Date.UTC(2028, 2, 1)); // leap February
    expect(nextUtcMonth(Date.UTC(2027, 1, 1))).toBe(Date.UTC(2027, 2, 1));
  });

  it('the next boundary is always after now and its day/month differs (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }), (now) => {
        const d = nextUtcDay(now);
        const m = nextUtcMonth(now);
        return (
          d > now &&
          d - now <= 86_400_000 &&
          utcDay(d) !== utcDay(now) &&
          utcDay(d - 1) === utcDay(now) &&
          m > now &&
          utcMonth(m) !== utcMonth(now) &&
          utcMonth(m - 1) === utcMonth(now)
        );
      }),
    );
  });
});

describe('header values', () => {
  it('writes durations as OpenAI does', () => {
    expect(formatResetDuration(0)).toBe('0s');
    expect(formatResetDuration(250)).toBe('250ms');
    expect(formatResetDuration(1000)).toBe('1s');
    expect(formatResetDuration(1500)).toBe('1.5s');
    expect(formatResetDuration(360_000)).toBe('6m0s');
    expect(formatResetDuration(3 * 3600_000 + 2 * 60_000 + 1000)).toBe('3h2m1s');
  });

  it('Retry-After is whole seconds, at least 1', () => {
    expect(retryAfterSeconds(1)).toBe(1);
    expect(retryAfterSeconds(1000)).toBe(1);
    expect(retryAfterSeconds(1001)).toBe(2);
  });
});
