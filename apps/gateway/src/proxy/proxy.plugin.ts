import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ProxyService } from './proxy.service';

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
