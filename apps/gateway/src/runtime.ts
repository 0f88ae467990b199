import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { BindingRepository } from './binding/binding.repository';
import { BindingStore } from './binding/binding-store.service';
import { UsageRecorder } from './binding/usage-recorder.service';
import type { AppConfig } from './config/config';
import { ChangeFeed } from './infra/change-feed/change-feed.service';
import { createDataSource, runMigrations } from './infra/database/data-source';
import { ensureDatabase } from './infra/database/ensure-database';
import { MetricsService } from './infra/metrics/metrics.service';
import { createCommandClient, createSubscriberClient } from './infra/redis/redis.factory';
import { RedisKeys } from './infra/redis/redis-keys';
import { InterceptRecorder } from './intercept/intercept-recorder.service';
import { InterceptRepository } from './intercept/intercept.repository';
import { ReadinessProbe } from './health/readiness';
import { SettingsService } from './settings/settings.service';

/**
 * The composition root: builds every long-lived service once, in order,
 * and tears them down in reverse. Nest receives these instances as
 * providers; the hot path calls them directly.
 */
export interface Runtime {
  config: AppConfig;
  logger: Logger;
  dataSource: DataSource;
  redis: Redis;
  subscriber: Redis;
  keys: RedisKeys;
  metrics: MetricsService;
  settings: SettingsService;
  bindingRepo: BindingRepository;
  store: BindingStore;
  usage: UsageRecorder;
  interceptRepo: InterceptRepository;
  intercepts: InterceptRecorder;
  changeFeed: ChangeFeed;
  readiness: ReadinessProbe;
}

export async function createRuntime(config: AppConfig, logger: Logger): Promise<Runtime> {
  await ensureDatabase(config.databaseUrl);
  const dataSource = createDataSource(config.databaseUrl);
  await dataSource.initialize();
  const applied = await runMigrations(dataSource);
  if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');

  const keys = new RedisKeys(config.redisPrefix);
  const redis = createCommandClient(config.redisUrl, logger, 'commands');
  const subscriber = createSubscriberClient(config.redisUrl, logger, 'subscriber');
  const metrics = new MetricsService();

  const settings = new SettingsService(dataSource, config.settings, logger);
  await settings.start();

  const bindingRepo = new BindingRepository(dataSource);
  const store = new BindingStore(bindingRepo, redis, keys, metrics, logger, {
    maxEntries: config.cacheMaxEntries,
    ttlMs: config.cacheTtlMs,
  });
  const usage = new UsageRecorder(bindingRepo, logger);
  usage.start();
  const interceptRepo = new InterceptRepository(dataSource);
  const intercepts = new InterceptRecorder(interceptRepo, metrics, logger);
  intercepts.start();

  const changeFeed = new ChangeFeed(
    config.databaseUrl,
    subscriber,
    keys,
    {
      binding: (hashHex, origin) => {
        store.invalidateLocal(hashHex);
        // A change seen through PostgreSQL may have been made behind
        // KeyPin's back: clear the shared cache too.
        if (origin === 'postgres' && hashHex !== '*') void store.evictShared(hashHex).catch(() => undefined);
      },
      settings: () => void settings.reload(),
    },
    logger,
  );
  await changeFeed.start();

  return {
    config,
    logger,
    dataSource,
    redis,
    subscriber,
    keys,
    metrics,
    settings,
    bindingRepo,
    store,
    usage,
    interceptRepo,
    intercepts,
    changeFeed,
    readiness: new ReadinessProbe(dataSource, redis),
  };
}

/** Writes what is buffered and closes connections, newest first. */
export async function closeRuntime(rt: Runtime): Promise<void> {
  await rt.changeFeed.stop();
  rt.settings.stop();
  await rt.usage.stop();
  await rt.intercepts.stop();
  rt.redis.disconnect();
  rt.subscriber.disconnect();
  await rt.dataSource.destroy();
}
