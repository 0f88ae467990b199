import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { maskKey } from '@keypin/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { openWs } from './support/websocket';
import { dropStores, freshStores, sql } from './support/stores';
import { testPki } from './support/tls';

/**
 * Routes (docs/contract.md 10) against the real gateway: longest prefix and
 * stripping over two fake upstreams, https upstreams verified against a test
 * CA trusted through NODE_EXTRA_CA_CERTS (and one that is not trusted), a
 * server-side provider key that replaces the client's after the client's was
 * judged (a key offered as a WebSocket subprotocol included), a proxy token, per-route relay and timeout, no route → 404, and a
 * route created on one instance live on another within a second.
 */

let keyN = 0;
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;
/** The masked key KeyPin stores (TOKEN_NORMALIZE=newapi, the default, drops `sk-`). */
const display = (k: string) => maskKey(k.slice(3));

/** An HTTPS upstream on loopback answering a JSON echo (with the Host it was asked for). */
async function httpsUpstream(cert: string, key: string): Promise<{ server: HttpsServer; url: string }> {
  const server = createHttpsServer({ cert, key }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ tls: true, url: req.url, host: req.headers.host }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** A self-signed pair nobody trusts. */
function untrustedPair(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'keypin-untrusted-'));
  try {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-days', '1', '-subj', '/CN=untrusted', '-addext', 'subjectAltName=IP:127.0.0.1'],
        ...['-keyout', 'k.pem', '-out', 'c.pem'],
      ],
      { cwd: dir, stdio: 'pipe' },
    );
    return { cert: readFileSync(join(dir, 'c.pem'), 'utf8'), key: readFileSync(join(dir, 'k.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('routes', () => {
  const stores = freshStores('routes');
  const a = new FakeDownstream();
  const b = new FakeDownstream();
  const caDir = mkdtempSync(join(tmpdir(), 'keypin-ca-'));
  let trusted: { server: HttpsServer; url: string };
  let untrusted: { server: HttpsServer; url: string };
  let gw: GatewayProcess;
  let gw2: GatewayProcess | undefined;
  let admin: AdminClient;

  beforeAll(async () => {
    await a.start();
    await b.start();
    // A slow answer on A, for the per-route timeout.
    a.route = (req, res, seen) => {
      req.on('data', (c: Buffer) => (seen.bodyBytes += c.length));
      req.on('end', () => {
        const reply = () => {
          if (res.destroyed) return;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ upstream: 'a', url: req.url }));
        };
        if (req.url?.includes('slow')) setTimeout(reply, 3000);
        else if (req.url?.includes('refuse')) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end('{"error":"invalid key"}');
        } else reply();
      });
    };
    const pki = testPki();
    trusted = await httpsUpstream(pki.certPem, pki.keyPem);
    const u = untrustedPair();
    untrusted = await httpsUpstream(u.cert, u.key);
    writeFileSync(join(caDir, 'ca.pem'), pki.caPem);
    const routes = [
      { prefix: '/a/', upstream: a.url, strip_prefix: true },
      { prefix: '/a/deep/', upstream: b.url },
      { prefix: '/tls/', upstream: trusted.url, strip_prefix: true },
      { prefix: '/untrusted/', upstream: untrusted.url },
      {
        prefix: '/provider/',
        upstream: a.url,
        strip_prefix: true,
        upstream_headers: { authorization: 'Bearer ${env:TEST_PROVIDER_KEY}', 'x-team': 'blue' },
      },
      {
        prefix: '/locked/',
        upstream: b.url,
        require_header: { name: 'x-proxy-token', value: '${env:TEST_PROXY_TOKEN}' },
      },
      { prefix: '/plain/', upstream: b.url, relay: 'openai' },
      { prefix: '/quick/', upstream: a.url, timeout_seconds: 1 },
    ];
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      ROUTES: JSON.stringify(routes),
      NODE_EXTRA_CA_CERTS: join(caDir, 'ca.pem'),
      TEST_PROVIDER_KEY: 'provider-secret-1234',
      TEST_PROXY_TOKEN: 'shared-proxy-token',
      ACCESS_LOG: 'json',
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw2?.stop();
    await gw?.stop();
    await a.stop();
    await b.stop();
    trusted?.server.close();
    untrusted?.server.close();
    rmSync(caDir, { recursive: true, force: true });
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('sends the longest matching prefix to its upstream, stripping where asked', async () => {
    const k = newKey('lp');
    const r1 = await send(`${gw.url}/a/v1/models?x=1`, { from: '127.0.0.2', headers: bearer(k) });
    expect(r1.status).toBe(200);
    expect(a.last().url).toBe('/v1/models?x=1');
    const r2 = await send(`${gw.url}/a/deep/v1/models`, { from: '127.0.0.2', headers: bearer(k) });
    expect(r2.status).toBe(200);
    expect(b.last().url).toBe('/a/deep/v1/models');
    // The route's path resolved: `..` cannot move a request to another route's upstream.
    const before = b.seen.length;
    const r3 = await send(`${gw.url}/a/deep/../x`, { from: '127.0.0.2', headers: bearer(k) });
    expect(r3.status).toBe(200);
    expect(b.seen.length).toBe(before);
    expect(a.last().url).toBe('/x');
  });

  it('answers 404 no_route where nothing matches (no DOWNSTREAM_URL, no demo upstream)', async () => {
    const r = await send(`${gw.url}/v1/models`, { from: '127.0.0.2', headers: bearer(newKey('nr')) });
    expect(r.status).toBe(404);
    expect(r.json().error.code).toBe('no_route');
  });

  it('verifies https upstreams: a CA from NODE_EXTRA_CA_CERTS passes, an untrusted certificate is 502', async () => {
    const k = newKey('tls');
    const ok = await send(`${gw.url}/tls/v1/models`, { from: '127.0.0.2', headers: bearer(k) });
    expect(ok.status).toBe(200);
    const body = ok.json<{ tls: boolean; url: string; host: string }>();
    expect(body).toMatchObject({ tls: true, url: '/v1/models' });
    expect(body.host).toBe(new URL(trusted.url).host);
    const bad = await send(`${gw.url}/untrusted/v1/models`, { from: '127.0.0.2', headers: bearer(k) });
    expect(bad.status).toBe(502);
    expect(bad.json().error.code).toBe('bad_gateway');
  });

  it('judges and binds the client key, then sends the server-side provider key instead', async () => {
    const k = newKey('prov');
    const r = await send(`${gw.url}/provider/v1/chat?key=${k}&stream=1`, {
      from: '127.0.0.3',
      headers: { ...bearer(k), 'x-api-key': k, 'x-team': 'red' },
    });
    expect(r.status).toBe(200);
    const seen = a.last();
    expect(seen.url).toBe('/v1/chat?stream=1');
    expect(seen.headers.authorization).toBe('Bearer provider-secret-1234');
    expect(seen.headers['x-api-key']).toBeUndefined();
    expect(seen.headers['x-team']).toBe('blue');
    expect(JSON.stringify(seen.rawHeaders)).not.toContain(k);
    const bound = await sql<{ allowed_ips: string[] }>(
      stores.databaseUrl,
      'SELECT allowed_ips::text[] AS allowed_ips FROM bindings WHERE token_display = $1',
      [display(k)],
    );
    expect(bound).toEqual([{ allowed_ips: ['127.0.0.3/32'] }]);
    const elsewhere = await send(`${gw.url}/provider/v1/chat`, { from: '127.0.0.4', headers: bearer(k) });
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.json().error.code).toBe('ip_not_allowed');
  });

  it('keeps a first use the upstream refuses on a provider-key route (the 401 is about the provider key)', async () => {
    const boundKeys = async (keys: string[]) =>
      (
        await sql<{ token_display: string }>(
          stores.databaseUrl,
          'SELECT token_display FROM bindings WHERE token_display = ANY($1)',
          [keys.map(display)],
        )
      ).map((r) => r.token_display);
    const provider = newKey('prefuse');
    const relayed = newKey('rrefuse');
    const p = await send(`${gw.url}/provider/v1/refuse`, { from: '127.0.0.5', headers: bearer(provider) });
    const r = await send(`${gw.url}/a/v1/refuse`, { from: '127.0.0.5', headers: bearer(relayed) });
    expect([p.status, r.status]).toEqual([401, 401]);
    // The relay's 401 on an ordinary route unbinds its first use (contract 2.3 item 6) ...
    await waitFor(async () => (await boundKeys([relayed])).length === 0, 5000, 50);
    // ... the provider's on a provider-key route does not.
    expect(await boundKeys([provider])).toEqual([display(provider)]);
    const elsewhere = await send(`${gw.url}/provider/v1/chat`, {
      from: '127.0.0.6',
      headers: bearer(provider),
    });
    expect(elsewhere.status).toBe(403);
  });

  it('on a provider-key route, judges a key offered as a WebSocket subprotocol and never passes it on', async () => {
    const k = newKey('wsp');
    const wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (offered) => (offered.has('realtime') ? 'realtime' : false),
    });
    const upgrades: IncomingMessage[] = [];
    const server = (a as unknown as { server: Server }).server;
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      upgrades.push(req);
      wss.handleUpgrade(req, socket, head, (ws) => ws.send(req.headers['sec-websocket-protocol'] ?? ''));
    };
    server.on('upgrade', onUpgrade);
    try {
      const url = `ws://127.0.0.1:${gw.port}/provider/v1/realtime`;
      const protocols = ['realtime', `openai-insecure-api-key.${k}`];
      const open = await openWs(url, { from: '127.0.0.9', protocols });
      expect('ws' in open).toBe(true);
      if (!('ws' in open)) return;
      expect(open.ws.protocol).toBe('realtime');
      expect(await open.next()).toBe('realtime');
      open.ws.close();
      const seen = upgrades[upgrades.length - 1]!;
      expect(seen.url).toBe('/v1/realtime');
      expect(seen.headers.authorization).toBe('Bearer provider-secret-1234');
      expect(JSON.stringify(seen.rawHeaders)).not.toContain(k.slice(3));
      // The key offered as a subprotocol is the one KeyPin judged and bound.
      const bound = await sql<{ allowed_ips: string[] }>(
        stores.databaseUrl,
        'SELECT allowed_ips::text[] AS allowed_ips FROM bindings WHERE token_display = $1',
        [display(k)],
      );
      expect(bound).toEqual([{ allowed_ips: ['127.0.0.9/32'] }]);
      const elsewhere = await openWs(url, { from: '127.0.0.10', protocols });
      expect(elsewhere).toMatchObject({ status: 403 });
      expect(upgrades).toHaveLength(1);
    } finally {
      server.off('upgrade', onUpgrade);
      for (const c of wss.clients) c.terminate();
      wss.close();
    }
  });

  it('needs the proxy token on its route: missing or wrong → 401, right → forwarded without it', async () => {
    const k = newKey('tok');
    const before = b.seen.length;
    const missing = await send(`${gw.url}/locked/v1/models`, { from: '127.0.0.5', headers: bearer(k) });
    expect(missing.status).toBe(401);
    expect(missing.json().error.code).toBe('proxy_token_required');
    const wrong = await send(`${gw.url}/locked/v1/models`, {
      from: '127.0.0.5',
      headers: { ...bearer(k), 'x-proxy-token': 'shared-proxy-tokem' },
    });
    expect(wrong.status).toBe(401);
    const twice = await send(`${gw.url}/locked/v1/models`, {
      from: '127.0.0.5',
      headers: [
        ['authorization', `Bearer ${k}`],
        ['x-proxy-token', 'shared-proxy-token'],
        ['x-proxy-token', 'shared-proxy-token'],
      ],
    });
    expect(twice.status).toBe(401);
    expect(b.seen.length).toBe(before);
    // Nothing was bound by the refused attempts.
    const rows = await sql(stores.databaseUrl, 'SELECT 1 FROM bindings WHERE token_display = $1', [
      display(k),
    ]);
    expect(rows).toHaveLength(0);
    const right = await send(`${gw.url}/locked/v1/models`, {
      from: '127.0.0.5',
      headers: { ...bearer(k), 'X-Proxy-Token': 'shared-proxy-token' },
    });
    expect(right.status).toBe(200);
    expect(b.last().headers['x-proxy-token']).toBeUndefined();
    expect(b.last().headers.authorization).toBe(`Bearer ${k}`);
  });

  it('parses keys with the route relay', async () => {
    // Under the default relay (newapi, TOKEN_NORMALIZE=newapi) sk-X-1 and sk-X-2 are one key
    // (the suffix after the dash is cut); on a route with relay openai they are two.
    const base = `sk-rel${Date.now().toString(36)}`;
    expect((await send(`${gw.url}/a/m`, { from: '127.0.0.6', headers: bearer(`${base}-1`) })).status).toBe(
      200,
    );
    expect((await send(`${gw.url}/a/m`, { from: '127.0.0.7', headers: bearer(`${base}-2`) })).status).toBe(
      403,
    );
    const other = `sk-opn${Date.now().toString(36)}`;
    expect(
      (await send(`${gw.url}/plain/m`, { from: '127.0.0.6', headers: bearer(`${other}-1`) })).status,
    ).toBe(200);
    expect(
      (await send(`${gw.url}/plain/m`, { from: '127.0.0.7', headers: bearer(`${other}-2`) })).status,
    ).toBe(200);
  });

  it('applies the route timeout: 504 after about a second', async () => {
    const started = Date.now();
    const r = await send(`${gw.url}/quick/slow`, { from: '127.0.0.2', headers: bearer(newKey('to')) });
    const took = Date.now() - started;
    expect(r.status).toBe(504);
    expect(r.json().error.code).toBe('gateway_timeout');
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(2500);
  });

  it('names the route in the access log, never the token or the query', async () => {
    const k = newKey('log');
    await send(`${gw.url}/a/v1/x?secret=1`, { from: '127.0.0.2', headers: bearer(k) });
    await waitFor(() => gw.logs.some((l) => l['path'] === '/a/v1/x'), 3000);
    const line = gw.logs.find((l) => l['path'] === '/a/v1/x')!;
    expect(line['route']).toBe('/a/');
    expect(JSON.stringify(gw.logs)).not.toContain('shared-proxy-token');
    expect(JSON.stringify(gw.logs)).not.toContain('provider-secret-1234');
    expect(JSON.stringify(line)).not.toContain('secret=1');
  });

  it('makes a route created on one instance live on another within a second', async () => {
    gw2 = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      NODE_EXTRA_CA_CERTS: join(caDir, 'ca.pem'),
      TEST_PROVIDER_KEY: 'provider-secret-1234',
      TEST_PROXY_TOKEN: 'shared-proxy-token',
      ...ADMIN_ENV,
    });
    const k = newKey('live');
    const miss = await send(`${gw2.url}/fresh/v1/models`, { from: '127.0.0.8', headers: bearer(k) });
    expect(miss.status).toBe(404);
    const created = await admin.post('/admin/api/routes', {
      prefix: '/fresh/',
      upstream: b.url,
      strip_prefix: true,
    });
    expect(created.status).toBe(201);
    const took = await waitFor(
      async () =>
        (await send(`${gw2!.url}/fresh/v1/models`, { from: '127.0.0.8', headers: bearer(k) })).status === 200,
      1000,
      20,
    );
    expect(took).toBeLessThan(1000);
    expect(b.last().url).toBe('/v1/models');
    const id = created.json<{ id: number }>().id;
    expect((await admin.delete(`/admin/api/routes/${id}`)).status).toBeLessThan(300);
    await waitFor(
      async () =>
        (await send(`${gw2!.url}/fresh/v1/models`, { from: '127.0.0.8', headers: bearer(k) })).status === 404,
      1000,
      20,
    );
  });
});
