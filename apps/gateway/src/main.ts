import 'reflect-metadata';
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
import { registerProxy } from './proxy/proxy.plugin';
import { ProxyService } from './proxy/proxy.service';
import { WebSocketTunnel } from './proxy/websocket-tunnel';
import { closeRuntime, createRuntime } from './runtime';
import { createAdminContext } from './admin/admin.module';
import { setupApiDocs } from './admin/api-docs';
import { registerConsole } from './admin/console';

async function main(): Promise<void> {
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
  const migrateOnly = process.argv.includes('--migrate-only');

  const rt = await createRuntime(config, logger);
  if (migrateOnly) {
    await closeRuntime(rt);
    logger.info('migrations are up to date');
    return;
  }

  if (config.role === 'worker') {
    logger.info({ role: config.role }, 'worker started');
    onSignals(logger, async () => closeRuntime(rt));
    return;
  }

  let demo: { url: string; close(): Promise<void> } | null = null;
  let downstream = config.downstreamUrl;
  if (downstream === null) {
    demo = await startDemoUpstream({ host: '127.0.0.1', port: 0 });
    downstream = new URL(demo.url);
    logger.warn({ url: demo.url }, 'DOWNSTREAM_URL is not set: started the bundled demo upstream');
  }

  const forwarder = new Forwarder(
    downstream,
    {
      connectTimeoutMs: config.downstreamConnectTimeoutMs,
      headersTimeoutMs: config.downstreamHeadersTimeoutMs,
      bodyTimeoutMs: config.downstreamBodyTimeoutMs,
    },
    rt.metrics,
    logger,
  );
  const tunnel = new WebSocketTunnel(
    downstream,
    (url) => forwarder.pathFor(url),
    config.downstreamConnectTimeoutMs,
    config.downstreamHeadersTimeoutMs,
    rt.metrics,
    logger,
  );
  const proxy = new ProxyService({
    policy: { trusted: config.trustedProxies, header: config.realIpHeader },
    hasher: new KeyHasher(config.hmacSecret.reveal()),
    store: rt.store,
    settings: rt.settings,
    usage: rt.usage,
    stats: rt.stats,
    intercepts: rt.intercepts,
    forwarder,
    tunnel,
    metrics: rt.metrics,
    logger,
  });

  const adapter = new FastifyAdapter({
    logger: false,
    trustProxy: false,
    exposeHeadRoutes: false,
    return503OnClosing: false,
    bodyLimit: 1024 * 1024,
    keepAliveTimeout: 75_000,
    requestTimeout: 0,
    forceCloseConnections: 'idle',
    clientErrorHandler: handleClientError,
    // Before routing: absolute-form targets in origin form, and a path that
    // only resolves to a reserved one (`/%6detrics`, `//admin/`) refused.
    rewriteUrl: rewriteRequestTarget,
  });
  const admin = createAdminContext(rt);
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

  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRuntime(rt, admin), adapter, {
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
    { url: `http://${shownHost}:${port}`, role: config.role, downstream: downstream.origin },
    'listening',
  );

  onSignals(logger, async () => {
    // Stop accepting; let in-flight requests and streams finish until the deadline.
    const deadline = setTimeout(() => {
      logger.warn(
        { open: proxy.activeRequests, tunnels: tunnel.size },
        'shutdown deadline reached: closing streams',
      );
      fastify.server.closeAllConnections();
      tunnel.closeAll();
    }, config.shutdownGraceMs);
    deadline.unref();
    await app.close();
    clearTimeout(deadline);
    await forwarder.close().catch(() => undefined);
    await closeRuntime(rt);
    await demo?.close();
  });
}

function onSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
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
  process.once('SIGTERM', handler);
  process.once('SIGINT', handler);
}

main().catch((err: Error) => {
  process.stderr.write(`KeyPin failed to start: ${err.message}\n`);
  process.exit(1);
});
