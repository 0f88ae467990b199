import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import type { BatcherCounters } from '../infra/batching/batcher';
import { InterceptBuffer } from './intercept-buffer';
import type { InterceptSpool } from './intercept-spool';
import type { InterceptWriter } from './intercept-writer.service';
import type { InterceptRepository } from './intercept.repository';
import { type InterceptEvent, type InterceptSink, toWire } from './intercept.types';

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
 * second are merged into one record with a `count` ({@link InterceptBuffer},
 * a batcher). Every `flushMs` the records of the seconds that are over
 * become one BullMQ job (a worker writes it to PostgreSQL); those of the
 * running second stay, so a hammered key costs one record per second. One
 * batch is handed on at a time. Nothing is lost on the way:
 * - Redis unreachable → the batch is written to PostgreSQL directly;
 * - PostgreSQL unreachable too → it is spooled to local disk and replayed;
 * - a queued batch is remembered until its rows are seen in PostgreSQL; if
 *   its job vanished (Redis restarted without persistence, the job failed
 *   for good) it is written directly;
 * - a batch neither queued, written nor spooled goes back to the buffer as
 *   it is (never merged into) and is handed on first next time;
 * - on shutdown the buffer is flushed and unconfirmed batches are written
 *   directly (or spooled).
 */
export class InterceptRecorder implements InterceptSink {
  private readonly buffer: InterceptBuffer;
  private readonly sent = new Map<string, Sent>();
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
  ) {
    this.buffer = new InterceptBuffer((batch) => this.handOn(batch), { flushMs: options.flushMs });
  }

  start(): void {
    this.buffer.start();
    this.checkTimer = setInterval(() => void this.maintain(), 1000);
    this.checkTimer.unref();
  }

  /** Hot path: one map update, no I/O. */
  record(event: InterceptEvent): void {
    this.buffer.add(event);
  }

  /** Records not yet confirmed in PostgreSQL (buffered or queued). */
  get pending(): number {
    let n = this.buffer.size;
    for (const s of this.sent.values()) n += s.events.length;
    return n;
  }

  /** The buffer's totals (flushes, failures, records handed on and put back). */
  get counters(): Readonly<BatcherCounters> {
    return this.buffer.counters;
  }

  /**
   * Hands every buffered record on (after the batch in flight, if any);
   * never throws. Resolves when the batch is queued, written, spooled or
   * put back.
   */
  flush(): Promise<void> {
    return this.buffer.flush();
  }

  /**
   * The buffer's `write`: queues the batch, or writes it directly (or
   * spools it). Rejects only when all of these failed; the buffer then
   * keeps the batch as it is.
   */
  private async handOn(batch: InterceptEvent[]): Promise<void> {
    this.metrics.queueDepth.labels('intercepts').set(this.pending + batch.length);
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

  /** Writes a batch to PostgreSQL, or spools it; rejects when both failed. */
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
        throw spoolErr;
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
        await this.writeDirectOrKeep(s.events);
      }
    }
  }

  /** {@link writeDirect}, and when that fails the batch goes back to the buffer as it is. */
  private writeDirectOrKeep(batch: InterceptEvent[]): Promise<void> {
    return this.writeDirect(batch).catch(() => this.buffer.putBack(batch));
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
    if (this.checkTimer) clearInterval(this.checkTimer);
    await this.buffer.stop();
    const deadline = Date.now() + waitMs;
    while (this.sent.size > 0 && Date.now() < deadline) {
      await this.confirm(Date.now());
      if (this.sent.size > 0) await new Promise((r) => setTimeout(r, 100));
    }
    this.stopped = true;
    await this.confirm(Date.now());
    for (const [jobId, s] of this.sent) {
      this.sent.delete(jobId);
      await this.writeDirectOrKeep(s.events);
    }
    const rest = this.buffer.drain();
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
