import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import { InterceptBuffer } from './intercept-buffer';
import type { InterceptSpool } from './intercept-spool';
import type { InterceptWriter } from './intercept-writer.service';
import type { InterceptRepository } from './intercept.repository';
import { type InterceptEvent, type InterceptSink, toWire } from './intercept.types';

/** Records buffered before a flush is forced (the second still running included). */
const MAX_BATCH = 1000;

export interface RecorderOptions {
  flushMs: number;
  /** A queued batch not seen in PostgreSQL after this long is checked. */
  confirmAfterMs: number;
  /** …and written directly when its job is gone after this long. */
  rescueAfterMs: number;
}

interface Sent {
  events: InterceptEvent[];
  sentAt: number;
}

/**
 * The hot-path side of intercept recording. `record` is a map update: the
 * refused requests of one key from one IP for one reason within one UTC
 * second are merged into one record with a `count` ({@link InterceptBuffer}).
 * Every `flushMs` the records of the seconds that are over become one
 * BullMQ job (a worker writes it to PostgreSQL); those of the running
 * second stay, so a hammered key costs one record per second. Nothing is
 * lost on the way:
 * - Redis unreachable → the batch is written to PostgreSQL directly;
 * - PostgreSQL unreachable too → it is spooled to local disk and replayed;
 * - a queued batch is remembered until its rows are seen in PostgreSQL; if
 *   its job vanished (Redis restarted without persistence, the job failed
 *   for good) it is written directly;
 * - on shutdown the buffer is flushed and unconfirmed batches are written
 *   directly (or spooled).
 */
export class InterceptRecorder implements InterceptSink {
  private readonly buffer = new InterceptBuffer();
  private readonly sent = new Map<string, Sent>();
  private flushTimer: NodeJS.Timeout | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private checking = false;
  private replaying = false;
  private stopped = false;

  constructor(
    private readonly queue: Queue | null,
    private readonly writer: InterceptWriter,
    private readonly repo: InterceptRepository,
    private readonly spool: InterceptSpool,
    private readonly metrics: MetricsService,
    private readonly logger: Logger,
    private readonly options: RecorderOptions = { flushMs: 100, confirmAfterMs: 3000, rescueAfterMs: 15_000 },
  ) {}

  start(): void {
    this.flushTimer = setInterval(() => void this.flushEndedSeconds(), this.options.flushMs);
    this.flushTimer.unref();
    this.checkTimer = setInterval(() => void this.maintain(), 1000);
    this.checkTimer.unref();
  }

  record(event: InterceptEvent): void {
    if (this.buffer.add(event) >= MAX_BATCH) void this.flush();
  }

  /** Records not yet confirmed in PostgreSQL (buffered or queued). */
  get pending(): number {
    let n = this.buffer.size;
    for (const s of this.sent.values()) n += s.events.length;
    return n;
  }

  /** Hands every buffered record on; never throws. Resolves when the batch is queued, written or spooled. */
  flush(): Promise<void> {
    return this.handOn(this.buffer.take());
  }

  /** The periodic flush: records of seconds that are over (the running second's may still grow). */
  private flushEndedSeconds(): Promise<void> {
    return this.handOn(this.buffer.take(Math.floor(Date.now() / 1000)));
  }

  private handOn(batch: InterceptEvent[]): Promise<void> {
    if (batch.length === 0) return Promise.resolve();
    this.metrics.queueDepth.labels('intercepts').set(this.pending + batch.length);
    return this.enqueue(batch);
  }

  private async enqueue(batch: InterceptEvent[]): Promise<void> {
    if (this.queue !== null && !this.stopped) {
      const id = randomUUID();
      try {
        // Tracked before the add settles, so a fast worker's rows count as confirmation.
        this.sent.set(id, { events: batch, sentAt: Date.now() });
        await this.queue.add('batch', { events: batch.map(toWire) }, { jobId: id });
        return;
      } catch {
        this.sent.delete(id);
      }
    }
    await this.writeDirect(batch);
  }

  private async writeDirect(batch: InterceptEvent[]): Promise<void> {
    try {
      await this.writer.write(batch);
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message, count: batch.length },
        'intercept write failed; spooling',
      );
      try {
        await this.spool.write(batch);
      } catch (spoolErr) {
        // Keep them in memory and try again on the next round.
        this.logger.error(
          { err: (spoolErr as Error).message },
          'intercept spool failed; keeping batch in memory',
        );
        this.buffer.putBack(batch);
      }
    }
  }

  /** Confirms queued batches, rescues lost ones, replays the spool. */
  private async maintain(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      await this.confirm(Date.now() - this.options.confirmAfterMs);
      await this.replaySpool();
    } finally {
      this.checking = false;
      this.metrics.queueDepth.labels('intercepts').set(this.pending);
    }
  }

  private async confirm(olderThan: number): Promise<void> {
    const due = [...this.sent.entries()].filter(([, s]) => s.sentAt <= olderThan);
    if (due.length === 0) return;
    // A batch is written by one INSERT, so one of its ids stands for all of it.
    const probes = due.map(([, s]) => s.events[0]!.id);
    let present: Set<string>;
    try {
      present = await this.repo.existingIds(probes);
    } catch {
      return; // PostgreSQL away: ask again later
    }
    const now = Date.now();
    for (const [jobId, s] of due) {
      if (present.has(s.events[0]!.id)) {
        this.sent.delete(jobId);
        continue;
      }
      if (this.stopped || now - s.sentAt >= this.options.rescueAfterMs) {
        if (!this.stopped && (await this.jobStillQueued(jobId))) continue;
        this.sent.delete(jobId);
        this.logger.warn(
          { count: s.events.length },
          'queued intercepts not written by a worker; writing directly',
        );
        await this.writeDirect(s.events);
      }
    }
  }

  private async jobStillQueued(jobId: string): Promise<boolean> {
    if (this.queue === null) return false;
    try {
      const state = await this.queue.getJobState(jobId);
      return state === 'waiting' || state === 'active' || state === 'delayed' || state === 'prioritized';
    } catch {
      return false;
    }
  }

  private async replaySpool(): Promise<void> {
    if (this.replaying) return;
    this.replaying = true;
    try {
      await this.spool.replay((events) => this.writer.write(events));
    } catch {
      // PostgreSQL still away: the files stay for the next round.
    } finally {
      this.replaying = false;
    }
  }

  /**
   * Shutdown: flush, give the worker `waitMs` to confirm what is queued,
   * then write the rest directly (or spool it).
   */
  async stop(waitMs = 5000): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    await this.flush();
    const deadline = Date.now() + waitMs;
    while (this.sent.size > 0 && Date.now() < deadline) {
      await this.confirm(Date.now());
      if (this.sent.size > 0) await new Promise((r) => setTimeout(r, 100));
    }
    this.stopped = true;
    await this.confirm(Date.now());
    for (const [jobId, s] of this.sent) {
      this.sent.delete(jobId);
      await this.writeDirect(s.events);
    }
    const rest = this.buffer.take();
    if (rest.length > 0) {
      await this.spool
        .write(rest)
        .catch((err: Error) =>
          this.logger.error(
            { err: err.message, count: rest.length },
            'intercepts could not be saved at shutdown',
          ),
        );
    }
  }
}
