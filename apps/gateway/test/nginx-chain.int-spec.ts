/**
 * The production chain (docs/contract.md sections 6 and 10): the project's own
 * nginx configuration (nginx/keypin.conf, rendered into a temporary prefix
 * with only addresses, ports and paths rewritten) in front of TWO gateway
 * processes that share one PostgreSQL database and one Redis prefix.
 *
 * Two nginx instances of that file: one whose plain HTTP port answers like
 * TLS (`serve`, the file's mode for TLS ended in front of nginx), and one
 * exactly as shipped (`redirect`), spoken to over TLS with a throwaway CA.
 *
 * Shows: clients are bound and judged by their own address whatever
 * X-Real-IP / X-Forwarded-For they forge, over plain HTTP, HTTPS and HTTP/2;
 * SSE arrives event by event and uploads stream (also over HTTP/2); a
 * WebSocket works (also wss); the console is served from disk at /admin/ui/
 * with its security headers and HSTS over TLS, and runs in Chromium under its
 * Content-Security-Policy without a violation; proxied answers keep their
 * bytes and headers; plain HTTP redirects to https but for ACME challenges;
 * TLS below 1.2 is refused; /metrics is not reachable; a ban made through one
 * instance's admin API is enforced by both within 1 s; logins are rate
 * limited (429 in the contract's shape); the access log holds no query
 * strings.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions, createServer as createTlsServer } from 'node:tls';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClientOptions, WebSocket, WebSocketServer } from 'ws';
import { ADMIN_ENV, ADMIN_PASSWORD, ADMIN_USERNAME, AdminClient } from './support/admin-client';
import { FakeDownstream, type SeenRequest } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send, type Reply } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { CONSOLE_DIR, NGINX_CONF, type RunningNginx, startNginx } from './support/nginx';
import { rawRequest } from './support/raw-http';
import { readSse } from './support/sse';
import { connectH2, sendH2, sendTls, TLS_HOST, testPki, type TlsReply } from './support/tls';
import { openWs } from './support/websocket';

let keyN = 0;
/** A key no other test uses (no dash after `sk-`, so it stays whole under newapi). */
const newKey = () => `sk-ngx${randomBytes(4).toString('hex')}x${++keyN}`;

// -------------------------------------------------------------- downstream

/** When each SSE event was written by the downstream (performance.now()). */
const sseWrittenAt: number[] = [];

/** What the relay answers on /bytes: random bytes and headers a console would also send. */
const relayBytes = randomBytes(256 * 1024);
const RELAY_HEADERS = {
  'content-type': 'application/octet-stream',
  'content-length': String(relayBytes.length),
  'content-security-policy': "sandbox; default-src 'none'",
  'x-frame-options': 'SAMEORIGIN',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'origin',
  'cache-control': 'private, max-age=7',
  'strict-transport-security': 'max-age=5',
  'x-relay-header': 'kept as sent',
};

function router(req: IncomingMessage, res: ServerResponse, seen: SeenRequest): void {
  req.on('data', (c: Buffer) => (seen.bodyBytes += c.length));
  if ((req.url ?? '').split('?')[0] === '/sse') {
    // Five events, 200 ms apart (no X-Accel-Buffering: proxy_buffering off must suffice).
    sseWrittenAt.length = 0;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    const emit = () => {
      n++;
      sseWrittenAt.push(performance.now());
      res.write(`id: ${n}\ndata: {"n":${n}}\n\n`);
      if (n === 5) {
        clearInterval(t);
        res.end();
      }
    };
    const t = setInterval(emit, 200);
    res.on('close', () => clearInterval(t));
    emit();
    return;
  }
  if ((req.url ?? '').split('?')[0] === '/bytes') {
    req.on('end', () => {
      res.writeHead(200, RELAY_HEADERS);
      res.end(relayBytes);
    });
    req.resume();
    return;
  }
  if ((req.url ?? '').split('?')[0] === '/upload') {
    // Answers at once, before the body is complete, then reports the total.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('head seen\n');
    req.on('end', () => res.end(`received ${seen.bodyBytes}\n`));
    return;
  }
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, url: req.url, xRealIp: req.headers['x-real-ip'] ?? null }));
  });
}

const upgradedSockets = new Set<Socket>();
const wsSeen: IncomingHttpHeaders[] = [];

/** An echo WebSocket server on the fake downstream's own HTTP server. */
function attachWebSocket(down: FakeDownstream): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true });
  const server = (down as unknown as { server: Server }).server;
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgradedSockets.add(socket);
    socket.on('close', () => upgradedSockets.delete(socket));
    wss.handleUpgrade(req, socket, head, (ws) => {
      wsSeen.push(req.headers);
      ws.send('hello from downstream');
      ws.on('message', (data) => ws.send(`echo:${(data as Buffer).toString('utf8')}`));
    });
  });
  return wss;
}

/** `keypin_requests_total{decision="…"}` of one instance, read from its own /metrics. */
async function decisions(gw: GatewayProcess, decision: string): Promise<number> {
  const r = await send(`${gw.url}/metrics`, { from: '127.0.0.250' });
  expect(r.status).toBe(200);
  const m = new RegExp(`^keypin_requests_total\\{decision="${decision}"\\} (\\d+)`, 'm').exec(r.body);
  return m ? Number(m[1]) : 0;
}

const errorCode = (r: Reply): string | undefined => {
  try {
    return r.json<{ error?: { code?: string } }>().error?.code;
  } catch {
    return undefined;
  }
};

// ------------------------------------------------------------ TLS helpers

/** The policies nginx/keypin.conf sends (its `map $keypin_area $keypin_csp`). */
const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; " +
  "frame-ancestors 'none'";
const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const ADMIN_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const HSTS = 'max-age=31536000';
const SECURITY_HEADERS = [
  'content-security-policy',
  'x-frame-options',
  'x-content-type-options',
  'referrer-policy',
  'strict-transport-security',
];

/** How many times a header line came (HTTP/1.1 raw headers). */
const count = (r: TlsReply, name: string) =>
  r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === name).length;

/** Response headers a proxy may legitimately differ in (connection management, its own name, the clock). */
const comparable = (h: IncomingHttpHeaders) =>
  Object.fromEntries(
    Object.entries(h).filter(
      ([k]) => !['date', 'connection', 'keep-alive', 'transfer-encoding', 'server'].includes(k),
    ),
  );

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

// ------------------------------------------------------------------- tests

describe('nginx (nginx/keypin.conf) in front of two gateways sharing PostgreSQL and Redis', () => {
  const stores = freshStores('nginx_chain');
  const down = new FakeDownstream();
  let wss: WebSocketServer | undefined;
  let gwA: GatewayProcess | undefined;
  let gwB: GatewayProcess | undefined;
  let nginx: RunningNginx | undefined;
  /** The same file as shipped (plain HTTP redirects), spoken to over TLS. */
  let nginxTls: RunningNginx | undefined;
  /** The chain's address: every client request goes through nginx. */
  const front = (path: string) => `${nginx!.url}${path}`;
  /** The shipped chain's TLS address. */
  const secure = (path: string) => `${nginxTls!.tlsUrl}${path}`;
  const trust = () => ({ ca: nginxTls!.caPem });

  type BindingRow = { id: string; first_ip: string; allowed_ips: string[]; status: string };
  const bindingsFrom = (ip: string) =>
    sql<BindingRow>(
      stores.databaseUrl,
      `SELECT id, host(first_ip) AS first_ip, allowed_ips::text[] AS allowed_ips, status
         FROM bindings WHERE first_ip = $1::inet`,
      [ip],
    );

  beforeAll(async () => {
    await down.start();
    down.route = router;
    wss = attachWebSocket(down);
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: down.url,
      // nginx connects from 127.0.0.1: the only peer whose X-Real-IP is believed.
      TRUSTED_PROXIES: '127.0.0.1/32',
      // Shared, as in production: a console session made on one instance
      // holds on the next request's (round robin through nginx).
      ADMIN_JWT_SECRET: 'nginx-chain-jwt-secret-0123456789abcdef0123456789',
      LOG_LEVEL: 'warn',
      ...ADMIN_ENV,
    };
    gwA = await startGateway({ ...env, LOG_LEVEL: 'info' });
    gwB = await startGateway({ ...env, LOG_LEVEL: 'info' });
    nginx = await startNginx([gwA.port, gwB.port]);
    nginxTls = await startNginx([gwA.port, gwB.port], { plainHttp: 'redirect' });
  });

  afterAll(async () => {
    await nginx?.stop();
    await nginxTls?.stop();
    await Promise.all([gwA?.stop(), gwB?.stop()]);
    for (const c of wss?.clients ?? []) c.terminate();
    wss?.close();
    for (const s of upgradedSockets) s.destroy();
    await down.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('binds and judges each client by its own address, whatever X-Real-IP / X-Forwarded-For it forges', async () => {
    const keyA = newKey();
    const keyB = newKey();
    const forged = (ip: string): [string, string][] => [
      ['x-real-ip', ip],
      ['x-forwarded-for', `${ip}, 127.0.0.1`],
    ];

    // 127.0.0.2 claims to be 127.0.0.9: bound to 127.0.0.2.
    const a = await send(front('/v1/models'), {
      from: '127.0.0.2',
      headers: [['authorization', `Bearer ${keyA}`], ...forged('127.0.0.9')],
    });
    expect(a.status, a.body).toBe(200);
    const seenA = down.last();
    expect(seenA.headers['x-real-ip']).toBe('127.0.0.2');
    expect(seenA.headers['x-forwarded-for']).toBe('127.0.0.2');
    expect(JSON.stringify(seenA.rawHeaders)).not.toContain('127.0.0.9');
    expect(await bindingsFrom('127.0.0.2')).toEqual([
      { id: expect.any(String), first_ip: '127.0.0.2', allowed_ips: ['127.0.0.2/32'], status: 'active' },
    ]);

    // 127.0.0.3 claims to be 127.0.0.2: its own key is bound to 127.0.0.3 ...
    const b = await send(front('/v1/models'), {
      from: '127.0.0.3',
      headers: [['authorization', `Bearer ${keyB}`], ...forged('127.0.0.2')],
    });
    expect(b.status, b.body).toBe(200);
    expect(down.last().headers['x-real-ip']).toBe('127.0.0.3');
    expect((await bindingsFrom('127.0.0.3')).map((r) => r.allowed_ips)).toEqual([['127.0.0.3/32']]);

    // ... and 127.0.0.2's key is refused to it, on every instance (round robin).
    const seenBefore = down.seen.length;
    for (let i = 0; i < 4; i++) {
      const stolen = await send(front('/v1/models'), {
        from: '127.0.0.3',
        headers: [['authorization', `Bearer ${keyA}`], ...forged('127.0.0.2')],
      });
      expect(stolen.status, stolen.body).toBe(403);
      expect(stolen.json().error).toMatchObject({ code: 'ip_not_allowed', type: 'keypin_error' });
      expect(stolen.json().error.message).toContain('127.0.0.3');
      expect(stolen.body).not.toContain('127.0.0.2');
    }
    expect(down.seen.length).toBe(seenBefore);

    // The owner still passes, also with two forged X-Real-IP lines (nginx replaces them all).
    for (let i = 0; i < 4; i++) {
      const own = await send(front('/v1/models'), {
        from: '127.0.0.2',
        headers: [
          ['authorization', `Bearer ${keyA}`],
          ['x-real-ip', '127.0.0.3'],
          ['x-real-ip', '10.0.0.1'],
        ],
      });
      expect(own.status, own.body).toBe(200);
      expect(down.last().headers['x-real-ip']).toBe('127.0.0.2');
    }

    // The intercepts name the real caller.
    const bindingA = (await bindingsFrom('127.0.0.2'))[0]!;
    const intercepts = async () =>
      Number(
        (
          await sql<{ n: string }>(
            stores.databaseUrl,
            `SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE binding_id = $1 AND host(attempt_ip) = '127.0.0.3'`,
            [bindingA.id],
          )
        )[0]!.n,
      );
    // Normally well under a second. Up to 20 s passes (the gateway writes a
    // batch itself when no worker has after 15 s), but a slow arrival is
    // reported with what the gateways said, to be looked into. (This check
    // once found another test's spooled intercept replayed into this
    // database: the spool is now kept per database.)
    const waitedMs = await waitFor(async () => (await intercepts()) >= 4, 20_000, 50).catch(() => -1);
    const said = [
      ...[gwA!, gwB!].flatMap((g, i) =>
        g.logs.filter((l) => Number(l['level']) >= 40).map((l) => `${'AB'[i]}: ${JSON.stringify(l)}`),
      ),
      `nginx: ${nginx!.output()}`,
      `rows: ${JSON.stringify(
        await sql(
          stores.databaseUrl,
          `SELECT binding_id, host(attempt_ip) AS ip, method, path, intercepted_at
             FROM intercept_logs ORDER BY intercepted_at`,
        ),
      )}`,
    ];
    if (waitedMs < 0 || waitedMs > 5000) {
      console.warn(`intercept rows took ${waitedMs} ms (-1: never); gateway warnings:\n${said.join('\n')}`);
    }
    expect(await intercepts(), said.join('\n')).toBe(4);
  });

  it('relays Server-Sent Events through nginx event by event', async () => {
    const r = await readSse(front('/sse?stream=true'), '127.0.0.4', bearer(newKey()));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/event-stream');
    expect(r.complete).toBe(true);
    expect(r.events.map((e) => e.text)).toEqual([1, 2, 3, 4, 5].map((n) => `id: ${n}\ndata: {"n":${n}}`));
    const gaps = r.events.slice(1).map((e, i) => e.at - r.events[i]!.at);
    const lags = r.events.map((e, i) => e.at - sseWrittenAt[i]!);
    console.log(
      `SSE through nginx: gaps ${gaps.map((g) => g.toFixed(0)).join('/')} ms, ` +
        `lag behind the write ${lags.map((l) => l.toFixed(1)).join('/')} ms`,
    );
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(150);
    for (const l of lags) expect(l).toBeLessThan(100);
    expect(r.endedAt - r.events[0]!.at).toBeGreaterThan(600);
    // nginx forwards small SSE writes promptly even with buffering on, so the
    // timing alone cannot tell: the configuration must also say it.
    const conf = readFileSync(NGINX_CONF, 'utf8').replace(/#.*$/gm, '');
    expect(conf).toMatch(/^\s*proxy_buffering\s+off;/m);
    expect(conf).toMatch(/^\s*proxy_request_buffering\s+off;/m);
    expect(conf).not.toMatch(/proxy_(request_)?buffering\s+on/);
  });

  it('streams a request body through nginx (the downstream answers before the upload ends)', async () => {
    const u = new URL(front('/upload'));
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      localAddress: '127.0.0.4',
      agent: false,
      headers: {
        ...bearer(newKey()),
        'content-type': 'application/octet-stream',
        'transfer-encoding': 'chunked',
      },
    });
    const response = new Promise<IncomingMessage>((res, rej) => {
      req.once('response', res);
      req.on('error', rej);
      setTimeout(
        () => rej(new Error('no response while the upload was open: nginx buffers request bodies')),
        3000,
      ).unref();
    });
    req.write(Buffer.alloc(64 * 1024, 0x61));
    const res = await response;
    expect(res.statusCode).toBe(200);
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (s: string) => (body += s));
    const ended = new Promise<void>((r) => res.once('end', r));
    req.end(Buffer.alloc(64 * 1024, 0x62));
    await ended;
    expect(body).toBe(`head seen\nreceived ${128 * 1024}\n`);
  });

  it('passes a WebSocket upgrade through nginx and the gateway (echo), judged by the real address', async () => {
    const key = newKey();
    const wsUrl = `${nginx!.url.replace(/^http/, 'ws')}/v1/realtime`;
    const o = await openWs(wsUrl, {
      from: '127.0.0.5',
      headers: { ...bearer(key), 'x-real-ip': '127.0.0.77' },
      limitMs: 5000,
    });
    if (!('ws' in o)) throw new Error(`upgrade refused: ${o.status} ${o.body}`);
    try {
      expect(await o.next()).toBe('hello from downstream');
      o.ws.send('ping through nginx');
      expect(await o.next()).toBe('echo:ping through nginx');
    } finally {
      o.ws.close();
    }
    expect(wsSeen[wsSeen.length - 1]!['x-real-ip']).toBe('127.0.0.5');
    expect((await bindingsFrom('127.0.0.5')).length).toBe(1);

    const refused = await openWs(wsUrl, {
      from: '127.0.0.6',
      headers: { ...bearer(key), 'x-real-ip': '127.0.0.5' },
      limitMs: 5000,
    });
    if ('ws' in refused) {
      refused.ws.terminate();
      throw new Error('a key bound to 127.0.0.5 was tunnelled for 127.0.0.6');
    }
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error.code).toBe('ip_not_allowed');
  });

  it('serves the built console from disk at /admin/ui/', async () => {
    const indexFile = join(CONSOLE_DIR, 'index.html');
    if (!existsSync(indexFile)) {
      throw new Error(
        `the admin console is not built (${indexFile} is missing): run "npx nx run-many -t build" (npm test does)`,
      );
    }
    const index = readFileSync(indexFile, 'utf8');
    const page = await send(front('/admin/ui/'), { from: '127.0.0.20' });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toBe(index);

    // A client-side route gets the app; /admin/ui redirects to /admin/ui/.
    const route = await send(front('/admin/ui/bindings'), { from: '127.0.0.20' });
    expect(route.status).toBe(200);
    expect(route.body).toBe(index);
    const bare = await send(front('/admin/ui'), { from: '127.0.0.20' });
    expect(bare.status).toBe(308);
    expect(bare.headers['location']).toBe('/admin/ui/');

    // The script the page loads, with a type a browser will execute.
    const script = /src="(\/admin\/ui\/assets\/[^"]+\.js)"/.exec(index)?.[1];
    expect(script, 'index.html references a script under /admin/ui/assets/').toBeDefined();
    const js = await send(front(script!), { from: '127.0.0.20' });
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^application\/javascript/);
    expect(js.body).toBe(readFileSync(join(CONSOLE_DIR, script!.slice('/admin/ui/'.length)), 'utf8'));
    expect(js.headers['cache-control']).toContain('immutable');
    expect((await send(front('/admin/ui/assets/no-such-file.js'), { from: '127.0.0.20' })).status).toBe(404);

    // From disk: nginx's access log shows no upstream for these requests.
    const lines = await nginx!.accessLogOf('127.0.0.20', 5);
    expect(lines.length).toBe(5);
    for (const l of lines) expect(l['upstream']).toMatch(/^-?$/);
  });

  it('keeps /metrics unreachable through nginx (the gateways still serve it directly)', async () => {
    for (const path of ['/metrics', '/metrics/', '/metrics?format=text', '//metrics', '/%6detrics']) {
      const r = await send(front(path), { from: '127.0.0.21' });
      expect(r.status, path).toBe(404);
      expect(r.body, path).not.toContain('keypin_requests_total');
    }
    const direct = await send(`${gwA!.url}/metrics`, { from: '127.0.0.250' });
    expect(direct.status).toBe(200);
    expect(direct.body).toContain('keypin_requests_total');
  });

  it('enforces a ban made through instance A on both instances within 1 s', async () => {
    const key = newKey();
    const from = '127.0.0.7';
    // Bound through nginx; both instances see (and cache) the binding.
    for (let i = 0; i < 4; i++) {
      const r = await send(front('/v1/chat/completions'), { from, headers: bearer(key) });
      expect(r.status, r.body).toBe(200);
    }
    const [binding] = await bindingsFrom(from);
    expect(binding).toBeDefined();
    const bannedBefore = [await decisions(gwA!, 'banned'), await decisions(gwB!, 'banned')];

    const admin = await AdminClient.login(gwA!.url);
    const ban = await admin.post('/admin/api/bindings/ban', { id: Number(binding!.id) });
    expect(ban.status, ban.body).toBe(200);
    const bannedAt = performance.now();

    // Requests through nginx (round robin over A and B) until 10 in a row
    // are refused as banned; that run must start within 1 s of the ban.
    let streak = 0;
    let streakStart = 0;
    const statuses: string[] = [];
    while (streak < 10) {
      const at = performance.now();
      if (at - bannedAt > 5000) throw new Error(`ban not enforced everywhere: ${statuses.join(' ')}`);
      const r = await send(front('/v1/chat/completions'), { from, headers: bearer(key) });
      statuses.push(`${Math.round(at - bannedAt)}ms:${r.status}`);
      if (r.status === 403 && errorCode(r) === 'key_banned') {
        if (streak++ === 0) streakStart = at;
      } else {
        streak = 0;
      }
    }
    console.log(`ban through A enforced via nginx after ${(streakStart - bannedAt).toFixed(0)} ms`);
    expect(streakStart - bannedAt).toBeLessThan(1000);

    // Both instances refused some of those requests, and each refuses directly.
    expect(await decisions(gwA!, 'banned')).toBeGreaterThan(bannedBefore[0]!);
    expect(await decisions(gwB!, 'banned')).toBeGreaterThan(bannedBefore[1]!);
    for (const gw of [gwA!, gwB!]) {
      const r = await send(`${gw.url}/v1/chat/completions`, { from, headers: bearer(key) });
      expect(r.status).toBe(403);
      expect(errorCode(r)).toBe('key_banned');
    }
  });

  it('rate limits /admin/api/login per client address', async () => {
    const attempt = (from: string, i: number) =>
      send(front('/admin/api/login'), {
        method: 'POST',
        from,
        headers: { 'content-type': 'application/json' },
        // A different username each time: the gateway's own lockout (per username) stays out of it.
        body: JSON.stringify({ username: `nobody-${i}`, password: 'wrong-password-123' }),
      });
    const statuses: number[] = [];
    let limited: Reply | undefined;
    for (let i = 0; i < 13; i++) {
      const r = await attempt('127.0.0.60', i);
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    // 1 + a burst of 10 reach the gateway (401), then nginx answers.
    expect(statuses.slice(0, 11)).toEqual(Array(11).fill(401));
    expect(statuses[12]).toBe(429);
    expect(limited!.json().error).toMatchObject({ code: 'too_many_attempts', type: 'keypin_error' });
    expect(limited!.headers['retry-after']).toBe('60');
    // Another address is not affected.
    expect((await attempt('127.0.0.61', 99)).status).toBe(401);
  });

  it('writes no query string to the access log (a raw key can be in ?key= or ?search=)', async () => {
    const key = newKey();
    const q = await send(front(`/v1/models?key=${key}`), { from: '127.0.0.8' });
    expect(q.status, q.body).toBe(200);
    expect(down.last().url).toBe(`/v1/models?key=${key}`);
    const s = await send(front(`/admin/api/bindings?search=${encodeURIComponent(key)}`), {
      from: '127.0.0.8',
    });
    expect(s.status).toBe(401);
    const mine = await nginx!.accessLogOf('127.0.0.8', 2);
    const log = nginx!.accessLog();
    expect(mine.map((l) => l['path'])).toEqual(['/v1/models', '/admin/api/bindings']);
    expect(log).not.toContain(key.slice(3));
    expect(log).not.toContain('?');
  });
  // ------------------------------------------------ TLS, as shipped (nginxTls)

  it('terminates TLS 1.3 and 1.2 with the configured certificate, offers HTTP/2, and refuses TLS 1.1 and CBC suites', async () => {
    type Handshake = {
      protocol?: string | null;
      alpn?: string | false | null;
      authorized?: boolean;
      san?: string;
      cipher?: string;
      error?: string;
    };
    const handshake = (port: number, o: ConnectionOptions): Promise<Handshake> =>
      new Promise((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port, servername: TLS_HOST, ...o });
        s.setTimeout(5000, () => {
          s.destroy();
          resolve({ error: 'timeout' });
        });
        s.once('secureConnect', () => {
          resolve({
            protocol: s.getProtocol(),
            alpn: s.alpnProtocol,
            authorized: s.authorized,
            san: s.getPeerCertificate().subjectaltname,
            cipher: s.getCipher().name,
          });
          s.end();
        });
        s.once('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
      });
    const port = nginxTls!.tlsPort;

    // Verified against the test CA alone: nginx serves the configured pair.
    const v13 = await handshake(port, { ...trust(), ALPNProtocols: ['h2', 'http/1.1'] });
    expect(v13).toMatchObject({ protocol: 'TLSv1.3', alpn: 'h2', authorized: true });
    expect(v13.san).toContain(`DNS:${TLS_HOST}`);
    const v12 = await handshake(port, { ...trust(), maxVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] });
    expect(v12).toMatchObject({ protocol: 'TLSv1.2', alpn: 'http/1.1', authorized: true });
    expect(v12.cipher).toMatch(/^ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);

    // Old clients: a TLS 1.1 one and a TLS 1.2 one offering only a CBC suite.
    // Both can connect to a permissive server (a throwaway Node one with the
    // same pair), so a refusal below is nginx's.
    const tls11: ConnectionOptions = {
      ...trust(),
      minVersion: 'TLSv1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    };
    const cbc: ConnectionOptions = { ...trust(), maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' };
    const pki = testPki();
    const permissive = createTlsServer(
      { key: pki.keyPem, cert: pki.certPem, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' },
      (c) => c.end(),
    );
    await new Promise<void>((r) => permissive.listen(0, '127.0.0.1', r));
    try {
      const control = (permissive.address() as AddressInfo).port;
      expect(await handshake(control, tls11)).toMatchObject({ protocol: 'TLSv1.1', authorized: true });
      expect(await handshake(control, cbc)).toMatchObject({
        protocol: 'TLSv1.2',
        cipher: 'ECDHE-ECDSA-AES128-SHA',
      });
    } finally {
      permissive.close();
    }
    for (const [what, o] of [
      ['TLS 1.1', tls11],
      ['CBC only', cbc],
    ] as const) {
      const refused = await handshake(port, o);
      expect(refused.protocol, what).toBeUndefined();
      expect(refused.error, what).toBeDefined();
    }
  });

  it('binds and judges each client by its own address over HTTPS and HTTP/2, whatever X-Real-IP it forges', async () => {
    const key = newKey();
    const first = await sendTls(secure('/v1/models'), {
      ...trust(),
      from: '127.0.0.30',
      headers: [
        ['authorization', `Bearer ${key}`],
        ['x-real-ip', '127.0.0.99'],
        ['x-forwarded-for', '127.0.0.99, 127.0.0.1'],
      ],
    });
    expect(first.status, first.body).toBe(200);
    expect(first).toMatchObject({ alpn: 'http/1.1', tlsVersion: 'TLSv1.3' });
    const seen = down.last();
    expect(seen.headers['x-real-ip']).toBe('127.0.0.30');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.30');
    expect(JSON.stringify(seen.rawHeaders)).not.toContain('127.0.0.99');
    expect((await bindingsFrom('127.0.0.30')).map((b) => b.allowed_ips)).toEqual([['127.0.0.30/32']]);

    // Over HTTP/2 from another address, claiming to be the owner: refused, naming the real caller.
    const seenBefore = down.seen.length;
    const stolen = await sendH2(secure('/v1/models'), {
      ...trust(),
      from: '127.0.0.31',
      headers: { authorization: `Bearer ${key}`, 'x-real-ip': '127.0.0.30', 'x-forwarded-for': '127.0.0.30' },
    });
    expect(stolen.alpn).toBe('h2');
    expect(stolen.status, stolen.body).toBe(403);
    expect(stolen.json().error).toMatchObject({ code: 'ip_not_allowed', type: 'keypin_error' });
    expect(stolen.json().error.message).toContain('127.0.0.31');
    expect(down.seen.length).toBe(seenBefore);

    // The owner over HTTP/2 passes, judged by its own address.
    const own = await sendH2(secure('/v1/models'), {
      ...trust(),
      from: '127.0.0.30',
      headers: { authorization: `Bearer ${key}`, 'x-real-ip': '127.0.0.31' },
    });
    expect(own.status, own.body).toBe(200);
    expect(down.last().headers['x-real-ip']).toBe('127.0.0.30');
    expect((await nginxTls!.accessLogOf('127.0.0.31', 1)).map((l) => l['protocol'])).toEqual(['HTTP/2.0']);
  });

  it('redirects plain HTTP to https with 308 (method kept) and answers only ACME challenges there', async () => {
    const from = '127.0.0.32';
    const plain = (path: string) => `${nginxTls!.url}${path}`;
    const seenBefore = down.seen.length;

    const get = await send(plain('/v1/models?x=1'), {
      from,
      headers: { host: TLS_HOST, authorization: `Bearer ${newKey()}` },
    });
    expect(get.status).toBe(308);
    expect(get.headers['location']).toBe(`https://${TLS_HOST}/v1/models?x=1`);
    expect(get.headers['strict-transport-security']).toBeUndefined();
    const post = await send(plain('/admin/api/login'), {
      method: 'POST',
      from,
      headers: { host: TLS_HOST, 'content-type': 'application/json' },
      body: JSON.stringify({ username: ADMIN_USERNAME, password: ADMIN_PASSWORD }),
    });
    expect(post.status).toBe(308);
    expect(post.headers['location']).toBe(`https://${TLS_HOST}/admin/api/login`);
    expect(post.body).not.toContain('access_token');
    // Everything else too.
    for (const path of ['/admin/ui/', '/health', '/metrics']) {
      const r = await send(plain(path), { from, headers: { host: TLS_HOST } });
      expect(r.status, path).toBe(308);
      expect(r.headers['location'], path).toBe(`https://${TLS_HOST}${path}`);
    }

    // A way out of the ACME directory is judged by the normalised path: redirected.
    // (Raw: Node's client would resolve the dot segments itself.)
    const out = await rawRequest(
      nginxTls!.port,
      `GET /.well-known/acme-challenge/../../v1/models HTTP/1.1\r\nHost: ${TLS_HOST}\r\nConnection: close\r\n\r\n`,
      from,
    );
    expect(out.status).toBe(308);
    expect(out.text).toContain(
      `\r\nLocation: https://${TLS_HOST}/.well-known/acme-challenge/../../v1/models\r\n`,
    );

    // ACME HTTP-01: the token file from the webroot, over plain HTTP; a missing one is JSON 404.
    const token = `tok-${randomBytes(6).toString('hex')}`;
    writeFileSync(join(nginxTls!.acmeDir, '.well-known', 'acme-challenge', token), `${token}.thumbprint`);
    const acme = await send(plain(`/.well-known/acme-challenge/${token}`), {
      from,
      headers: { host: TLS_HOST },
    });
    expect(acme.status).toBe(200);
    expect(acme.body).toBe(`${token}.thumbprint`);
    const missing = await send(plain('/.well-known/acme-challenge/no-such-token'), { from });
    expect(missing.status).toBe(404);
    expect(missing.json().error).toMatchObject({ code: 'not_found', type: 'keypin_error' });

    // None of it reached a gateway.
    expect(down.seen.length).toBe(seenBefore);
    const lines = await nginxTls!.accessLogOf(from, 8);
    expect(lines.length).toBeGreaterThanOrEqual(8);
    for (const l of lines) expect(l['upstream']).toMatch(/^-?$/);
    // Over TLS the same path is simply answered.
    expect((await sendTls(secure('/health'), { ...trust(), from })).status).toBe(200);
  });

  it('sends the console and the admin API their security headers over TLS, HSTS on every TLS answer, each once', async () => {
    const from = '127.0.0.33';
    const hasSecuritySet = (r: TlsReply, csp: string, what: string) => {
      expect(r.headers['content-security-policy'], what).toBe(csp);
      expect(r.headers['x-frame-options'], what).toBe('DENY');
      expect(r.headers['x-content-type-options'], what).toBe('nosniff');
      expect(r.headers['referrer-policy'], what).toBe('no-referrer');
      expect(r.headers['strict-transport-security'], what).toBe(HSTS);
      for (const h of SECURITY_HEADERS) expect(count(r, h), `${what}: ${h}`).toBe(1);
    };

    // The console: the page, a client-side route, a script.
    const index = readFileSync(join(CONSOLE_DIR, 'index.html'), 'utf8');
    const page = await sendTls(secure('/admin/ui/'), { ...trust(), from });
    expect(page.status).toBe(200);
    expect(page.body).toBe(index);
    hasSecuritySet(page, CONSOLE_CSP, '/admin/ui/');
    expect(page.headers['cache-control']).toBe('no-cache');
    const route = await sendTls(secure('/admin/ui/bindings'), { ...trust(), from });
    expect(route.body).toBe(index);
    hasSecuritySet(route, CONSOLE_CSP, '/admin/ui/bindings');
    const script = /src="(\/admin\/ui\/assets\/[^"]+\.js)"/.exec(index)?.[1];
    expect(script).toBeDefined();
    const js = await sendTls(secure(script!), { ...trust(), from });
    expect(js.status).toBe(200);
    hasSecuritySet(js, CONSOLE_CSP, script!);
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');

    // The admin API's answers (the gateway's), its CSV export (which sets
    // nosniff itself: still sent once) and Swagger UI.
    const me = await sendTls(secure('/admin/api/me'), { ...trust(), from });
    expect(me.status).toBe(401);
    expect(me.json().error).toMatchObject({ type: 'keypin_error' });
    hasSecuritySet(me, ADMIN_CSP, '/admin/api/me');
    const admin = await AdminClient.login(gwA!.url);
    const auth = { authorization: `Bearer ${admin.token}` };
    const direct = await send(`${gwA!.url}/admin/api/logs/export`, { from: '127.0.0.250', headers: auth });
    expect(direct.headers['x-content-type-options']).toBe('nosniff');
    const csv = await sendTls(secure('/admin/api/logs/export'), { ...trust(), from, headers: auth });
    expect(csv.status, csv.body).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    hasSecuritySet(csv, ADMIN_CSP, '/admin/api/logs/export');
    const docs = await sendTls(secure('/admin/api/docs'), { ...trust(), from });
    expect(docs.status, docs.body.slice(0, 200)).toBe(200);
    expect(docs.headers['content-type']).toMatch(/^text\/html/);
    hasSecuritySet(docs, DOCS_CSP, '/admin/api/docs');

    // nginx's own answers over TLS carry HSTS, and nothing meant for the console.
    const hidden = await sendTls(secure('/metrics'), { ...trust(), from });
    expect(hidden.status).toBe(404);
    expect(hidden.json().error).toMatchObject({ code: 'not_found' });
    expect(hidden.headers['strict-transport-security']).toBe(HSTS);
    expect(hidden.headers['content-security-policy']).toBeUndefined();
  });

  it('passes proxied answers as the relay sent them, bytes and headers, adding only HSTS (HTTP/1.1 and HTTP/2)', async () => {
    const key = newKey();
    const from = '127.0.0.34';
    // What the gateway itself answers (the relay's headers, untouched by nginx).
    const direct = await send(`${gwA!.url}/bytes`, { from, headers: bearer(key) });
    expect(direct.status, direct.body.slice(0, 200)).toBe(200);
    expect(direct.headers).toMatchObject({ ...RELAY_HEADERS });

    const viaTls = await sendTls(secure('/bytes'), { ...trust(), from, headers: bearer(key) });
    const viaH2 = await sendH2(secure('/bytes'), { ...trust(), from, headers: bearer(key) });
    for (const [via, r] of [
      ['HTTP/1.1', viaTls],
      ['HTTP/2', viaH2],
    ] as const) {
      expect(r.status, via).toBe(200);
      expect(r.raw.equals(relayBytes), `${via}: the relay's bytes`).toBe(true);
      // Every header as the relay sent it; HSTS is nginx's (the relay's own is replaced, not doubled).
      expect(comparable(r.headers), via).toEqual({
        ...comparable(direct.headers),
        'strict-transport-security': HSTS,
      });
    }
    expect(count(viaTls, 'strict-transport-security')).toBe(1);
    expect(count(viaTls, 'x-content-type-options')).toBe(1);
  });

  it('streams SSE event by event and a request body over HTTP/2, and passes a WebSocket over TLS', async () => {
    const session = await connectH2(nginxTls!.tlsUrl, { ...trust(), from: '127.0.0.35' });
    try {
      // SSE: five events 200 ms apart, each as it is written.
      const events: { text: string; at: number }[] = [];
      await new Promise<void>((resolve, reject) => {
        const req = session.request({
          ':path': '/sse?stream=true',
          accept: 'text/event-stream',
          authorization: `Bearer ${newKey()}`,
        });
        let buf = '';
        req.setEncoding('utf8');
        req.on('response', (h) => {
          if (h[':status'] !== 200) reject(new Error(`SSE over HTTP/2: status ${h[':status']}`));
        });
        req.on('data', (chunk: string) => {
          const at = performance.now();
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n\n')) !== -1) {
            events.push({ text: buf.slice(0, i), at });
            buf = buf.slice(i + 2);
          }
        });
        req.on('end', resolve);
        req.on('error', reject);
        req.end();
      });
      expect(events.map((e) => e.text)).toEqual([1, 2, 3, 4, 5].map((n) => `id: ${n}\ndata: {"n":${n}}`));
      const gaps = events.slice(1).map((e, i) => e.at - events[i]!.at);
      const lags = events.map((e, i) => e.at - sseWrittenAt[i]!);
      console.log(
        `SSE through nginx over HTTP/2: gaps ${gaps.map((g) => g.toFixed(0)).join('/')} ms, ` +
          `lag ${lags.map((l) => l.toFixed(1)).join('/')} ms`,
      );
      for (const g of gaps) expect(g).toBeGreaterThanOrEqual(150);
      for (const l of lags) expect(l).toBeLessThan(100);

      // An upload: the downstream answers while the body is still open.
      const upload = session.request({
        ':method': 'POST',
        ':path': '/upload',
        authorization: `Bearer ${newKey()}`,
        'content-type': 'application/octet-stream',
      });
      const answered = new Promise<void>((resolve, reject) => {
        upload.once('response', () => resolve());
        upload.on('error', reject);
        setTimeout(
          () =>
            reject(new Error('no response while the upload was open: nginx buffers HTTP/2 request bodies')),
          3000,
        ).unref();
      });
      upload.write(Buffer.alloc(64 * 1024, 0x61));
      await answered;
      let body = '';
      upload.setEncoding('utf8');
      upload.on('data', (chunk: string) => (body += chunk));
      const ended = new Promise<void>((r) => upload.once('end', r));
      upload.end(Buffer.alloc(64 * 1024, 0x62));
      await ended;
      expect(body).toBe(`head seen\nreceived ${128 * 1024}\n`);
    } finally {
      session.close();
    }

    // wss: the upgrade over TLS (HTTP/1.1), judged by the real address.
    // (The certificate names 127.0.0.1 too; ws passes localAddress on to the socket.)
    const wsOptions: ClientOptions & { localAddress: string } = {
      localAddress: '127.0.0.36',
      ca: nginxTls!.caPem,
      headers: { ...bearer(newKey()), 'x-real-ip': '127.0.0.77' },
    };
    const ws = new WebSocket(`${nginxTls!.tlsUrl.replace(/^https/, 'wss')}/v1/realtime`, wsOptions);
    const received: string[] = [];
    const waiting: ((m: string) => void)[] = [];
    ws.on('message', (d: Buffer) => {
      const w = waiting.shift();
      if (w) w(d.toString('utf8'));
      else received.push(d.toString('utf8'));
    });
    const next = () =>
      new Promise<string>((resolve, reject) => {
        const m = received.shift();
        if (m !== undefined) return resolve(m);
        waiting.push(resolve);
        setTimeout(() => reject(new Error('no WebSocket message within 5 s')), 5000).unref();
      });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) =>
          reject(new Error(`upgrade refused: ${res.statusCode}`)),
        );
      });
      expect(await next()).toBe('hello from downstream');
      ws.send('ping over tls');
      expect(await next()).toBe('echo:ping over tls');
    } finally {
      ws.close();
    }
    expect(wsSeen[wsSeen.length - 1]!['x-real-ip']).toBe('127.0.0.36');
  });

  it('rate limits /admin/api/login over TLS: 429 in the contract’s shape after the burst; the gateway’s own 429 passes as it is', async () => {
    const attempt = (from: string, username: string) =>
      sendTls(secure('/admin/api/login'), {
        ...trust(),
        method: 'POST',
        from,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password: 'wrong-password-123' }),
      });

    // The gateway's lockout (one username, 5 failures; within nginx's burst):
    // its 429 and its Retry-After pass untouched, and nginx adds no second one.
    const locked: TlsReply[] = [];
    for (let i = 0; i < 6; i++) locked.push(await attempt('127.0.0.63', 'locked-user'));
    expect(locked.map((r) => r.status)).toEqual([401, 401, 401, 401, 401, 429]);
    const fromGateway = locked[5]!;
    expect(fromGateway.json().error).toMatchObject({ code: 'too_many_attempts', type: 'keypin_error' });
    expect(count(fromGateway, 'retry-after')).toBe(1);
    expect(Number(fromGateway.headers['retry-after'])).toBeGreaterThan(60);
    expect((await nginxTls!.accessLogOf('127.0.0.63', 6))[5]!['upstream_status']).toBe('429');

    // nginx's limit: 1 + a burst of 10 reach the gateway, then nginx answers itself.
    const statuses: number[] = [];
    let limited: TlsReply | undefined;
    for (let i = 0; i < 13; i++) {
      const r = await attempt('127.0.0.62', `nobody-${i}`);
      statuses.push(r.status);
      if (r.status === 429) limited ??= r;
    }
    expect(statuses).toEqual([...Array<number>(11).fill(401), 429, 429]);
    expect(limited!.headers['content-type']).toBe('application/json');
    expect(limited!.json()).toEqual({
      error: { message: expect.any(String), type: 'keypin_error', code: 'too_many_attempts' },
    });
    expect(limited!.headers['retry-after']).toBe('60');
    expect(count(limited!, 'retry-after')).toBe(1);
    expect(limited!.headers['strict-transport-security']).toBe(HSTS);
    expect(limited!.headers['x-frame-options']).toBe('DENY');
    const limitedLog = (await nginxTls!.accessLogOf('127.0.0.62', 13))[11]!;
    expect(limitedLog['status']).toBe(429);
    expect(limitedLog['upstream']).toMatch(/^-?$/);
    // Another address is not affected.
    expect((await attempt('127.0.0.64', 'nobody-else')).status).toBe(401);
  });

  it('runs the console in Chromium over TLS under its Content-Security-Policy: no violation, login, dashboard, bindings, API docs', async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
    }
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      // The test CA is not in Chromium's store: certificate errors are ignored; CSP is enforced all the same.
      const context = await browser.newContext({
        baseURL: `${nginxTls!.tlsUrl}/admin/ui/`,
        ignoreHTTPSErrors: true,
        viewport: { width: 1280, height: 800 },
      });
      context.setDefaultTimeout(20_000);
      // Every document records its violations (the event fires for each one).
      // Browser-side code is given as text: this project's types have no DOM.
      await context.addInitScript(
        "window.__csp = []; document.addEventListener('securitypolicyviolation', (e) => " +
          "window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI + ' ' + e.sample));",
      );
      const page = await context.newPage();
      const cspMessages: string[] = [];
      const otherErrors: string[] = [];
      const pageErrors: string[] = [];
      page.on('console', (m) => {
        if (/Content[ -]Security[ -]Policy/i.test(m.text())) cspMessages.push(m.text());
        else if (m.type() === 'error') otherErrors.push(m.text());
      });
      page.on('pageerror', (e) => pageErrors.push(e.message));
      const documents: { path: string; status: number; csp?: string; protocol?: string }[] = [];
      page.on('response', (r) => {
        if (r.request().resourceType() !== 'document') return;
        documents.push({
          path: new URL(r.url()).pathname,
          status: r.status(),
          csp: r.headers()['content-security-policy'],
        });
      });
      const violations = () => page.evaluate<string[]>('window.__csp');
      const nav = page.getByRole('navigation', { name: 'Main' });

      // A step that fails says what the browser saw.
      const step = async (what: string, fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (err) {
          const seen = {
            url: page.url(),
            headings: await page
              .getByRole('heading')
              .allInnerTexts()
              .catch(() => []),
            text: (await page.evaluate<string>('document.body.innerText').catch(() => '')).slice(0, 600),
            violations: await violations().catch(() => []),
            cspMessages,
            pageErrors,
            otherErrors,
          };
          throw new Error(`${what}: ${(err as Error).message}\n${JSON.stringify(seen, null, 2)}`);
        }
      };

      // The console: log in, dashboard with its lazily loaded chart, bindings.
      await page.goto('login');
      await step('login', async () => {
        await page.getByLabel('Username').fill(ADMIN_USERNAME);
        await page.getByLabel('Password').fill(ADMIN_PASSWORD);
        await page.getByRole('button', { name: 'Log in' }).click();
        await nav.waitFor();
      });
      await step('dashboard', async () => {
        await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
        await page.getByRole('img', { name: /Allowed and intercepted requests per day/ }).waitFor();
      });
      await step('bindings', async () => {
        await nav.getByRole('link', { name: 'Bindings' }).click();
        await page.getByRole('heading', { level: 1, name: 'Bindings' }).waitFor();
      });
      expect(await violations()).toEqual([]);
      expect(cspMessages).toEqual([]);
      // MUI's styles are in force: Emotion's <style> elements were allowed and
      // hold its rules (without style-src 'unsafe-inline' their sheets are null).
      const emotionRules = await page.evaluate<number>(
        "Array.from(document.querySelectorAll('style[data-emotion]'))" +
          '.reduce((n, s) => n + (s.sheet ? s.sheet.cssRules.length : 0), 0)',
      );
      expect(emotionRules).toBeGreaterThan(20);

      // The policy is really in force, and a violation would be seen: an
      // inline script the page tries to add is refused and reported.
      const inlineRan = await page.evaluate<boolean>(
        "(() => { const s = document.createElement('script'); s.textContent = 'window.__inlineRan = true'; " +
          'document.head.append(s); return window.__inlineRan === true; })()',
      );
      expect(inlineRan).toBe(false);
      await expect.poll(violations).toEqual([expect.stringMatching(/^script-src-elem inline/)]);
      await expect.poll(() => cspMessages.length).toBe(1);

      // Swagger UI at /admin/api/docs under its own policy.
      await step('API docs', async () => {
        await page.goto(`${nginxTls!.tlsUrl}/admin/api/docs`);
        await page.locator('.swagger-ui .info .title').filter({ hasText: 'KeyPin admin API' }).waitFor();
        await page.locator('.swagger-ui .opblock').first().waitFor();
      });
      expect(await violations()).toEqual([]);
      expect(cspMessages.length).toBe(1);

      expect(pageErrors).toEqual([]);
      // Both documents came over TLS with their policy.
      expect(documents.filter((d) => d.status === 200)).toEqual([
        { path: '/admin/ui/login', status: 200, csp: CONSOLE_CSP },
        { path: '/admin/api/docs', status: 200, csp: DOCS_CSP },
      ]);
      if (otherErrors.length > 0)
        console.log(`browser console errors (none CSP): ${otherErrors.join(' | ')}`);
    } finally {
      await browser.close();
    }
  }, 120_000);
});
