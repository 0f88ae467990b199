/** UTC calendar days, as the daily counters (dashboard, usage, quotas) name them. */

export const DAY_MS = 86_400_000;

/** `YYYY-MM-DD` of the UTC day holding `ms`. */
export function utcDayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Start (ms) of the UTC day after the one holding `ms`. */
export function nextUtcDayStart(ms: number): number {
  return (Math.floor(ms / DAY_MS) + 1) * DAY_MS;
}

/**
 * The name of the UTC day holding a time, recomputed only when the day
 * changes (hot paths ask it per request: no allocation within a day).
 */
export class UtcDayClock {
  private day = '';
  private starts = 0;
  private ends = 0;

  dayOf(ms: number): string {
    if (ms >= this.ends || ms < this.starts) {
      this.day = utcDayOf(ms);
      this.ends = nextUtcDayStart(ms);
      this.starts = this.ends - DAY_MS;
    }
    return this.day;
  }
}
