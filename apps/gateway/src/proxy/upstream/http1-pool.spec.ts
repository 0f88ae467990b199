/**
 * UpstreamPool against real servers on 127.0.0.1: raw `net` servers where
 * the exact bytes matter, node:http where a well-behaved origin is enough.
 * Every handler is a Recorder; after each test every dispatch must have
 * ended in exactly one of onComplete / onError, with nothing after it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  UpstreamPool,
  type UpstreamHandler,
  type UpstreamPoolOptions,
  type UpstreamRequest,
} from './http1-pool';

// A throwaway self-signed certificate for 127.0.0.1 and localhost (P-256,
// valid 2000–2100), so the TLS tests need no openssl at run time.
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIBATAKBggqhkjOPQQDAjAfMR0wGwYDVQQDDBRrZXlwaW4t
dXBzdHJlYW0tdGVzdDAgFw0wMDAxMDEwMDAwMDBaGA8yMTAwMDEwMTAwMDAwMFow
HzEdMBsGA1UEAwwUa2V5cGluLXVwc3RyZWFtLXRlc3QwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAATy7co1fhPFi4ZsERQejDIguNvBp8k5ewxZWbq9I/IuNAsNQpjq
EYNTCAm3NZoQmJ73XcfArXP4su5r8E3JIDjCo04wTDAaBgNVHREEEzARhwR/AAAB
gglsb2NhbGhvc3QwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUzb/w6kQuO4Sj
Ng9vyjmYa88HG70wCgYIKoZIzj0EAwIDSAAwRQIgF860iS3RCuetvKjclNeVOrpq
WQ/PysSTNa7ie1seKK4CIQDnvAogIofqUZOICnQfKuDcGJa70dbhwvs2Z4jeZGSD
Qw==
-----END CERTIFICATE-----
`;
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNwkI7vkMNyOqUp8A
1N/0yHGxT/CpS65vVQqS6H75ynuhRANCAATy7co1fhPFi4ZsERQejDIguNvBp8k5
ewxZWbq9I/IuNAsNQpjqEYNTCAm3NZoQmJ73XcfArXP4su5r8E3JIDjC
-----END PRIVATE KEY-----
`;

// ---- Harness --------------------------------------------------------------------------------------

const cleanups: (() => Promise<void> | void)[] = [];
const recorders: Recorder[] = [];

afterEach(async () => {
  // Late callbacks (after an error, say) would land in this window.
  await sleep(30);
  const bad = recorders.filter((r) => r.terminal !== 1 || r.late.length > 0);
  const report = bad.map((r) => `${r.label}: terminal=${r.terminal} late=${r.late.join(',')}`);
  recorders.length = 0;
  for (const c of cleanups.splice(0).reverse()) await c();
  expect(report, 'every dispatch ends in exactly one onComplete/onError').toEqual([]);
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(5);
  }
}

interface RecorderHooks {
  onConnect?(abort: (err?: Error) => void, r: Recorder): void;
  onHeaders?(r: Recorder): boolean;
  onData?(chunk: Buffer, r: Recorder): boolean;
  onComplete?(r: Recorder): void;
}

/** A handler that records everything and checks the one-terminal-callback rule. */
class Recorder implements UpstreamHandler {
  events: string[] = [];
  status = 0;
  statusText = '';
  headers: string[] = [];
  chunks: Buffer[] = [];
  error: (Error & { code?: string }) | null = null;
  terminal = 0;
  late: string[] = [];
  abort: ((err?: Error) => void) | null = null;
  resume: (() => void) | null = null;
  readonly done: Promise<void>;
  private finish!: () => void;

  constructor(
    readonly label: string,
    private readonly hooks: RecorderHooks = {},
  ) {
    this.done = new Promise((r) => (this.finish = r));
    recorders.push(this);
  }

  get body(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  private note(event: string): void {
    if (this.terminal > 0) this.late.push(event);
    this.events.push(event);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.note('connect');
    this.abort = abort;
    this.hooks.onConnect?.(abort, this);
  }

  onRequestSent(): void {
    this.note('sent');
  }

  onHeaders(statusCode: number, headers: string[], resume: () => void, statusText: string): boolean {
    this.note('headers');
    this.status = statusCode;
    this.headers = headers;
    this.statusText = statusText;
    this.resume = resume;
    return this.hooks.onHeaders?.(this) ?? true;
  }

  onData(chunk: Buffer): boolean {
    this.note('data');
    this.chunks.push(Buffer.from(chunk));
    return this.hooks.onData?.(chunk, this) ?? true;
  }

  onComplete(): void {
    this.note('complete');
    this.terminal++;
    this.hooks.onComplete?.(this);
    this.finish();
  }

  onError(err: Error & { code?: string }): void {
    this.note('error');
    this.terminal++;
    this.error = err;
    this.finish();
  }
}

const BASE_OPTIONS: UpstreamPoolOptions = {
  connectTimeoutMs: 2000,
  headersTimeoutMs: 5000,
  bodyTimeoutMs: 5000,
  keepAliveTimeoutMs: 30_000,
  maxConnections: 0,
};

function pool(origin: string, options: Partial<UpstreamPoolOptions> = {}): UpstreamPool {
  const p = new UpstreamPool(origin, { ...BASE_OPTIONS, ...options });
  cleanups.push(() => p.destroy());
  return p;
}

function get(path = '/', headers: string[] = []): UpstreamRequest {
  return { method: 'GET', path, headers, body: null };
}

/** Dispatches and waits for the end. */
async function send(p: UpstreamPool, req: UpstreamRequest, label = req.path, hooks?: RecorderHooks) {
  const r = new Recorder(label, hooks);
  p.dispatch(req, r);
  await r.done;
  return r;
}

interface RawRequest {
  head: string;
  method: string;
  path: string;
  /** Lower-case names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  conn: number;
}

interface RawServer {
  port: number;
  origin: string;
  /** Connections accepted so far. */
  connections: number;
  sockets: Socket[];
  requests: RawRequest[];
  /** Connections the client has closed or reset. */
  closed: number;
}

/**
 * A TCP server that reads request heads (and Content-Length bodies) and
 * lets the test answer with raw bytes.
 */
async function rawServer(respond: (req: RawRequest, socket: Socket) => void): Promise<RawServer> {
  const state: RawServer = { port: 0, origin: '', connections: 0, sockets: [], requests: [], closed: 0 };
  const server = createServer((socket) => {
    const conn = state.connections++;
    state.sockets.push(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => state.closed++);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.subarray(0, end).toString('latin1');
        const lines = head.split('\r\n');
        const [method, path] = lines[0]!.split(' ') as [string, string];
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          const k = l.slice(0, c).toLowerCase();
          const v = l.slice(c + 1).trim();
          headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
        }
        const len = Number(headers['content-length'] ?? 0);
        if (buf.length < end + 4 + len) return;
        const req = { head, method, path, headers, body: buf.subarray(end + 4, end + 4 + len), conn };
        buf = buf.subarray(end + 4 + len);
        state.requests.push(req);
        respond(req, socket);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.origin = `http://127.0.0.1:${state.port}`;
  cleanups.push(async () => {
    for (const s of state.sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return state;
}

interface HttpServer {
  port: number;
  origin: string;
  connections: number;
  server: Server;
}

async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<HttpServer> {
  const server = createHttpServer(handler);
  const state: HttpServer = { port: 0, origin: '', connections: 0, server };
  server.on('connection', () => state.connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.origin = `http://127.0.0.1:${state.port}`;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return state;
}

const OK = (body = 'ok', extra = '') =>
  `HTTP/1.1 200 OK\r\n${extra}Content-Length: ${body.length}\r\n\r\n${body}`;

// ---- Requests and keep-alive ----------------------------------------------------------------------

describe('UpstreamPool: request heads', () => {
  it('writes the request line, the caller’s headers as given, Host from the origin and connection: keep-alive', async () => {
    const srv = await rawServer((_req, s) => s.write(OK()));
    const p = pool(srv.origin);
    await send(p, get('/v1/models?x=1', ['X-Foo', 'a  b', 'x-foo', 'c', 'Authorization', 'Bearer k']));
    expect(srv.requests[0]!.head).toBe(
      `GET /v1/models?x=1 HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\n` +
        'X-Foo: a  b\r\nx-foo: c\r\nAuthorization: Bearer k\r\nconnection: keep-alive',
    );
  });

  it('keeps the caller’s Host and Content-Length; adds content-length: 0 to a bodiless POST/PUT/PATCH only', async () => {
    const srv = await rawServer((_req, s) => s.write(OK()));
    const p = pool(srv.origin);
    await send(p, get('/', ['Host', 'relay.example']));
    await send(p, { method: 'POST', path: '/', headers: [], body: null });
    await send(p, { method: 'DELETE', path: '/', headers: [], body: null });
    await send(p, { method: 'PATCH', path: '/', headers: ['Content-Length', '0'], body: null });
    const heads = srv.requests.map((r) => r.head);
    expect(heads[0]).toBe('GET / HTTP/1.1\r\nHost: relay.example\r\nconnection: keep-alive');
    expect(heads[1]).toBe(
      `POST / HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\ncontent-length: 0\r\nconnection: keep-alive`,
    );
    expect(heads[2]).toBe(`DELETE / HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\nconnection: keep-alive`);
    expect(heads[3]).toBe(
      `PATCH / HTTP/1.1\r\nhost: 127.0.0.1:${srv.port}\r\nContent-Length: 0\r\nconnection: keep-alive`,
    );
  });

  it('leaves the default port out of Host', () => {
    // No connection needed: the head is built at dispatch; check it through an invalid-free request to a closed pool.
    const p = new UpstreamPool('https://relay.example', BASE_OPTIONS);
    expect((p as unknown as { hostLine: string }).hostLine).toBe('host: relay.example\r\n');
    const q = new UpstreamPool('http://[::1]:8080', BASE_OPTIONS);
    expect((q as unknown as { hostLine: string }).hostLine).toBe('host: [::1]:8080\r\n');
    expect(q.target.host).toBe('::1');
    expect(q.target.servername).toBeUndefined();
  });

  it.each<[string, Partial<UpstreamRequest>]>([
    ['a method with a space', { method: 'GE T' }],
    ['a method with CRLF', { method: 'GET\r\nX: y' }],
    ['an empty method', { method: '' }],
    ['a path without a leading slash', { path: 'v1/models' }],
    ['a path with a space', { path: '/a b' }],
    ['a path with CRLF', { path: '/a\r\nX-Injected: 1' }],
    ['a path with NUL', { path: '/a\u0000' }],
    ['a path with DEL', { path: '/a\u007f' }],
    ['a path beyond latin1', { path: '/\u0100' }],
    ['a header name with a space', { headers: ['X Y', 'z'] }],
    ['a header name with a colon', { headers: ['X:Y', 'z'] }],
    ['an empty header name', { headers: ['', 'z'] }],
    ['a header value with CRLF', { headers: ['X', 'a\r\nInjected: 1'] }],
    ['a header value with LF', { headers: ['X', 'a\nb'] }],
    ['a header value with NUL', { headers: ['X', 'a\u0000b'] }],
    ['a header value beyond latin1', { headers: ['X', '\u20ac'] }],
    ['Connection', { headers: ['Connection', 'close'] }],
    ['Transfer-Encoding', { headers: ['transfer-encoding', 'chunked'] }],
    ['Keep-Alive', { headers: ['Keep-Alive', 'timeout=5'] }],
    ['Upgrade', { headers: ['Upgrade', 'websocket'] }],
    ['TE', { headers: ['TE', 'trailers'] }],
    ['Expect', { headers: ['Expect', '100-continue'] }],
    ['two Host headers', { headers: ['Host', 'a', 'host', 'b'] }],
    [
      'two Content-Length headers',
      { method: 'POST', headers: ['Content-Length', '0', 'content-length', '0'] },
    ],
    ['a non-numeric Content-Length', { method: 'POST', headers: ['Content-Length', '1e3'] }],
    ['a Content-Length without a body', { method: 'POST', headers: ['Content-Length', '3'] }],
    [
      'a Content-Length that disagrees with the Buffer',
      { method: 'POST', headers: ['Content-Length', '4'], body: Buffer.from('abc') },
    ],
    ['an odd header list', { headers: ['X'] }],
  ])('refuses %s with nothing written (UPSTREAM_INVALID_REQUEST)', async (_name, change) => {
    const srv = await rawServer((_req, s) => s.write(OK()));
    const p = pool(srv.origin);
    const r = new Recorder('invalid');
    p.dispatch({ ...get('/'), ...change }, r);
    // Refused synchronously, before any connection.
    expect(r.events).toEqual(['error']);
    expect(r.error!.code).toBe('UPSTREAM_INVALID_REQUEST');
    await sleep(30);
    expect(srv.connections).toBe(0);
  });
});

describe('UpstreamPool: keep-alive', () => {
  it('reuses one connection for sequential requests', async () => {
    const srv = await httpServer((req, res) => res.end(`hi ${req.url}`));
    const p = pool(srv.origin);
    for (let i = 0; i < 5; i++) {
      const r = await send(p, get(`/${i}`));
      expect(r.status).toBe(200);
      expect(r.body).toBe(`hi /${i}`);
    }
    expect(srv.connections).toBe(1);
  });

  it('reuses after chunked and zero-length responses too', async () => {
    const srv = await rawServer((req, s) =>
      s.write(
        req.path === '/chunked'
          ? 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n'
          : 'HTTP/1.1 204 No Content\r\n\r\n',
      ),
    );
    const p = pool(srv.origin);
    expect((await send(p, get('/chunked'))).body).toBe('ab');
    expect((await send(p, get('/empty'))).status).toBe(204);
    expect((await send(p, get('/chunked'))).body).toBe('ab');
    expect(srv.connections).toBe(1);
  });

  it.each<[string, (req: RawRequest, s: Socket) => void, string]>([
    ['Connection: close', (_q, s) => s.write(OK('ok', 'Connection: close\r\n')), 'GET'],
    ['HTTP/1.0', (_q, s) => s.write('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok'), 'GET'],
    ['a body delimited by the close', (_q, s) => s.end('HTTP/1.1 200 OK\r\n\r\nuntil the close'), 'GET'],
    [
      'Keep-Alive: timeout=1 (nothing left after the margin)',
      (_q, s) => s.write(OK('ok', 'Keep-Alive: timeout=1\r\n')),
      'GET',
    ],
    ['a HEAD request (as undici: a server may send a body anyway)', (_q, s) => s.write(OK('', '')), 'HEAD'],
  ])('does not reuse the connection after %s', async (_name, answer, method) => {
    const srv = await rawServer(answer);
    const p = pool(srv.origin);
    for (let i = 0; i < 2; i++) {
      const r = await send(p, { method, path: `/${i}`, headers: [], body: null });
      expect(r.error).toBeNull();
    }
    expect(srv.connections).toBe(2);
    await until(() => srv.closed >= 1);
  });

  it('delivers a body delimited by the close', async () => {
    const srv = await rawServer((_q, s) => s.end('HTTP/1.1 200 OK\r\nX: y\r\n\r\nall of it, to the end'));
    const r = await send(pool(srv.origin), get());
    expect(r.body).toBe('all of it, to the end');
    expect(r.events).toEqual(['connect', 'sent', 'headers', 'data', 'complete']);
  });

  it('opens a new connection, without error, when the server closed the idle one', async () => {
    const srv = await rawServer((_q, s) => {
      s.write(OK());
      setTimeout(() => s.end(), 10);
    });
    const p = pool(srv.origin);
    await send(p, get('/a'));
    await until(() => srv.closed === 1);
    await sleep(20);
    const r = await send(p, get('/b'));
    expect(r.error).toBeNull();
    expect(srv.connections).toBe(2);
  });

  it('sees a FIN that came with the response before reusing the socket (GHSA-35p6-xmwp-9g52)', async () => {
    // The server closes right after each response but without saying so;
    // the next request is dispatched from onComplete, in the same turn.
    const srv = await rawServer((_q, s) => s.end(OK()));
    const p = pool(srv.origin);
    const results: Recorder[] = [];
    for (let i = 0; i < 20; i++) {
      const r = new Recorder(`chain ${i}`);
      results.push(r);
      p.dispatch(get(`/${i}`), r);
      // Resumes in a microtask after onComplete: still the turn that read the response.
      await r.done;
    }
    expect(results.map((r) => r.error?.code ?? 'ok')).toEqual(new Array(20).fill('ok'));
    expect(srv.connections).toBe(20);
  });

  it('never reads bytes that follow a response as the next response', async () => {
    const srv = await rawServer((req, s) =>
      s.write(
        req.conn === 0 ? OK('first') + 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged' : OK('second'),
      ),
    );
    const p = pool(srv.origin);
    expect((await send(p, get('/1'))).body).toBe('first');
    const r = await send(p, get('/2'));
    expect(r.body).toBe('second');
    expect(srv.connections).toBe(2);
  });

  it('drops an idle connection that receives unsolicited bytes', async () => {
    const srv = await rawServer((req, s) => {
      s.write(OK(`real ${req.conn}`));
      if (req.conn === 0) setTimeout(() => s.write(OK('forged')), 10);
    });
    const p = pool(srv.origin);
    expect((await send(p, get('/1'))).body).toBe('real 0');
    await until(() => srv.closed === 1);
    const r = await send(p, get('/2'));
    expect(r.body).toBe('real 1');
    expect(srv.connections).toBe(2);
  });

  it('validates every reused connection of a turn with one shared setImmediate', async () => {
    let hold: (() => void)[] = [];
    const srv = await httpServer((_req, res) => {
      hold.push(() => res.end('ok'));
      if (hold.length === 4) for (const h of hold.splice(0)) h();
    });
    const p = pool(srv.origin);
    await Promise.all([0, 1, 2, 3].map((i) => send(p, get(`/${i}`))));
    expect(srv.connections).toBe(4);
    hold = [];
    await sleep(20); // idle for a while: one yield is enough now
    const spy = vi.spyOn(globalThis, 'setImmediate');
    const rs = [0, 1, 2, 3].map((i) => new Recorder(`reuse ${i}`));
    for (const r of rs) p.dispatch(get('/again'), r);
    const calls = spy.mock.calls.length;
    spy.mockRestore();
    expect(calls).toBe(1);
    await Promise.all(rs.map((r) => r.done));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(srv.connections).toBe(4);
  });

  it('closes idle connections after keepAliveTimeoutMs, and after Keep-Alive: timeout=N minus 1 s', async () => {
    const srv = await rawServer((req, s) =>
      s.write(req.path === '/ka' ? OK('ok', 'Keep-Alive: timeout=2\r\n') : OK()),
    );
    const short = pool(srv.origin, { keepAliveTimeoutMs: 100 });
    const t0 = Date.now();
    await send(short, get('/'));
    await until(() => srv.closed === 1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    const advertised = pool(srv.origin, { keepAliveTimeoutMs: 30_000 });
    await send(advertised, get('/ka'));
    const t1 = Date.now();
    // Reused within the window…
    await send(advertised, get('/ka'));
    expect(srv.connections).toBe(2);
    // …and closed about 1 s after the last response.
    await until(() => srv.closed === 2, 3000);
    expect(Date.now() - t1).toBeGreaterThanOrEqual(900);
    expect(Date.now() - t1).toBeLessThan(2000);
  });

  it('does not keep an idle pool from letting the process exit (idle sockets unref’d)', async () => {
    const srv = await httpServer((_req, res) => res.end('ok'));
    const p = pool(srv.origin);
    await send(p, get());
    const conn = (p as unknown as { idle: { socket: { _handle: { hasRef(): boolean } } }[] }).idle[0]!;
    expect(conn.socket._handle.hasRef()).toBe(false);
  });
});

describe('UpstreamPool: connection limit', () => {
  it('keeps to maxConnections and serves the queue first in, first out', async () => {
    const waiting: { url: string; res: ServerResponse }[] = [];
    const srv = await httpServer((req, res) => waiting.push({ url: req.url!, res }));
    const p = pool(srv.origin, { maxConnections: 2 });
    const rs = [0, 1, 2, 3, 4, 5].map((i) => new Recorder(`q${i}`));
    rs.forEach((r, i) => p.dispatch(get(`/${i}`), r));
    await until(() => waiting.length === 2);
    await sleep(30);
    expect(waiting.length).toBe(2);
    const order: string[] = [];
    while (order.length < 6) {
      await until(() => waiting.length > 0);
      const w = waiting.shift()!;
      order.push(w.url);
      w.res.end('done');
    }
    await Promise.all(rs.map((r) => r.done));
    expect(order).toEqual(['/0', '/1', '/2', '/3', '/4', '/5']);
    expect(srv.connections).toBe(2);
  });

  it('fails each waiting request with the connect error when the upstream refuses connections', async () => {
    // A port nothing listens on.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const p = pool(`http://127.0.0.1:${port}`, { maxConnections: 1 });
    const rs = [0, 1, 2].map((i) => new Recorder(`refused ${i}`));
    for (const r of rs) p.dispatch(get(), r);
    await Promise.all(rs.map((r) => r.done));
    expect(rs.map((r) => r.error?.code)).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
    expect(rs.every((r) => !r.events.includes('connect'))).toBe(true);
  });
});

// ---- Request bodies -------------------------------------------------------------------------------

describe('UpstreamPool: request bodies', () => {
  it('sends a Buffer with its Content-Length, head and body in one write', async () => {
    const srv = await rawServer((_q, s) => s.write(OK()));
    const body = Buffer.from('{"model":"x","input":"\u00e9"}');
    const r = await send(pool(srv.origin), {
      method: 'POST',
      path: '/v1',
      headers: ['Content-Type', 'application/json'],
      body,
    });
    expect(r.events).toEqual(['connect', 'sent', 'headers', 'data', 'complete']);
    const req = srv.requests[0]!;
    expect(req.headers['content-length']).toBe(String(body.length));
    expect(req.body.equals(body)).toBe(true);
  });

  it('streams a Readable with the caller’s Content-Length, exactly', async () => {
    const received: Buffer[] = [];
    const srv = await httpServer((req, res) => {
      req.on('data', (c: Buffer) => received.push(c));
      req.on('end', () => res.end(`${req.headers['content-length']} ${req.headers['transfer-encoding']}`));
    });
    const src = Readable.from([Buffer.from('hello '), Buffer.from('world')], { objectMode: false });
    const r = await send(pool(srv.origin), {
      method: 'POST',
      path: '/',
      headers: ['Content-Length', '11'],
      body: src,
    });
    expect(r.body).toBe('11 undefined');
    expect(Buffer.concat(received).toString()).toBe('hello world');
    expect(r.events.indexOf('sent')).toBeGreaterThan(-1);
  });

  it('streams a Readable without Content-Length as chunked', async () => {
    const received: Buffer[] = [];
    const srv = await httpServer((req, res) => {
      req.on('data', (c: Buffer) => received.push(c));
      req.on('end', () => res.end(`${req.headers['transfer-encoding']}`));
    });
    const src = new PassThrough();
    const p = pool(srv.origin);
    const r = new Recorder('chunked');
    p.dispatch({ method: 'POST', path: '/', headers: [], body: src }, r);
    src.write('a');
    await sleep(10);
    src.write(Buffer.alloc(0)); // an empty write must not end the body
    src.write('b'.repeat(70_000));
    src.end('c');
    await r.done;
    expect(r.body).toBe('chunked');
    expect(Buffer.concat(received).toString()).toBe('a' + 'b'.repeat(70_000) + 'c');
    expect(src.listenerCount('data') + src.listenerCount('end') + src.listenerCount('error')).toBe(0);
  });

  it.each([
    ['longer', 'hello world!', '11'],
    ['shorter', 'hello', '11'],
  ])(
    'fails a stream %s than its Content-Length with UPSTREAM_REQUEST_BODY and drops the connection',
    async (_n, text, cl) => {
      const srv = await rawServer(() => undefined);
      const src = Readable.from([Buffer.from(text)], { objectMode: false });
      const r = await send(pool(srv.origin), {
        method: 'POST',
        path: '/',
        headers: ['Content-Length', cl],
        body: src,
      });
      expect(r.error!.code).toBe('UPSTREAM_REQUEST_BODY');
      expect(r.events).not.toContain('sent');
      await until(() => srv.closed === 1);
    },
  );

  it('fails with UPSTREAM_REQUEST_BODY when the body stream errors, and lets go of the stream', async () => {
    const srv = await rawServer(() => undefined);
    const src = new PassThrough();
    const r = new Recorder('body error');
    pool(srv.origin).dispatch({ method: 'POST', path: '/', headers: [], body: src }, r);
    src.write('part');
    await until(() => srv.connections === 1);
    src.destroy(new Error('client went away'));
    await r.done;
    expect(r.error!.code).toBe('UPSTREAM_REQUEST_BODY');
    expect((r.error as Error & { cause?: Error }).cause?.message).toBe('client went away');
    await until(() => srv.closed === 1);
  });

  it('fails when the body stream closes before its end', async () => {
    const srv = await rawServer(() => undefined);
    const src = new Readable({ read() {}, emitClose: true });
    const r = new Recorder('body closed');
    pool(srv.origin).dispatch({ method: 'POST', path: '/', headers: [], body: src }, r);
    await until(() => srv.connections === 1);
    src.push('x');
    src.destroy();
    await r.done;
    expect(r.error!.code).toBe('UPSTREAM_REQUEST_BODY');
  });

  it('relays a response that arrives before the body is sent, then does not reuse the connection', async () => {
    // Answers as soon as a head is in, without reading the body.
    let connections = 0;
    let closed = 0;
    const server2 = createServer((s) => {
      connections++;
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      let head = '';
      s.on('data', (d: Buffer) => {
        if (head.includes('\r\n\r\n')) return;
        head += d.toString('latin1');
        if (head.includes('\r\n\r\n'))
          s.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!');
      });
    });
    await new Promise<void>((r) => server2.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      server2.close();
    });
    const p = pool(`http://127.0.0.1:${(server2.address() as AddressInfo).port}`);
    const src = new PassThrough();
    const r = new Recorder('early');
    p.dispatch({ method: 'POST', path: '/', headers: ['Content-Length', '1000'], body: src }, r);
    src.write('x'.repeat(10));
    await r.done;
    expect(r.status).toBe(413);
    expect(r.body).toBe('big!');
    expect(r.events).toEqual(['connect', 'headers', 'data', 'complete']);
    // The stream is the caller's: listeners gone, not destroyed, left flowing (drained).
    expect(src.listenerCount('data') + src.listenerCount('end') + src.listenerCount('close')).toBe(0);
    expect(src.destroyed).toBe(false);
    await until(() => closed === 1);
    expect((await send(p, get('/next'))).status).toBe(413);
    expect(connections).toBe(2);
    src.destroy();
  });

  it('stops reading the body while the upstream is not taking it (backpressure), then sends all of it', async () => {
    let pausedSocket: Socket | null = null;
    let received = -1;
    const total = 48 * 1024 * 1024;
    // Reads nothing at first; then counts the body bytes after the head.
    const server2 = createServer((s) => {
      pausedSocket = s;
      s.pause();
      let head = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        if (received === -1) {
          head = Buffer.concat([head, d]);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return;
          received = head.length - end - 4;
        } else {
          received += d.length;
        }
        if (received >= total) s.write(OK());
      });
    });
    await new Promise<void>((r) => server2.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      pausedSocket?.destroy();
      return new Promise((r) => server2.close(() => r()));
    });
    let produced = 0;
    const src = new Readable({
      read() {
        if (produced >= total) return void this.push(null);
        const n = Math.min(64 * 1024, total - produced);
        produced += n;
        this.push(Buffer.alloc(n, 0x61));
      },
    });
    const r = new Recorder('slow upstream');
    const port = (server2.address() as AddressInfo).port;
    pool(`http://127.0.0.1:${port}`).dispatch(
      { method: 'PUT', path: '/', headers: ['Content-Length', String(total)], body: src },
      r,
    );
    await until(() => pausedSocket !== null);
    await sleep(300);
    const producedWhilePaused = produced;
    // Bounded by socket buffers and stream high-water marks, not the body size.
    expect(producedWhilePaused).toBeLessThan(total / 2);
    expect(src.isPaused()).toBe(true);
    (pausedSocket as Socket | null)?.resume();
    await r.done;
    expect(r.error).toBeNull();
    expect(received).toBe(total);
    expect(r.events).toEqual(['connect', 'sent', 'headers', 'data', 'complete']);
  }, 20_000);
});

// ---- Responses ------------------------------------------------------------------------------------

describe('UpstreamPool: responses', () => {
  it('delivers headers as latin1 strings in original case and order, and the status text', async () => {
    const srv = await rawServer((_q, s) =>
      s.write(
        'HTTP/1.1 201 Made It\r\nX-B: 1\r\nx-a: caf\xe9\r\nSet-Cookie: a\r\nSet-Cookie: b\r\nContent-Length: 0\r\n\r\n',
        'latin1',
      ),
    );
    const r = await send(pool(srv.origin), get());
    expect(r.status).toBe(201);
    expect(r.statusText).toBe('Made It');
    expect(r.headers).toEqual([
      'X-B',
      '1',
      'x-a',
      'caf\u00e9',
      'Set-Cookie',
      'a',
      'Set-Cookie',
      'b',
      'Content-Length',
      '0',
    ]);
  });

  it('skips 1xx responses', async () => {
    const srv = await rawServer((_q, s) =>
      s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n' + OK('final')),
    );
    const r = await send(pool(srv.origin), get());
    expect(r.status).toBe(200);
    expect(r.body).toBe('final');
    expect(r.events.filter((e) => e === 'headers')).toHaveLength(1);
  });

  it('fails a malformed response with UPSTREAM_PARSE and drops the connection', async () => {
    const srv = await rawServer((_q, s) =>
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'),
    );
    const r = await send(pool(srv.origin), get());
    expect(r.error!.code).toBe('UPSTREAM_PARSE');
    await until(() => srv.closed === 1);
  });

  it('pauses reading when onHeaders returns false, until resume()', async () => {
    const srv = await rawServer((_q, s) => s.write(OK('body')));
    const r = new Recorder('pause head', { onHeaders: () => false });
    pool(srv.origin).dispatch(get(), r);
    await until(() => r.events.includes('headers'));
    await sleep(50);
    expect(r.events).not.toContain('data');
    r.resume!();
    await r.done;
    expect(r.body).toBe('body');
    r.resume!(); // after completion: a no-op
  });

  it('does not buffer a large response for a slow consumer (the socket is paused), and delivers all of it', async () => {
    const total = 64 * 1024 * 1024;
    let written = 0;
    const srv = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-length': total });
      const chunk = Buffer.alloc(256 * 1024, 0x62);
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    let paused = true;
    let received = 0;
    const r = new Recorder('slow consumer', {
      onData: (c) => {
        received += c.length;
        return !paused;
      },
    });
    pool(srv.origin).dispatch(get(), r);
    await until(() => received > 0);
    const receivedAtPause = received;
    await sleep(300);
    // One chunk came, then nothing: reading stopped, the server is held back.
    expect(received).toBe(receivedAtPause);
    expect(written).toBeLessThan(total / 2);
    paused = false;
    r.resume!();
    await r.done;
    expect(received).toBe(total);
    r.chunks = [];
  }, 20_000);

  it('a consumer pause longer than bodyTimeoutMs is not a body timeout', async () => {
    const srv = await rawServer((_q, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc');
      setTimeout(() => s.write('def'), 20);
    });
    const r = new Recorder('paused long', { onData: (_c, rec) => rec.chunks.length > 1 });
    pool(srv.origin, { bodyTimeoutMs: 100 }).dispatch(get(), r);
    await until(() => r.chunks.length === 1);
    await sleep(300);
    r.resume!();
    await r.done;
    expect(r.error).toBeNull();
    expect(r.body).toBe('abcdef');
  });

  it('turns an exception in onHeaders into onError (and drops the connection)', async () => {
    const srv = await rawServer((_q, s) => s.write(OK()));
    const r = new Recorder('throws', {
      onHeaders: () => {
        throw new Error('handler bug');
      },
    });
    pool(srv.origin).dispatch(get(), r);
    await r.done;
    expect(r.error!.message).toBe('handler bug');
    await until(() => srv.closed === 1);
  });
});

// ---- Failures and timeouts ------------------------------------------------------------------------

describe('UpstreamPool: failures', () => {
  it('reports a reset mid-body as UPSTREAM_SOCKET, after onHeaders', async () => {
    const srv = await rawServer((_q, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
      setTimeout(() => s.resetAndDestroy(), 20);
    });
    const r = await send(pool(srv.origin), get());
    expect(r.events).toEqual(['connect', 'sent', 'headers', 'data', 'error']);
    expect(r.error!.code).toBe('UPSTREAM_SOCKET');
  });

  it.each([
    ['a Content-Length body', 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'],
    ['a chunked body', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n'],
    ['a head', 'HTTP/1.1 200 OK\r\nContent-'],
  ])('reports a close in the middle of %s as UPSTREAM_SOCKET', async (_n, bytes) => {
    const srv = await rawServer((_q, s) => s.end(bytes));
    const r = await send(pool(srv.origin), get());
    expect(r.error!.code).toBe('UPSTREAM_SOCKET');
  });

  it('headersTimeout: UPSTREAM_HEADERS_TIMEOUT when no head comes', async () => {
    const srv = await rawServer(() => undefined);
    const t0 = Date.now();
    const r = await send(pool(srv.origin, { headersTimeoutMs: 150 }), get());
    expect(r.error!.code).toBe('UPSTREAM_HEADERS_TIMEOUT');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    await until(() => srv.closed === 1);
  });

  it('headersTimeout does not count the time the caller’s body takes to arrive', async () => {
    const srv = await httpServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('got it'));
    });
    const src = new PassThrough();
    const r = new Recorder('slow upload');
    pool(srv.origin, { headersTimeoutMs: 100 }).dispatch(
      { method: 'POST', path: '/', headers: [], body: src },
      r,
    );
    for (let i = 0; i < 5; i++) {
      src.write('part');
      await sleep(60);
    }
    src.end();
    await r.done;
    expect(r.error).toBeNull();
    expect(r.body).toBe('got it');
  });

  it('headersTimeout does count an upstream that stops reading the body', async () => {
    const held: Socket[] = [];
    const server2 = createServer((s) => {
      held.push(s);
      s.pause();
    });
    await new Promise<void>((r) => server2.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      for (const s of held) s.destroy();
      return new Promise((r) => server2.close(() => r()));
    });
    // Larger than any socket buffer, but finite: once refused, the pool
    // leaves the caller's stream flowing (drained), as it does a client's.
    let left = 64 * 1024 * 1024;
    const src = new Readable({
      read() {
        left -= 64 * 1024;
        this.push(left < 0 ? null : Buffer.alloc(64 * 1024));
      },
    });
    const r = await send(
      pool(`http://127.0.0.1:${(server2.address() as AddressInfo).port}`, { headersTimeoutMs: 150 }),
      { method: 'POST', path: '/', headers: [], body: src },
    );
    expect(r.error!.code).toBe('UPSTREAM_HEADERS_TIMEOUT');
  });

  it('bodyTimeout: UPSTREAM_BODY_TIMEOUT when the body stalls, after onHeaders', async () => {
    const srv = await rawServer((_q, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const t0 = Date.now();
    const r = await send(pool(srv.origin, { bodyTimeoutMs: 150 }), get());
    expect(r.events).toEqual(['connect', 'sent', 'headers', 'data', 'error']);
    expect(r.error!.code).toBe('UPSTREAM_BODY_TIMEOUT');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  describe('connect timeout', () => {
    let child: ChildProcess | null = null;
    const fillers: Socket[] = [];
    afterEach(() => {
      for (const f of fillers.splice(0)) f.destroy();
      child?.kill('SIGKILL');
      child = null;
    });

    it('UPSTREAM_CONNECT_TIMEOUT against a listener whose accept queue is full', async () => {
      // A listener in a stopped process accepts nothing: once its backlog is
      // full the kernel drops further SYNs, and a connect hangs.
      child = spawn(
        process.execPath,
        [
          '-e',
          "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))",
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const port = await new Promise<number>((resolve) =>
        child!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
      );
      child.kill('SIGSTOP');
      for (let i = 0; i < 8; i++) {
        const f = connect(port, '127.0.0.1');
        f.on('error', () => undefined);
        fillers.push(f);
      }
      await sleep(100);
      const p = pool(`http://127.0.0.1:${port}`, { connectTimeoutMs: 150, maxConnections: 1 });
      const t0 = Date.now();
      const rs = [0, 1].map((i) => new Recorder(`timeout ${i}`));
      for (const r of rs) p.dispatch(get(), r);
      await Promise.all(rs.map((r) => r.done));
      expect(rs.map((r) => r.error?.code)).toEqual(['UPSTREAM_CONNECT_TIMEOUT', 'UPSTREAM_CONNECT_TIMEOUT']);
      // One attempt each, one after the other (maxConnections 1).
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      expect(rs[0]!.events).toEqual(['error']);
    });
  });
});

// ---- Abort ----------------------------------------------------------------------------------------

describe('UpstreamPool: abort', () => {
  it('abort in onConnect: nothing is written, the connection is closed, onError once', async () => {
    const srv = await rawServer(() => undefined);
    let serverBytes = -1;
    const p = pool(srv.origin);
    const reason = new Error('client left');
    const r = new Recorder('abort at connect', { onConnect: (abort) => abort(reason) });
    p.dispatch({ method: 'POST', path: '/', headers: [], body: Buffer.from('secret') }, r);
    await r.done;
    expect(r.error).toBe(reason);
    expect(r.events).toEqual(['connect', 'error']);
    await until(() => srv.closed === 1);
    serverBytes = srv.sockets[0]!.bytesRead;
    expect(serverBytes).toBe(0);
  });

  it('abort after the head: socket destroyed, onError once, no onComplete', async () => {
    const srv = await rawServer((_q, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'));
    const r = new Recorder('abort after head', {
      onHeaders: (rec) => {
        setTimeout(() => rec.abort!(new Error('stop')), 10);
        return true;
      },
    });
    pool(srv.origin).dispatch(get(), r);
    await r.done;
    expect(r.error!.message).toBe('stop');
    await until(() => srv.closed === 1);
    srv.sockets[0]!.write('0123456789');
    r.abort!(new Error('again')); // a second abort is a no-op
  });

  it('abort mid-body, from inside onData: no further data, onError once', async () => {
    const srv = await rawServer((_q, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcdef'));
    const r = new Recorder('abort in data', {
      onData: (_c, rec) => {
        rec.abort!();
        return true;
      },
    });
    pool(srv.origin).dispatch(get(), r);
    await r.done;
    expect(r.error!.code).toBe('UPSTREAM_ABORTED');
    expect(r.events).toEqual(['connect', 'sent', 'headers', 'data', 'error']);
    await until(() => srv.closed === 1);
  });

  it('abort after completion is a no-op', async () => {
    const srv = await rawServer((_q, s) => s.write(OK()));
    const p = pool(srv.origin);
    const r = await send(p, get());
    r.abort!(new Error('late'));
    expect(r.events).toEqual(['connect', 'sent', 'headers', 'data', 'complete']);
    // The connection was not touched: still reused.
    await send(p, get());
    expect(srv.connections).toBe(1);
  });
});

// ---- TLS ------------------------------------------------------------------------------------------

describe('UpstreamPool: https', () => {
  async function tlsServer() {
    const names: (string | false | null)[] = [];
    const server = createTlsServer({ cert: TEST_CERT, key: TEST_KEY }, (s: TLSSocket) => {
      names.push(s.servername);
      s.on('error', () => undefined);
      s.once('data', () => s.write(OK('secure')));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    return { port: (server.address() as AddressInfo).port, names };
  }

  it('talks to a server whose certificate is given as ca, with SNI for names and none for IPs', async () => {
    const srv = await tlsServer();
    const byName = pool(`https://localhost:${srv.port}`, { tls: { ca: TEST_CERT } });
    expect((await send(byName, get())).body).toBe('secure');
    const byIp = pool(`https://127.0.0.1:${srv.port}`, { tls: { ca: TEST_CERT } });
    expect((await send(byIp, get())).body).toBe('secure');
    expect(srv.names).toEqual(['localhost', false]);
  });

  it('refuses the self-signed certificate without ca', async () => {
    const srv = await tlsServer();
    const r = await send(pool(`https://127.0.0.1:${srv.port}`), get());
    expect(r.error!.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);
    expect(r.events).toEqual(['error']);
  });

  it('UPSTREAM_CONNECT_TIMEOUT when the TLS handshake never completes', async () => {
    const srv = await rawServer(() => undefined); // accepts TCP, never answers the ClientHello
    const r = await send(
      pool(`https://127.0.0.1:${srv.port}`, { connectTimeoutMs: 150, tls: { ca: TEST_CERT } }),
      get(),
    );
    expect(r.error!.code).toBe('UPSTREAM_CONNECT_TIMEOUT');
  });
});

// ---- close / destroy ------------------------------------------------------------------------------

describe('UpstreamPool: close and destroy', () => {
  it('close() refuses new requests, lets queued and in-flight ones finish, closes idle sockets', async () => {
    let release: (() => void)[] = [];
    const srv = await httpServer((_req, res) => release.push(() => res.end('late')));
    const p = pool(srv.origin, { maxConnections: 1 });
    const inflight = new Recorder('in flight');
    const queued = new Recorder('queued');
    p.dispatch(get('/1'), inflight);
    p.dispatch(get('/2'), queued);
    await until(() => release.length === 1);
    let closed = false;
    const closing = p.close().then(() => (closed = true));
    const refused = new Recorder('after close');
    p.dispatch(get('/3'), refused);
    expect(refused.error!.code).toBe('UPSTREAM_CLOSED');
    await sleep(30);
    expect(closed).toBe(false);
    release.shift()!();
    await until(() => release.length === 1);
    expect(closed).toBe(false);
    release.shift()!();
    await closing;
    expect(inflight.body).toBe('late');
    expect(queued.body).toBe('late');
    release = [];
  });

  it('destroy() fails in-flight and queued requests with UPSTREAM_CLOSED', async () => {
    const srv = await rawServer(() => undefined);
    const p = pool(srv.origin, { maxConnections: 1 });
    const a = new Recorder('in flight');
    const b = new Recorder('queued');
    p.dispatch(get('/a'), a);
    p.dispatch(get('/b'), b);
    await until(() => srv.requests.length === 1);
    await p.destroy();
    await Promise.all([a.done, b.done]);
    expect([a.error!.code, b.error!.code]).toEqual(['UPSTREAM_CLOSED', 'UPSTREAM_CLOSED']);
    await until(() => srv.closed === 1);
  });
});
