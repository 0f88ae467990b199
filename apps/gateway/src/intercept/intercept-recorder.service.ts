import type { Logger } from 'pino';
import type { MetricsService } from '../infra/metrics/metrics.service';
import type { InterceptRepository } from './intercept.repository';
import type { InterceptEvent, InterceptSink } from './intercept.types';

const MAX_BATCH = 500;

/**
 * Buffers intercepts off the hot path and writes them to PostgreSQL in
 * batches. A failed write keeps the batch and retries; `stop()` drains.
 */
export class InterceptRecorder implements InterceptSink {
  private buffer: InterceptEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly repo: InterceptRepository,
    private readonly metrics: MetricsService,
    private readonly logger: Logger,
    private readonly intervalMs = 200,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  record(event: InterceptEvent): void {
    this.buffer.push(event);
    this.metrics.queueDepth.labels('intercepts').set(this.buffer.length);
    if (this.buffer.length >= MAX_BATCH) void this.flush();
  }

  get pending(): number {
    return this.buffer.length;
  }

  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.buffer.length === 0) return Promise.resolve();
    this.flushing = (async () => {
      while (this.buffer.length > 0) {
        const batch = this.buffer.slice(0, MAX_BATCH);
        try {
          await this.repo.insertBatch(batch);
          this.buffer.splice(0, batch.length);
        } catch (err) {
          this.logger.warn({ err: (err as Error).message, pending: this.buffer.length }, 'intercept write failed; will retry');
          break;
        }
      }
      this.metrics.queueDepth.labels('intercepts').set(this.buffer.length);
    })().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
    if (this.buffer.length > 0) await this.flush();
  }
}
