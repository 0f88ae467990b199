/**
 * Hostile input against the real gateway process (issue 7, "Hostile
 * input"): spoofed client-IP headers, CRLF and oversized headers, request
 * smuggling attempts sent raw over a socket (directly and through the
 * project's nginx/keypin.conf), duplicate key headers, keys of 0, 1 and
 * 100,000 characters, non-UTF-8 bytes, admin API bodies of the wrong
 * types / too large / with unknown fields, forged JWTs, and webhook URLs
 * aimed inside (literal addresses, a DNS name, a redirect).
 *
 * Each case asserts a clear refusal (in the contract's shape where KeyPin
 * writes it) and that nothing was bound, forwarded or changed.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send, type Reply } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { type RunningNginx, startNginx } from './support/nginx';
import { WebhookReceiver } from './support/webhook-receiver';

const JWT_SECRET = 'hostile-jwt-secret-0123456789abcdef0123456789';

/** Hostile inputs sent, reported at the end. */
let tried = 0;
let keyN = 0;
const newKey = () => `sk-hst${randomBytes(4).toString('hex')}x${++keyN}`;

// ------------------------------------------------------------ raw sockets

interface RawResult {
  text: string;
  /** The server closed the connection (before `waitMs` ran out). */
  closed: boolean;
  statuses: number[];
}

/**
 * Writes bytes on a fresh TCP connection from `from` and collects whatever
 * comes back until the server closes or `waitMs` passes.
 */
function raw(port: number, data: string | Buffer, from = '127.0.0.40', waitMs = 1500): Promise<RawResult> {
  tried++;
  return new Promise((resolveRaw) => {
    const sock = connect({ host: '127.0.0.1', port, localAddress: from });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)].map((m) => Number(m[1]));
      resolveRaw({ text, closed, statuses });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', () => sock.write(data));
  });
}

/** The JSON body of the first response in a raw exchange. */
function firstBody(r: RawResult): unknown {
  const start = r.text.indexOf('\r\n\r\n');
  if (start === -1) return undefined;
  const rest = r.text.slice(start + 4);
  const m = /content-length:\s*(\d+)/i.exec(r.text.slice(0, start));
  const body = m ? rest.slice(0, Number(m[1])) : rest;
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

function expectContractError(body: unknown, code?: string): void {
  expect(body, JSON.stringify(body)).toMatchObject({
    error: { message: expect.any(String), type: 'keypin_error', code: code ?? expect.any(String) },
  });
}

function expectReplyError(r: Reply, status: number, code: string): void {
  expect({ status: r.status, body: r.body }).toMatchObject({ status });
  expectContractError(r.json(), code);
}

// ------------------------------------------------------------------- JWTs

const b64url = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
function forge(payload: object, header: object = { alg: 'HS256', typ: 'JWT' }, secret = JWT_SECRET): string {
  const head = `${b64url(header)}.${b64url(payload)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

// ------------------------------------------------------------------ suite

describe('hostile input against the real gateway', () => {
  const stores = freshStores('hostile');
  const redirStores = freshStores('hostile_redirect');
  const down = new FakeDownstream();
  const receiver = new WebhookReceiver();
  const redirected = new WebhookReceiver();
  let redirector: Server | undefined;
  let gw: GatewayProcess;
  let gwBehindNginx: GatewayProcess | undefined;
  let gwRedirect: GatewayProcess | undefined;
  let nginx: RunningNginx | undefined;
  let admin: AdminClient;

  const alertEnv = {
    ALERT_THRESHOLD_COUNT: '2',
    ALERT_THRESHOLD_SECONDS: '60',
    ALERT_SWEEP_MS: '1000',
    WEBHOOK_RETRY_BASE_MS: '200',
  };

  const bindingCount = async (db = stores.databaseUrl) =>
    Number((await sql<{ n: string }>(db, 'SELECT count(*) AS n FROM bindings'))[0]!.n);
  const bindingsFrom = (ip: string) =>
    sql<{ id: string; token_display: string }>(
      stores.databaseUrl,
      'SELECT id, token_display FROM bindings WHERE host(first_ip) = $1',
      [ip],
    );
  const healthy = async () => {
    const h = await send(`${gw.url}/health`, { from: '127.0.0.250' });
    expect(h.status).toBe(200);
    expect(h.json()).toEqual({ status: 'ok' });
  };
  const seenPaths = () => down.seen.map((s) => s.url);

  beforeAll(async () => {
    await down.start();
    await receiver.start();
    await redirected.start();
    redirector = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(302, { location: redirected.url });
        res.end();
      });
    });
    await new Promise<void>((r) => redirector!.listen(0, '127.0.0.1', r));
    const base = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: down.url,
      ADMIN_JWT_SECRET: JWT_SECRET,
      LOG_LEVEL: 'warn',
      ...alertEnv,
      ...ADMIN_ENV,
    };
    gw = await startGateway({ ...base, LOG_LEVEL: 'info' });
    admin = await AdminClient.login(gw.url);
    gwBehindNginx = await startGateway({ ...base, LOG_LEVEL: 'info', TRUSTED_PROXIES: '127.0.0.1/32' });
    nginx = await startNginx([gwBehindNginx.port]);
    gwRedirect = await startGateway({
      DATABASE_URL: redirStores.databaseUrl,
      REDIS_PREFIX: redirStores.redisPrefix,
      DOWNSTREAM_URL: down.url,
      ALERT_WEBHOOK_URL: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/hook`,
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
      ...alertEnv,
    });
  }, 60_000);

  afterAll(async () => {
    console.log(`hostile inputs tried: ${tried}`);
    await nginx?.stop();
    await Promise.all([gw?.stop(), gwBehindNginx?.stop(), gwRedirect?.stop()]);
    await down.stop();
    await receiver.stop();
    await redirected.stop();
    if (redirector) {
      redirector.closeAllConnections();
      await new Promise<void>((r) => redirector!.close(() => r()));
    }
    await dropStores(stores.dbName, stores.redisPrefix);
    await dropStores(redirStores.dbName, redirStores.redisPrefix);
  });

  // ------------------------------------------------------ client IP spoofing

  it('ignores spoofed client-IP headers from an untrusted peer (sanity)', async () => {
    const key = newKey();
    tried++;
    const r = await send(`${gw.url}/v1/spoof`, {
      from: '127.0.0.41',
      headers: [
        ...Object.entries(bearer(key)),
        ['x-real-ip', '203.0.113.9'],
        ['x-forwarded-for', '203.0.113.9, 127.0.0.1'],
        ['forwarded', 'for=203.0.113.9'],
      ],
    });
    expect(r.status, r.body).toBe(200);
    const seen = down.last();
    expect(seen.headers['x-real-ip']).toBe('127.0.0.41');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.41');
    expect(seen.headers['forwarded']).toBeUndefined();
    expect(JSON.stringify(seen.rawHeaders)).not.toContain('203.0.113.9');
    expect(await bindingsFrom('127.0.0.41')).toHaveLength(1);
  });

  // ----------------------------------------------------------- CRLF, sizes

  it('gives CRLF injection no header: encoded CRLF stays in the path, raw CR / LF are refused or inert', async () => {
    const before = await bindingCount();
    // Percent-encoded CRLF in the path: forwarded as the same bytes, no new header downstream.
    tried++;
    const enc = await send(`${gw.url}/v1/a%0d%0aX-Injected:%20yes%0d%0a%0d%0aGET%20/smuggled`, {
      from: '127.0.0.42',
    });
    expect(enc.status).toBe(200);
    expect(down.last().url).toBe('/v1/a%0d%0aX-Injected:%20yes%0d%0a%0d%0aGET%20/smuggled');
    expect(down.last().headers['x-injected']).toBeUndefined();
    // On an admin path: a 404 in the contract's shape, no header of the attacker's.
    tried++;
    const adm = await send(`${gw.url}/admin/x%0d%0aSet-Cookie:%20pwn=1`, { from: '127.0.0.42' });
    expectReplyError(adm, 404, 'not_found');
    expect(adm.headers['set-cookie']).toBeUndefined();

    const seenBefore = down.seen.length;
    // A bare CR inside a header value or before the CRLF.
    for (const req of [
      'GET /v1/cr HTTP/1.1\r\nHost: x\r\nx-note: a\rX-Injected: yes\r\n\r\n',
      'GET /v1/cr HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\r\nx-real-ip: 10.9.9.9\r\n\r\n',
    ]) {
      const r = await raw(gw.port, req, '127.0.0.42');
      expect(r.statuses.length, req).toBeGreaterThan(0);
      expect(r.statuses[0], req).toBe(400);
      expect(r.closed, req).toBe(true);
    }
    expect(down.seen.length).toBe(seenBefore);
    // A bare LF ends a header line (or is refused), and a CRLF cut into the
    // request line leaves a version-less request line that Node's parser
    // accepts: either way the "injected" lines are the client's own headers,
    // and the x-real-ip among them from an untrusted peer is not believed.
    for (const req of [
      'GET /v1/lf HTTP/1.1\r\nHost: x\r\nx-note: a\nx-real-ip: 10.9.9.9\r\nConnection: close\r\n\r\n',
      'GET /v1/cr\r\nx-real-ip: 10.9.9.9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]) {
      const r = await raw(gw.port, req, '127.0.0.42');
      expect([200, 400]).toContain(r.statuses[0]);
    }
    for (const s of down.seen.slice(seenBefore)) {
      expect(s.headers['x-real-ip']).toBe('127.0.0.42');
      expect(JSON.stringify(s.rawHeaders)).not.toContain('10.9.9.9');
    }
    expect(await bindingCount()).toBe(before);
    await healthy();
  });

  it('refuses an oversized header block (431/400), closes the connection and stays healthy', async () => {
    const seenBefore = down.seen.length;
    const before = await bindingCount();
    const many = Array.from({ length: 40 }, (_, i) => `x-pad-${i}: ${'a'.repeat(1000)}\r\n`).join('');
    const one = `x-big: ${'b'.repeat(70_000)}\r\n`;
    for (const hdrs of [many, one]) {
      const r = await raw(
        gw.port,
        `GET /v1/big HTTP/1.1\r\nHost: x\r\nx-api-key: ${newKey()}\r\n${hdrs}\r\n`,
      );
      expect([431, 400]).toContain(r.statuses[0]);
      expect(r.closed).toBe(true);
    }
    expect(down.seen.length).toBe(seenBefore);
    expect(await bindingCount()).toBe(before);
    await healthy();
  });

  it('answers the HTTP parser’s own refusals (bad framing, header overflow) in the contract shape', async () => {
    const overflow = await raw(
      gw.port,
      `GET /v1/x HTTP/1.1\r\nHost: x\r\nx-big: ${'c'.repeat(70_000)}\r\n\r\n`,
    );
    expect(overflow.statuses[0]).toBe(431);
    expectContractError(firstBody(overflow));
    const bad = await raw(
      gw.port,
      'GET /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    );
    expect(bad.statuses[0]).toBe(400);
    expectContractError(firstBody(bad));
  });

  // -------------------------------------------------------------- smuggling

  /** Requests built to desynchronise a front end and a back end. Each hides GET /smuggled-N. */
  const smuggles = (n: number, key: string): [string, string][] => {
    const hidden = `GET /smuggled-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\n\r\n`;
    const chunkedEnd = `0\r\n\r\n${hidden}`;
    return [
      [
        'CL.TE',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nContent-Length: ${chunkedEnd.length}\r\n` +
          `Transfer-Encoding: chunked\r\n\r\n${chunkedEnd}`,
      ],
      [
        'TE.CL',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nTransfer-Encoding: chunked\r\n` +
          `Content-Length: 3\r\n\r\n${(hidden.length + 0).toString(16)}\r\n${hidden}\r\n0\r\n\r\n`,
      ],
      [
        'CL.CL',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nContent-Length: 0\r\n` +
          `Content-Length: ${hidden.length}\r\n\r\n${hidden}`,
      ],
      [
        'CL list',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nContent-Length: 0, ${hidden.length}\r\n\r\n${hidden}`,
      ],
      [
        'TE obfuscated (space before colon)',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nContent-Length: ${chunkedEnd.length}\r\n` +
          `Transfer-Encoding : chunked\r\n\r\n${chunkedEnd}`,
      ],
      [
        'TE obfuscated (xchunked)',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nContent-Length: ${chunkedEnd.length}\r\n` +
          `Transfer-Encoding: xchunked\r\n\r\n${chunkedEnd}`,
      ],
      [
        'TE chunked, identity',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nContent-Length: ${chunkedEnd.length}\r\n` +
          `Transfer-Encoding: chunked, identity\r\n\r\n${chunkedEnd}`,
      ],
      [
        'TE folded (obs-fold)',
        `POST /v1/first-${n} HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\nContent-Length: ${chunkedEnd.length}\r\n` +
          `Transfer-Encoding:\r\n chunked\r\n\r\n${chunkedEnd}`,
      ],
    ];
  };

  const checkNoSmuggling = async (port: number, label: string, from: string) => {
    const key = newKey();
    let n = 0;
    const outcomes: string[] = [];
    for (const [name, payload] of smuggles(++n + keyN * 100, key)) {
      const r = await raw(port, payload, from, 2000);
      outcomes.push(`${name}: ${r.statuses.join(',') || 'none'}${r.closed ? ' closed' : ''}`);
      // Never two answers for what the client sent as one request, and a
      // refusal (whether the gateway's or nginx's) in the contract's shape.
      expect(r.statuses.length, `${label} ${name}`).toBeLessThanOrEqual(1);
      if ((r.statuses[0] ?? 0) >= 400) expectContractError(firstBody(r));
    }
    console.log(`${label}: ${outcomes.join(' | ')}`);
    await new Promise((r) => setTimeout(r, 300));
    const smuggled = seenPaths().filter((p) => p.startsWith('/smuggled'));
    expect(smuggled, label).toEqual([]);
  };

  it('smuggles nothing past the gateway (conflicting Content-Length / Transfer-Encoding, raw)', async () => {
    await checkNoSmuggling(gw.port, 'direct', '127.0.0.43');
    // The conflicting forms are refused outright with a 400 and the connection closed.
    const key = newKey();
    for (const [name, payload] of smuggles(999, key).slice(0, 3)) {
      const r = await raw(gw.port, payload, '127.0.0.43');
      expect(r.statuses, name).toEqual([400]);
      expect(r.closed, name).toBe(true);
    }
    expect(await bindingsFrom('127.0.0.43')).toEqual([]);
    await healthy();
  });

  it('smuggles nothing through nginx (nginx/keypin.conf) into the gateway', async () => {
    await checkNoSmuggling(nginx!.port, 'via nginx', '127.0.0.44');
    const h = await send(`http://127.0.0.1:${nginx!.port}/health`, { from: '127.0.0.44' });
    expect(h.status).toBe(200);
  });

  it('answers nginx’s own refusals in the contract’s shape, and nothing reaches the gateway', async () => {
    const seenBefore = down.seen.length;
    const cases: [string, string, number, string][] = [
      ['bad HTTP version', 'GET /v1/x HTTP/3.0\r\nHost: x\r\n\r\n', 400, 'bad_request'],
      ['garbage request line', 'GARBAGE\r\n\r\n', 400, 'bad_request'],
      ['two Host headers', 'GET /v1/x HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', 400, 'bad_request'],
      [
        'invalid chunk size',
        'POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
        400,
        'bad_request',
      ],
      [
        '70,000-character URI',
        `GET /v1/${'u'.repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
        414,
        'uri_too_long',
      ],
      [
        '20,000-character header',
        `GET /v1/x HTTP/1.1\r\nHost: x\r\nx-big: ${'h'.repeat(20_000)}\r\n\r\n`,
        431,
        'headers_too_large',
      ],
      [
        'unknown transfer coding',
        'POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n',
        501,
        'not_implemented',
      ],
      [
        'its internal error paths',
        'GET /__keypin/error/bad_request HTTP/1.1\r\nHost: x\r\n\r\n',
        404,
        'not_found',
      ],
      [
        'a console file that is not there',
        'GET /admin/ui/assets/nope.js HTTP/1.1\r\nHost: x\r\n\r\n',
        404,
        'not_found',
      ],
    ];
    const got = [];
    for (const [name, payload] of cases) {
      const r = await raw(nginx!.port, payload, '127.0.0.47');
      const body = firstBody(r) as { error?: { code?: string; type?: string } } | string | undefined;
      const type = /content-type:\s*([^\r;]+)/i.exec(r.text)?.[1];
      got.push({
        name,
        statuses: r.statuses,
        type,
        code: typeof body === 'object' ? body.error?.code : body,
      });
    }
    expect(got).toEqual(
      cases.map(([name, , status, code]) => ({ name, statuses: [status], type: 'application/json', code })),
    );
    expect(down.seen.length).toBe(seenBefore);
  });

  it('keeps a pipelined follow-up request separate from the first (judged on its own)', async () => {
    const owner = newKey();
    expect((await send(`${gw.url}/v1/own`, { from: '127.0.0.45', headers: bearer(owner) })).status).toBe(200);
    // From another address: a harmless first request with an exact body, then
    // a follow-up with the owner's key on the same connection.
    const body = 'hello';
    const r = await raw(
      gw.port,
      `POST /v1/pipe-first HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        `GET /v1/pipe-second HTTP/1.1\r\nHost: x\r\nx-api-key: ${owner}\r\nConnection: close\r\n\r\n`,
      '127.0.0.46',
      3000,
    );
    expect(r.statuses).toEqual([200, 403]);
    expect(r.text).toContain('"ip_not_allowed"');
    expect(seenPaths()).toContain('/v1/pipe-first');
    expect(seenPaths()).not.toContain('/v1/pipe-second');
    const first = down.seen.find((s) => s.url === '/v1/pipe-first')!;
    expect(first.bodyBytes).toBe(body.length);
    // Through nginx: the same.
    const viaNginx = await raw(
      nginx!.port,
      `POST /v1/pipe-first-n HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        `GET /v1/pipe-second-n HTTP/1.1\r\nHost: x\r\nx-api-key: ${owner}\r\nConnection: close\r\n\r\n`,
      '127.0.0.46',
      3000,
    );
    expect(viaNginx.statuses).toEqual([200, 403]);
    expect(seenPaths()).not.toContain('/v1/pipe-second-n');
  });

  // --------------------------------------------------------- key handling

  it('refuses duplicate key headers with 400 ambiguous_key, binds and forwards nothing', async () => {
    const seenBefore = down.seen.length;
    const before = await bindingCount();
    const k1 = newKey();
    const k2 = newKey();
    const cases: [string, string][][] = [
      [
        ['x-api-key', k1],
        ['x-api-key', k1],
      ],
      [
        ['x-api-key', k1],
        ['x-api-key', k2],
      ],
      [
        ['authorization', `Bearer ${k1}`],
        ['authorization', `Bearer ${k1}`],
      ],
      [
        ['authorization', `Bearer ${k1}`],
        ['api-key', k2],
      ],
    ];
    for (const headers of cases) {
      tried++;
      const r = await send(`${gw.url}/v1/dup`, { from: '127.0.0.47', headers });
      expectReplyError(r, 400, 'ambiguous_key');
    }
    // Same header in two spellings (Node's client would merge them: raw socket).
    const mixed = await raw(
      gw.port,
      `GET /v1/dup HTTP/1.1\r\nHost: x\r\nX-Goog-Api-Key: ${k1}\r\nx-goog-api-key: ${k1}\r\nConnection: close\r\n\r\n`,
      '127.0.0.47',
    );
    expect(mixed.statuses).toEqual([400]);
    expectContractError(firstBody(mixed), 'ambiguous_key');
    tried++;
    const q = await send(`${gw.url}/v1/dup?key=${k2}`, { from: '127.0.0.47', headers: { 'x-api-key': k1 } });
    expectReplyError(q, 400, 'ambiguous_key');
    expect(down.seen.length).toBe(seenBefore);
    expect(await bindingCount()).toBe(before);
  });

  it('treats a 0-character key as no key (forwarded, nothing bound), refuses one stripped to nothing, and binds a 1-character key', async () => {
    const before = await bindingCount();
    for (const headers of [
      { 'x-api-key': '' } as Record<string, string>,
      { authorization: 'Bearer ' },
      { 'api-key': '   ' },
    ]) {
      tried++;
      const r = await send(`${gw.url}/v1/empty`, { from: '127.0.0.48', headers });
      expect(r.status, JSON.stringify(headers)).toBe(200);
    }
    // `sk-` is a key the relay's own stripping leaves empty (docs/contract.md 2.1): refused.
    tried++;
    expectReplyError(
      await send(`${gw.url}/v1/empty`, { from: '127.0.0.48', headers: { authorization: 'Bearer sk-' } }),
      400,
      'invalid_key',
    );
    tried++;
    const q = await send(`${gw.url}/v1/empty?key=`, { from: '127.0.0.48' });
    expect(q.status).toBe(200);
    expect(await bindingCount()).toBe(before);

    tried++;
    const one = await send(`${gw.url}/v1/one`, { from: '127.0.0.49', headers: { 'x-api-key': 'Q' } });
    expect(one.status, one.body).toBe(200);
    const rows = await bindingsFrom('127.0.0.49');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.token_display).toBe('\u2026');
    // And the 1-character key is now bound: another address is refused.
    tried++;
    const other = await send(`${gw.url}/v1/one`, { from: '127.0.0.50', headers: { 'x-api-key': 'Q' } });
    expectReplyError(other, 403, 'ip_not_allowed');
  });

  it('refuses a 100,000-character key (header overflow or invalid_key) and binds nothing', async () => {
    const before = await bindingCount();
    const seenBefore = down.seen.length;
    const huge = 'k'.repeat(100_000);
    // In a header and in the query: past Node's 16 KiB header limit.
    for (const req of [
      `GET /v1/huge HTTP/1.1\r\nHost: x\r\nx-api-key: ${huge}\r\n\r\n`,
      `GET /v1/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${huge}\r\n\r\n`,
      `GET /v1/huge?key=${huge} HTTP/1.1\r\nHost: x\r\n\r\n`,
    ]) {
      const r = await raw(gw.port, req, '127.0.0.51');
      expect([431, 400, 414]).toContain(r.statuses[0]);
      expect(r.closed).toBe(true);
    }
    // One that fits in the header block but is longer than 4096: 400 invalid_key.
    tried++;
    const long = await send(`${gw.url}/v1/long`, {
      from: '127.0.0.51',
      headers: { 'x-api-key': 'L'.repeat(5000) },
    });
    expectReplyError(long, 400, 'invalid_key');
    tried++;
    const longQ = await send(`${gw.url}/v1/long?key=${'L'.repeat(5000)}`, { from: '127.0.0.51' });
    expectReplyError(longQ, 400, 'invalid_key');
    // Through nginx, a 100,000-character key is refused there (no upstream reached).
    const viaNginx = await raw(
      nginx!.port,
      `GET /v1/huge HTTP/1.1\r\nHost: x\r\nx-api-key: ${huge}\r\n\r\n`,
      '127.0.0.51',
    );
    expect(viaNginx.statuses).toEqual([431]);
    expectContractError(firstBody(viaNginx), 'headers_too_large');
    expect(down.seen.length).toBe(seenBefore);
    expect(await bindingCount()).toBe(before);
    await healthy();
  });

  it('handles non-UTF-8 bytes in the path and in headers cleanly (4xx or a safe forward, never a crash)', async () => {
    const results: number[] = [];
    const reqs = [
      Buffer.concat([
        Buffer.from('GET /v1/'),
        Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.concat([
        Buffer.from('GET /admin/'),
        Buffer.from([0xff, 0x80]),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.concat([
        Buffer.from('GET /v1/bytes HTTP/1.1\r\nHost: x\r\nx-note: '),
        Buffer.from([0xff, 0xfe, 0x80, 0xc0]),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.concat([
        Buffer.from('GET /v1/bytes HTTP/1.1\r\nHost: x\r\nx-api-key: sk'),
        Buffer.from([0xe9, 0xff, 0x01]),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.concat([
        Buffer.from('GET /v1/bytes HTTP/1.1\r\nHost: x\r\nx-api-key: '),
        Buffer.from([0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.concat([
        Buffer.from('GET /v1/bytes HTTP/1.1\r\nHost: x\r\nx-real-ip: '),
        Buffer.from([0xff, 0x31]),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.concat([
        Buffer.from('GET /v1/bytes HTTP/1.1\r\nHost: x\r\nx-note: a'),
        Buffer.from([0x00]),
        Buffer.from('b\r\nConnection: close\r\n\r\n'),
      ]),
      Buffer.from('GET /v1/%ff%fe%c3%28?key=%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    ];
    for (const req of reqs) {
      const r = await raw(gw.port, req, '127.0.0.52', 2000);
      expect(r.statuses.length, req.toString('latin1')).toBe(1);
      const s = r.statuses[0]!;
      expect(s === 200 || (s >= 400 && s < 500), `${s} for ${req.toString('latin1')}`).toBe(true);
      results.push(s);
    }
    console.log(`non-UTF-8 requests answered: ${results.join(', ')}`);
    expect(
      gw.logs.filter((l) => l['msg'] === 'unhandled error' || l['msg'] === 'proxy decision failed'),
    ).toEqual([]);
    await healthy();
  });

  // ----------------------------------------------------------- admin API

  it('refuses admin API bodies of the wrong types and unknown fields with 422 naming the field', async () => {
    const settingsBefore = (await admin.get('/admin/api/settings')).json();
    const bindingsBefore = await bindingCount();
    const cases: [string, string, unknown, string][] = [
      ['POST', '/admin/api/bindings/ban', { id: '1' }, 'id'],
      ['POST', '/admin/api/bindings/ban', { id: 1.5 }, 'id'],
      ['POST', '/admin/api/bindings/ban', { id: -1 }, 'id'],
      ['POST', '/admin/api/bindings/ban', { id: [1] }, 'id'],
      ['POST', '/admin/api/bindings/ban', { id: { $gt: 0 } }, 'id'],
      ['POST', '/admin/api/bindings/ban', { id: null }, 'id'],
      ['POST', '/admin/api/bindings/ban', { id: 1e300 }, 'id'],
      ['POST', '/admin/api/bindings/ban', { id: 1, extra: true }, 'extra'],
      ['POST', '/admin/api/bindings/unban', { id: 1, status: 'active' }, 'status'],
      ['POST', '/admin/api/bindings', { key: 42, rule_type: 'single', allowed_ips: ['10.0.0.0/8'] }, 'key'],
      [
        'POST',
        '/admin/api/bindings',
        { key: 'k', rule_type: 'SINGLE', allowed_ips: ['10.0.0.0/8'] },
        'rule_type',
      ],
      [
        'POST',
        '/admin/api/bindings',
        { key: 'k', rule_type: 'single', allowed_ips: '10.0.0.0/8' },
        'allowed_ips',
      ],
      ['POST', '/admin/api/bindings', { key: 'k', rule_type: 'single', allowed_ips: [{}] }, 'allowed_ips'],
      [
        'POST',
        '/admin/api/bindings',
        { key: 'k', rule_type: 'single', allowed_ips: ['010.0.0.1'] },
        'allowed_ips',
      ],
      [
        'POST',
        '/admin/api/bindings',
        { key: 'k', rule_type: 'single', allowed_ips: ['10.0.0.1/8'] },
        'allowed_ips',
      ],
      [
        'POST',
        '/admin/api/bindings',
        { key: 'k', rule_type: 'single', allowed_ips: ['fe80::1%eth0'] },
        'allowed_ips',
      ],
      [
        'POST',
        '/admin/api/bindings',
        { key: 'k', rule_type: 'single', allowed_ips: ['10.0.0.0/8'], is_admin: true },
        'is_admin',
      ],
      ['PUT', '/admin/api/bindings/ip', { id: 'x', rule_type: 'all', allowed_ips: [] }, 'id'],
      ['PUT', '/admin/api/settings', { bind_ipv4_prefix: '24' }, 'bind_ipv4_prefix'],
      ['PUT', '/admin/api/settings', { bind_ipv4_prefix: 24.5 }, 'bind_ipv4_prefix'],
      ['PUT', '/admin/api/settings', { auto_ban: 1 }, 'auto_ban'],
      ['PUT', '/admin/api/settings', { failsafe_mode: ['open'] }, 'failsafe_mode'],
      ['PUT', '/admin/api/settings', { enforce_mode: 'monitor', hmac_secret: 'x' }, 'hmac_secret'],
      ['PUT', '/admin/api/settings', 'null', 'body'],
      ['PUT', '/admin/api/settings', '"a string"', 'body'],
      ['PUT', '/admin/api/settings', '{"auto_ban": tru', 'body'],
      [
        'POST',
        '/admin/api/users',
        { username: ['admin'], password: 'x'.repeat(20), role: 'admin' },
        'username',
      ],
    ];
    const got: unknown[] = [];
    for (const [method, path, body] of cases) {
      tried++;
      const r = await admin.request(method, path, body);
      let parsed: { error?: { code?: string; type?: string; message?: string }; field?: string } = {};
      try {
        parsed = r.json();
      } catch {
        // leave empty: the comparison below shows the raw status
      }
      got.push({
        method,
        path,
        body,
        status: r.status,
        code: parsed.error?.code,
        type: parsed.error?.type,
        field: parsed.field,
        named:
          typeof parsed.error?.message === 'string' && parsed.error.message.includes(String(parsed.field)),
      });
    }
    expect(got).toEqual(
      cases.map(([method, path, body, field]) => ({
        method,
        path,
        body,
        status: 422,
        code: 'validation_failed',
        type: 'keypin_error',
        field,
        named: true,
      })),
    );
    expect((await admin.get('/admin/api/settings')).json()).toEqual(settingsBefore);
    expect(await bindingCount()).toBe(bindingsBefore);
  });

  it('refuses a 5 MB JSON body with 413 in the contract shape and changes nothing', async () => {
    const settingsBefore = (await admin.get('/admin/api/settings')).json();
    // Raw, declaring the whole length but sending only its start.
    const bigRequest = (path: string, body: string, auth: string | null) =>
      new Promise<RawResult>((done) => {
        tried++;
        const sock = connect({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.250' });
        const chunks: Buffer[] = [];
        const finish = () => {
          clearTimeout(timer);
          sock.destroy();
          const text = Buffer.concat(chunks).toString('latin1');
          const statuses = [...text.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)].map((m) => Number(m[1]));
          done({ text, closed: true, statuses });
        };
        const timer = setTimeout(finish, 5000);
        sock.on('data', (c: Buffer) => {
          chunks.push(c);
          if (/\r\n\r\n/.test(Buffer.concat(chunks).toString('latin1'))) setTimeout(finish, 200);
        });
        sock.on('error', (e) => chunks.push(Buffer.from(`[${(e as NodeJS.ErrnoException).code}]`)));
        sock.on('close', finish);
        sock.on('connect', () => {
          sock.write(
            `PUT ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
              (auth ? `Authorization: Bearer ${auth}\r\n` : '') +
              `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
          );
          // Only the first 64 KiB: the gateway answers from Content-Length
          // alone. (Clients that send it all: the next tests.)
          sock.write(Buffer.from(body).subarray(0, 65536));
        });
      });
    const huge = JSON.stringify({ auto_ban: true, pad: 'p'.repeat(5 * 1024 * 1024) });
    const r = await bigRequest('/admin/api/settings', huge, admin.token);
    expect(r.statuses, JSON.stringify(r.text.slice(0, 300))).toEqual([413]);
    expectContractError(firstBody(r), 'payload_too_large');
    // Unauthenticated too, on the one route open to anyone.
    const login = JSON.stringify({ username: 'admin', password: 'x'.repeat(5 * 1024 * 1024) });
    const anon = await bigRequest('/admin/api/login', login, null);
    expect(anon.statuses.length).toBe(1);
    expect([413, 404, 401]).toContain(anon.statuses[0]);
    expectContractError(firstBody(anon));
    expect((await admin.get('/admin/api/settings')).json()).toEqual(settingsBefore);
    await healthy();
  });

  // ------------------------------------- early answers, body still coming

  /** One exchange of an upload sent whole, as fast as the socket takes it. */
  interface Upload {
    /** Complete responses read, in order. */
    responses: { status: number; headers: string; body: string }[];
    /** A socket error (EPIPE, ECONNRESET …) seen before the exchange ended. */
    error?: string;
    /** The server closed the connection. */
    closed: boolean;
    ms: number;
  }

  /**
   * Writes `head`, then all of `body` (and `after`, pipelined, if given), and
   * reads responses until `expect` of them are complete, the server closes,
   * or `waitMs` passes.
   */
  const upload = (
    port: number,
    from: string,
    head: string,
    body: Buffer,
    opts: { after?: string; expect?: number; stopSendingAt?: number; waitMs?: number } = {},
  ) =>
    new Promise<Upload>((done) => {
      tried++;
      const started = Date.now();
      const sock = connect({ host: '127.0.0.1', port, localAddress: from });
      let buf = Buffer.alloc(0);
      const responses: Upload['responses'] = [];
      let error: string | undefined;
      let finished = false;
      const finish = (closed: boolean) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        sock.destroy();
        done({ responses, error, closed, ms: Date.now() - started });
      };
      const timer = setTimeout(() => finish(false), opts.waitMs ?? 20_000);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1) break;
          const headers = buf.subarray(0, end).toString('latin1');
          const length = Number(/content-length:\s*(\d+)/i.exec(headers)?.[1] ?? 0);
          if (buf.length < end + 4 + length) break;
          responses.push({
            status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(headers)?.[1]),
            headers,
            body: buf.subarray(end + 4, end + 4 + length).toString('utf8'),
          });
          buf = buf.subarray(end + 4 + length);
        }
        if (responses.length >= (opts.expect ?? 1)) finish(false);
      });
      sock.on('error', (e: NodeJS.ErrnoException) => {
        error = e.code ?? e.message;
        finish(true);
      });
      sock.on('close', () => finish(true));
      sock.on('connect', () => {
        sock.write(head);
        sock.write(opts.stopSendingAt === undefined ? body : body.subarray(0, opts.stopSendingAt));
        if (opts.after) sock.write(opts.after);
      });
    });

  const chunked = (total: number, chunk = 64 * 1024) => {
    const parts: Buffer[] = [];
    for (let sent = 0; sent < total; sent += chunk) {
      const n = Math.min(chunk, total - sent);
      parts.push(Buffer.from(`${n.toString(16)}\r\n`), Buffer.alloc(n, 0x61), Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    return Buffer.concat(parts);
  };

  it('answers 413 (never a reset) to 24 clients at once that each send a whole 5 MB admin body', async () => {
    const settingsBefore = (await admin.get('/admin/api/settings')).json();
    const body = Buffer.from(JSON.stringify({ auto_ban: true, pad: 'p'.repeat(5 * 1024 * 1024) }));
    const head = (extra: string, framing = `Content-Length: ${body.length}`) =>
      `PUT /admin/api/settings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer ${admin.token}\r\n${framing}\r\n${extra}\r\n`;
    // A keep-alive client then asks again on the same connection: the body
    // was discarded exactly, so the follow-up is read as the request it is.
    const followUp =
      `GET /admin/api/settings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin.token}\r\n` +
      'Connection: close\r\n\r\n';
    const kinds = ['keep-alive', 'close', 'chunked close'] as const;
    const runs = await Promise.all(
      Array.from({ length: 24 }, (_, i) => {
        const kind = kinds[i % 3]!;
        const from = `127.0.0.${150 + i}`;
        if (kind === 'keep-alive')
          return upload(gw.port, from, head(''), body, { after: followUp, expect: 2 });
        if (kind === 'close') return upload(gw.port, from, head('Connection: close\r\n'), body);
        return upload(
          gw.port,
          from,
          head('Connection: close\r\n', 'Transfer-Encoding: chunked'),
          chunked(3 * 1024 * 1024),
        );
      }),
    );
    const seen = runs.map((r, i) => ({
      kind: kinds[i % 3],
      error: r.error,
      statuses: r.responses.map((x) => x.status),
    }));
    expect(seen).toEqual(
      runs.map((_, i) => ({
        kind: kinds[i % 3],
        error: undefined,
        statuses: kinds[i % 3] === 'keep-alive' ? [413, 200] : [413],
      })),
    );
    for (const r of runs) {
      expectContractError(JSON.parse(r.responses[0]!.body), 'payload_too_large');
      if (r.responses.length === 2) expect(JSON.parse(r.responses[1]!.body)).toEqual(settingsBefore);
      else expect(r.responses[0]!.headers).toMatch(/\r\nconnection: close/i);
    }
    expect((await admin.get('/admin/api/settings')).json()).toEqual(settingsBefore);
    await healthy();
  });

  it('answers a blocked upload with its 403 (never a reset), records each attempt, forwards nothing', async () => {
    const key = newKey();
    expect((await send(`${gw.url}/v1/own`, { from: '127.0.0.180', headers: bearer(key) })).status).toBe(200);
    const [binding] = await bindingsFrom('127.0.0.180');
    const interceptsOf = async () =>
      Number(
        (
          await sql<{ n: string }>(
            stores.databaseUrl,
            'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE binding_id = $1',
            [binding!.id],
          )
        )[0]!.n,
      );
    const body = Buffer.alloc(5 * 1024 * 1024, 0x61);
    const head = (extra: string) =>
      `POST /v1/upload-blocked HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n` +
      `Authorization: Bearer ${key}\r\nContent-Length: ${body.length}\r\n${extra}\r\n`;
    const runs = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        upload(gw.port, `127.0.0.${181 + i}`, head(i % 2 ? 'Connection: close\r\n' : ''), body),
      ),
    );
    expect(runs.map((r) => ({ error: r.error, statuses: r.responses.map((x) => x.status) }))).toEqual(
      runs.map(() => ({ error: undefined, statuses: [403] })),
    );
    for (const r of runs) expectContractError(JSON.parse(r.responses[0]!.body), 'ip_not_allowed');
    expect(seenPaths()).not.toContain('/v1/upload-blocked');
    await waitFor(async () => (await interceptsOf()) >= 24, 10_000, 50);
    expect(await interceptsOf()).toBe(24);
  });

  it('discards a closing client’s body after the answer, then lets go of it when it goes quiet', async () => {
    // Declares 5 MB, sends 256 KiB, and keeps its side open (half-open).
    // The gateway answers 413, half-closes, keeps accepting (and discarding)
    // what follows, and closes for good once the client has been quiet for
    // ~5 s; bytes sent after that are refused by the kernel (a reset).
    tried++;
    const sock = connect({
      host: '127.0.0.1',
      port: gw.port,
      localAddress: '127.0.0.210',
      allowHalfOpen: true,
    });
    let text = '';
    let fin = 0;
    let failedAt = 0;
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('end', () => (fin = Date.now()));
    sock.on('error', () => (failedAt ||= Date.now()));
    await new Promise<void>((r) => sock.once('connect', r));
    sock.write(
      `PUT /admin/api/settings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Authorization: Bearer ${admin.token}\r\nContent-Length: ${5 * 1024 * 1024}\r\nConnection: close\r\n\r\n`,
    );
    sock.write(Buffer.alloc(256 * 1024, 0x61));
    await waitFor(() => fin > 0, 5000);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text).toContain('"payload_too_large"');
    // Still discarding: more of the body is accepted without a reset.
    await new Promise((r) => setTimeout(r, 1000));
    sock.write(Buffer.alloc(64 * 1024, 0x61));
    const lastAccepted = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    expect(failedAt).toBe(0);
    // Then quiet for 7 s (past the 5 s idle limit): the next bytes are refused.
    await new Promise((r) => setTimeout(r, 6000));
    const probedAt = Date.now();
    await waitFor(
      () => {
        if (!sock.destroyed) sock.write('a');
        return failedAt > 0;
      },
      3000,
      100,
    );
    sock.destroy();
    expect(probedAt - lastAccepted).toBeGreaterThan(6500);
    await healthy();
  });

  it('refuses forged JWTs not already covered by admin-auth.int-spec.ts', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      sub: '1',
      usr: 'admin',
      role: 'admin',
      sv: 1,
      iss: 'keypin',
      aud: 'keypin-admin',
      exp: now + 600,
    };
    const [h, p] = forge(claims).split('.');
    const cases: [string, string][] = [
      ['alg NONE (upper case), no signature', `${b64url({ alg: 'NONE', typ: 'JWT' })}.${p}.`],
      ['alg none with a valid-looking signature', forge(claims, { alg: 'none', typ: 'JWT' })],
      ['HS256 header, signature stripped', `${h}.${p}.`],
      [
        'RS256 header signed with the HMAC secret (alg confusion)',
        forge(claims, { alg: 'RS256', typ: 'JWT' }),
      ],
      ['wrong key (empty secret)', forge(claims, undefined, '')],
      ['audience as an array of others', forge({ ...claims, aud: ['other', 'keypin'] })],
      ['expired a minute ago', forge({ ...claims, iat: now - 700, exp: now - 60 })],
      [
        'no exp at all',
        forge({ sub: '1', usr: 'admin', role: 'admin', sv: 1, iss: 'keypin', aud: 'keypin-admin' }),
      ],
      ['unknown user id', forge({ ...claims, sub: '999999' })],
      ['stale session version', forge({ ...claims, sv: 999 })],
      [
        'payload tampered after signing',
        `${h}.${b64url({ ...claims, role: 'admin', usr: 'root' })}.${forge(claims).split('.')[2]}`,
      ],
      ['four segments', `${forge(claims)}.extra`],
    ];
    const got: [string, number, string | undefined][] = [];
    for (const [name, token] of cases) {
      tried++;
      const c = new AdminClient(gw.url);
      c.token = token;
      // A write, so a wrongly accepted token would be visible as a change too.
      const r = await c.put('/admin/api/settings', { auto_ban: true });
      let code: string | undefined;
      try {
        code = r.json<{ error?: { code?: string } }>().error?.code;
      } catch {
        code = undefined;
      }
      got.push([name, r.status, code]);
    }
    expect(got).toEqual(cases.map(([name]) => [name, 401, 'unauthorized']));
    expect((await admin.get('/admin/api/settings')).json().auto_ban).toBe(false);
    // Not vacuous: the same claims, correctly signed, are accepted (read only).
    const good = new AdminClient(gw.url);
    good.token = forge(claims);
    expect((await good.get('/admin/api/me')).status).toBe(200);
  });

  // ------------------------------------------------------------- webhooks

  it('refuses webhook URLs aimed at loopback, link-local, private and IPv6 loopback addresses', async () => {
    const before = (await admin.get('/admin/api/settings')).json();
    const urls = [
      'http://127.0.0.1/hook',
      'http://127.255.255.254:8080/hook',
      'http://169.254.169.254/latest/meta-data/',
      'http://10.1.2.3/hook',
      'http://172.16.0.1/hook',
      'http://192.168.1.1/hook',
      'http://100.64.0.1/hook',
      'http://0.0.0.0/hook',
      'http://[::1]/hook',
      'http://[::]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://[::ffff:a9fe:a9fe]/hook',
      'http://[fe80::1]/hook',
      'http://[fd00::1]/hook',
      'http://2130706433/hook',
      'http://0x7f.1/hook',
      'http://0177.0.0.1/hook',
      'http://127.1/hook',
      'http://user:pass@hooks.example.com/hook',
      'file:///etc/passwd',
      'gopher://127.0.0.1:6379/_FLUSHALL',
    ];
    const got: [string, number, string | undefined][] = [];
    for (const url of urls) {
      tried++;
      const r = await admin.put('/admin/api/settings', { alert_webhook_url: url });
      got.push([url, r.status, r.json().field]);
      expectContractError(r.json(), 'validation_failed');
    }
    expect(got).toEqual(urls.map((u) => [u, 422, 'alert_webhook_url']));
    expect((await admin.get('/admin/api/settings')).json()).toEqual(before);
  });

  it('checks a DNS name (localhost) at send time: the alert fails with a private-address error, nothing delivered', async () => {
    tried++;
    const set = await admin.put('/admin/api/settings', {
      alert_webhook_url: `http://localhost:${receiver.port}/hooks/keypin`,
    });
    expect(set.status, set.body).toBe(200);
    await new Promise((r) => setTimeout(r, 1200)); // every instance applies settings within 1 s
    const key = newKey();
    expect((await send(`${gw.url}/v1/a`, { from: '127.0.0.60', headers: bearer(key) })).status).toBe(200);
    const [binding] = await bindingsFrom('127.0.0.60');
    for (const from of ['127.0.0.61', '127.0.0.62']) {
      expectReplyError(await send(`${gw.url}/v1/a`, { from, headers: bearer(key) }), 403, 'ip_not_allowed');
    }
    type AlertRow = { delivery_status: string; last_error: string | null };
    const alerts = () =>
      sql<AlertRow>(
        stores.databaseUrl,
        'SELECT delivery_status, last_error FROM alerts WHERE binding_id = $1',
        [binding!.id],
      );
    await waitFor(async () => (await alerts())[0]?.delivery_status === 'failed', 15_000);
    const [alert] = await alerts();
    expect(alert!.last_error).toMatch(/localhost.*private, loopback or link-local/);
    expect(receiver.deliveries).toHaveLength(0);
    await admin.put('/admin/api/settings', { alert_webhook_url: null });
  });

  it('does not follow a webhook redirect (even with private destinations allowed)', async () => {
    tried++;
    const key = newKey();
    const g = gwRedirect!;
    expect((await send(`${g.url}/v1/a`, { from: '127.0.0.70', headers: bearer(key) })).status).toBe(200);
    for (const from of ['127.0.0.71', '127.0.0.72']) {
      expect((await send(`${g.url}/v1/a`, { from, headers: bearer(key) })).status).toBe(403);
    }
    type AlertRow = { delivery_status: string; last_error: string | null };
    const alerts = () =>
      sql<AlertRow>(redirStores.databaseUrl, 'SELECT delivery_status, last_error FROM alerts');
    await waitFor(async () => (await alerts())[0]?.delivery_status === 'failed', 15_000);
    const [alert] = await alerts();
    expect(alert!.last_error).toMatch(/redirect/i);
    expect(alert!.last_error).toMatch(/302/);
    await new Promise((r) => setTimeout(r, 300));
    expect(redirected.deliveries).toHaveLength(0);
  });
});
