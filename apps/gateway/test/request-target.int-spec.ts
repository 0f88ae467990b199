/**
 * How KeyPin reads a request target and a key value (docs/contract.md 2.1, 2.4):
 * reserved paths recognised on the resolved path, absolute-form targets
 * forwarded in origin form, keys with bytes no relay could store refused.
 * Each case was a bypass on the previous code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDownstream } from './support/downstream';
import { startGateway, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { rawRequest } from './support/raw-http';
import { dropStores, freshStores, sql } from './support/stores';

describe('request targets and key values', () => {
  const stores = freshStores('target');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let port: number;
  const key = `sk-target${Date.now().toString(36)}`;

  const get = (target: string, from: string, extra = '') =>
    rawRequest(
      port,
      `GET ${target} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${key}\r\n${extra}Connection: close\r\n\r\n`,
      from,
    );

  beforeAll(async () => {
    await downstream.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
    });
    port = gw.port;
    // The key is pinned to 127.0.0.2; every probe below comes from elsewhere.
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) })).status).toBe(200);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it.each([
    '/admin%2Fapi/bindings',
    '//admin/api/bindings',
    '/./admin/api/bindings',
    '/v1/../admin/api/bindings',
    '/v1/%2e%2e/admin/x',
    '/admin;x/api',
    '/%61dmin/api/me',
    '/%6detrics',
    '/metrics/.',
    '//health',
  ])('never forwards %s, which resolves to a reserved path', async (target) => {
    const seen = downstream.seen.length;
    const r = await get(target, '127.0.0.3');
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error.code).toBe('not_found');
    // Not served by KeyPin's own route either (no metrics text, no admin answer).
    expect(r.body).not.toContain('# HELP');
    expect(downstream.seen.length).toBe(seen);
  });

  it('never forwards a reserved path under another method', async () => {
    const seen = downstream.seen.length;
    for (const path of ['/health', '/metrics', '/ready']) {
      const r = await send(`${gw.url}${path}`, {
        method: 'POST',
        from: '127.0.0.2',
        headers: bearer(key),
        body: 'x',
      });
      expect(r.status, path).toBe(404);
    }
    expect(downstream.seen.length).toBe(seen);
  });

  it('still serves the reserved paths spelled exactly', async () => {
    expect(
      (await rawRequest(port, 'GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n', '127.0.0.2'))
        .status,
    ).toBe(200);
    const m = await rawRequest(
      port,
      'GET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n',
      '127.0.0.2',
    );
    expect(m.status).toBe(200);
    expect(m.body).toContain('# HELP');
  });

  it('forwards an absolute-form target in origin form, and judges it like any other', async () => {
    const ok = await get(`http://relay.example/v1/models?x=1`, '127.0.0.2');
    expect(ok.status).toBe(200);
    expect(downstream.last().url).toBe('/v1/models?x=1');
    const seen = downstream.seen.length;
    const refused = await get(`http://relay.example/v1/models`, '127.0.0.3');
    expect(refused.status).toBe(403);
    expect(downstream.seen.length).toBe(seen);
    const reserved = await get(`http://relay.example//admin/api/me`, '127.0.0.3');
    expect(reserved.status).toBe(404);
    expect(downstream.seen.length).toBe(seen);
  });

  it('refuses a key holding a NUL or other non-printable byte with 400 invalid_key, binding and forwarding nothing', async () => {
    const before = await sql(stores.databaseUrl, 'SELECT count(*)::int AS n FROM bindings');
    const seen = downstream.seen.length;
    for (const target of [
      '/v1/models?key=abc%00def',
      '/v1/models?key=abc%0Adef',
      '/v1/models?key=%C3%A9abc',
    ]) {
      const r = await rawRequest(
        port,
        `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`,
        '127.0.0.4',
      );
      expect(r.status, target).toBe(400);
      expect(JSON.parse(r.body).error.code).toBe('invalid_key');
      expect(r.body).not.toContain('abc');
    }
    const after = await sql(stores.databaseUrl, 'SELECT count(*)::int AS n FROM bindings');
    expect(after).toEqual(before);
    expect(downstream.seen.length).toBe(seen);
  });
});
