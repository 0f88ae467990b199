import { createHmac } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, type Reply, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { openWs } from './support/websocket';

/**
 * The proxy's protective limits: first uses the relay refuses are unbound
 * again (docs/contract.md 2.3 item 6), new keys per client network
 * (FIRST_USE_LIMIT, 2.3 item 7), stalled request bodies
 * (BODY_TIMEOUT_SECONDS), requests in flight per client IP
 * (MAX_INFLIGHT_PER_IP) and the cap on downstream connections
 * (DOWNSTREAM_MAX_CONNECTIONS).
 */

/** The test harness's HMAC_SECRET (support/gateway.ts). */
const HMAC_SECRET = 'integration-test-hmac-secret-0123456789abcdef';
let keyN = 0;
/** A key no other test uses (no dashes: its canonical form is the text after `sk-`). */
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;
const hashOf = (key: string) => createHmac('sha256', HMAC_SECRET).update(key.slice(3), 'utf8').digest('hex');

type BindingRow = { id: string; first_ip: string; allowed_ips: string[] };
async function bindingOf(databaseUrl: string, key: string): Promise<BindingRow | undefined> {
  const rows = await sql<BindingRow>(
    databaseUrl,
    `SELECT id, host(first_ip) AS first_ip, allowed_ips::text[] AS allowed_ips
       FROM bindings WHERE key_hash = decode($1, 'hex')`,
    [hashOf(key)],
  );
  return rows[0];
}

/** A Prometheus sample's value; throws when the gateway does not export it. */
async function metric(gw: GatewayProcess, sample: string): Promise<number> {
  const text = (await send(`${gw.url}/metrics`, { from: '127.0.0.250' })).body;
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  if (line === undefined) throw new Error(`/metrics has no ${sample}`);
  return Number(line.slice(sample.length + 1));
}

/** Runs `tasks` with at most `n` at once. */
async function pool<T>(n: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/** Requests whose answer the test releases by hand. */
class Holds {
  private readonly held: ServerResponse[] = [];
  get count(): number {
    return this.held.length;
  }
  hold(res: ServerResponse): void {
    this.held.push(res);
  }
  releaseAll(): void {
    for (const res of this.held.splice(0)) {
      if (!res.destroyed) res.end(JSON.stringify({ ok: true, held: true }));
    }
  }
}

/** Drains a request body, then runs `answer`. */
function afterBody(req: IncomingMessage, answer: () => void): void {
  req.resume();
  req.on('end', answer);
}

/** Opens a request and leaves it open; resolves with a function that cuts it. */
function openAndAbandon(url: string, from: string, key?: string): { cut(): void; done: Promise<void> } {
  const u = new URL(url);
  const req = httpRequest({
    host: u.hostname,
    port: u.port,
    path: u.pathname,
    localAddress: from,
    agent: false,
    headers: key === undefined ? {} : bearer(key),
  });
  const done = new Promise<void>((resolve) => {
    req.on('error', () => resolve());
    req.on('close', () => resolve());
    req.on('response', (res) => {
      res.resume();
      res.on('close', () => resolve());
    });
  });
  req.end();
  return { cut: () => req.destroy(), done };
}

// ----------------------------------------------------------------- first use refused

describe('first uses the relay refuses leave no binding (docs/contract.md 2.3 item 6)', () => {
  const stores = freshStores('limits_revoke');
  const downstream = new FakeDownstream();
  /** Keys the fake relay knows. */
  const known = new Set<string>();
  /** Keys the relay answers 403 for (a disabled key, say). */
  const disabled = new Set<string>();
  /** When set, the relay's refusals wait for it. */
  let refusalGate: Promise<void> | null = null;
  let gw: GatewayProcess;

  const relayBody = '{"error":{"message":"Invalid token (request id 1)","type":"new_api_error"}}';

  beforeAll(async () => {
    await downstream.start();
    downstream.route = (req, res) => {
      const key = (req.headers['authorization'] ?? '').replace(/^Bearer /, '');
      afterBody(req, () => {
        if (known.has(key)) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"ok":true}');
          return;
        }
        const refuse = () => {
          res.writeHead(disabled.has(key) ? 403 : 401, {
            'content-type': 'application/json',
            'x-relay-says': 'no',
          });
          res.end(relayBody);
        };
        if (refusalGate) void refusalGate.then(refuse);
        else refuse();
      });
    };
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  const call = (key: string, from: string) => send(`${gw.url}/v1/models`, { from, headers: bearer(key) });

  it('passes the 401 unchanged, removes the binding, and the key binds afresh elsewhere', async () => {
    const key = newKey('unknown');
    const first = await call(key, '127.0.0.2');
    expect(first.status).toBe(401);
    expect(first.body).toBe(relayBody);
    expect(first.headers['x-relay-says']).toBe('no');

    const ms = await waitFor(async () => (await bindingOf(stores.databaseUrl, key)) === undefined, 1000);
    expect(ms).toBeLessThan(1000);

    // The relay learns the key (it was just created there): its next use,
    // from another network, is a first use again, not an intercept.
    known.add(key);
    const seen = downstream.seen.length;
    const elsewhere = await call(key, '127.0.0.3');
    expect(elsewhere.status).toBe(200);
    expect(downstream.seen.length).toBe(seen + 1);
    expect(await bindingOf(stores.databaseUrl, key)).toMatchObject({
      first_ip: '127.0.0.3',
      allowed_ips: ['127.0.0.3/32'],
    });
    expect((await call(key, '127.0.0.2')).json()).toMatchObject({ error: { code: 'ip_not_allowed' } });
  });

  it('removes a first use answered 403 as well', async () => {
    const key = newKey('disabled');
    disabled.add(key);
    const r = await call(key, '127.0.0.4');
    expect(r.status).toBe(403);
    expect(r.body).toBe(relayBody);
    await waitFor(async () => (await bindingOf(stores.databaseUrl, key)) === undefined, 1000);
    // Another network is not intercepted: the relay answers it.
    expect((await call(key, '127.0.0.5')).body).toBe(relayBody);
  });

  it('keeps a first use the relay accepts', async () => {
    const key = newKey('good');
    known.add(key);
    expect((await call(key, '127.0.0.6')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await bindingOf(stores.databaseUrl, key)).toMatchObject({ first_ip: '127.0.0.6' });
    expect((await call(key, '127.0.0.7')).json()).toMatchObject({ error: { code: 'ip_not_allowed' } });
  });

  it('keeps a bound key the relay refuses later (only a first use is undone)', async () => {
    const key = newKey('revoked');
    known.add(key);
    expect((await call(key, '127.0.0.8')).status).toBe(200);
    known.delete(key); // disabled at the relay afterwards
    expect((await call(key, '127.0.0.8')).status).toBe(401);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await bindingOf(stores.databaseUrl, key)).toMatchObject({ first_ip: '127.0.0.8' });
  });

  it('keeps a first-use binding an admin changed before the refusal arrived', async () => {
    const key = newKey('edited');
    let open!: () => void;
    refusalGate = new Promise((r) => (open = r));
    try {
      const pending = call(key, '127.0.0.9');
      await waitFor(async () => (await bindingOf(stores.databaseUrl, key)) !== undefined, 2000);
      await sql(
        stores.databaseUrl,
        `UPDATE bindings SET rule_type = 'all', allowed_ips = '{}', updated_at = now() + interval '1 ms'
          WHERE key_hash = decode($1, 'hex')`,
        [hashOf(key)],
      );
      open();
      expect((await pending).status).toBe(401);
    } finally {
      refusalGate = null;
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(await bindingOf(stores.databaseUrl, key)).toBeDefined();
  });

  it('counts removed first binds in /metrics and takes them out of the dashboard figure', async () => {
    // Undone above: the unknown key's first use, both first uses of the
    // disabled key. Kept: the unknown key's second first use, 'good',
    // 'revoked' and 'edited'.
    expect(await metric(gw, 'keypin_first_binds_revoked_total')).toBe(3);
    await waitFor(
      async () => {
        const rows = await sql<{ first_binds: string }>(
          stores.databaseUrl,
          `SELECT first_binds FROM daily_stats WHERE day = (now() AT TIME ZONE 'UTC')::date`,
        );
        return rows[0]?.first_binds === '4';
      },
      5000,
      100,
    );
  });
});

// ----------------------------------------------------------------- FIRST_USE_LIMIT

describe('FIRST_USE_LIMIT: new keys per client network (docs/contract.md 2.3 item 7)', () => {
  const stores = freshStores('limits_first_use');
  const downstream = new FakeDownstream();
  let gw1: GatewayProcess;
  let gw2: GatewayProcess;
  const LIMIT = 30;
  let knownKey = '';

  beforeAll(async () => {
    await downstream.start();
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      FIRST_USE_LIMIT: String(LIMIT),
    };
    [gw1, gw2] = await Promise.all([startGateway(env), startGateway(env)]);
    // Bound from a different /24 before the burst; checked again during it.
    knownKey = newKey('known');
    expect(
      (await send(`${gw1.url}/v1/models`, { from: '127.0.5.1', headers: bearer(knownKey) })).status,
    ).toBe(200);
  });

  afterAll(async () => {
    await Promise.all([gw1?.stop(), gw2?.stop()]);
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('binds at most FIRST_USE_LIMIT of 2,000 new keys from one address; the rest get 429 and are not forwarded', async () => {
    const seen = downstream.seen.length;
    const keys = Array.from({ length: 2000 }, () => newKey('burst'));
    const replies = await pool(
      40,
      keys.map((key) => () => send(`${gw1.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) })),
    );
    const ok = replies.filter((r) => r.status === 200);
    const limited = replies.filter((r) => r.status === 429);
    expect(ok.length).toBe(LIMIT);
    expect(limited.length).toBe(2000 - LIMIT);
    for (const r of limited) {
      expect(r.json()).toEqual({
        error: { type: 'keypin_error', code: 'too_many_new_keys', message: expect.any(String) },
      });
      const retry = Number(r.headers['retry-after']);
      expect(Number.isInteger(retry) && retry >= 1 && retry <= 60).toBe(true);
    }
    expect(downstream.seen.length - seen).toBe(LIMIT);
    const rows = await sql<{ n: string }>(
      stores.databaseUrl,
      `SELECT count(*) AS n FROM bindings WHERE first_ip = '127.0.0.2'`,
    );
    expect(rows[0]!.n).toBe(String(LIMIT));
  });

  it('leaves bound keys, the keys just bound, and other networks alone', async () => {
    expect(
      (await send(`${gw1.url}/v1/models`, { from: '127.0.5.1', headers: bearer(knownKey) })).status,
    ).toBe(200);
    const bound = await sql<{ id: string }>(
      stores.databaseUrl,
      `SELECT id FROM bindings WHERE first_ip = '127.0.0.2' LIMIT 1`,
    );
    expect(bound).toHaveLength(1);
    // Another /24 binds new keys as usual.
    for (let i = 0; i < 3; i++) {
      expect(
        (await send(`${gw1.url}/x`, { from: '127.0.1.2', headers: bearer(newKey('other')) })).status,
      ).toBe(200);
    }
  });

  it('is shared by every instance, for the whole /24', async () => {
    const r = await send(`${gw2.url}/v1/models`, { from: '127.0.0.3', headers: bearer(newKey('second')) });
    expect(r.status).toBe(429);
    expect(r.json()).toMatchObject({ error: { code: 'too_many_new_keys' } });
    expect(await metric(gw2, 'keypin_requests_total{decision="too_many_new_keys"}')).toBe(1);
  });
});

// ----------------------------------------------------------------- BODY_TIMEOUT_SECONDS

/** Sends `head` and `body` raw, then nothing; resolves with what came back and when the socket closed. */
function stallingUpload(
  port: number,
  from: string,
  head: string,
  body: string,
): Promise<{ text: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket: Socket = connect({ host: '127.0.0.1', port, localAddress: from });
    const chunks: Buffer[] = [];
    const limit = setTimeout(() => {
      socket.destroy();
      reject(new Error('the gateway kept the stalled upload open for 10 s'));
    }, 10_000);
    socket.on('connect', () => socket.write(head + body, 'latin1'));
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(limit);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), ms: Date.now() - started });
    });
  });
}

describe('BODY_TIMEOUT_SECONDS: a stalled request body is aborted', () => {
  const stores = freshStores('limits_body');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;

  beforeAll(async () => {
    await downstream.start();
    downstream.route = (req, res, seen) => {
      if (req.url === '/answer-first') {
        // Answers (and streams) before the body is complete: full duplex.
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('started\n');
        req.resume();
        return;
      }
      req.on('data', (c: Buffer) => (seen.bodyBytes += c.length));
      afterBody(req, () => res.end(JSON.stringify({ bodyBytes: seen.bodyBytes })));
    };
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      BODY_TIMEOUT_SECONDS: '1',
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  const head = (path: string, length: number) =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${newKey('body')}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

  it('answers 408 in the contract shape, closes, and aborts the downstream request', async () => {
    const seen = downstream.seen.length;
    const r = await stallingUpload(gw.port, '127.0.0.2', head('/v1/chat/completions', 1000), '{"model":"x",');
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.text.toLowerCase()).toContain('connection: close');
    const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
    expect(JSON.parse(body)).toEqual({
      error: { type: 'keypin_error', code: 'request_timeout', message: expect.any(String) },
    });
    expect(r.ms).toBeGreaterThanOrEqual(900);
    expect(r.ms).toBeLessThan(3000);
    expect(downstream.seen.length).toBe(seen + 1);
    await waitFor(() => downstream.last().aborted, 2000);
  });

  it('cuts the connection when the downstream had answered already', async () => {
    const r = await stallingUpload(gw.port, '127.0.0.3', head('/answer-first', 1000), 'partial');
    expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.text).toContain('started');
    expect(r.text).not.toMatch(/\r\n0\r\n\r\n$/); // no clean end of the chunked body
    expect(r.ms).toBeLessThan(3000);
  });

  it('lets a slow upload through as long as bytes keep coming', async () => {
    const chunks = 8;
    const reply = await new Promise<Reply>((resolve, reject) => {
      const u = new URL(gw.url);
      const req = httpRequest({
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path: '/v1/upload',
        localAddress: '127.0.0.4',
        agent: false,
        headers: { ...bearer(newKey('slow')), 'content-length': String(chunks * 10) },
      });
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text,
            json: <T>() => JSON.parse(text) as T,
          }),
        );
      });
      req.on('error', reject);
      let sent = 0;
      const tick = setInterval(() => {
        req.write('x'.repeat(10));
        if (++sent === chunks) {
          clearInterval(tick);
          req.end();
        }
      }, 400); // 3.2 s in all, never 1 s without a byte
    });
    expect(reply.status).toBe(200);
    expect(reply.json()).toEqual({ bodyBytes: chunks * 10 });
  });
});

// ----------------------------------------------------------------- MAX_INFLIGHT_PER_IP

describe('MAX_INFLIGHT_PER_IP: requests in flight per client IP', () => {
  const stores = freshStores('limits_inflight');
  const downstream = new FakeDownstream();
  const holds = new Holds();
  let wss: WebSocketServer;
  let gw: GatewayProcess;
  const MAX = 5;

  beforeAll(async () => {
    await downstream.start();
    downstream.route = (req, res) => {
      afterBody(req, () => {
        if (req.url === '/hold') holds.hold(res);
        else res.end('{"ok":true}');
      });
    };
    wss = new WebSocketServer({ noServer: true });
    (downstream as unknown as { server: Server }).server.on('upgrade', (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws) => ws.send('hello')),
    );
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      MAX_INFLIGHT_PER_IP: String(MAX),
    });
  });

  afterAll(async () => {
    holds.releaseAll();
    for (const c of wss?.clients ?? []) c.terminate();
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('forwards 5 of 8 concurrent requests from one IP and refuses 3 with 429; others IPs are not affected', async () => {
    const key = newKey('busy');
    const seen = downstream.seen.length;
    const answered: number[] = [];
    const all = Array.from({ length: 8 }, () =>
      send(`${gw.url}/hold`, { from: '127.0.0.2', headers: bearer(key) }).then((r) => {
        answered.push(r.status);
        return r;
      }),
    );
    // The three refusals come back while the five are still held.
    await waitFor(() => holds.count === MAX && answered.length === 3, 5000);
    expect(answered).toEqual([429, 429, 429]);
    // Another IP gets through meanwhile.
    expect((await send(`${gw.url}/free`, { from: '127.0.0.3' })).status).toBe(200);
    holds.releaseAll();
    const replies = await Promise.all(all);
    expect(replies.filter((r) => r.status === 200)).toHaveLength(MAX);
    const refused = replies.filter((r) => r.status === 429);
    expect(refused).toHaveLength(3);
    for (const r of refused) {
      expect(r.json()).toEqual({
        error: { type: 'keypin_error', code: 'too_many_concurrent_requests', message: expect.any(String) },
      });
    }
    expect(downstream.seen.length - seen).toBe(MAX + 1);
    // Done: the IP has its slots back.
    const again = await Promise.all(
      Array.from({ length: MAX }, () => send(`${gw.url}/free`, { from: '127.0.0.2', headers: bearer(key) })),
    );
    expect(again.map((r) => r.status)).toEqual(Array(MAX).fill(200));
  });

  it('gives every slot back after 200 requests cut by the client', async () => {
    for (let round = 0; round < 40; round++) {
      const before = holds.count;
      const open = Array.from({ length: MAX }, () => openAndAbandon(`${gw.url}/hold`, '127.0.0.4'));
      await waitFor(() => holds.count === before + MAX, 5000);
      for (const o of open) o.cut();
      await Promise.all(open.map((o) => o.done));
    }
    holds.releaseAll();
    await waitFor(async () => (await metric(gw, 'keypin_inflight_requests')) === 0, 3000, 50);
    expect(await metric(gw, 'keypin_inflight_client_ips')).toBe(0);
    const statuses = await Promise.all(
      Array.from({ length: MAX }, () => send(`${gw.url}/free`, { from: '127.0.0.4' }).then((r) => r.status)),
    );
    expect(statuses).toEqual(Array(MAX).fill(200));
  });

  it('counts WebSocket tunnels until they close', async () => {
    const key = newKey('ws');
    const open = [];
    for (let i = 0; i < MAX; i++) {
      const ws = await openWs(`ws://127.0.0.1:${gw.port}/v1/realtime`, {
        from: '127.0.0.5',
        headers: bearer(key),
      });
      expect('ws' in ws).toBe(true);
      open.push(ws);
    }
    const refused = await openWs(`ws://127.0.0.1:${gw.port}/v1/realtime`, {
      from: '127.0.0.5',
      headers: bearer(key),
    });
    expect(refused).toMatchObject({ status: 429 });
    const first = open[0]!;
    if ('ws' in first) {
      const closed = new Promise((r) => first.ws.once('close', r));
      first.ws.close();
      await closed;
    }
    await waitFor(async () => (await metric(gw, 'keypin_inflight_requests')) === MAX - 1, 3000, 50);
    const again = await openWs(`ws://127.0.0.1:${gw.port}/v1/realtime`, {
      from: '127.0.0.5',
      headers: bearer(key),
    });
    expect('ws' in again).toBe(true);
    for (const o of [...open.slice(1), again]) if ('ws' in o) o.ws.close();
  });
});

// ----------------------------------------------------------------- DOWNSTREAM_MAX_CONNECTIONS

describe('DOWNSTREAM_MAX_CONNECTIONS: a cap on connections to the downstream', () => {
  const stores = freshStores('limits_pool');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let open = 0;
  let mostOpen = 0;

  beforeAll(async () => {
    await downstream.start();
    const server = (downstream as unknown as { server: Server }).server;
    server.on('connection', (socket: Socket) => {
      mostOpen = Math.max(mostOpen, ++open);
      socket.on('close', () => open--);
    });
    downstream.route = (req, res) => {
      afterBody(req, () => {
        if (req.url === '/silent') return; // never answers
        if (req.url !== '/stream') {
          res.end('{"ok":true}');
          return;
        }
        // Headers at once, then a body that takes 4 s: the connection stays busy.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let n = 0;
        const tick = setInterval(() => {
          res.write(`data: ${n}\n\n`);
          if (++n === 8) {
            clearInterval(tick);
            res.end();
          }
        }, 500);
        res.on('close', () => clearInterval(tick));
      });
    };
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      DOWNSTREAM_MAX_CONNECTIONS: '2',
      DOWNSTREAM_HEADERS_TIMEOUT_MS: '1500',
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('opens at most that many; waiting for one is bounded by the headers timeout (504), as is waiting on one', async () => {
    const streams = [
      send(`${gw.url}/stream`, { from: '127.0.0.2' }),
      send(`${gw.url}/stream`, { from: '127.0.0.3' }),
    ];
    await waitFor(() => downstream.seen.length === 2, 3000);
    const started = Date.now();
    const queued = await Promise.all([
      send(`${gw.url}/quick`, { from: '127.0.0.4' }),
      send(`${gw.url}/quick`, { from: '127.0.0.5' }),
    ]);
    const waited = Date.now() - started;
    for (const r of queued) {
      expect(r.status).toBe(504);
      expect(r.json()).toMatchObject({ error: { code: 'gateway_timeout' } });
    }
    expect(waited).toBeGreaterThanOrEqual(1400);
    expect(waited).toBeLessThan(3500);
    // (Checked while nothing closes: once the streams end, the server may
    // accept a new connection before it notices an old one closed.)
    expect(mostOpen).toBeLessThanOrEqual(2);
    for (const r of await Promise.all(streams)) expect(r.status).toBe(200);
    // The timed-out requests were never sent on; the pool serves again.
    expect(downstream.seen.map((s) => s.url)).toEqual(['/stream', '/stream']);
    expect((await send(`${gw.url}/quick`, { from: '127.0.0.4' })).status).toBe(200);

    // A request on a connection still has undici's headers timeout.
    const silentStarted = Date.now();
    const silent = await send(`${gw.url}/silent`, { from: '127.0.0.6' });
    expect(silent.status).toBe(504);
    expect(Date.now() - silentStarted).toBeGreaterThanOrEqual(1400);
    expect(Date.now() - silentStarted).toBeLessThan(3000);
  });
});
