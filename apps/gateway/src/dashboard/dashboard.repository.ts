/**
 * SQL: hand-written and parameterised, run through TypeORM's DataSource.
 * Each figure is one small aggregate statement (`to_char` on the day,
 * `count(*) … GROUP BY` on the status index, an ordered `LIMIT` on the
 * per-binding counters) that a query builder would only spell less plainly;
 * the rows map straight to the API's numbers (bigint arrives as text).
 * Values travel as `$n` parameters.
 */
import type { DataSource } from 'typeorm';

export interface DayCounts {
  day: string;
  allowed: number;
  intercepted: number;
  first_binds: number;
}

export interface TopIntercepted {
  binding_id: number;
  token_display: string;
  count: number;
}

/**
 * The dashboard's figures, each from a small table or an index: the per-day
 * counters (`daily_stats`, one row per UTC day), binding counts by status
 * (`binding_status_counts`, kept by triggers) and the per-binding intercept
 * counters kept on `bindings` (read through their partial index).
 */
export class DashboardRepository {
  constructor(private readonly ds: DataSource) {}

  /** Counter rows for the UTC days `from`..`to` (YYYY-MM-DD, inclusive); days without traffic have none. */
  async days(from: string, to: string): Promise<DayCounts[]> {
    const rows: { day: string; allowed: string; intercepted: string; first_binds: string }[] =
      await this.ds.query(
        `SELECT to_char(day, 'YYYY-MM-DD') AS day, allowed, intercepted, first_binds
           FROM daily_stats WHERE day BETWEEN $1::date AND $2::date ORDER BY day`,
        [from, to],
      );
    return rows.map((r) => ({
      day: r.day,
      allowed: Number(r.allowed),
      intercepted: Number(r.intercepted),
      first_binds: Number(r.first_binds),
    }));
  }

  /** From `binding_status_counts`, kept by triggers on `bindings` (counting a million bindings takes too long). */
  async bindingsByStatus(): Promise<{ active: number; banned: number }> {
    const rows: { status: string; n: string }[] = await this.ds.query(
      `SELECT status::text AS status, n FROM binding_status_counts`,
    );
    const out = { active: 0, banned: 0 };
    for (const r of rows) if (r.status === 'active' || r.status === 'banned') out[r.status] = Number(r.n);
    return out;
  }

  /**
   * The most intercepted bindings by their running `intercept_count` (refused
   * requests, kept by the intercept writer), read in order from the partial
   * index `bindings_intercept_count_idx`, never a scan of the intercept log.
   */
  async topIntercepted(limit: number): Promise<TopIntercepted[]> {
    const rows: { binding_id: string; token_display: string; count: string }[] = await this.ds.query(
      `SELECT id AS binding_id, token_display, intercept_count AS count
         FROM bindings WHERE intercept_count > 0
        ORDER BY intercept_count DESC, id LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      binding_id: Number(r.binding_id),
      token_display: r.token_display,
      count: Number(r.count),
    }));
  }

  /** One UTC day's refused requests by error code, most first (from the small `daily_refusals` table). */
  async refusals(day: string): Promise<{ code: string; count: number }[]> {
    const rows: { code: string; count: string }[] = await this.ds.query(
      `SELECT code, count FROM daily_refusals WHERE day = $1::date AND count > 0 ORDER BY count DESC, code`,
      [day],
    );
    return rows.map((r) => ({ code: r.code, count: Number(r.count) }));
  }
}
