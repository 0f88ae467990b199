import { describe, expect, it } from 'vitest';
import { nextUtcDayStart, UtcDayClock, utcDayOf } from './utc-day';

describe('UtcDayClock', () => {
  it('names the UTC day, across midnight in both directions', () => {
    const midnight = Date.UTC(2026, 11, 4);
    const c = new UtcDayClock();
    expect(c.dayOf(midnight - 1)).toBe('2026-12-03');
    expect(c.dayOf(midnight)).toBe('2026-12-04');
    expect(c.dayOf(midnight - 1)).toBe('2026-12-03'); // a clock that went back
    expect(c.dayOf(midnight + 86_400_000)).toBe('2026-12-05');
    expect(utcDayOf(midnight)).toBe('2026-12-04');
    expect(nextUtcDayStart(midnight - 1)).toBe(midnight);
    expect(nextUtcDayStart(midnight)).toBe(midnight + 86_400_000);
  });
});
