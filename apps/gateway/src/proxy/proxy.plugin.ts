import type { FastifyInstance } from 'fastify';
import type { ProxyService } from './proxy.service';

/**
 * Registers the proxy on the Fastify instance, outside Nest's per-route
 * pipeline (no guards, pipes, interceptors, no body parsing): an
 * encapsulated scope whose only content-type parser leaves the body stream
 * untouched, and a catch-all route that hands the raw request to the proxy.
 * Nest's own routes (health, metrics, admin API) are static and win over
 * the wildcard.
 */
export async function registerProxy(fastify: FastifyInstance, proxy: ProxyService): Promise<void> {
  await fastify.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    const handler = (request: { raw: import('node:http').IncomingMessage }, reply: {
      hijack(): void;
      raw: import('node:http').ServerResponse;
    }) => {
      reply.hijack();
      proxy.handle(request.raw, reply.raw);
    };
    scope.all('/', handler);
    scope.all('/*', handler);
  });
  fastify.server.on('upgrade', (req, socket, head) => proxy.handleUpgrade(req, socket as import('node:net').Socket, head));
}
