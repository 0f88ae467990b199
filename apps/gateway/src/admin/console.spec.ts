import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP, registerConsole } from './console';

/** The console as the gateway serves it itself (no nginx in front). */
describe('registerConsole', () => {
  let dir: string;
  let app: FastifyInstance;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keypin-console-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(
      join(dir, 'index.html'),
      '<!doctype html><script type="module" src="/admin/ui/assets/app.js"></script>',
    );
    writeFileSync(join(dir, 'assets', 'app.js'), 'console.log(1)');
    app = Fastify();
    expect(await registerConsole(app, dir)).toBe(true);
    await app.ready();
  });

  afterAll(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(['/admin/ui/', '/admin/ui/bindings/7', '/admin/ui/assets/app.js', '/admin/ui/assets/gone.js'])(
    '%s carries the security headers',
    async (url) => {
      const r = await app.inject({ method: 'GET', url });
      expect(r.headers['content-security-policy']).toBe(CONSOLE_CSP);
      expect(r.headers['x-frame-options']).toBe('DENY');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
    },
  );

  it('serves the app for client routes, immutable assets, and 404 for a missing file', async () => {
    const page = await app.inject({ method: 'GET', url: '/admin/ui/logs?search=x' });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('/admin/ui/assets/app.js');
    expect(page.headers['cache-control']).toBe('no-cache');
    const asset = await app.inject({ method: 'GET', url: '/admin/ui/assets/app.js' });
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await app.inject({ method: 'GET', url: '/admin/ui/assets/gone.js' })).statusCode).toBe(404);
  });

  it('is the policy nginx/keypin.conf sends for the console', () => {
    const conf = readFileSync(join(__dirname, '../../../../nginx/keypin.conf'), 'utf8');
    const line = /^\s*console\s+"([^"]+)";/m.exec(conf);
    expect(line?.[1]).toBe(CONSOLE_CSP);
  });

  it('the policy allows no inline script and no other origin', () => {
    expect(CONSOLE_CSP).toMatch(/script-src 'self';/);
    expect(CONSOLE_CSP).not.toMatch(/script-src[^;]*unsafe/);
    expect(CONSOLE_CSP).toMatch(/frame-ancestors 'none'/);
    expect(CONSOLE_CSP).not.toMatch(/\*|https?:/);
  });
});
