import type { DataSource } from 'typeorm';

/** One UTC day's counters to add to `daily_stats`. */
export interface DailyCounts {
  /** `YYYY-MM-DD` (UTC). */
  day: string;
  allowed: number;
  intercepted: number;
  /** May be negative: first binds revoked after they were counted. */
  firstBinds: number;
  /** Refused requests by error code. */
  refusals: Map<string, number>;
}

export class DailyStatsRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Adds the counters to their days' rows (created when missing), in one
   * statement: all of them or, on error, none. Days must be distinct.
   */
  async add(counts: readonly DailyCounts[]): Promise<void> {
    if (counts.length === 0) return;
    const refusals: { day: string; code: string; n: number }[] = [];
    for (const c of counts) for (const [code, n] of c.refusals) refusals.push({ day: c.day, code, n });
    // One statement (two inserts in a CTE): both tables change, or neither.
    await this.ds.query(
      `WITH stats AS (
         INSERT INTO daily_stats (day, allowed, intercepted, first_binds)
         SELECT * FROM unnest($1::date[], $2::bigint[], $3::bigint[], $4::bigint[])
         ON CONFLICT (day) DO UPDATE SET allowed = daily_stats.allowed + EXCLUDED.allowed,
           intercepted = daily_stats.intercepted + EXCLUDED.intercepted,
           first_binds = daily_stats.first_binds + EXCLUDED.first_binds
         RETURNING 1)
       INSERT INTO daily_refusals (day, code, count)
       SELECT * FROM unnest($5::date[], $6::text[], $7::bigint[])
       ON CONFLICT (day, code) DO UPDATE SET count = daily_refusals.count + EXCLUDED.count`,
      [
        counts.map((c) => c.day),
        counts.map((c) => c.allowed),
        counts.map((c) => c.intercepted),
        counts.map((c) => c.firstBinds),
        refusals.map((r) => r.day),
        refusals.map((r) => r.code),
        refusals.map((r) => r.n),
      ],
    );
  }
}
