import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import type { Decision } from '../infra/metrics/metrics.service';

interface Counts {
  allowed: number;
  intercepted: number;
  firstBinds: number;
}

/**
 * Per-day (UTC) counters for the dashboard, summed in memory and added to
 * `daily_stats` every few seconds, so the dashboard never scans the big
 * tables. Allowed counts every forwarded keyed request (first binds too);
 * intercepted counts refusals and monitor-mode would-be refusals.
 */
export class DailyStats {
  private pending = new Map<string, Counts>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private day = '';
  private dayEnds = 0;

  constructor(
    private readonly ds: DataSource,
    private readonly logger: Logger,
    private readonly intervalMs = 2000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  count(decision: Decision): void {
    let field: keyof Counts;
    if (decision === 'allowed') field = 'allowed';
    else if (decision === 'first_bind') field = 'firstBinds';
    else if (decision === 'intercepted' || decision === 'banned') field = 'intercepted';
    else return;
    const now = Date.now();
    if (now >= this.dayEnds) {
      this.day = new Date(now).toISOString().slice(0, 10);
      this.dayEnds = (Math.floor(now / 86_400_000) + 1) * 86_400_000;
    }
    const c = this.countsOf(this.day);
    c[field]++;
    if (field === 'firstBinds') c.allowed++;
  }

  /**
   * A first bind made at `boundAt` (ms) was undone because the relay refused
   * the key: it stops counting as a first bind of its day. The request was
   * forwarded all the same, so it stays counted as allowed.
   */
  firstBindRevoked(boundAt: number): void {
    this.countsOf(new Date(boundAt).toISOString().slice(0, 10)).firstBinds--;
  }

  private countsOf(day: string): Counts {
    let c = this.pending.get(day);
    if (c === undefined) {
      c = { allowed: 0, intercepted: 0, firstBinds: 0 };
      this.pending.set(day, c);
    }
    return c;
  }

  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = (async () => {
      try {
        for (const [day, c] of batch) {
          await this.ds.query(
            `INSERT INTO daily_stats (day, allowed, intercepted, first_binds) VALUES ($1, $2, $3, $4)
             ON CONFLICT (day) DO UPDATE SET allowed = daily_stats.allowed + EXCLUDED.allowed,
               intercepted = daily_stats.intercepted + EXCLUDED.intercepted,
               first_binds = daily_stats.first_binds + EXCLUDED.first_binds`,
            [day, c.allowed, c.intercepted, c.firstBinds],
          );
          batch.delete(day);
        }
      } catch (err) {
        this.logger.debug({ err: (err as Error).message }, 'daily stats write failed; will retry');
        for (const [day, c] of batch) {
          const cur = this.pending.get(day);
          if (cur === undefined) this.pending.set(day, c);
          else {
            cur.allowed += c.allowed;
            cur.intercepted += c.intercepted;
            cur.firstBinds += c.firstBinds;
          }
        }
      }
    })().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}
