import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import pino from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MetricsService } from '../infra/metrics/metrics.service';
import { filterResponseHeaders, Forwarder, type ForwarderOptions } from './forwarder';

const raw = (flat: string[]) => flat.map((s) => Buffer.from(s, 'latin1'));

describe('filterResponseHeaders', () => {
  it('drops hop-by-hop headers and those Connection names, keeps the rest verbatim', () => {
    const sut = filterResponseHeaders(
      raw([
        'Content-Type',
        'text/event-stream',
        'Connection',
        'keep-alive, X-Down-Hop',
        'X-Down-Hop',
        '1',
        'Keep-Alive',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'Set-Cookie',
        'a=1',
        'Set-Cookie',
        'b=2',
        'X-Bytes',
        '\u00e9t\u00e9',
      ]),
    );
    expect(sut).toEqual([
      'Content-Type',
      'text/event-stream',
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'X-Bytes',
      '\u00e9t\u00e9',
    ]);
  });
});

const servers: Server[] = [];
/** The client the tests of the block running now use (every test runs with both). */
let client: ForwarderOptions['client'] = 'undici';
const forwarders: Forwarder[] = [];

afterEach(async () => {
  for (const f of forwarders.splice(0)) await f.close().catch(() => undefined);
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A downstream, and a front server forwarding every request to it the way the proxy does. */
async function setup(
  downstream: (req: IncomingMessage, res: ServerResponse) => void,
  options: Partial<ForwarderOptions> = {},
  onStatus?: (status: number) => void,
) {
  const downPort = await listen(downstream);
  const sut = new Forwarder(
    new URL(`http://127.0.0.1:${downPort}`),
    {
      connectTimeoutMs: 1000,
      headersTimeoutMs: 5000,
      bodyTimeoutMs: 5000,
      maxConnections: 0,
      requestBodyTimeoutMs: 0,
      client,
      ...options,
    },
    new MetricsService(),
    pino({ level: 'silent' }),
  );
  forwarders.push(sut);
  const hasBody = (req: IncomingMessage) => req.headers['content-length'] !== undefined;
  const port = await listen((req, res) =>
    sut.forward(req, res, sut.pathFor(req.url!), ['host', 'downstream'], hasBody(req) ? req : null, onStatus),
  );
  return { port, sut };
}

function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

describe.each(['undici', 'keypin'] as const)('Forwarder (DOWNSTREAM_CLIENT=%s)', (c) => {
  beforeAll(() => {
    client = c;
  });

  it('tells the caller the downstream status before the client has the answer, which passes unchanged', async () => {
    const heard: number[] = [];
    let clientHadIt = false;
    const { port } = await setup(
      (_req, res) => {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end('{"error":"invalid key"}');
      },
      {},
      (status) => heard.push(clientHadIt ? -status : status),
    );
    const r = await get(port);
    clientHadIt = true;
    expect(r).toEqual({ status: 401, body: '{"error":"invalid key"}' });
    expect(heard).toEqual([401]);
  });

  it('caps the connections; a request that cannot get one within the headers timeout gets 504 and is never sent', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const busy = new Promise<void>((r) => (release = r));
    const { port } = await setup(
      (req, res) => {
        seen.push(req.url ?? '');
        // The busy answer's head goes at once: its connection stays taken
        // by a body in progress, not by a head the headers timeout could end.
        if (req.url === '/busy') {
          res.writeHead(200).flushHeaders();
          void busy.then(() => res.end('done'));
        } else res.end('quick');
      },
      { maxConnections: 1, headersTimeoutMs: 300 },
    );
    const first = get(port, '/busy');
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    const second = await get(port, '/queued');
    expect(second.status).toBe(504);
    expect(JSON.parse(second.body)).toMatchObject({ error: { code: 'gateway_timeout' } });
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    release();
    expect((await first).body).toBe('done');
    expect(await get(port, '/after')).toEqual({ status: 200, body: 'quick' });
    expect(seen).toEqual(['/busy', '/after']);
  });

  it('answers 408 to a request body that stalls, and aborts the downstream request', async () => {
    let downstreamAborted = false;
    const { port } = await setup(
      (req, res) => {
        req.resume();
        res.on('close', () => (downstreamAborted = !res.writableFinished));
      },
      { requestBodyTimeoutMs: 300 },
    );
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789'),
      );
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      socket.on('close', () => resolve(text));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"code":"request_timeout"');
    await expect.poll(() => downstreamAborted).toBe(true);
  });
});
