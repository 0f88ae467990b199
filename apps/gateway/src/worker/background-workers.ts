import { type ConnectionOptions, type Job, type Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { AlertRepository } from '../alert/alert.repository';
import { backoffDelay, type WebhookJob, type WebhookProcessor } from '../alert/webhook.processor';
import type { ArchiveService } from '../archive/archive.service';
import { QUEUE, releaseConnection, workerConnection } from '../infra/queue/queues';
import type { RedisTopology } from '../infra/redis/redis-topology';
import type { RedisKeys } from '../infra/redis/redis-keys';
import type { InterceptWriter } from '../intercept/intercept-writer.service';
import { fromWire, type InterceptWire } from '../intercept/intercept.types';
import type { SettingsService } from '../settings/settings.service';

export interface WorkerOptions {
  redisUrl: string;
  /** The Redis topology (docs/redis.md); absent = the standalone server at `redisUrl`. */
  redis?: RedisTopology;
  keys: RedisKeys;
  archiveIntervalMs: number;
  webhookRetryBaseMs: number;
  /** Attempts per webhook job (`WEBHOOK_MAX_ATTEMPTS`), also for the jobs the sweeper re-queues. */
  webhookMaxAttempts: number;
  sweepIntervalMs: number;
}

/**
 * The background side (`ROLE=worker` or `all`): writes queued intercepts,
 * delivers webhooks, re-queues alerts whose delivery job was lost, and
 * runs the archive schedule (a BullMQ job scheduler, so once across all
 * instances).
 */
export class BackgroundWorkers {
  private readonly workers: Worker[] = [];
  private connection: ConnectionOptions | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: WorkerOptions,
    private readonly writer: InterceptWriter,
    private readonly webhooks: WebhookProcessor,
    private readonly webhookQueue: Queue,
    private readonly archiveQueue: Queue,
    private readonly archive: ArchiveService,
    private readonly alerts: AlertRepository,
    private readonly settings: SettingsService,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.connection = workerConnection(this.opts.redis ?? this.opts.redisUrl);
    const common = { connection: this.connection, prefix: this.opts.keys.bullPrefix };
    this.workers.push(
      new Worker<{ events: InterceptWire[] }>(
        QUEUE.intercepts,
        async (job) => {
          await this.writer.write(job.data.events.map(fromWire));
        },
        { ...common, concurrency: 2 },
      ),
      new Worker<WebhookJob>(QUEUE.webhooks, (job: Job<WebhookJob>) => this.webhooks.process(job), {
        ...common,
        concurrency: 5,
        settings: {
          backoffStrategy: (attemptsMade: number) => backoffDelay(attemptsMade, this.opts.webhookRetryBaseMs),
        },
      }),
      new Worker(
        QUEUE.archive,
        async () => {
          await this.archive.archiveUnused(this.settings.current.archive_days);
        },
        { ...common, concurrency: 1 },
      ),
    );
    for (const w of this.workers) {
      w.on('error', (err) =>
        this.logger.debug({ queue: w.name, err: err.message }, 'worker connection error'),
      );
      w.on('failed', (job, err) => {
        if (w.name !== QUEUE.webhooks)
          this.logger.warn({ queue: w.name, job: job?.id, err: err.message }, 'job failed');
      });
    }
    // Not awaited: BullMQ waits for a ready connection, which while Redis is
    // down would hold up the whole start.
    void this.scheduleArchive();
    this.sweepTimer = setInterval(() => void this.sweep(), this.opts.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  private async scheduleArchive(): Promise<void> {
    try {
      await this.archiveQueue.upsertJobScheduler(
        'archive-unused-bindings',
        { every: this.opts.archiveIntervalMs },
        { name: 'archive', opts: { removeOnComplete: 100, removeOnFail: 100 } },
      );
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message },
        'archive schedule not set yet (Redis away); retrying',
      );
      setTimeout(() => void this.scheduleArchive(), 5000).unref();
    }
  }

  /**
   * Queues alerts still pending whose job may have been lost (jobId makes
   * this idempotent). Runs every `sweepIntervalMs` once started.
   */
  async sweep(): Promise<void> {
    try {
      const ids = await this.alerts.pendingIds(new Date(Date.now() - this.opts.sweepIntervalMs));
      if (ids.length > 0) await enqueueWebhooks(this.webhookQueue, ids, this.opts.webhookMaxAttempts);
    } catch {
      // Stores away: next round.
    }
  }

  /** Lets running jobs finish, then closes the connections. */
  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all(this.workers.map((w) => w.close().catch(() => undefined)));
    if (this.connection) releaseConnection(this.connection);
  }
}

/**
 * One delivery job per alert (`jobId = alert-<id>`, so queuing an alert
 * twice is a no-op). `attempts`: `WEBHOOK_MAX_ATTEMPTS`; there is no
 * default, so no caller can silently use another number.
 */
export async function enqueueWebhooks(queue: Queue, alertIds: string[], attempts: number): Promise<void> {
  await queue.addBulk(
    alertIds.map((id) => ({
      name: 'deliver',
      data: { alertId: id },
      opts: {
        jobId: `alert-${id}`,
        attempts,
        backoff: { type: 'custom' },
        removeOnComplete: { age: 86_400 },
        removeOnFail: { age: 7 * 86_400 },
      },
    })),
  );
}
