import { keyRulesOf } from '@keypin/shared';
import type { AdminServices } from './admin/admin-services';
import { CallerIpResolver } from './admin/common/caller-ip';
import { AuditRepository } from './audit/audit.repository';
import { BindingAdminRepository } from './binding/binding-admin.repository';
import { BindingAdminService } from './binding/binding-admin.service';
import { KeyHasher } from './proxy/key-hasher';
import { SettingsAdminService } from './settings/settings-admin.service';
import { AuthService } from './user/auth.service';
import { LockoutRepository } from './user/lockout.repository';
import { UsersRepository } from './user/users.repository';
import { UsersService } from './user/users.service';
import { AlertAdminRepository } from './alert/alert-admin.repository';
import { AlertAdminService } from './alert/alert-admin.service';
import { DashboardRepository } from './dashboard/dashboard.repository';
import { DashboardService } from './dashboard/dashboard.service';
import { InterceptLogRepository } from './intercept/intercept-log.repository';
import { InterceptLogService } from './intercept/intercept-log.service';
import { InterceptExporter } from './intercept/logs-export';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import { BindingRepository } from './binding/binding.repository';
import { BindingStoreService } from './binding/binding-store.service';
import { FirstUseLimiter } from './binding/first-use-limiter';
import { UsageRecorder } from './binding/usage-recorder.service';
import { DailyStats } from './dashboard/daily-stats.service';
import { DailyStatsRepository } from './dashboard/daily-stats.repository';
import type { AppConfig } from './config/config';
import { ChangeFeed } from './infra/change-feed/change-feed.service';
import { createDataSource, runMigrations } from './infra/database/data-source';
import { ensureDatabase } from './infra/database/ensure-database';
import { MetricsService } from './infra/metrics/metrics.service';
import { createCommandClient, createSubscriberClient, type RedisClient } from './infra/redis/redis.factory';
import { RedisKeys } from './infra/redis/redis-keys';
import { describeTopology } from './infra/redis/redis-topology';
import { InterceptRecorder } from './intercept/intercept-recorder.service';
import { InterceptRepository } from './intercept/intercept.repository';
import { ReadinessProbe } from './health/readiness';
import { SettingsRepository } from './settings/settings.repository';
import { SettingsService } from './settings/settings.service';
import { SecretBox } from './settings/secret-box';
import type { Queue } from 'bullmq';
import { AlertRepository } from './alert/alert.repository';
import { AlertService } from './alert/alert.service';
import { WebhookSender } from './alert/webhook-sender';
import { WebhookProcessor } from './alert/webhook.processor';
import { ArchiveRepository } from './archive/archive.repository';
import { ArchiveService } from './archive/archive.service';
import { createQueue, QUEUE } from './infra/queue/queues';
import { InterceptSpool } from './intercept/intercept-spool';
import { InterceptWriter } from './intercept/intercept-writer.service';
import { BackgroundWorkers, enqueueWebhooks } from './worker/background-workers';
import { PolicyLimiter } from './policy/policy-limiter';
import { RouteAdminService } from './route/route-admin.service';
import { seedRoutes } from './route/route-seed';
import { RoutesRepository } from './route/routes.repository';
import { ChainSealer } from './integrity/chain-sealer.service';
import { IntegrityRepository } from './integrity/integrity.repository';
import { IntegrityService } from './integrity/integrity.service';
import { RetentionRepository } from './retention/retention.repository';
import { RetentionService } from './retention/retention.service';

/**
 * The composition root: builds every long-lived service once, in order,
 * and tears them down in reverse. Nest receives these instances as
 * providers; the hot path calls them directly.
 */
export interface Runtime {
  config: AppConfig;
  logger: Logger;
  dataSource: DataSource;
  redis: RedisClient;
  subscriber: RedisClient;
  keys: RedisKeys;
  metrics: MetricsService;
  settings: SettingsService;
  secretBox: SecretBox;
  bindingRepo: BindingRepository;
  store: BindingStoreService;
  usage: UsageRecorder;
  stats: DailyStats;
  interceptRepo: InterceptRepository;
  intercepts: InterceptRecorder;
  interceptWriter: InterceptWriter;
  alertRepo: AlertRepository;
  queues: { intercepts: Queue; webhooks: Queue; archive: Queue };
  /** Present when this process runs the background jobs (ROLE all or worker). */
  workers: BackgroundWorkers | null;
  webhookSender: WebhookSender;
  changeFeed: ChangeFeed;
  readiness: ReadinessProbe;
  /** A Redis connection of its own for the policy counters (short timeout). */
  policyRedis: RedisClient;
  limiter: PolicyLimiter;
  /** The `routes` table (docs/contract.md 10); a RouteSource for routing tables. */
  routeRepo: RoutesRepository;
  /**
   * Called whenever the routes may have changed: at once after a change
   * made through this instance's admin API, on every notice of the change
   * feed (Redis and PostgreSQL, so usually more than once per change), and
   * after the feed reconnects. A listener reloads from `routeRepo`; one that
   * throws is logged and does not stop the others.
   */
  routeListeners: Set<() => void>;
  /** The hash chains' sealer (docs/integrity.md); present with the background jobs (ROLE all or worker). */
  sealer: ChainSealer | null;
  /** The intercept log's monthly partitions and retention (docs/data.md); present with the background jobs. */
  retention: RetentionService | null;
}

/** Calls every route listener; a failing one is logged, the others still run. */
function notifyRouteListeners(listeners: ReadonlySet<() => void>, logger: Logger): void {
  for (const listener of listeners) {
    try {
      listener();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'a routes listener failed');
    }
  }
}

export async function createRuntime(config: AppConfig, logger: Logger): Promise<Runtime> {
  await ensureDatabase(config.databaseUrl);
  const dataSource = createDataSource(config.databaseUrl);
  await dataSource.initialize();
  const applied = await runMigrations(dataSource);
  if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');

  const keys = new RedisKeys(config.redisPrefix, { cluster: config.redis.kind === 'cluster' });
  logger.info({ redis: describeTopology(config.redis) }, 'redis topology');
  const redis = createCommandClient(config.redis, logger, 'commands');
  const subscriber = createSubscriberClient(config.redis, logger, 'subscriber');
  const metrics = new MetricsService();

  const secretBox = new SecretBox(config.hmacSecret.reveal());
  const settings = new SettingsService(new SettingsRepository(dataSource), config.settings, logger, {
    envSecret: config.alertWebhookSecret?.revealText() ?? null,
    open: (sealed) => secretBox.open(sealed),
  });
  await settings.start();

  const bindingRepo = new BindingRepository(dataSource);
  const store = new BindingStoreService(bindingRepo, redis, keys, metrics, logger, {
    maxEntries: config.cacheMaxEntries,
    ttlMs: config.cacheTtlMs,
    serveUnconfirmed: () => settings.current.failsafe_mode === 'open',
    firstUses: config.firstUseLimit === 0 ? null : new FirstUseLimiter(redis, keys, config.firstUseLimit),
  });
  const usage = new UsageRecorder(bindingRepo, logger);
  usage.start();
  const stats = new DailyStats(new DailyStatsRepository(dataSource), logger);
  stats.start();

  const queues = {
    intercepts: createQueue(QUEUE.intercepts, config.redis, keys, {
      defaultJobOptions: {
        attempts: 10,
        backoff: { type: 'exponential', delay: 1000 },
        removeOnComplete: true,
        removeOnFail: { age: 7 * 86_400 },
      },
    }),
    webhooks: createQueue(QUEUE.webhooks, config.redis, keys),
    archive: createQueue(QUEUE.archive, config.redis, keys),
  };
  const alertRepo = new AlertRepository(dataSource);
  const alerts = new AlertService(alertRepo, settings, logger);
  const interceptRepo = new InterceptRepository(dataSource);
  const interceptWriter = new InterceptWriter(
    interceptRepo,
    alerts,
    { dispatch: (ids) => enqueueWebhooks(queues.webhooks, ids, config.webhookMaxAttempts) },
    logger,
  );
  const spool = new InterceptSpool(config.spoolDir, config.databaseUrl, logger);
  const intercepts = new InterceptRecorder(
    queues.intercepts,
    interceptWriter,
    interceptRepo,
    spool,
    metrics,
    logger,
    {
      flushMs: 100,
      confirmAfterMs: Math.min(3000, config.interceptRescueMs),
      rescueAfterMs: config.interceptRescueMs,
    },
  );
  intercepts.start();

  const webhookSender = new WebhookSender(config.alertWebhookAllowPrivate, config.webhookTimeoutMs);
  let workers: BackgroundWorkers | null = null;
  if (config.role !== 'gateway') {
    const archive = new ArchiveService(
      new ArchiveRepository(dataSource),
      (hash) => store.announceChange(hash),
      logger,
    );
    workers = new BackgroundWorkers(
      {
        redisUrl: config.redisUrl,
        redis: config.redis,
        keys,
        archiveIntervalMs: config.archiveIntervalMs,
        webhookRetryBaseMs: config.webhookRetryBaseMs,
        webhookMaxAttempts: config.webhookMaxAttempts,
        sweepIntervalMs: config.alertSweepMs,
      },
      interceptWriter,
      new WebhookProcessor(
        alertRepo,
        webhookSender,
        settings,
        () => settings.webhookSecret(),
        logger,
        config.publicUrl,
      ),
      queues.webhooks,
      queues.archive,
      archive,
      alertRepo,
      settings,
      logger,
    );
    workers.start();
  }
  // The hash chains' one writer at a time is whoever holds the chain's advisory lock (docs/integrity.md).
  const sealer =
    config.role === 'gateway' ? null : new ChainSealer(new IntegrityRepository(dataSource), logger);
  sealer?.start();
  // Upcoming months' partitions and INTERCEPT_RETENTION_DAYS; one instance at a time (an advisory lock).
  const retention =
    config.role === 'gateway'
      ? null
      : new RetentionService(
          new RetentionRepository(dataSource),
          new IntegrityService(new IntegrityRepository(dataSource), config.databaseUrl, logger),
          logger,
          { days: config.interceptRetentionDays },
        );
  retention?.start();

  // Its own connection, with a short timeout: a slow Redis sends policy
  // checks to the in-process fallback instead of holding requests. No
  // auto-pipelining: the limiter batches a key's requests itself, and
  // ioredis's pipelining costs more CPU per command than it saves here.
  const policyRedis = createCommandClient(config.redis, logger, 'policy', { commandTimeout: 250 });
  const limiter = new PolicyLimiter(policyRedis, keys, logger, {
    // A quota counts the calendar day and month: a counter Redis does not
    // have yet starts from what PostgreSQL has recorded for the key.
    seed: (id) => bindingRepo.usageTotals(id),
  });
  limiter.start();

  const routeRepo = new RoutesRepository(dataSource);
  const routeListeners = new Set<() => void>();
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
      routes: () => notifyRouteListeners(routeListeners, logger),
    },
    logger,
  );
  await changeFeed.start();

  if (config.routes.length > 0) {
    const seed = await seedRoutes(
      { repo: routeRepo, audit: new AuditRepository(dataSource), seal: (v) => secretBox.seal(v) },
      config.routes,
    );
    if (seed.seeded) {
      logger.info({ prefixes: seed.prefixes }, 'routes seeded from ROUTES (the table was empty)');
      await changeFeed.publishRoutes(redis).catch(() => undefined);
    } else {
      logger.info(
        { stored: seed.stored },
        'ROUTES ignored: routes are stored in the database (change them through the admin API)',
      );
    }
  }

  return {
    config,
    logger,
    dataSource,
    redis,
    subscriber,
    keys,
    metrics,
    settings,
    secretBox,
    bindingRepo,
    store,
    usage,
    stats,
    interceptRepo,
    intercepts,
    interceptWriter,
    alertRepo,
    queues,
    workers,
    webhookSender,
    changeFeed,
    readiness: new ReadinessProbe(
      dataSource,
      redis,
      () => (limiter.degraded ? ['policy counters are enforced per instance: Redis cannot answer'] : []),
      config.redis,
    ),
    policyRedis,
    limiter,
    routeRepo,
    routeListeners,
    sealer,
    retention,
  };
}

/**
 * Shutdown after the HTTP side has stopped: flush what is buffered (the
 * intercept and usage batches), let running jobs finish, then close
 * connections.
 */
export async function closeRuntime(rt: Runtime): Promise<void> {
  await rt.intercepts.stop();
  await rt.usage.stop();
  await rt.stats.stop();
  await rt.workers?.stop();
  await rt.retention?.stop();
  // After the last intercepts were written: seal them too.
  await rt.sealer?.stop();
  await rt.changeFeed.stop();
  rt.settings.stop();
  await Promise.all(Object.values(rt.queues).map((q) => q.close().catch(() => undefined)));
  await rt.webhookSender.close().catch(() => undefined);
  rt.limiter.stop();
  rt.redis.disconnect();
  rt.subscriber.disconnect();
  rt.policyRedis.disconnect();
  await rt.dataSource.destroy();
}

/**
 * `--migrate-only`: creates the database if missing and applies migrations,
 * touching nothing else (no Redis, no queues, no workers to tear down).
 */
export async function migrateOnly(config: AppConfig, logger: Logger): Promise<void> {
  await ensureDatabase(config.databaseUrl);
  const dataSource = createDataSource(config.databaseUrl);
  await dataSource.initialize();
  try {
    const applied = await runMigrations(dataSource);
    logger.info(
      { migrations: applied },
      applied.length > 0 ? 'migrations applied' : 'migrations are up to date',
    );
  } finally {
    await dataSource.destroy();
  }
}

/**
 * The admin API's services, built once from the runtime (the admin half of
 * the composition root). Controllers receive these, never the runtime.
 */
export function createAdminServices(rt: Runtime): AdminServices {
  const { config, dataSource } = rt;
  const audit = new AuditRepository(dataSource);
  const users = new UsersRepository(dataSource);
  const hasher = new KeyHasher(config.hmacSecret.reveal());
  const interceptLog = new InterceptLogRepository(dataSource, config.databaseUrl, rt.logger);
  const bindings = new BindingAdminService({
    ds: dataSource,
    repo: new BindingAdminRepository(dataSource),
    audit,
    hashKey: (canonical) => hasher.hashHex(canonical),
    keyRules: () => keyRulesOf(rt.settings.current),
    defaultPolicy: () => rt.settings.current.default_policy,
    storedUsage: (id) => rt.bindingRepo.usageTotals(id),
    liveCounts: (id) => rt.limiter.liveCounts(id),
    announce: (hashHex) => rt.store.announceChange(hashHex),
  });
  return {
    auth: new AuthService(
      users,
      new LockoutRepository(dataSource, rt.redis, rt.keys),
      config.adminJwtSecret.reveal(),
      config.adminJwtTtlSeconds,
      rt.logger,
    ),
    callerIp: new CallerIpResolver({ trusted: config.trustedProxies, header: config.realIpHeader }),
    users: new UsersService(users, audit),
    audit,
    bindings,
    settings: new SettingsAdminService({
      settings: rt.settings,
      secretBox: rt.secretBox,
      audit,
      changeFeed: rt.changeFeed,
      publisher: rt.redis,
      allowPrivateWebhook: config.alertWebhookAllowPrivate,
      webhookSender: rt.webhookSender,
      publicUrl: config.publicUrl,
    }),
    routes: new RouteAdminService({
      repo: rt.routeRepo,
      audit,
      seal: (plain) => rt.secretBox.seal(plain),
      env: process.env,
      notifyLocal: () => notifyRouteListeners(rt.routeListeners, rt.logger),
      publish: () => rt.changeFeed.publishRoutes(rt.redis),
      logger: rt.logger,
    }),
    logs: new InterceptLogService(interceptLog, new InterceptExporter(interceptLog, rt.logger)),
    integrity: new IntegrityService(new IntegrityRepository(dataSource), config.databaseUrl, rt.logger),
    dashboard: new DashboardService(new DashboardRepository(dataSource), interceptLog),
    // Alert actions change bindings through the same service (and announcement) as the bindings API.
    alerts: new AlertAdminService({
      ds: dataSource,
      repo: new AlertAdminRepository(dataSource),
      bindings,
      audit,
    }),
  };
}
