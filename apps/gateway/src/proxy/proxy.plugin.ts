import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ProxyService } from './proxy.service';
import { isPlainPath, isReservedTarget } from './request-target';

interface RawRequest {
  raw: IncomingMessage;
}
interface RawReply {
  hijack(): void;
  raw: ServerResponse;
}

/**
 * Registers the proxy on the Fastify instance, outside Nest's per-route
 * pipeline (no guards, pipes, interceptors, no body parsing): an
 * encapsulated scope whose only content-type parser leaves the body stream
 * untouched, and a catch-all route that hands the raw request to the proxy.
 * Nest's own routes (health, metrics, admin API) are static and win over
 * the wildcard.
 */
export async function registerProxy(fastify: FastifyInstance, proxy: ProxyService): Promise<void> {
  await fastify.register((scope, _opts, done) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, parsed) => parsed(null));
    const handler = (request: RawRequest, reply: RawReply) => {
      reply.hijack();
      proxy.handle(request.raw, reply.raw);
    };
    scope.all('/', handler);
    scope.all('/*', handler);
    done();
  });
  fastify.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
    proxy.handleUpgrade(req, socket, head),
  );
}

/** The HTTP server's limits (what Fastify would set on a server it made itself). */
export interface ProxyServerOptions {
  keepAliveTimeoutMs: number;
}

/**
 * Fastify's `serverFactory`: one `node:http` server whose request listener
 * sends proxied traffic straight to the proxy and everything else to
 * Fastify (docs/workers.md, "The hot path"). A request goes straight when
 * its target is origin-form, needs no resolving (`isPlainPath`) and is not
 * reserved; that is, when Fastify's `rewriteUrl` would leave it as it is
 * and its router would pick the catch-all proxy route. Anything else
 * (KeyPin's own paths, absolute-form targets, `%`/`..` spellings) takes the
 * Fastify path as before, where `rewriteUrl` and the router decide. So the
 * split changes who dispatches a request, never where it ends up, and a
 * forwarded request pays for no Request/Reply objects, router lookup or
 * hook runs.
 */
export function proxyServerFactory(
  proxy: ProxyService,
  options: ProxyServerOptions,
): (fastifyHandler: RequestListener) => Server {
  return (fastifyHandler) => {
    const listener: RequestListener = (req, res) => {
      const url = req.url!;
      if (url.charCodeAt(0) === 47 /* / */ && isPlainPath(url) && !isReservedTarget(url)) {
        // Draining (the server no longer listens): a request that still
        // arrives on a kept-alive connection is served, then that
        // connection ends, as Fastify does for its own routes.
        if (!server.listening) res.shouldKeepAlive = false;
        proxy.handle(req, res);
      } else {
        fastifyHandler(req, res);
      }
    };
    const server = createServer(listener);
    server.keepAliveTimeout = options.keepAliveTimeoutMs;
    // No whole-request deadline: streams (SSE, uploads) last as long as they need.
    server.requestTimeout = 0;
    server.setTimeout(0);
    return server;
  };
}
