import 'reflect-metadata';
import cluster from 'node:cluster';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import { AppModule } from './app.module';
import { ConfigError, loadConfig, type AppConfig } from './config/config';
import { startDemoUpstream } from './demo/demo-upstream';
import { createLogger, NestPinoLogger } from './infra/logger';
import { handleClientError } from './proxy/client-error';
import { Forwarder } from './proxy/forwarder';
import { KeyHasher } from './proxy/key-hasher';
import { rewriteRequestTarget } from './proxy/request-target';
import { proxyServerFactory, registerProxy } from './proxy/proxy.plugin';
import { PolicyGate } from './policy/policy-gate';
import { AccessLog } from './proxy/access-log';
import { ProxyService } from './proxy/proxy.service';
import { WebSocketTunnel } from './proxy/websocket-tunnel';
import { RouteTable, type UpstreamFactory } from './route/route-table';
import { closeRuntime, createAdminServices, createRuntime, migrateOnly } from './runtime';
import { setupApiDocs } from './admin/api-docs';
import { registerConsole } from './admin/console';
import { clusterMetrics, inCluster } from './cluster/cluster-messages';
import { perProcessShare } from './cluster/process-share';
import { runSupervisor } from './cluster/supervisor';

async function main(): Promise<void> {
  // scripts/start.mjs talks to us over IPC only to notice it is gone; the
  // channel alone must not keep a finished process (--migrate-only) alive.
  process.channel?.unref();
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  if (config.hmacSecretIsDevDefault) {
    logger.warn('HMAC_SECRET is not set: using a development key (production refuses to start without one)');
  }
  if (process.argv.includes('--migrate-only')) {
    await migrateOnly(config, logger);
    return;
  }
  if (cluster.isPrimary && config.workers > 1 && config.role !== 'worker') {
    await runSupervisor(config, logger);
    return;
  }

  const rt = await createRuntime(config, logger);
  if (inCluster()) rt.metrics.renderThrough(clusterMetrics(rt.metrics.registry));

  if (config.role === 'worker') {
    logger.info({ role: config.role }, 'worker started');
    onSignals(logger, async () => closeRuntime(rt));
    return;
  }

  // DOWNSTREAM_MAX_CONNECTIONS is the instance's: each of N serving processes takes its share.
  const maxConnections = perProcessShare(config.downstreamMaxConnections, inCluster() ? config.workers : 1);
  // One keep-alive pool and one tunnel factory per upstream (and timeout).
  const makeUpstream: UpstreamFactory = (url, timeoutMs) => {
    const headersTimeoutMs = timeoutMs ?? config.downstreamHeadersTimeoutMs;
    return {
      forwarder: new Forwarder(
        url,
        {
          connectTimeoutMs: config.downstreamConnectTimeoutMs,
          headersTimeoutMs,
          bodyTimeoutMs: timeoutMs ?? config.downstreamBodyTimeoutMs,
          maxConnections,
          requestBodyTimeoutMs: config.bodyTimeoutMs,
          client: config.downstreamClient,
        },
        rt.metrics,
        logger,
      ),
      tunnel: new WebSocketTunnel(
        url,
        config.downstreamConnectTimeoutMs,
        headersTimeoutMs,
        rt.metrics,
        logger,
      ),
    };
  };
  let demo: { url: string; close(): Promise<void> } | null = null;
  let downstream = config.downstreamUrl;
  // With routes configured, a missing DOWNSTREAM_URL means "no route → 404
  // no_route", not the demo upstream (docs/contract.md 10).
  if (downstream === null && (await rt.routeRepo.listAll()).length === 0) {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    downstream = new URL(demo.url);
    logger.warn({ url: demo.url }, 'DOWNSTREAM_URL is not set: started the bundled demo upstream');
  }
  const routes = new RouteTable(
    rt.routeRepo,
    downstream === null ? null : RouteTable.fallbackFor(makeUpstream(downstream, null)),
    makeUpstream,
    {
      open: (sealed) => rt.secretBox.open(sealed),
      env: process.env,
      refreshMs: 30_000,
    },
    logger,
  );
  await routes.start();
  rt.routeListeners.add(() => {
    routes.reload().catch((err: Error) => logger.warn({ err: err.message }, 'could not reload routes'));
  });
  const access = config.accessLog === 'json' ? new AccessLog() : null;
  const proxy = new ProxyService({
    policy: { trusted: config.trustedProxies, header: config.realIpHeader },
    hasher: new KeyHasher(config.hmacSecret.reveal()),
    store: rt.store,
    settings: rt.settings,
    usage: rt.usage,
    stats: rt.stats,
    intercepts: rt.intercepts,
    routes,
    gate: new PolicyGate(rt.limiter, rt.settings, {
      bodyLimit: config.policyBodyLimit,
      bodyTimeoutMs: config.bodyTimeoutMs,
    }),
    access,
    metrics: rt.metrics,
    logger,
    maxInflightPerIp: config.maxInflightPerIp,
  });

  const adapter = new FastifyAdapter({
    logger: false,
    trustProxy: false,
    exposeHeadRoutes: false,
    return503OnClosing: false,
    bodyLimit: 1024 * 1024,
    keepAliveTimeout: 75_000,
    requestTimeout: 0,
    // Proxied traffic skips Fastify: it reaches ProxyService from the server's own listener.
    serverFactory: proxyServerFactory(proxy, { keepAliveTimeoutMs: 75_000 }),
    forceCloseConnections: 'idle',
    clientErrorHandler: handleClientError,
    // Before routing: absolute-form targets in origin form, and a path that
    // only resolves to a reserved one (`/%6detrics`, `//admin/`) refused.
    rewriteUrl: rewriteRequestTarget,
  });
  const admin = createAdminServices(rt);
  const boot = await admin.auth.bootstrap(config.adminUsername, config.adminPassword?.revealText() ?? null);
  if (boot.generated !== null) {
    // Printed once, on the console only: the password is not stored anywhere in clear.
    process.stdout.write(
      `\n  KeyPin bootstrap admin created\n    username: ${config.adminUsername}\n    password: ${boot.generated}\n` +
        `  (shown once; change it in the console or set ADMIN_PASSWORD)\n\n`,
    );
  } else if (boot.created) {
    logger.info({ username: config.adminUsername }, 'bootstrap admin created from ADMIN_PASSWORD');
  }

  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forServices(rt, admin), adapter, {
    logger: new NestPinoLogger(logger),
    bufferLogs: false,
  });
  const fastify = app.getHttpAdapter().getInstance();
  if (config.adminDocs) setupApiDocs(app);
  if (!(await registerConsole(fastify)))
    logger.warn('the admin console is not built: /admin/ui/ is not served');
  await registerProxy(fastify, proxy);
  await app.listen({ port: config.port, host: config.host });
  const address = fastify.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const shownHost = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  logger.info(
    {
      url: `http://${shownHost}:${port}`,
      role: config.role,
      downstream: downstream?.origin ?? null,
      routes: routes.size,
      downstream_max_connections: maxConnections,
    },
    'listening',
  );

  onSignals(logger, async () => {
    // Stop accepting; let in-flight requests and streams finish until the deadline.
    const deadline = setTimeout(() => {
      logger.warn(
        { open: proxy.activeRequests, tunnels: routes.allUpstreams.reduce((n, u) => n + u.tunnel.size, 0) },
        'shutdown deadline reached: closing streams',
      );
      fastify.server.closeAllConnections();
      for (const u of routes.allUpstreams) u.tunnel.closeAll();
    }, config.shutdownGraceMs);
    deadline.unref();
    await app.close();
    clearTimeout(deadline);
    routes.stop();
    await Promise.all(routes.allUpstreams.map((u) => u.forwarder.close().catch(() => undefined)));
    await closeRuntime(rt);
    await demo?.close();
    access?.flush();
  });
}

/**
 * Runs `stop` exactly once, whatever stops the process first and however
 * many signals follow. A signal sent to a whole process group (a
 * terminal's Ctrl-C, `kill -- -PGID`, some supervisors) can arrive twice,
 * once directly and once forwarded by a parent; with a one-shot handler the
 * second would take the default action and kill the process mid-drain,
 * cutting requests in flight and losing buffered intercepts. So later
 * signals are only logged: the drain is already bounded by
 * SHUTDOWN_GRACE_MS, and SIGKILL remains for stopping at once.
 */
function onSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (cause: NodeJS.Signals | 'disconnect') => {
    if (stopping) {
      logger.warn({ signal: cause }, 'already shutting down: signal ignored');
      return;
    }
    stopping = true;
    logger.info({ signal: cause }, 'shutting down');
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  // Started by scripts/start.mjs (an IPC channel): it passes signals on. If
  // it dies without doing so (SIGKILL), the channel closes: stop as well,
  // rather than run on unsupervised in a process group nobody signals.
  if (process.channel) process.once('disconnect', () => handler('disconnect'));
}

main().catch((err: Error) => {
  process.stderr.write(`KeyPin failed to start: ${err.message}\n`);
  process.exit(1);
});
