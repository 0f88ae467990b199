import type { Logger } from 'pino';
import { BatchedRecorder } from '../infra/batching/batched-recorder';
import { Batcher } from '../infra/batching/batcher';
import { UtcDayClock, utcDayOf } from '../infra/utc-day';
import type { Decision } from '../infra/metrics/metrics.service';
import type { DailyCounts, DailyStatsRepository } from './daily-stats.repository';

function mergeCounts(into: DailyCounts, from: DailyCounts): void {
  into.allowed += from.allowed;
  into.intercepted += from.intercepted;
  into.firstBinds += from.firstBinds;
  for (const [code, n] of from.refusals) into.refusals.set(code, (into.refusals.get(code) ?? 0) + n);
}

/**
 * Per-day (UTC) counters for the dashboard, summed in memory and added to
 * `daily_stats` every few seconds, so the dashboard never scans the big
 * tables. Allowed counts every forwarded keyed request (first binds too);
 * intercepted counts refusals and monitor-mode would-be refusals. A failed
 * write is merged into the next one.
 */
export class DailyStats extends BatchedRecorder<string, DailyCounts> {
  private readonly days = new UtcDayClock();

  constructor(repo: DailyStatsRepository, logger: Logger, intervalMs = 2000) {
    super(
      new Batcher<string, DailyCounts>({
        keyOf: (c) => c.day,
        merge: mergeCounts,
        write: (counts) => repo.add(counts),
        intervalMs,
        onFailure: 'merge',
        onError: (err) =>
          logger.debug({ err: (err as Error).message }, 'daily stats write failed; will retry'),
      }),
    );
  }

  /** Hot path: one map update. */
  count(decision: Decision): void {
    let field: 'allowed' | 'intercepted' | 'firstBinds';
    if (decision === 'allowed') field = 'allowed';
    else if (decision === 'first_bind') field = 'firstBinds';
    else if (decision === 'intercepted' || decision === 'banned') field = 'intercepted';
    else return;
    const c = this.countsOf(this.today());
    c[field]++;
    if (field === 'firstBinds') c.allowed++;
  }

  /** A request refused with `code` (hot path: one map update). */
  refused(code: string): void {
    const r = this.countsOf(this.today()).refusals;
    r.set(code, (r.get(code) ?? 0) + 1);
  }

  private today(): string {
    return this.days.dayOf(Date.now());
  }

  /**
   * A first bind made at `boundAt` (ms) was undone because the relay refused
   * the key: it stops counting as a first bind of its day. The request was
   * forwarded all the same, so it stays counted as allowed.
   */
  firstBindRevoked(boundAt: number): void {
    this.countsOf(utcDayOf(boundAt)).firstBinds--;
  }

  private countsOf(day: string): DailyCounts {
    let c = this.batch.get(day);
    if (c === undefined) {
      c = { day, allowed: 0, intercepted: 0, firstBinds: 0, refusals: new Map() };
      this.batch.set(day, c);
    }
    return c;
  }
}
