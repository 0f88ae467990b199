import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { AlertRepository } from '../alert/alert.repository';
import type { WebhookProcessor } from '../alert/webhook.processor';
import type { ArchiveService } from '../archive/archive.service';
import { RedisKeys } from '../infra/redis/redis-keys';
import type { InterceptWriter } from '../intercept/intercept-writer.service';
import type { SettingsService } from '../settings/settings.service';
import { BackgroundWorkers, enqueueWebhooks, type WorkerOptions } from './background-workers';

interface Added {
  name: string;
  data: { alertId: string };
  opts: { jobId: string; attempts: number };
}

function fakeQueue(): { queue: Queue; added: Added[] } {
  const added: Added[] = [];
  const queue = {
    addBulk: vi.fn((jobs: Added[]) => {
      added.push(...jobs);
      return Promise.resolve([]);
    }),
  };
  return { queue: queue as unknown as Queue, added };
}

const opts = (webhookMaxAttempts: number): WorkerOptions => ({
  redisUrl: 'redis://127.0.0.1:1',
  keys: new RedisKeys('test:'),
  archiveIntervalMs: 60_000,
  webhookRetryBaseMs: 1000,
  webhookMaxAttempts,
  sweepIntervalMs: 30_000,
});

describe('enqueueWebhooks', () => {
  it('queues one job per alert, keyed by the alert, with the attempts given', async () => {
    const { queue, added } = fakeQueue();
    await enqueueWebhooks(queue, ['a1', 'a2'], 12);
    expect(added.map((j) => [j.data.alertId, j.opts.jobId, j.opts.attempts])).toEqual([
      ['a1', 'alert-a1', 12],
      ['a2', 'alert-a2', 12],
    ]);
  });
});

describe('BackgroundWorkers.sweep', () => {
  it('re-queues pending alerts with WEBHOOK_MAX_ATTEMPTS attempts', async () => {
    const { queue, added } = fakeQueue();
    const pendingIds = vi.fn(() => Promise.resolve(['lost-1', 'lost-2']));
    const workers = new BackgroundWorkers(
      opts(17),
      {} as InterceptWriter,
      {} as WebhookProcessor,
      queue,
      {} as Queue,
      {} as ArchiveService,
      { pendingIds } as unknown as AlertRepository,
      {} as SettingsService,
      {} as Logger,
    );
    await workers.sweep();
    expect(pendingIds).toHaveBeenCalledOnce();
    expect(added.map((j) => [j.opts.jobId, j.opts.attempts])).toEqual([
      ['alert-lost-1', 17],
      ['alert-lost-2', 17],
    ]);
  });

  it('queues nothing when no alert is pending', async () => {
    const { queue, added } = fakeQueue();
    const workers = new BackgroundWorkers(
      opts(5),
      {} as InterceptWriter,
      {} as WebhookProcessor,
      queue,
      {} as Queue,
      {} as ArchiveService,
      { pendingIds: () => Promise.resolve([]) } as unknown as AlertRepository,
      {} as SettingsService,
      {} as Logger,
    );
    await workers.sweep();
    expect(added).toEqual([]);
  });
});
