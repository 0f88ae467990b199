/**
 * docs/contract.md 2.4: a WebSocket tunnel opens only when the relay answers
 * `101 Switching Protocols`. Any other answer reaches the client with
 * `Connection: close` and both connections close; bytes the client sent
 * before the 101 never reach the relay as HTTP.
 *
 * The relay here is a raw HTTP/1.1 server on loopback that records every
 * byte it receives. On ordinary paths it ignores `Upgrade` and keeps its
 * connection alive, parsing whatever follows as further requests, as many
 * real servers do: a tunnel piped before the 101 would hand it pipelined
 * requests KeyPin never judged. (Node's own HTTP server stops parsing after
 * an upgrade request, so it cannot stand in for such a relay.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores } from './support/stores';
import { openWs } from './support/websocket';

let keyN = 0;
/** A key no other test uses (no dash after `sk-`, so it stays whole under newapi). */
const newKey = () => `sk-ws101${randomBytes(4).toString('hex')}x${++keyN}`;
/** A query marker that finds one test's request among the relay's. */
const marker = () => `t=${randomBytes(6).toString('hex')}`;

// --------------------------------------------------------------------- relay

interface RelayConnection {
  /** Every byte received, in order. */
  received: Buffer[];
  /** Bytes of the request heads parsed on this connection. */
  headBytes: number;
  requests: RelayRequest[];
  /** For delayed 101s: bytes that arrived after the request head, before the 101 was written. */
  bytesBeforeAnswer: number | null;
  closed: boolean;
}

interface RelayRequest {
  method: string;
  url: string;
  /** Lower-case names; repeated names joined with ", ". */
  headers: Record<string, string>;
  connection: RelayConnection;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** How long the `/late-…` paths wait before answering. */
const LATE_MS = 300;

/** Raw HTTP/1.1 relay; see the file comment. Request bodies are not supported (none are sent). */
class RawRelay {
  readonly requests: RelayRequest[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private server: Server | null = null;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((socket) => this.serve(socket));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r());
  }

  /** The request whose URL carries `mark`. */
  find(mark: string): RelayRequest {
    const r = this.requests.find((q) => q.url.includes(mark));
    if (!r) throw new Error(`no request with ${mark} reached the relay`);
    return r;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    const conn: RelayConnection = {
      received: [],
      headBytes: 0,
      requests: [],
      bytesBeforeAnswer: null,
      closed: false,
    };
    let buffered = Buffer.alloc(0);
    let busy = false;
    const next = (): void => {
      while (!busy) {
        const end = buffered.indexOf(CRLFCRLF);
        if (end === -1) return;
        const head = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + CRLFCRLF.length);
        conn.headBytes += end + CRLFCRLF.length;
        const req = parseRequest(head, conn);
        this.requests.push(req);
        conn.requests.push(req);
        busy = true;
        this.answer(req, socket, () => buffered, {
          done: () => {
            busy = false;
            next();
          },
          upgraded: () => socket.off('data', onData),
        });
      }
    };
    const onData = (chunk: Buffer): void => {
      conn.received.push(chunk);
      buffered = Buffer.concat([buffered, chunk]);
      next();
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      this.sockets.delete(socket);
    });
  }

  /** Answers one request; `done` lets the next pipelined request be parsed. */
  private answer(
    req: RelayRequest,
    socket: Socket,
    pending: () => Buffer,
    then: { done: () => void; upgraded: () => void },
  ): void {
    const path = req.url.split('?')[0] ?? '';
    const status = /^\/(?:answer|late)-(\d{3})$/.exec(path)?.[1];
    const late = path.startsWith('/late-');
    const reply = (): void => {
      if (path === '/ws-echo' || path === '/ws-late') {
        req.connection.bytesBeforeAnswer = pending().length;
        this.accept(req, socket, pending());
        then.upgraded();
        return;
      }
      if (path === '/answer-chunked') {
        socket.write(
          'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n' +
            'Connection: keep-alive\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n',
        );
      } else {
        const body = JSON.stringify({ relay: true, status: Number(status ?? 200), url: req.url });
        socket.write(
          `HTTP/1.1 ${status ?? 200} Relay\r\nContent-Type: application/json\r\nX-Relay: yes\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\n${body}`,
        );
      }
      then.done();
    };
    if (late || path === '/ws-late') setTimeout(reply, LATE_MS);
    else reply();
  }

  /** The 101 and an echo WebSocket on the same socket; `head` holds what followed the request head. */
  private accept(req: RelayRequest, socket: Socket, head: Buffer): void {
    socket.pause();
    const fakeReq = { method: req.method, url: req.url, headers: req.headers };
    this.wss.handleUpgrade(fakeReq as never, socket, head, (ws) => {
      socket.resume();
      ws.send('hello from relay');
      ws.on('message', (data, isBinary) =>
        ws.send(isBinary ? data : `echo:${(data as Buffer).toString('utf8')}`, { binary: isBinary }),
      );
    });
  }
}

function parseRequest(head: string, connection: RelayConnection): RelayRequest {
  const [requestLine = '', ...lines] = head.split('\r\n');
  const [method = '', url = ''] = requestLine.split(' ');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { method, url, headers, connection };
}

// -------------------------------------------------------------------- client

/** A raw WebSocket upgrade request head (no key unless given). */
function upgradeHead(path: string, extra: string[] = []): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: keypin.test',
    'Connection: Upgrade',
    'Upgrade: websocket',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...extra,
    '',
    '',
  ].join('\r\n');
}

/** A pipelined ordinary request that must never reach the relay. */
function smuggled(key: string): string {
  return (
    'GET /v1/models HTTP/1.1\r\nHost: keypin.test\r\n' +
    `Authorization: Bearer ${key}\r\nX-Real-IP: 127.0.0.2\r\n\r\n`
  );
}

/** A masked client text frame (payload under 126 bytes). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const mask = randomBytes(4);
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** Unmasked short text frames from the relay, as far as complete. */
function serverTexts(data: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at + 2 <= data.length) {
    const len = data[at + 1]! & 0x7f;
    if (data[at] !== 0x81 || len >= 126)
      throw new Error(`unexpected frame header ${data.subarray(at, at + 2).toString('hex')}`);
    if (at + 2 + len > data.length) break;
    out.push(data.toString('utf8', at + 2, at + 2 + len));
    at += 2 + len;
  }
  return out;
}

/** One raw client connection: everything it received, and whether the gateway closed it. */
class RawClient {
  private readonly chunks: Buffer[] = [];
  closed = false;
  readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => this.chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => (this.closed = true));
  }

  static open(port: number, from: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, localAddress: from });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get text(): string {
    return this.data.toString('latin1');
  }

  /** Head and body of the answer; header names lower-cased, every line kept. */
  answer(): { status: number; fields: [string, string][]; body: Buffer } {
    const data = this.data;
    const end = data.indexOf(CRLFCRLF);
    if (end === -1) throw new Error(`no complete answer head: ${JSON.stringify(this.text)}`);
    const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
    const fields = lines.map((l): [string, string] => {
      const colon = l.indexOf(':');
      return [l.slice(0, colon).toLowerCase(), l.slice(colon + 1).trim()];
    });
    return { status: Number(statusLine.split(' ')[1]), fields, body: data.subarray(end + CRLFCRLF.length) };
  }

  destroy(): void {
    this.socket.destroy();
  }
}

const values = (fields: [string, string][], name: string): string[] =>
  fields.filter(([n]) => n === name).map(([, v]) => v);

// --------------------------------------------------------------------- tests

const stores = freshStores('ws101');
const relay = new RawRelay();
let gw: GatewayProcess;

beforeAll(async () => {
  await relay.start();
  gw = await startGateway({
    DATABASE_URL: stores.databaseUrl,
    REDIS_PREFIX: stores.redisPrefix,
    DOWNSTREAM_URL: relay.url,
    // A refusal whose end the gateway misses shows as a stall of this length.
    DOWNSTREAM_HEADERS_TIMEOUT_MS: '5000',
    LOG_LEVEL: 'info', // startGateway waits for the "listening" line
  });
});

afterAll(async () => {
  const code = await gw?.stop();
  await relay.stop();
  await dropStores(stores.dbName, stores.redisPrefix);
  expect(code).toBe(0);
});

/** Binds a fresh key to `ip` with an ordinary request. */
async function boundKey(ip: string): Promise<string> {
  const key = newKey();
  const r = await send(`${gw.url}/v1/models?${marker()}`, { from: ip, headers: bearer(key) });
  expect(r.status).toBe(200);
  return key;
}

/** Requests carrying `key` that reached the relay. */
const relayedWith = (key: string): RelayRequest[] =>
  relay.requests.filter((r) => r.headers['authorization'] === `Bearer ${key}`);

describe('a WebSocket upgrade the relay does not answer with 101', () => {
  it.each([
    ['200', '/answer-200'],
    ['401', '/answer-401'],
    ['404', '/answer-404'],
  ])(
    'relays the %s with Connection: close, closes, and never passes pipelined requests on',
    async (status, path) => {
      const key = await boundKey('127.0.0.2');
      const mark = marker();
      const client = await RawClient.open(gw.port, '127.0.0.3');
      // A keyless upgrade (forwarded as unauthenticated) and, in the same
      // write, an ordinary request with a key bound to another address.
      client.socket.write(upgradeHead(`${path}?${mark}`) + smuggled(key));
      await waitFor(() => client.closed, 3000).catch(() => undefined);
      client.destroy();

      const upgrade = relay.find(mark);
      const conn = upgrade.connection;
      expect(conn.requests.map((r) => r.url)).toEqual([`${path}?${mark}`]);
      expect(Buffer.concat(conn.received).length).toBe(conn.headBytes);
      expect(relayedWith(key)).toHaveLength(1); // only the request that bound it
      await waitFor(() => conn.closed, 2000);

      const a = client.answer();
      expect(a.status).toBe(Number(status));
      expect(values(a.fields, 'connection')).toEqual(['close']);
      expect(values(a.fields, 'keep-alive')).toEqual([]);
      expect(values(a.fields, 'x-relay')).toEqual(['yes']);
      expect(JSON.parse(a.body.toString('utf8'))).toEqual({
        relay: true,
        status: Number(status),
        url: `${path}?${mark}`,
      });
      expect(client.closed).toBe(true);
    },
  );

  it('relays a chunked refusal whole and closes although the relay keeps its connection', async () => {
    const key = await boundKey('127.0.0.2');
    const mark = marker();
    const client = await RawClient.open(gw.port, '127.0.0.3');
    const started = performance.now();
    client.socket.write(upgradeHead(`/answer-chunked?${mark}`) + smuggled(key));
    await waitFor(() => client.closed, 3000).catch(() => undefined);
    const ms = performance.now() - started;
    client.destroy();

    const conn = relay.find(mark).connection;
    expect(conn.requests).toHaveLength(1);
    expect(Buffer.concat(conn.received).length).toBe(conn.headBytes);
    expect(relayedWith(key)).toHaveLength(1);
    const a = client.answer();
    expect(a.status).toBe(200);
    expect(values(a.fields, 'connection')).toEqual(['close']);
    expect(values(a.fields, 'transfer-encoding')).toEqual(['chunked']);
    expect(a.body.toString('latin1')).toBe('5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n');
    expect(client.closed).toBe(true);
    expect(ms).toBeLessThan(2000); // ended by its framing, not by a timeout
  });

  it('never passes early client bytes on when the refusal comes late', async () => {
    // An allowed (keyed) upgrade; the relay answers 401 only after LATE_MS,
    // while the client's early frame and a pipelined request are waiting.
    const key = await boundKey('127.0.0.4');
    const other = await boundKey('127.0.0.2');
    const mark = marker();
    const client = await RawClient.open(gw.port, '127.0.0.4');
    client.socket.write(
      upgradeHead(`/late-401?${mark}`, [`Authorization: Bearer ${key}`]) +
        clientFrame('early bird').toString('latin1') +
        smuggled(other),
      'latin1',
    );
    await waitFor(() => client.closed, 3000).catch(() => undefined);
    client.destroy();

    const upgrade = relay.find(mark);
    expect(upgrade.headers['authorization']).toBe(`Bearer ${key}`);
    const conn = upgrade.connection;
    expect(conn.requests).toHaveLength(1);
    expect(Buffer.concat(conn.received).length).toBe(conn.headBytes);
    expect(relayedWith(other)).toHaveLength(1);
    const a = client.answer();
    expect(a.status).toBe(401);
    expect(values(a.fields, 'connection')).toEqual(['close']);
    expect(client.closed).toBe(true);
    await waitFor(() => conn.closed, 2000);
  });

  it('never passes early client bytes on when the refusal comes at once', async () => {
    const key = await boundKey('127.0.0.5');
    const mark = marker();
    const client = await RawClient.open(gw.port, '127.0.0.5');
    client.socket.write(
      upgradeHead(`/answer-404?${mark}`, [`Authorization: Bearer ${key}`]) +
        clientFrame('early bird').toString('latin1'),
      'latin1',
    );
    // More bytes after the request went out, while the answer is on its way.
    setTimeout(() => client.socket.write(clientFrame('second')), 20);
    await waitFor(() => client.closed, 3000).catch(() => undefined);
    client.destroy();

    const conn = relay.find(mark).connection;
    expect(conn.requests).toHaveLength(1);
    expect(Buffer.concat(conn.received).length).toBe(conn.headBytes);
    expect(client.answer().status).toBe(404);
    expect(client.closed).toBe(true);
  });
});

describe('a WebSocket upgrade the relay answers with 101', () => {
  it('tunnels both ways', async () => {
    const key = await boundKey('127.0.0.6');
    const o = await openWs(`${gw.url.replace(/^http/, 'ws')}/ws-echo?${marker()}`, {
      from: '127.0.0.6',
      headers: bearer(key),
    });
    if (!('ws' in o)) throw new Error(`upgrade refused: ${o.status} ${o.body}`);
    expect(await o.next()).toBe('hello from relay');
    o.ws.send('ping');
    expect(await o.next()).toBe('echo:ping');
    const payload = randomBytes(300_000);
    o.ws.send(payload);
    const back = await o.next();
    expect(Buffer.isBuffer(back) && Buffer.compare(back, payload)).toBe(0);
    o.ws.close();
  });

  it('passes bytes sent before the 101 on only after it, as WebSocket data', async () => {
    const key = await boundKey('127.0.0.7');
    const mark = marker();
    const client = await RawClient.open(gw.port, '127.0.0.7');
    const wsKey = randomBytes(16).toString('base64');
    const head = [
      `GET /ws-late?${mark} HTTP/1.1`,
      'Host: keypin.test',
      'Connection: Upgrade',
      'Upgrade: websocket',
      `Sec-WebSocket-Key: ${wsKey}`,
      'Sec-WebSocket-Version: 13',
      `Authorization: Bearer ${key}`,
      '',
      '',
    ].join('\r\n');
    // The first frame goes raw right behind the request head, long before
    // the relay's 101 (it answers after LATE_MS).
    client.socket.write(Buffer.concat([Buffer.from(head, 'latin1'), clientFrame('early bird')]));
    await waitFor(() => client.data.includes(CRLFCRLF), 3000);

    const conn = relay.find(mark).connection;
    expect(conn.bytesBeforeAnswer).toBe(0);
    const a = client.answer();
    expect(a.status).toBe(101);
    const accept = createHash('sha1').update(`${wsKey}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    expect(values(a.fields, 'sec-websocket-accept')).toEqual([accept]);

    const frames = () => serverTexts(client.answer().body);
    await waitFor(() => frames().length >= 2, 3000);
    expect(frames().slice(0, 2)).toEqual(['hello from relay', 'echo:early bird']);
    client.socket.write(clientFrame('after the 101'));
    await waitFor(() => frames().length >= 3, 3000);
    expect(frames()).toEqual(['hello from relay', 'echo:early bird', 'echo:after the 101']);
    client.destroy();
  });
});
