/**
 * Forwarding (contract 2.4) against the real gateway process: streaming
 * without buffering in both directions (SSE, 1 GiB up and down with flat
 * memory), client aborts, 502/504, pass-through of statuses, bodies, paths
 * and queries, hop-by-hop headers, WebSocket tunnelling, graceful shutdown.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { FakeDownstream, type SeenRequest } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores } from './support/stores';
import { readSse } from './support/sse';
import { openWs } from './support/websocket';

const MiB = 1024 * 1024;
/** Size of each large transfer. 1 GiB passes in a few seconds here. */
const LARGE = 1024 * MiB;
/** How far the gateway's RSS may rise above its pre-transfer value. */
const RSS_BUDGET = 100 * MiB;
const CHUNK = 64 * 1024;

let keyN = 0;
/** A key no other test uses (no dash after `sk-`, so it stays whole under newapi). */
const newKey = () => `sk-strm${randomBytes(4).toString('hex')}x${++keyN}`;

// ---------------------------------------------------------------- downstream

/** Timers a route started; cleared when its response closes. */
function every(res: ServerResponse, ms: number, fn: () => void): void {
  const t = setInterval(fn, ms);
  res.on('close', () => clearInterval(t));
}

/** Writes `total` bytes in CHUNK pieces, honouring backpressure. */
function writeBytes(res: ServerResponse, total: number): void {
  const chunk = Buffer.alloc(CHUNK, 0x61);
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK);
      left -= n;
      const ok = res.write(n === CHUNK ? chunk : chunk.subarray(0, n));
      if (!ok) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

/** When each SSE event was written by the downstream (performance.now()). */
const sseWrittenAt: number[] = [];

/** One router for every test; the path picks the behaviour. */
function router(req: IncomingMessage, res: ServerResponse, seen: SeenRequest): void {
  const url = new URL(req.url ?? '/', 'http://x');
  req.on('data', (c: Buffer) => (seen.bodyBytes += c.length));
  switch (url.pathname) {
    case '/sse': {
      // Five events, 200 ms apart.
      sseWrittenAt.length = 0;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const emit = () => {
        n++;
        sseWrittenAt.push(performance.now());
        res.write(`id: ${n}\ndata: {"n":${n}}\n\n`);
        if (n === 5) res.end();
      };
      emit();
      every(res, 200, () => {
        if (n < 5) emit();
      });
      return;
    }
    case '/sse-short': {
      // An event every 100 ms for 1.5 s, then the end.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      every(res, 100, () => {
        n++;
        res.write(`data: ${n}\n\n`);
        if (n === 15) res.end('data: [DONE]\n\n');
      });
      return;
    }
    case '/sse-forever':
    case '/slow-forever': {
      res.writeHead(200, {
        'content-type': url.pathname === '/sse-forever' ? 'text/event-stream' : 'text/plain',
      });
      let n = 0;
      every(res, 100, () => res.write(`data: ${++n}\n\n`));
      return;
    }
    case '/upload':
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes: seen.bodyBytes }));
      });
      return;
    case '/download':
      req.resume();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      writeBytes(res, Number(url.searchParams.get('bytes')));
      return;
    case '/teapot':
      res.writeHead(418, "I'm a teapot", {
        'content-type': 'application/problem+json',
        'x-custom': 'brewed; strength=9',
        'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
      });
      res.end('{"error":"short and stout","detail":[1,2,3]}');
      return;
    case '/nocontent':
      req.resume();
      res.writeHead(204, { 'x-nothing': 'here' });
      res.end();
      return;
    case '/head':
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1234', 'x-head': 'yes' });
      res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
      return;
    case '/boom':
      req.resume();
      res.writeHead(500, { 'content-type': 'text/plain', 'x-upstream-error': 'db down' });
      res.end('upstream exploded: stack trace here');
      return;
    case '/hop':
      req.on('end', () => {
        res.writeHead(200, {
          'content-type': 'application/json',
          connection: 'x-down-hop',
          'x-down-hop': '1',
          'keep-alive': 'timeout=9, max=7',
          'x-kept': 'yes',
        });
        res.end('{"hop":true}');
      });
      return;
    case '/truncate-chunked':
      // Starts a chunked body, then the connection dies mid-body.
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial answer');
      setTimeout(() => res.socket?.destroy(), 100);
      return;
    case '/truncate-length':
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('x'.repeat(100));
      setTimeout(() => res.socket?.destroy(), 100);
      return;
    case '/never':
      // Never answers; the gateway must give up on its own.
      req.resume();
      return;
    default:
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-downstream': 'fake' });
        res.end(JSON.stringify({ ok: true, method: req.method, url: req.url, bodyBytes: seen.bodyBytes }));
      });
  }
}

/** Echo WebSocket server on the fake downstream's own HTTP server. */
interface WsSeen {
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  protocol: string;
}
/** Sockets handed to the downstream's upgrade handler (closeAllConnections() does not see them). */
const upgradedSockets = new Set<Socket>();

function attachWebSocket(down: FakeDownstream, seenWs: WsSeen[]): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    // Like OpenAI's realtime API: pick "realtime" when offered, never the key protocol.
    handleProtocols: (protocols) => (protocols.has('realtime') ? 'realtime' : false),
  });
  const server = (down as unknown as { server: Server }).server;
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgradedSockets.add(socket);
    socket.on('close', () => upgradedSockets.delete(socket));
    const path = (req.url ?? '').split('?')[0];
    if (path === '/ws-deny') {
      // The downstream's own refusal must reach the client unchanged.
      const body = '{"error":{"message":"bad key","code":"invalid_api_key"}}';
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nX-Down: refused\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    if (path === '/ws-slam') {
      socket.end(); // closes without a word
      return;
    }
    if (path === '/ws-never') {
      // Holds the connection, never answers (until the gateway lets go).
      socket.on('error', () => undefined);
      socket.on('end', () => socket.destroy());
      return;
    }
    if (req.headers['upgrade']?.toLowerCase() !== 'websocket') {
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nContent-Length: 19\r\nConnection: close\r\n\r\nnot a ws: tunnelled',
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      seenWs.push({
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        protocol: ws.protocol,
      });
      ws.send('hello from downstream');
      ws.on('message', (data, isBinary) =>
        ws.send(isBinary ? data : `echo:${(data as Buffer).toString('utf8')}`, { binary: isBinary }),
      );
    });
  });
  return wss;
}

// -------------------------------------------------------------------- client

/** Reads a whole response, noting whether it ended cleanly. */
function readAll(
  url: string,
  opts: { from: string; headers?: Record<string, string> },
): Promise<{ status: number; body: string; complete: boolean; error: string | null }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      localAddress: opts.from,
      agent: false,
      headers: opts.headers,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      let settled = false;
      res.setEncoding('utf8');
      res.on('data', (s: string) => (body += s));
      const done = (error: string | null) => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, body, complete: res.complete, error });
      };
      res.on('end', () => done(null));
      res.on('error', (e) => done(e.message));
      res.on('aborted', () => done('aborted'));
      res.on('close', () => done(res.complete ? null : 'closed'));
    });
    req.end();
  });
}

/** VmRSS of a process in bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS every 100 ms until stopped; returns the peak. */
function sampleRss(pid: number): { stop(): { peak: number; samples: number } } {
  let peak = rssOf(pid);
  let samples = 1;
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
      samples++;
    } catch {
      // the process is gone: the test will say why
    }
  }, 100);
  return {
    stop() {
      clearInterval(t);
      peak = Math.max(peak, rssOf(pid));
      return { peak, samples: samples + 1 };
    },
  };
}

/** Lets V8 settle so the baseline is not inflated by start-up garbage. */
async function settledRss(pid: number): Promise<number> {
  await new Promise((r) => setTimeout(r, 300));
  return rssOf(pid);
}

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Headers in a raw list whose name (any case) is `name`. */
const rawValues = (raw: string[], name: string): string[] => {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
};

// --------------------------------------------------------------------- tests

const stores = freshStores('streaming');
const down = new FakeDownstream();
const wsSeen: WsSeen[] = [];
let wss: WebSocketServer;
const gateways: GatewayProcess[] = [];

const baseEnv = () => ({
  DATABASE_URL: stores.databaseUrl,
  REDIS_PREFIX: stores.redisPrefix,
  DOWNSTREAM_URL: down.url,
  LOG_LEVEL: 'warn',
});

async function gateway(extra: Record<string, string> = {}): Promise<GatewayProcess> {
  const gw = await startGateway({ ...baseEnv(), LOG_LEVEL: 'info', ...extra });
  gateways.push(gw);
  return gw;
}

beforeAll(async () => {
  await down.start();
  down.route = router;
  wss = attachWebSocket(down, wsSeen);
});

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.stop('SIGKILL')));
  for (const c of wss?.clients ?? []) c.terminate();
  wss?.close();
  for (const sock of upgradedSockets) sock.destroy();
  await down.stop();
  await dropStores(stores.dbName, stores.redisPrefix);
});

describe('forwarding through a running gateway', () => {
  let gw: GatewayProcess;

  beforeAll(async () => {
    gw = await gateway();
  });

  afterAll(async () => {
    const code = await gw?.stop();
    expect(code).toBe(0);
  });

  it('relays Server-Sent Events one by one as the downstream writes them', async () => {
    const r = await readSse(`${gw.url}/sse?stream=true`, '127.0.0.2', bearer(newKey()));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/event-stream');
    expect(r.complete).toBe(true);
    expect(r.events.map((e) => e.text)).toEqual([1, 2, 3, 4, 5].map((n) => `id: ${n}\ndata: {"n":${n}}`));

    const gaps = r.events.slice(1).map((e, i) => e.at - r.events[i]!.at);
    const lags = r.events.map((e, i) => e.at - sseWrittenAt[i]!);
    console.log(
      `SSE: gaps ${gaps.map((g) => g.toFixed(0)).join('/')} ms, lag behind the write ` +
        `${lags.map((l) => l.toFixed(1)).join('/')} ms, first event ${(r.events[0]!.at - r.startedAt).toFixed(0)} ms ` +
        `after the request, stream ${(r.endedAt - r.startedAt).toFixed(0)} ms`,
    );
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(150);
    // Each event reaches the client right after the downstream wrote it.
    for (const l of lags) expect(l).toBeLessThan(100);
    // The first event arrives long before the stream ends (4 × 200 ms later).
    expect(r.endedAt - r.events[0]!.at).toBeGreaterThan(600);
  });

  it('streams a large upload with flat memory', async () => {
    const key = newKey();
    // Warm the path (binding, pool connection) before taking the baseline.
    expect(
      (await send(`${gw.url}/upload`, { from: '127.0.0.2', method: 'POST', headers: bearer(key), body: 'x' }))
        .status,
    ).toBe(200);
    const before = await settledRss(gw.pid);
    const sampler = sampleRss(gw.pid);
    const started = performance.now();

    const u = new URL(`${gw.url}/upload`);
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      localAddress: '127.0.0.2',
      agent: false,
      headers: { ...bearer(key), 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    });
    const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => (body += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    const chunk = Buffer.alloc(CHUNK, 0x62);
    function* body() {
      for (let sent = 0; sent < LARGE; sent += CHUNK) yield chunk;
    }
    await pipeline(Readable.from(body()), req);
    const r = await reply;
    const seconds = (performance.now() - started) / 1000;
    const { peak, samples } = sampler.stop();

    console.log(
      `upload ${LARGE / MiB} MiB: ${seconds.toFixed(1)} s (${(LARGE / MiB / seconds).toFixed(0)} MiB/s), ` +
        `gateway RSS ${(before / MiB).toFixed(0)} → peak ${(peak / MiB).toFixed(0)} MiB ` +
        `(+${((peak - before) / MiB).toFixed(1)} MiB, ${samples} samples)`,
    );
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ bytes: LARGE });
    expect(down.last().bodyBytes).toBe(LARGE);
    expect(peak - before).toBeLessThan(RSS_BUDGET);
  });

  it('streams a large download with flat memory', async () => {
    const key = newKey();
    expect(
      (await send(`${gw.url}/download?bytes=10`, { from: '127.0.0.2', headers: bearer(key) })).body,
    ).toBe('a'.repeat(10));
    const before = await settledRss(gw.pid);
    const sampler = sampleRss(gw.pid);
    const started = performance.now();

    const u = new URL(`${gw.url}/download?bytes=${LARGE}`);
    const { status, bytes } = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      const req = httpRequest({
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        localAddress: '127.0.0.2',
        agent: false,
        headers: bearer(key),
      });
      req.on('response', (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes: n }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const seconds = (performance.now() - started) / 1000;
    const { peak, samples } = sampler.stop();

    console.log(
      `download ${LARGE / MiB} MiB: ${seconds.toFixed(1)} s (${(LARGE / MiB / seconds).toFixed(0)} MiB/s), ` +
        `gateway RSS ${(before / MiB).toFixed(0)} → peak ${(peak / MiB).toFixed(0)} MiB ` +
        `(+${((peak - before) / MiB).toFixed(1)} MiB, ${samples} samples)`,
    );
    expect(status).toBe(200);
    expect(bytes).toBe(LARGE);
    expect(peak - before).toBeLessThan(RSS_BUDGET);
  });

  it('aborts the downstream request when the client goes away', async () => {
    const u = new URL(`${gw.url}/slow-forever`);
    const seenBefore = down.seen.length;
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      localAddress: '127.0.0.2',
      agent: false,
      headers: bearer(newKey()),
    });
    req.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      req.on('response', (res) => {
        res.once('data', () => resolve());
        res.on('error', () => undefined);
      });
      req.end();
    });
    const seen = down.seen[seenBefore]!;
    expect(seen.url).toBe('/slow-forever');
    expect(seen.aborted).toBe(false);

    req.destroy(); // the client's socket goes away mid-stream
    const ms = await waitFor(() => seen.aborted, 1000);
    console.log(`client abort reached the downstream after ${ms} ms`);
  });

  it('passes a downstream error status with its own body and headers unchanged', async () => {
    const r = await send(`${gw.url}/teapot`, { from: '127.0.0.2', headers: bearer(newKey()) });
    expect(r.status).toBe(418);
    expect(r.body).toBe('{"error":"short and stout","detail":[1,2,3]}');
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.headers['x-custom']).toBe('brewed; strength=9');
    expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);

    const boom = await send(`${gw.url}/boom`, { from: '127.0.0.2', method: 'POST', body: '{}' });
    expect(boom.status).toBe(500);
    expect(boom.body).toBe('upstream exploded: stack trace here');
    expect(boom.headers['x-upstream-error']).toBe('db down');
  });

  it('passes 204 and HEAD responses without inventing a body', async () => {
    const key = newKey();
    const nc = await send(`${gw.url}/nocontent`, {
      from: '127.0.0.2',
      method: 'DELETE',
      headers: bearer(key),
    });
    expect(nc.status).toBe(204);
    expect(nc.body).toBe('');
    expect(nc.headers['x-nothing']).toBe('here');

    const head = await send(`${gw.url}/head`, { from: '127.0.0.2', method: 'HEAD', headers: bearer(key) });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe('1234');
    expect(head.headers['x-head']).toBe('yes');
    expect(down.last().method).toBe('HEAD');

    const get = await send(`${gw.url}/head`, { from: '127.0.0.2', headers: bearer(key) });
    expect(get.body).toBe('x'.repeat(1234));
  });

  it('forwards path and query byte for byte', async () => {
    const target = '/v1/a%2Fb/c?x=1&y=%20&z=a+b&empty=&dup=1&dup=2';
    const r = await send(`${gw.url}${target}`, { from: '127.0.0.2', headers: bearer(newKey()) });
    expect(r.status).toBe(200);
    expect(down.last().url).toBe(target);
    expect(r.json()).toMatchObject({ url: target });
  });

  it('drops hop-by-hop request headers, keeps the key and sets the client IP itself', async () => {
    const key = newKey();
    const r = await send(`${gw.url}/v1/echo`, {
      from: '127.0.0.7',
      method: 'POST',
      body: '{"a":1}',
      headers: [
        ['Authorization', `Bearer ${key}`],
        ['Connection', 'keep-alive, x-secret-hop'],
        ['x-secret-hop', '1'],
        ['Keep-Alive', 'timeout=5'],
        ['TE', 'trailers'],
        ['Proxy-Connection', 'keep-alive'],
        ['X-Real-IP', '6.6.6.6'],
        ['X-Forwarded-For', '6.6.6.6'],
        ['Content-Type', 'application/json'],
        ['X-Ordinary', 'kept'],
      ],
    });
    expect(r.status).toBe(200);
    const seen = down.last();
    const raw = seen.rawHeaders;
    for (const name of ['x-secret-hop', 'keep-alive', 'te', 'proxy-connection', 'trailer', 'upgrade']) {
      expect(rawValues(raw, name), name).toEqual([]);
    }
    // The gateway's own client may say keep-alive/close to the downstream, but never relay the client's tokens.
    for (const v of rawValues(raw, 'connection')) expect(v.toLowerCase()).toMatch(/^(keep-alive|close)$/);
    expect(rawValues(raw, 'authorization')).toEqual([`Bearer ${key}`]);
    expect(rawValues(raw, 'x-real-ip')).toEqual(['127.0.0.7']);
    expect(rawValues(raw, 'x-forwarded-for')).toEqual(['127.0.0.7']);
    expect(rawValues(raw, 'x-ordinary')).toEqual(['kept']);
    expect(rawValues(raw, 'content-type')).toEqual(['application/json']);
    expect(seen.bodyBytes).toBe(7);
  });

  it('answers Expect: 100-continue itself and forwards the upload without it', async () => {
    // curl sends the header with every body over 1 MiB; no relay client takes it.
    const key = newKey();
    const sock = connect({
      host: '127.0.0.1',
      port: Number(new URL(gw.url).port),
      localAddress: '127.0.0.8',
    });
    await once(sock, 'connect');
    let got = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (got += d));
    const body = 'x'.repeat(5000);
    sock.write(
      `POST /v1/echo HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer ${key}\r\n` +
        `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    await waitFor(() => got.includes('\r\n\r\n'), 5000, 10);
    expect(got).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
    sock.write(body);
    await waitFor(() => got.includes('HTTP/1.1 200 '), 5000, 10);
    sock.destroy();
    const seen = down.last();
    expect(seen.url).toBe('/v1/echo');
    expect(rawValues(seen.rawHeaders, 'expect')).toEqual([]);
    expect(seen.bodyBytes).toBe(5000);
  });

  it('drops hop-by-hop response headers', async () => {
    const r = await send(`${gw.url}/hop`, { from: '127.0.0.2', headers: bearer(newKey()) });
    expect(r.status).toBe(200);
    expect(r.body).toBe('{"hop":true}');
    expect(r.headers['x-kept']).toBe('yes');
    expect(r.headers['x-down-hop']).toBeUndefined();
    expect(r.headers['keep-alive'] ?? '').not.toContain('max=7');
    expect(r.headers['connection'] ?? '').not.toContain('x-down-hop');
  });

  it('aborts the downstream request when the client leaves before any response headers', async () => {
    const u = new URL(`${gw.url}/never`);
    const seenBefore = down.seen.length;
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      localAddress: '127.0.0.2',
      agent: false,
      headers: bearer(newKey()),
    });
    req.on('error', () => undefined);
    req.end();
    await waitFor(() => down.seen.length > seenBefore, 2000);
    const seen = down.seen[seenBefore]!;
    expect(seen.url).toBe('/never');
    req.destroy();
    await waitFor(() => seen.aborted, 1000);
  });

  it('aborts the downstream upload when the client goes away mid-upload', async () => {
    const u = new URL(`${gw.url}/upload`);
    const seenBefore = down.seen.length;
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      localAddress: '127.0.0.2',
      agent: false,
      headers: { ...bearer(newKey()), 'transfer-encoding': 'chunked' },
    });
    req.on('error', () => undefined);
    const chunk = Buffer.alloc(CHUNK, 0x63);
    function* endless() {
      for (;;) yield chunk;
    }
    const piping = pipeline(Readable.from(endless()), req).catch(() => undefined);
    await waitFor(() => (down.seen[seenBefore]?.bodyBytes ?? 0) > 4 * MiB, 5000);
    const seen = down.seen[seenBefore]!;
    req.destroy();
    await piping;
    await waitFor(() => seen.aborted, 1000);
  });

  it('cuts the client connection when the downstream dies mid-body (never a clean end)', async () => {
    const chunked = await readAll(`${gw.url}/truncate-chunked`, {
      from: '127.0.0.2',
      headers: bearer(newKey()),
    });
    expect(chunked.status).toBe(200);
    expect(chunked.body).toBe('partial answer');
    expect(chunked.complete).toBe(false);
    expect(chunked.error).not.toBeNull();

    const sized = await readAll(`${gw.url}/truncate-length`, { from: '127.0.0.2' });
    expect(sized.status).toBe(200);
    expect(sized.body).toBe('x'.repeat(100));
    expect(sized.complete).toBe(false);
  });

  it('forwards a non-WebSocket Upgrade request as an ordinary request, without the Upgrade', async () => {
    const r = await send(`${gw.url}/v1/models`, {
      from: '127.0.0.2',
      headers: [
        ['Authorization', `Bearer ${newKey()}`],
        ['Connection', 'Upgrade, HTTP2-Settings'],
        ['Upgrade', 'h2c'],
        ['HTTP2-Settings', 'AAMAAABkAAQCAAAAAAIAAAAA'],
      ],
    });
    expect(r.status, `answered ${r.status}: ${r.body}`).toBe(200);
    expect(r.json()).toMatchObject({ ok: true, url: '/v1/models' });
    const raw = down.last().rawHeaders;
    expect(rawValues(raw, 'upgrade')).toEqual([]);
    expect(rawValues(raw, 'http2-settings')).toEqual([]);
  });

  describe('WebSocket', () => {
    const wsUrl = (path: string) => `${gw.url.replace(/^http/, 'ws')}${path}`;

    it('tunnels an allowed upgrade and echoes messages both ways', async () => {
      const key = newKey();
      const before = wsSeen.length;
      const opened = openWs(wsUrl('/v1/realtime?model=x'), { from: '127.0.0.3', headers: bearer(key) });
      const o = await opened;
      if (!('ws' in o)) throw new Error(`upgrade refused: ${o.status} ${o.body}`);
      const ws = o.ws;
      expect(await o.next()).toBe('hello from downstream');
      ws.send('ping through keypin');
      expect(await o.next()).toBe('echo:ping through keypin');
      const payload = randomBytes(200_000);
      ws.send(payload);
      const back = await o.next();
      expect(Buffer.isBuffer(back) && Buffer.compare(back, payload)).toBe(0);
      ws.close();

      const s = wsSeen[before]!;
      expect(s.url).toBe('/v1/realtime?model=x');
      expect(rawValues(s.rawHeaders, 'authorization')).toEqual([`Bearer ${key}`]);
      expect(rawValues(s.rawHeaders, 'x-real-ip')).toEqual(['127.0.0.3']);

      // The same key from another address is refused before any tunnel opens.
      const refused = await openWs(wsUrl('/v1/realtime'), { from: '127.0.0.4', headers: bearer(key) });
      if ('ws' in refused) throw new Error('a key bound to 127.0.0.3 was tunnelled for 127.0.0.4');
      expect(refused.status).toBe(403);
      expect(JSON.parse(refused.body)).toMatchObject({
        error: { type: 'keypin_error', code: 'ip_not_allowed' },
      });
      expect(JSON.parse(refused.body).error.message).toContain('127.0.0.4');
      expect(wsSeen.length).toBe(before + 1);
    });

    it('takes the key from the subprotocol and passes the negotiated protocol through', async () => {
      const key = newKey();
      const before = wsSeen.length;
      const protocols = ['realtime', `openai-insecure-api-key.${key}`, 'openai-beta.realtime-v1'];
      const o = await openWs(wsUrl('/v1/realtime'), { from: '127.0.0.5', protocols });
      if (!('ws' in o)) throw new Error(`upgrade refused: ${o.status} ${o.body}`);
      expect(o.ws.protocol).toBe('realtime');
      expect(await o.next()).toBe('hello from downstream');
      o.ws.close();
      expect(wsSeen[before]!.protocol).toBe('realtime');
      expect(wsSeen[before]!.headers['sec-websocket-protocol']).toBe(protocols.join(',')); // as the ws client sent it

      // The key is now bound to 127.0.0.5: from elsewhere it is refused.
      const refused = await openWs(wsUrl('/v1/realtime'), { from: '127.0.0.6', protocols });
      expect('status' in refused && refused.status).toBe(403);
    });

    it("passes the downstream's own refusal of an upgrade unchanged", async () => {
      const r = await openWs(wsUrl('/ws-deny'), { from: '127.0.0.5', headers: bearer(newKey()) });
      if ('ws' in r) throw new Error('a refused upgrade opened');
      expect(r.status).toBe(401);
      expect(r.headers['x-down']).toBe('refused');
      expect(r.body).toBe('{"error":{"message":"bad key","code":"invalid_api_key"}}');
    });

    it('answers 502 when the downstream closes an upgrade without answering', async () => {
      const r = await openWs(wsUrl('/ws-slam'), { from: '127.0.0.5', headers: bearer(newKey()) }).catch(
        (e: Error) => e.message,
      );
      if (typeof r === 'string') throw new Error(`expected a 502 answer, the client saw: ${r}`);
      if ('ws' in r) throw new Error('upgrade opened');
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'keypin_error', code: 'bad_gateway' } });
    });

    it('refuses an upgrade carrying two different keys', async () => {
      const before = wsSeen.length;
      const r = await openWs(wsUrl('/v1/realtime'), {
        from: '127.0.0.5',
        headers: bearer(newKey()),
        protocols: ['realtime', `openai-insecure-api-key.${newKey()}`],
      });
      if ('ws' in r) throw new Error('an ambiguous upgrade was tunnelled');
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'keypin_error', code: 'ambiguous_key' } });
      expect(wsSeen.length).toBe(before);
    });
  });
});

describe('downstream unreachable', () => {
  let gw: GatewayProcess;

  beforeAll(async () => {
    gw = await gateway({ DOWNSTREAM_URL: `http://127.0.0.1:${await closedPort()}` });
  });

  afterAll(async () => {
    expect(await gw?.stop()).toBe(0);
  });

  it('answers 502 bad_gateway', async () => {
    const r = await send(`${gw.url}/v1/models`, { from: '127.0.0.2', headers: bearer(newKey()) });
    expect(r.status).toBe(502);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    const body = r.json();
    expect(body).toMatchObject({ error: { type: 'keypin_error', code: 'bad_gateway' } });
    expect(typeof body.error.message).toBe('string');
  });

  it('answers a WebSocket upgrade with 502 bad_gateway too', async () => {
    const ws = await openWs(`${gw.url.replace(/^http/, 'ws')}/v1/realtime`, { from: '127.0.0.2' });
    if ('ws' in ws) throw new Error('upgrade to a dead downstream opened');
    expect(ws.status).toBe(502);
    expect(JSON.parse(ws.body)).toMatchObject({ error: { type: 'keypin_error', code: 'bad_gateway' } });
  });
});

describe('downstream that sends no headers (DOWNSTREAM_HEADERS_TIMEOUT_MS=500)', () => {
  let gw: GatewayProcess;

  beforeAll(async () => {
    gw = await gateway({ DOWNSTREAM_HEADERS_TIMEOUT_MS: '500' });
  });

  afterAll(async () => {
    expect(await gw?.stop()).toBe(0);
  });

  it('answers 504 gateway_timeout and lets go of the downstream request', async () => {
    const before = down.seen.length;
    const started = performance.now();
    const r = await send(`${gw.url}/never`, { from: '127.0.0.2', headers: bearer(newKey()) });
    const ms = performance.now() - started;
    console.log(`504 after ${ms.toFixed(0)} ms (DOWNSTREAM_HEADERS_TIMEOUT_MS=500)`);
    expect(r.status).toBe(504);
    expect(r.json()).toMatchObject({ error: { type: 'keypin_error', code: 'gateway_timeout' } });
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(2500);
    // The abandoned downstream request is not left hanging.
    const seen = down.seen[before]!;
    await waitFor(() => seen.aborted, 2000);
  });

  it('answers a WebSocket upgrade the downstream never answers with 504 gateway_timeout', async () => {
    const started = performance.now();
    const ws = await openWs(`${gw.url.replace(/^http/, 'ws')}/ws-never`, {
      from: '127.0.0.2',
      limitMs: 3000,
    }).catch((e: Error) => e.message);
    if (typeof ws === 'string') throw new Error(`expected a 504 answer, the client saw: ${ws}`);
    if ('ws' in ws) throw new Error('upgrade opened');
    expect(ws.status).toBe(504);
    expect(JSON.parse(ws.body)).toMatchObject({ error: { type: 'keypin_error', code: 'gateway_timeout' } });
    expect(performance.now() - started).toBeLessThan(2500);
  });
});

describe('graceful shutdown', () => {
  it('lets an in-flight stream finish, refuses new connections and exits 0', async () => {
    const gw = await gateway({ SHUTDOWN_GRACE_MS: '5000' });
    const stream = readSse(`${gw.url}/sse-short`, '127.0.0.2', bearer(newKey()));
    // Wait until the stream is really flowing.
    await new Promise((r) => setTimeout(r, 250));
    const signalled = performance.now();
    process.kill(gw.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 150));

    // New connections are refused once shutdown begins.
    const fresh = await send(`${gw.url}/v1/models`, { from: '127.0.0.3' }).then(
      (r) => `answered ${r.status}`,
      (e: NodeJS.ErrnoException) => e.code ?? e.message,
    );
    expect(fresh).toBe('ECONNREFUSED');

    const r = await stream;
    const code = await gw.exited;
    const exitMs = performance.now() - signalled;
    console.log(
      `shutdown with a stream in flight: ${r.events.length} events, stream ended ${(r.endedAt - signalled).toFixed(0)} ms ` +
        `after SIGTERM, exit ${code} after ${exitMs.toFixed(0)} ms`,
    );
    expect(r.status).toBe(200);
    expect(r.error).toBeNull();
    expect(r.complete).toBe(true);
    expect(r.events.map((e) => e.text)).toEqual([
      ...Array.from({ length: 15 }, (_, i) => `data: ${i + 1}`),
      'data: [DONE]',
    ]);
    expect(code).toBe(0);
    expect(exitMs).toBeLessThan(5000);
  });

  it('cuts a stream that outlasts the grace period at the deadline and still exits 0', async () => {
    const gw = await gateway({ SHUTDOWN_GRACE_MS: '1500' });
    const stream = readSse(`${gw.url}/sse-forever`, '127.0.0.2', bearer(newKey()));
    const o = await openWs(`${gw.url.replace(/^http/, 'ws')}/v1/realtime`, {
      from: '127.0.0.3',
      headers: bearer(newKey()),
    });
    if (!('ws' in o)) throw new Error(`upgrade refused: ${o.status} ${o.body}`);
    expect(await o.next()).toBe('hello from downstream');
    const wsClosed = new Promise<number>((r) => o.ws.once('close', () => r(performance.now())));
    await new Promise((r) => setTimeout(r, 250));
    const signalled = performance.now();
    process.kill(gw.pid, 'SIGTERM');

    // An open WebSocket keeps working during the grace period…
    await new Promise((r) => setTimeout(r, 300));
    o.ws.send('still there?');
    expect(await o.next()).toBe('echo:still there?');
    // …and is closed at the deadline.
    const wsCutMs = (await wsClosed) - signalled;
    expect(wsCutMs).toBeGreaterThanOrEqual(1400);
    expect(wsCutMs).toBeLessThan(2500);

    const r = await stream;
    const cutMs = r.endedAt - signalled;
    const code = await gw.exited;
    const exitMs = performance.now() - signalled;
    console.log(
      `shutdown past the grace period: stream cut ${cutMs.toFixed(0)} ms after SIGTERM (${r.events.length} events, ` +
        `${r.error}), exit ${code} after ${exitMs.toFixed(0)} ms`,
    );
    expect(r.status).toBe(200);
    expect(r.complete).toBe(false);
    // Events kept flowing during the grace period, then the stream was cut at the deadline.
    expect(r.events.length).toBeGreaterThanOrEqual(12);
    expect(cutMs).toBeGreaterThanOrEqual(1400);
    expect(cutMs).toBeLessThan(2500);
    expect(code).toBe(0);
    expect(exitMs).toBeLessThan(4000);
  });
});
