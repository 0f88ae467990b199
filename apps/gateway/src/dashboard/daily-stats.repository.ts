import type { DataSource } from 'typeorm';

/** One UTC day's counters to add to `daily_stats`. */
export interface DailyCounts {
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  allowed: number;
  intercepted: number;
  /** May be negative: first binds revoked after they were counted. */
  firstBinds: number;
}

export class DailyStatsRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Adds the counters to their days' rows (created when missing), in one
   * statement: all of them or, on error, none. Days must be distinct.
   */
  async add(counts: readonly DailyCounts[]): Promise<void> {
    if (counts.length === 0) return;
    await this.ds.query(
      `INSERT INTO daily_stats (day, allowed, intercepted, first_binds)
       SELECT * FROM unnest($1::date[], $2::bigint[], $3::bigint[], $4::bigint[])
       ON CONFLICT (day) DO UPDATE SET allowed = daily_stats.allowed + EXCLUDED.allowed,
         intercepted = daily_stats.intercepted + EXCLUDED.intercepted,
         first_binds = daily_stats.first_binds + EXCLUDED.first_binds`,
      [
        counts.map((c) => c.day),
        counts.map((c) => c.allowed),
        counts.map((c) => c.intercepted),
        counts.map((c) => c.firstBinds),
      ],
    );
  }
}
