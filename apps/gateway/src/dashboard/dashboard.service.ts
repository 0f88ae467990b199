import type { Dashboard, DashboardDay } from '@keypin/shared';
import type { InterceptLogRepository } from '../intercept/intercept-log.repository';
import type { DashboardRepository, DayCounts } from './dashboard.repository';
import { DAY_MS, utcDayOf } from '../infra/utc-day';

/** Days in the series (today and the six before). */
export const SERIES_DAYS = 7;
export const TOP_INTERCEPTED = 5;
export const RECENT_INTERCEPTS = 10;

/** `YYYY-MM-DD` of the UTC day `offset` days from the one holding `now`. */
export function utcDay(now: Date, offset = 0): string {
  return utcDayOf(now.getTime() + offset * DAY_MS);
}

/** The last SERIES_DAYS UTC days ending with today's, oldest first, zero where no row exists. */
export function buildSeries(now: Date, rows: readonly DayCounts[]): DashboardDay[] {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const out: DashboardDay[] = [];
  for (let i = SERIES_DAYS - 1; i >= 0; i--) {
    const date = utcDay(now, -i);
    const r = byDay.get(date);
    out.push({ date, allowed: r?.allowed ?? 0, intercepted: r?.intercepted ?? 0 });
  }
  return out;
}

/**
 * The dashboard in five cheap queries run side by side: counters from
 * `daily_stats` (written by every gateway every few seconds, so today's
 * figures lag live traffic by about that much), binding counts, the top
 * intercepted bindings and the latest intercepts from the log's time index.
 */
export class DashboardService {
  constructor(
    private readonly repo: DashboardRepository,
    private readonly logs: InterceptLogRepository,
  ) {}

  async get(now = new Date()): Promise<Dashboard> {
    const today = utcDay(now);
    const [days, bindings, top, recent, refusals] = await Promise.all([
      this.repo.days(utcDay(now, -(SERIES_DAYS - 1)), today),
      this.repo.bindingsByStatus(),
      this.repo.topIntercepted(TOP_INTERCEPTED),
      this.logs.recent(RECENT_INTERCEPTS),
      this.repo.refusals(today),
    ]);
    const t = days.find((d) => d.day === today);
    return {
      today: { allowed: t?.allowed ?? 0, intercepted: t?.intercepted ?? 0, first_binds: t?.first_binds ?? 0 },
      bindings,
      series: buildSeries(now, days),
      top_intercepted: top,
      recent_intercepts: recent,
      refusals,
    };
  }
}
