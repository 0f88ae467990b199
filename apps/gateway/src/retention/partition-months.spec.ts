import { describe, expect, it } from 'vitest';
import {
  addMonths,
  droppablePartitions,
  monthDate,
  monthOfPartition,
  monthStart,
  partitionName,
  retentionCut,
  upcomingMonths,
} from './partition-months';

const d = (s: string) => new Date(s);

describe('partition months', () => {
  it.each([
    ['2026-12-03T18:31:36.123Z', '2026-12-01T00:00:00.000Z'],
    ['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
    ['2025-12-31T23:59:59.999Z', '2025-12-01T00:00:00.000Z'],
    ['2024-02-29T12:00:00+14:00', '2024-02-01T00:00:00.000Z'],
  ])('monthStart(%s) is %s (UTC)', (t, want) => {
    expect(monthStart(d(t)).toISOString()).toBe(want);
  });

  it('adds months across years, both ways', () => {
    expect(addMonths(d('2026-11-15T00:00:00Z'), 2).toISOString()).toBe('2027-01-01T00:00:00.000Z');
    expect(addMonths(d('2026-01-31T23:00:00Z'), 1).toISOString()).toBe('2026-02-01T00:00:00.000Z');
    expect(addMonths(d('2026-01-10T00:00:00Z'), -13).toISOString()).toBe('2024-12-01T00:00:00.000Z');
  });

  it('names partitions by UTC month and reads the names back', () => {
    const sut = partitionName(d('2026-12-31T23:59:59.999Z'));
    expect(sut).toBe('intercept_logs_p2026_12');
    expect(monthOfPartition(sut)?.toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(partitionName(d('0999-03-04T00:00:00Z'))).toBe('intercept_logs_p0999_03');
    expect(monthDate(d('2026-07-19T10:00:00Z'))).toBe('2026-07-01');
  });

  it.each([
    'intercept_logs_default',
    'intercept_logs_p2026_13',
    'intercept_logs_p2026_00',
    'intercept_logs_p2026_1',
    'x_p2026_01',
    'intercept_logs_p2026_01x',
  ])('ignores %s', (name) => {
    expect(monthOfPartition(name)).toBeNull();
  });

  it('keeps the current month and the next ones ready', () => {
    expect(upcomingMonths(d('2026-12-03T18:00:00Z'), 2).map(partitionName)).toEqual([
      'intercept_logs_p2026_12',
      'intercept_logs_p2027_01',
      'intercept_logs_p2027_02',
    ]);
  });

  it('cuts at the start of the month the cutoff falls in', () => {
    const sut = retentionCut(d('2026-12-03T18:00:00Z'), 365);
    expect(sut.cutoff.toISOString()).toBe('2025-12-03T18:00:00.000Z');
    expect(sut.dropBefore.toISOString()).toBe('2025-12-01T00:00:00.000Z');
    expect(retentionCut(d('2026-03-01T00:00:00Z'), 1).dropBefore.toISOString()).toBe(
      '2026-02-01T00:00:00.000Z',
    );
  });

  it('drops exactly the months that end at or before the cut, oldest first', () => {
    const names = [
      'intercept_logs_p2025_12',
      'intercept_logs_default',
      'intercept_logs_p2025_10',
      'intercept_logs_p2025_11',
      'intercept_logs_p2026_01',
    ];
    expect(droppablePartitions(names, d('2025-12-01T00:00:00Z'))).toEqual([
      'intercept_logs_p2025_10',
      'intercept_logs_p2025_11',
    ]);
    expect(droppablePartitions(names, d('2025-10-01T00:00:00Z'))).toEqual([]);
  });
});
