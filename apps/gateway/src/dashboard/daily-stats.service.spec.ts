import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DailyCounts, DailyStatsRepository } from './daily-stats.repository';
import { DailyStats } from './daily-stats.service';

class FakeRepo {
  written: DailyCounts[][] = [];
  fail = false;
  async add(counts: DailyCounts[]) {
    await Promise.resolve();
    if (this.fail) throw new Error('down');
    this.written.push(counts.map((c) => ({ ...c })));
  }
}

const DAY = Date.UTC(2025, 0, 1, 23, 59, 59);

describe('DailyStats', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(DAY);
  });
  afterEach(() => vi.useRealTimers());

  it('counts decisions per UTC day; a first bind is allowed too, a revoked one stays allowed', async () => {
    const repo = new FakeRepo();
    const sut = new DailyStats(repo as unknown as DailyStatsRepository, pino({ level: 'silent' }));
    sut.count('allowed');
    sut.count('first_bind');
    sut.count('intercepted');
    sut.count('banned');
    sut.count('unauthenticated'); // not a dashboard figure
    sut.refused('rate_limited');
    sut.refused('rate_limited');
    sut.refused('ip_not_allowed');
    vi.setSystemTime(DAY + 1000); // the next day
    sut.count('allowed');
    sut.refused('quota_exceeded');
    sut.firstBindRevoked(DAY);
    await sut.flush();
    expect(repo.written).toEqual([
      [
        {
          day: '2025-01-01',
          allowed: 2,
          intercepted: 2,
          firstBinds: 0,
          refusals: new Map([
            ['rate_limited', 2],
            ['ip_not_allowed', 1],
          ]),
        },
        {
          day: '2025-01-02',
          allowed: 1,
          intercepted: 0,
          firstBinds: 0,
          refusals: new Map([['quota_exceeded', 1]]),
        },
      ],
    ]);
  });

  it('merges a failed write into the next one, exactly', async () => {
    const repo = new FakeRepo();
    vi.setSystemTime(DAY - 3_600_000);
    const sut = new DailyStats(repo as unknown as DailyStatsRepository, pino({ level: 'silent' }));
    sut.start();
    sut.count('allowed');
    sut.count('intercepted');
    sut.refused('model_not_allowed');
    repo.fail = true;
    await vi.advanceTimersByTimeAsync(2000);
    expect(repo.written).toEqual([]);
    expect(sut.pendingCount).toBe(1);
    sut.count('allowed');
    sut.refused('model_not_allowed');
    repo.fail = false;
    await sut.stop();
    expect(repo.written).toEqual([
      [
        {
          day: '2025-01-01',
          allowed: 2,
          intercepted: 1,
          firstBinds: 0,
          refusals: new Map([['model_not_allowed', 2]]),
        },
      ],
    ]);
  });
});
