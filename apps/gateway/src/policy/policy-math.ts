/**
 * The arithmetic of key policies (docs/contract.md 9), pure and shared by
 * the in-process fallback and the tests; the Redis script (policy-limiter.ts)
 * does the same sums in Lua.
 */

import { nextUtcDayStart, utcDayOf } from '../infra/utc-day';

/**
 * A token bucket: `tokens` held at time `at` (ms). It refills at `rate`
 * tokens per second up to `burst`. A clock that goes backwards refills
 * nothing (and never takes tokens away): `at` only moves forward.
 */
export interface Bucket {
  tokens: number;
  at: number;
}

/** The bucket's tokens at `now`. */
export function tokensAt(b: Bucket, now: number, rate: number, burst: number): number {
  const elapsed = now > b.at ? now - b.at : 0;
  const t = b.tokens + (elapsed * rate) / 1000;
  return t > burst ? burst : t;
}

/**
 * Takes one token if there is one. Returns 0 when taken (the bucket is
 * updated), else the milliseconds until one will be there (unchanged).
 */
export function takeToken(b: Bucket, now: number, rate: number, burst: number): number {
  const t = tokensAt(b, now, rate, burst);
  if (t >= 1) {
    b.tokens = t - 1;
    if (now > b.at) b.at = now;
    return 0;
  }
  return Math.max(1, Math.ceil(((1 - t) * 1000) / rate));
}

/** Milliseconds until a bucket holding `tokens` is full again. */
export function msUntilFull(tokens: number, rate: number, burst: number): number {
  return tokens >= burst ? 0 : Math.ceil(((burst - tokens) * 1000) / rate);
}

/** `YYYY-MM-DD` of the UTC day holding `now` (ms). */
export const utcDay = utcDayOf;

/** `YYYY-MM` of the UTC month holding `now` (ms). */
export function utcMonth(now: number): string {
  return new Date(now).toISOString().slice(0, 7);
}

/** Start (ms) of the UTC day after the one holding `now`. */
export const nextUtcDay = nextUtcDayStart;

/** Start (ms) of the UTC month after the one holding `now`. */
export function nextUtcMonth(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** Whole seconds for `Retry-After`: at least 1. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * A duration as OpenAI writes `x-ratelimit-reset-requests` (Go's
 * `time.Duration` text): `0s`, `250ms`, `1s`, `1.5s`, `6m0s`, `3h2m1s`.
 */
export function formatResetDuration(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms < 1000) return `${Math.ceil(ms)}ms`;
  const totalSeconds = Math.ceil(ms / 100) / 10; // tenths of a second
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds - h * 3600) / 60);
  const s = Math.round((totalSeconds - h * 3600 - m * 60) * 10) / 10;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
