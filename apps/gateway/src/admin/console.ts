import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import { errorBody } from '@keypin/shared';
import type { FastifyInstance } from 'fastify';

/**
 * The console's Content-Security-Policy when the gateway serves it itself
 * (without nginx; nginx/keypin.conf sends the same one): the built app loads
 * only its own script files, MUI's styling engine (Emotion) inserts
 * `<style>` elements at run time (hence `'unsafe-inline'` for styles only),
 * and its icon is a `data:` URL. docs/deployment.md explains each part.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; " +
  "frame-ancestors 'none'";

/** The security headers every console answer carries. */
function consoleHeaders(reply: { header(name: string, value: string): unknown }): void {
  reply.header('content-security-policy', CONSOLE_CSP);
  reply.header('x-frame-options', 'DENY');
  reply.header('x-content-type-options', 'nosniff');
  // The console's addresses can hold a search for a raw key: never sent on.
  reply.header('referrer-policy', 'no-referrer');
}

interface SendFile {
  sendFile(file: string, root: string): unknown;
}

/** Where the built console is: ADMIN_UI_DIR, else `apps/admin-ui/dist` of this checkout. */
export function consoleDir(): string {
  return process.env['ADMIN_UI_DIR'] ?? resolve(__dirname, '../../../../../../apps/admin-ui/dist');
}

/**
 * Serves the built admin console at /admin/ui/ (a single-page app: unknown
 * paths under it get index.html). Registered before the proxy so these
 * routes win over its catch-all.
 */
export async function registerConsole(fastify: FastifyInstance, dir = consoleDir()): Promise<boolean> {
  if (!existsSync(resolve(dir, 'index.html'))) return false;
  await fastify.register(async (scope) => {
    // @fastify/static resolves its own copy of Fastify's types (npm keeps two
    // copies in this workspace), which the type-aware linter cannot follow.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-argument
    await scope.register(fastifyStatic, {
      root: dir,
      prefix: '/admin/ui/',
      decorateReply: true,
      wildcard: false,
      index: ['index.html'],
      // @fastify/static 10 hands the Fastify reply here.
      setHeaders: (reply: { header(name: string, value: string): unknown }, path: string) => {
        consoleHeaders(reply);
        reply.header(
          'cache-control',
          path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        );
      },
    });
    scope.get('/admin/ui', (_req, reply) => reply.redirect('/admin/ui/', 308));
    // Client-side routes get the app; a missing file (a path with an
    // extension, e.g. an old asset) is a plain 404.
    scope.get('/admin/ui/*', (req, reply) => {
      consoleHeaders(reply);
      if (/\.[A-Za-z0-9]{1,8}$/.test(req.url.split('?')[0]!)) {
        return reply.code(404).send(errorBody('not_found', 'No such file.'));
      }
      // `sendFile` comes from @fastify/static's decoration.
      return (reply.header('cache-control', 'no-cache') as unknown as SendFile).sendFile('index.html', dir);
    });
  });
  return true;
}
