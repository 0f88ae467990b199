import { describe, expect, it } from 'vitest';
import { buildSeries, utcDay } from './dashboard.service';

describe('utcDay', () => {
  it.each<[string, number, string]>([
    ['2025-03-01T00:00:00Z', 0, '2025-03-01'],
    ['2025-03-01T23:59:59.999Z', 0, '2025-03-01'],
    ['2025-03-01T10:00:00Z', -1, '2025-02-28'],
    ['2024-03-01T10:00:00Z', -1, '2024-02-29'],
    ['2025-01-03T10:00:00Z', -6, '2024-12-28'],
  ])('%s %i days → %s', (now, offset, expected) => {
    expect(utcDay(new Date(now), offset)).toBe(expected);
  });
});

describe('buildSeries', () => {
  const now = new Date('2025-01-03T22:00:00Z');

  it('has seven days ending today, oldest first, zero-filled', () => {
    const sut = buildSeries(now, [
      { day: '2024-12-30', allowed: 5, intercepted: 2, first_binds: 1 },
      { day: '2025-01-03', allowed: 9, intercepted: 4, first_binds: 3 },
      { day: '2024-12-01', allowed: 1, intercepted: 1, first_binds: 1 },
    ]);
    expect(sut).toEqual([
      { date: '2024-12-28', allowed: 0, intercepted: 0 },
      { date: '2024-12-29', allowed: 0, intercepted: 0 },
      { date: '2024-12-30', allowed: 5, intercepted: 2 },
      { date: '2024-12-31', allowed: 0, intercepted: 0 },
      { date: '2025-01-01', allowed: 0, intercepted: 0 },
      { date: '2025-01-02', allowed: 0, intercepted: 0 },
      { date: '2025-01-03', allowed: 9, intercepted: 4 },
    ]);
  });

  it('is all zeros without rows', () => {
    const sut = buildSeries(now, []);
    expect(sut).toHaveLength(7);
    expect(sut.every((d) => d.allowed === 0 && d.intercepted === 0)).toBe(true);
  });
});
