import type { Logger } from 'pino';
import type { IntegrityService } from '../integrity/integrity.service';
import { droppablePartitions, retentionCut, upcomingMonths } from './partition-months';
import type { DroppedPartition, RetentionRepository } from './retention.repository';

export interface RetentionOptions {
  /** INTERCEPT_RETENTION_DAYS. */
  days: number;
  /** How often it runs (default: daily). */
  intervalMs?: number;
  /** The first run after start (default 60 s: shortly after, not during, the start). */
  firstRunMs?: number;
  /** Months kept ready beyond the current one (default 2). */
  monthsAhead?: number;
  /** How long dropping a month may wait for its lock (default 2 s; inserts queue behind a waiting DETACH). */
  lockTimeoutMs?: number;
}

export interface RetentionResult {
  /** Partitions created for upcoming months. */
  created: string[];
  /** Months dropped whole. */
  dropped: DroppedPartition[];
  /** Months past retention that still hold records past the checkpoint (sealed late, or not yet): next run. */
  waiting: string[];
  /** Rows deleted one by one (the DEFAULT partition's, a waiting month's sealed prefix). */
  rowsDeleted: number;
  /** The intercept chain's checkpoint after the run (null: none yet). */
  checkpointSeq: number | null;
  /** Months before this instant are past retention. */
  dropBefore: string;
}

/**
 * The intercept log's upkeep (docs/data.md), in the background role: keeps
 * the next months' partitions ready and drops whole months past
 * INTERCEPT_RETENTION_DAYS, behind a checkpoint of the hash chain (so what
 * remains still verifies). Runs shortly after start and then daily; one
 * instance at a time (an advisory lock; the others skip the round).
 */
export class RetentionService {
  private firstTimer: NodeJS.Timeout | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private readonly intervalMs: number;
  private readonly firstRunMs: number;
  private readonly monthsAhead: number;
  private readonly lockTimeoutMs: number;

  constructor(
    private readonly repo: RetentionRepository,
    private readonly integrity: IntegrityService,
    private readonly logger: Logger,
    private readonly opts: RetentionOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? 86_400_000;
    this.firstRunMs = opts.firstRunMs ?? 60_000;
    this.monthsAhead = opts.monthsAhead ?? 2;
    this.lockTimeoutMs = opts.lockTimeoutMs ?? 2000;
  }

  start(): void {
    this.firstTimer = setTimeout(() => this.tick(), this.firstRunMs);
    this.firstTimer.unref();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /**
   * Stops the schedule and waits up to `waitMs` for a run in progress. A run
   * cut short is safe: each step (a checkpoint, one month's drop, a chunk of
   * rows) is a transaction of its own, and the next run carries on.
   */
  async stop(waitMs = 5000): Promise<void> {
    if (this.firstTimer) clearTimeout(this.firstTimer);
    if (this.timer) clearInterval(this.timer);
    if (this.running === null) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }

  private tick(): void {
    if (this.running !== null) return;
    this.running = this.run()
      .catch((err: Error) =>
        this.logger.warn({ err: err.message }, 'intercept retention failed; next run retries'),
      )
      .finally(() => (this.running = null));
  }

  /**
   * One run: create upcoming months, checkpoint the chain up to the months
   * past retention, drop those months, delete what is left behind the
   * checkpoint by rows. Resolves null when another instance is running it.
   * Idempotent: a second run finds nothing to do.
   */
  async run(now: Date = new Date()): Promise<RetentionResult | null> {
    return this.repo.exclusively(async () => {
      const before = new Set(await this.repo.monthlyPartitions());
      const created: string[] = [];
      for (const month of upcomingMonths(now, this.monthsAhead)) {
        const name = await this.repo.ensurePartition(month);
        if (!before.has(name)) created.push(name);
      }

      const { dropBefore } = retentionCut(now, this.opts.days);
      const { through, checkpoint } = await this.integrity.checkpointBefore(
        'intercepts',
        dropBefore,
        `retention: intercepts before ${dropBefore.toISOString()} (INTERCEPT_RETENTION_DAYS=${this.opts.days})`,
      );
      const dropped: DroppedPartition[] = [];
      const waiting: string[] = [];
      for (const name of droppablePartitions(await this.repo.monthlyPartitions(), dropBefore)) {
        const d = await this.repo.dropPartition(name, through, this.lockTimeoutMs);
        if (d === null) waiting.push(name);
        else dropped.push(d);
      }
      const rowsDeleted = await this.integrity.removeThroughCheckpoint('intercepts');
      const result: RetentionResult = {
        created,
        dropped,
        waiting,
        rowsDeleted,
        checkpointSeq: checkpoint?.seq ?? null,
        dropBefore: dropBefore.toISOString(),
      };
      if (created.length + dropped.length + waiting.length + rowsDeleted > 0) {
        this.logger.info(
          {
            created,
            dropped: dropped.map((d) => `${d.name} (${d.rows} rows)`),
            waiting,
            rowsDeleted,
            checkpointSeq: result.checkpointSeq,
          },
          'intercept partitions maintained',
        );
      }
      return result;
    });
  }
}
