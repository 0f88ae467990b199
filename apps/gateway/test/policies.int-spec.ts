import { createHmac } from 'node:crypto';
import { type IncomingMessage, request as httpRequest, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import OpenAI, { RateLimitError } from 'openai';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { notAcrossUtcMidnight } from './support/clock';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, type Reply, send } from './support/http-client';
import { rawRequest } from './support/raw-http';
import { openWs } from './support/websocket';
import { dropStores, freshStores, REDIS_URL, sql } from './support/stores';
import { startThrowawayRedis, type ThrowawayRedis } from './support/throwaway';

/**
 * Key policies (docs/contract.md 9) through real gateway processes, the
 * real PostgreSQL and Redis and a real downstream on loopback: each refusal
 * with its headers, nothing refused forwarded, refusals that are not
 * intercepts, quotas shared exactly between two gateways, Redis cut in the
 * middle of a burst, `max_concurrent` slots after aborted streams and
 * upstream errors, the admin API, and the official `openai` SDK.
 */

const HMAC_SECRET = 'integration-test-hmac-secret-0123456789abcdef';
let keyN = 0;
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;
const hashOf = (key: string) => createHmac('sha256', HMAC_SECRET).update(key.slice(3), 'utf8').digest('hex');

type Policy = Record<string, unknown> | null;

async function bindingIdOf(databaseUrl: string, key: string): Promise<number> {
  const rows = await sql<{ id: string }>(
    databaseUrl,
    `SELECT id FROM bindings WHERE key_hash = decode($1, 'hex')`,
    [hashOf(key)],
  );
  if (!rows[0]) throw new Error('key not bound');
  return Number(rows[0].id);
}

/**
 * Waits until the usage batches have written `n` forwarded requests of the
 * binding for today: a quota counts the calendar day, starting from what
 * PostgreSQL recorded when its counter is first needed.
 */
async function recorded(databaseUrl: string, id: number, n: number): Promise<void> {
  await waitFor(async () => {
    const rows = await sql<{ count: string }>(
      databaseUrl,
      `SELECT count FROM binding_daily_usage WHERE binding_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date`,
      [id],
    );
    return Number(rows[0]?.count ?? 0) === n;
  }, 10_000);
}

/**
 * Binds a fresh key through `gw` from `from`, then gives it `policy` as its
 * own. `settled`: first wait until the binding request is recorded (a quota
 * counts it); `spread`: then wait the second every instance has to enforce
 * the change (other gateways than `gw`).
 */
async function boundWithPolicy(
  gw: GatewayProcess,
  admin: AdminClient,
  databaseUrl: string,
  policy: Policy,
  opts: { tag?: string; settled?: boolean; spread?: boolean; from?: string } = {},
): Promise<{ key: string; id: number }> {
  const key = newKey(opts.tag ?? 'p');
  expect((await get(gw, key, opts.from)).status).toBe(200);
  const id = await bindingIdOf(databaseUrl, key);
  if (opts.settled) await recorded(databaseUrl, id, 1);
  const r = await admin.put('/admin/api/bindings/policy', { id, policy });
  expect(r.status, r.body).toBe(200);
  expect(r.json()).toMatchObject({ id, policy });
  if (opts.spread) await new Promise((res) => setTimeout(res, 1000));
  return { key, id };
}

/** A Prometheus sample's value (0 when absent). */
async function metric(gw: GatewayProcess, sample: string): Promise<number> {
  const text = (await send(`${gw.url}/metrics`, { from: '127.0.0.250' })).body;
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

const chat = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

function post(
  gw: GatewayProcess,
  key: string,
  body: string,
  path = '/v1/chat/completions',
  from = '127.0.0.2',
) {
  return send(`${gw.url}${path}`, {
    method: 'POST',
    from,
    headers: { ...bearer(key), 'content-type': 'application/json' },
    body,
  });
}

const get = (gw: GatewayProcess, key: string, from = '127.0.0.2', path = '/v1/models') =>
  send(`${gw.url}${path}`, { from, headers: bearer(key) });

function expectError(r: Reply, status: number, code: string): void {
  expect(r.status, r.body).toBe(status);
  expect(r.json()).toMatchObject({ error: { type: 'keypin_error', code } });
}

// ------------------------------------------------------------------ one gateway

describe('key policies on one gateway', () => {
  const stores = freshStores('policies');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    await downstream.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      POLICY_BODY_LIMIT: '4096',
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  /** A key bound from 127.0.0.2 with `policy` as its own (`settled`: its binding request recorded first). */
  const keyWith = (policy: Policy, tag = 'p', settled = false) =>
    boundWithPolicy(gw, admin, stores.databaseUrl, policy, { tag, settled });

  it('rate: a burst passes, the next is 429 rate_limited with Retry-After and x-ratelimit-*; not forwarded', async () => {
    const { key } = await keyWith({ rate_per_second: 0.5, burst: 2 });
    // The one request that bound the key came before the policy: the bucket is full.
    const seen = downstream.seen.length;
    const a = await get(gw, key);
    const b = await get(gw, key);
    const c = await get(gw, key);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(a.headers['x-ratelimit-remaining-requests']).toBe('1');
    expect(b.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(b.headers['x-ratelimit-reset-requests']).toMatch(/^[\d.]+s$/);
    expectError(c, 429, 'rate_limited');
    expect(c.json().error.message).toMatch(/0\.5 requests per second/);
    expect(c.headers['retry-after']).toBe('2');
    expect(c.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(c.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(downstream.seen.length).toBe(seen + 2);
  });

  it("replaces the relay's own x-ratelimit-*-requests headers on a limited key's answers, keeps them otherwise", async () => {
    downstream.route = (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'x-ratelimit-limit-requests': '9999', 'x-ratelimit-limit-tokens': '777' });
        res.end('{}');
      });
    };
    try {
      const { key } = await keyWith({ requests_per_day: 1000 });
      const r = await get(gw, key);
      expect(r.headers['x-ratelimit-limit-requests']).toBe('1000');
      expect(r.headers['x-ratelimit-limit-tokens']).toBe('777');
      const plain = newKey('plain');
      expect((await get(gw, plain)).headers['x-ratelimit-limit-requests']).toBe('9999');
    } finally {
      downstream.route = null;
    }
  });

  it('daily quota: the calendar day counts (the request before the quota too), then 429 quota_exceeded until UTC midnight', async () => {
    await notAcrossUtcMidnight(30_000);
    const { key, id } = await keyWith({ requests_per_day: 3 }, 'p', true);
    const seen = downstream.seen.length;
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await get(gw, key));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 429, 429, 429]);
    expect(replies[1]!.headers['x-ratelimit-remaining-requests']).toBe('0');
    const refused = replies[2]!;
    expectError(refused, 429, 'quota_exceeded');
    const untilMidnight = Math.ceil((Math.ceil(Date.now() / 86_400_000) * 86_400_000 - Date.now()) / 1000);
    expect(Math.abs(Number(refused.headers['retry-after']) - untilMidnight)).toBeLessThanOrEqual(2);
    expect(refused.json().error.message).toMatch(/daily quota of 3 requests/);
    expect(downstream.seen.length).toBe(seen + 2);

    // The usage endpoint shows the quota's own live counter; the binding
    // every request forwarded today once the usage batch has landed: the same 3.
    const usage = (await admin.get(`/admin/api/bindings/${id}/usage`)).json();
    expect(usage).toMatchObject({ today: 3, limit_day: 3, limit_month: null, policy_source: 'binding' });
    await recorded(stores.databaseUrl, id, 3);
    expect((await admin.get(`/admin/api/bindings/${id}`)).json()).toMatchObject({ requests_today: 3 });
    expect((await admin.get(`/admin/api/bindings/${id}/usage`)).json()).toMatchObject({ today: 3, month: 3 });
  });

  it('models: a model outside the list is 403 model_not_allowed naming it, from the body, a Gemini path and ?model=', async () => {
    const { key } = await keyWith({ models: ['gpt-4o-mini', 'claude-3-*'] });
    const seen = downstream.seen.length;
    const refused = await post(gw, key, chat('gpt-4o'));
    expectError(refused, 403, 'model_not_allowed');
    expect(refused.json().error.message).toContain('"gpt-4o"');
    expectError(await post(gw, key, chat('claude-2')), 403, 'model_not_allowed');
    expectError(
      await post(gw, key, '{"contents":[]}', '/v1beta/models/gemini-1.5-pro:generateContent'),
      403,
      'model_not_allowed',
    );
    expectError(await get(gw, key, '127.0.0.2', '/v1/models?model=gpt-4o'), 403, 'model_not_allowed');
    expect(downstream.seen.length).toBe(seen);

    // Allowed: forwarded with the very bytes the client sent.
    const body = chat('claude-3-haiku', { temperature: 0.5 });
    const ok = await post(gw, key, body);
    expect(ok.status).toBe(200);
    expect(ok.json()).toMatchObject({ bodyBytes: Buffer.byteLength(body) });
    expect(downstream.seen.length).toBe(seen + 1);
    // A request naming no model (listing models) is not refused.
    expect((await get(gw, key)).status).toBe(200);
  });

  it('models: what KeyPin cannot read with certainty is refused (compressed body, two Content-Types, x-litellm-model)', async () => {
    const { key } = await keyWith({ models: ['gpt-4o-mini'] });
    const seen = downstream.seen.length;
    const sendWith = (headers: [string, string][], body: string) =>
      send(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        from: '127.0.0.2',
        headers: [['authorization', `Bearer ${key}`], ...headers],
        body,
      });
    const gz = await sendWith(
      [
        ['content-type', 'application/json'],
        ['content-encoding', 'gzip'],
      ],
      chat('gpt-4o-mini'),
    );
    expectError(gz, 400, 'bad_request');
    expect(gz.json().error.message).toMatch(/compressed/);
    const twoTypes = await sendWith(
      [
        ['content-type', 'application/json'],
        ['content-type', 'application/x-www-form-urlencoded'],
      ],
      chat('gpt-4o-mini'),
    );
    expectError(twoTypes, 400, 'bad_request');
    const header = await sendWith(
      [
        ['content-type', 'application/json'],
        ['x-litellm-model', 'gpt-4o'],
      ],
      chat('gpt-4o-mini'),
    );
    expectError(header, 403, 'model_not_allowed');
    // Case-folded and duplicated names, as Go's encoding/json and gjson read them.
    expectError(await post(gw, key, '{"model":"gpt-4o-mini","MODEL":"gpt-4o"}'), 400, 'bad_request');
    expectError(await post(gw, key, '{"Model":"gpt-4o"}'), 403, 'model_not_allowed');
    expect(downstream.seen.length).toBe(seen);
  });

  it('models: a Realtime WebSocket upgrade with a refused ?model= is answered 403 and never reaches the relay', async () => {
    const { key } = await keyWith({ models: ['gpt-4o-mini'] });
    const seen = downstream.seen.length;
    const r = await rawRequest(
      gw.port,
      `GET /v1/realtime?model=gpt-4o-realtime-preview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n` +
        'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'model_not_allowed' } });
    expect(downstream.seen.length).toBe(seen);
  });

  it('WebSocket: a tunnel holds a max_concurrent slot until it closes; an allowed ?model= opens, and it counts against the quota', async () => {
    const wss = new WebSocketServer({ noServer: true });
    const server = (downstream as unknown as { server: Server }).server;
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      wss.handleUpgrade(req, socket, head, (ws) => ws.send('hello'));
    server.on('upgrade', onUpgrade);
    try {
      const { key, id } = await keyWith(
        { max_concurrent: 2, models: ['gpt-4o-realtime*'], requests_per_day: 100 },
        'ws',
        true,
      );
      const url = `ws://127.0.0.1:${gw.port}/v1/realtime?model=gpt-4o-realtime-preview`;
      const open = async () => openWs(url, { from: '127.0.0.2', headers: bearer(key) });
      const a = await open();
      const b = await open();
      expect('ws' in a && 'ws' in b).toBe(true);
      if (!('ws' in a) || !('ws' in b)) return;
      expect(await a.next()).toBe('hello');
      const third = await open();
      expect(third).toMatchObject({ status: 429 });
      if ('body' in third) expect(JSON.parse(third.body)).toMatchObject({ error: { code: 'rate_limited' } });
      const closed = new Promise((r) => a.ws.once('close', r));
      a.ws.close();
      await closed;
      await waitFor(async () => {
        const c = await open();
        if ('ws' in c) {
          c.ws.close();
          return true;
        }
        return false;
      }, 3000);
      b.ws.close();
      // Every tunnel admitted counted against the day (the binding request, a, b, and the one reopened).
      expect((await admin.get(`/admin/api/bindings/${id}/usage`)).json()).toMatchObject({ today: 4 });
    } finally {
      server.off('upgrade', onUpgrade);
      for (const c of wss.clients) c.terminate();
      wss.close();
    }
  });

  it('max_tokens: a larger cap in any of its names is 400 max_tokens_too_large; within it passes', async () => {
    const { key } = await keyWith({ max_tokens: 100 });
    const seen = downstream.seen.length;
    expectError(await post(gw, key, chat('m', { max_tokens: 101 })), 400, 'max_tokens_too_large');
    expectError(await post(gw, key, chat('m', { max_completion_tokens: 5000 })), 400, 'max_tokens_too_large');
    expectError(
      await post(gw, key, '{"model":"m","max_output_tokens":1000}', '/v1/responses'),
      400,
      'max_tokens_too_large',
    );
    expect(downstream.seen.length).toBe(seen);
    expect((await post(gw, key, chat('m', { max_tokens: 100 }))).status).toBe(200);
    expect((await post(gw, key, chat('m'))).status).toBe(200);
  });

  it('body_too_large: a body over POLICY_BODY_LIMIT under a models policy is 413; without such a policy it streams', async () => {
    const { key } = await keyWith({ models: ['m'] });
    const big = chat('m', { pad: 'x'.repeat(5000) });
    const seen = downstream.seen.length;
    expectError(await post(gw, key, big), 413, 'body_too_large');
    expect(downstream.seen.length).toBe(seen);
    const { key: rated } = await keyWith({ rate_per_second: 100 });
    const ok = await post(gw, rated, big);
    expect(ok.status).toBe(200);
    expect(ok.json()).toMatchObject({ bodyBytes: Buffer.byteLength(big) });
  });

  it('a policy refusal is not an intercept, and /metrics and the dashboard count refusals by code', async () => {
    const { key, id } = await keyWith({ models: ['m'] });
    const before = await metric(gw, 'keypin_refusals_total{code="model_not_allowed"}');
    const decisions = await metric(gw, 'keypin_requests_total{decision="model_not_allowed"}');
    for (let i = 0; i < 3; i++) expectError(await post(gw, key, chat('other')), 403, 'model_not_allowed');
    expect(await metric(gw, 'keypin_refusals_total{code="model_not_allowed"}')).toBe(before + 3);
    expect(await metric(gw, 'keypin_requests_total{decision="model_not_allowed"}')).toBe(decisions + 3);
    expect(await metric(gw, 'keypin_decision_duration_seconds_count{stage="policy"}')).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1500));
    const intercepts = await sql(stores.databaseUrl, 'SELECT 1 FROM intercept_logs WHERE binding_id = $1', [
      id,
    ]);
    expect(intercepts).toHaveLength(0);
    await waitFor(async () => {
      const d = (await admin.get('/admin/api/dashboard')).json<{
        refusals: { code: string; count: number }[];
      }>();
      return (d.refusals.find((r) => r.code === 'model_not_allowed')?.count ?? 0) >= 3;
    }, 8000);
  });

  it('the default policy applies to keys without their own; {} of its own overrides it; null returns to it', async () => {
    const key = newKey('dflt');
    expect((await get(gw, key)).status).toBe(200);
    const id = await bindingIdOf(stores.databaseUrl, key);
    const set = await admin.put('/admin/api/settings', { default_policy: { models: ['only-this'] } });
    expect(set.status, set.body).toBe(200);
    expect(set.json()).toMatchObject({ default_policy: { models: ['only-this'] } });
    try {
      await waitFor(async () => (await post(gw, key, chat('gpt-4o'))).status === 403, 1000);
      expect((await admin.get(`/admin/api/bindings/${id}/usage`)).json()).toMatchObject({
        policy_source: 'default',
        effective_policy: { models: ['only-this'] },
      });
      expect((await admin.put('/admin/api/bindings/policy', { id, policy: {} })).status).toBe(200);
      await waitFor(async () => (await post(gw, key, chat('gpt-4o'))).status === 200, 1000);
      expect((await admin.put('/admin/api/bindings/policy', { id, policy: null })).status).toBe(200);
      await waitFor(async () => (await post(gw, key, chat('gpt-4o'))).status === 403, 1000);
    } finally {
      expect((await admin.put('/admin/api/settings', { default_policy: null })).status).toBe(200);
    }
  });

  it('admin API: 422 naming the field changes nothing; an auditor is refused; every change is audited', async () => {
    const { key, id } = await keyWith({ max_tokens: 10 });
    for (const [policy, field] of [
      [{ models: ['a*b'] }, 'policy.models[0]'],
      [{ burst: 3 }, 'policy.burst'],
      [{ rate_per_second: -1 }, 'policy.rate_per_second'],
      [{ colour: 'red' }, 'policy.colour'],
      ['strict', 'policy'],
    ] as const) {
      const r = await admin.put('/admin/api/bindings/policy', { id, policy });
      expectError(r, 422, 'validation_failed');
      expect(r.json().error.message).toContain(field);
    }
    expectError(await admin.put('/admin/api/bindings/policy', { id }), 422, 'validation_failed');
    expectError(
      await admin.put('/admin/api/bindings/policy', { id: 99_999_999, policy: null }),
      404,
      'not_found',
    );
    const badDefault = await admin.put('/admin/api/settings', { default_policy: { max_concurrent: 0 } });
    expectError(badDefault, 422, 'validation_failed');
    expect(badDefault.json().error.message).toContain('default_policy.max_concurrent');
    expect((await admin.get(`/admin/api/bindings/${id}`)).json()).toMatchObject({
      policy: { max_tokens: 10 },
    });
    expectError(await post(gw, key, chat('m', { max_tokens: 11 })), 400, 'max_tokens_too_large');

    expect(
      (
        await admin.post('/admin/api/users', {
          username: 'pol-auditor',
          password: 'auditor-password-1',
          role: 'auditor',
        })
      ).status,
    ).toBe(201);
    const auditor = await AdminClient.login(gw.url, 'pol-auditor', 'auditor-password-1');
    expectError(await auditor.put('/admin/api/bindings/policy', { id, policy: null }), 403, 'forbidden');
    expect((await auditor.get(`/admin/api/bindings/${id}/usage`)).status).toBe(200);

    const audit = await sql<{ before: { policy: unknown }; after: { policy: unknown } }>(
      stores.databaseUrl,
      `SELECT before, after FROM audit_logs WHERE action = 'binding.policy' AND target = $1 ORDER BY id`,
      [`binding:${id}`],
    );
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ before: { policy: null }, after: { policy: { max_tokens: 10 } } });
  });

  it('max_concurrent: no slot leaks after 1,000 aborted streams and upstream errors', async () => {
    const { key, id } = await keyWith({ max_concurrent: 4 });
    // The relay streams an event and then holds the stream open; on /v1/fail it cuts the connection.
    downstream.route = (req, res) => {
      req.resume();
      if (req.url === '/v1/fail') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: 1\n\n');
        setTimeout(() => res.socket?.destroy(), 5);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
    };
    try {
      /** Opens a stream, waits for its first event, then cuts it. */
      const abortedStream = () =>
        new Promise<number>((resolve, reject) => {
          const req = httpRequest({
            host: '127.0.0.1',
            port: gw.port,
            path: '/v1/stream',
            localAddress: '127.0.0.2',
            agent: false,
            headers: bearer(key),
          });
          req.on('response', (res) => {
            if (res.statusCode !== 200) {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
              return;
            }
            res.once('data', () => {
              req.destroy();
              resolve(200);
            });
          });
          req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
          req.end();
        });
      let ok = 0;
      for (let round = 0; round < 250; round++) {
        const statuses = await Promise.all([
          abortedStream(),
          abortedStream(),
          abortedStream(),
          abortedStream(),
        ]);
        ok += statuses.filter((s) => s === 200).length;
      }
      // A slot is given back when the client's connection closes, which the
      // gateway sees a moment after the client: allow a few refusals.
      expect(ok).toBeGreaterThan(900);
      // Upstream errors mid-stream end requests too.
      for (let i = 0; i < 20; i++) {
        const r = await get(gw, key, '127.0.0.2', '/v1/fail').catch(() => null);
        expect(r === null || r.status === 200 || r.status === 502).toBe(true);
      }
      // Every slot is back: 4 streams open at once, the fifth is refused.
      const redis = new Redis(REDIS_URL);
      try {
        await waitFor(
          async () => (await redis.zcard(`${stores.redisPrefix}policy:{${id}}:leases`)) === 0,
          3000,
        );
      } finally {
        redis.disconnect();
      }
      const open: (() => void)[] = [];
      const hold = () =>
        new Promise<number>((resolve) => {
          const req = httpRequest({
            host: '127.0.0.1',
            port: gw.port,
            path: '/v1/stream',
            localAddress: '127.0.0.2',
            agent: false,
            headers: bearer(key),
          });
          req.on('response', (res) => {
            open.push(() => req.destroy());
            resolve(res.statusCode ?? 0);
          });
          req.on('error', () => undefined);
          req.end();
        });
      const held = [];
      for (let i = 0; i < 4; i++) held.push(await hold());
      expect(held).toEqual([200, 200, 200, 200]);
      expectError(await get(gw, key), 429, 'rate_limited');
      for (const cut of open) cut();
    } finally {
      downstream.route = null;
    }
  });
});

// ------------------------------------------------------------------ two gateways

describe('two gateways share one policy', () => {
  const stores = freshStores('policies_two');
  const downstream = new FakeDownstream();
  let a: GatewayProcess;
  let b: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    await downstream.start();
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...ADMIN_ENV,
    };
    a = await startGateway(env);
    b = await startGateway(env);
    admin = await AdminClient.login(a.url);
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('counts only what would be forwarded: intercepted requests use none of the quota', async () => {
    await notAcrossUtcMidnight(30_000);
    const { key } = await boundWithPolicy(
      a,
      admin,
      stores.databaseUrl,
      { requests_per_day: 10 },
      {
        tag: 'intercepted',
        settled: true,
        spread: true,
      },
    );
    const elsewhere = await Promise.all(
      Array.from({ length: 30 }, (_, i) => get(i % 2 ? a : b, key, '127.0.0.3')),
    );
    expect(elsewhere.every((r) => r.status === 403 && r.json().error.code === 'ip_not_allowed')).toBe(true);
    const home = [];
    for (let i = 0; i < 11; i++) home.push((await get(i % 2 ? a : b, key)).status);
    // The request that bound the key is the first of its 10.
    expect(home).toEqual([...Array<number>(9).fill(200), 429, 429]);
  });

  it('admit exactly the quota between them when both serve the bound network', async () => {
    await notAcrossUtcMidnight(30_000);
    const { key } = await boundWithPolicy(
      a,
      admin,
      stores.databaseUrl,
      { requests_per_day: 77 },
      {
        tag: 'shared',
        settled: true,
        spread: true,
      },
    );
    const seen = downstream.seen.length;
    const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => get(i % 2 ? a : b, key)));
    const passed = replies.filter((r) => r.status === 200).length;
    expect(passed).toBe(76); // 77 in the day, the first of them the request that bound the key
    expect(
      replies.filter((r) => r.status === 429).every((r) => r.json().error.code === 'quota_exceeded'),
    ).toBe(true);
    expect(replies.filter((r) => r.status !== 200 && r.status !== 429)).toHaveLength(0);
    expect(downstream.seen.length - seen).toBe(76);
  });

  it('a policy set through one gateway is enforced by the other within 1 s', async () => {
    const key = newKey('spread');
    expect((await get(b, key)).status).toBe(200);
    const id = await bindingIdOf(stores.databaseUrl, key);
    expect((await post(b, key, chat('gpt-4o'))).status).toBe(200); // cached on b, no policy
    const t0 = Date.now();
    expect((await admin.put('/admin/api/bindings/policy', { id, policy: { models: ['x'] } })).status).toBe(
      200,
    );
    await waitFor(async () => (await post(b, key, chat('gpt-4o'))).status === 403, 1000);
    expect(Date.now() - t0).toBeLessThan(1500);
  });
});

// ------------------------------------------------------------------ Redis cut in a burst

describe('Redis cut in the middle of a burst, then restored', () => {
  const stores = freshStores('policies_redis');
  const downstream = new FakeDownstream();
  let redis: ThrowawayRedis;
  let gw: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    await downstream.start();
    redis = await startThrowawayRedis();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_URL: redis.url,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop('SIGKILL');
    await redis?.destroy();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('keeps enforcing alone (and /ready says so), then the shared count includes what it admitted alone', async () => {
    await notAcrossUtcMidnight(60_000);
    const { key, id } = await boundWithPolicy(
      gw,
      admin,
      stores.databaseUrl,
      { requests_per_day: 20 },
      {
        tag: 'cut',
        settled: true,
        spread: true,
      },
    );
    for (let i = 0; i < 8; i++) expect((await get(gw, key)).status).toBe(200);

    // Redis keeps what it had (a persistent Redis would), then goes away mid-burst.
    const probe = new Redis(redis.url);
    await probe.save();
    probe.disconnect();
    await redis.stop();

    const during = [];
    // 1 + 8 counted in Redis before it went: 11 more, counted alone.
    for (let i = 0; i < 20; i++) during.push((await get(gw, key)).status);
    expect(during.filter((s) => s === 200)).toHaveLength(11);
    expect(during.slice(11).every((s) => s === 429)).toBe(true);
    const ready = await send(`${gw.url}/ready`, { from: '127.0.0.250' });
    expect(ready.status).toBe(503);
    expect(ready.json().degraded.join(' ')).toMatch(/policy counters are enforced per instance/);

    await redis.start();
    const back = new Redis(redis.url);
    try {
      const dayKey = `${stores.redisPrefix}policy:{${id}}:day:${new Date().toISOString().slice(0, 10)}`;
      await waitFor(async () => (await back.get(dayKey)) === '20', 10_000);
    } finally {
      back.disconnect();
    }
    const after = await get(gw, key);
    expectError(after, 429, 'quota_exceeded');
    await waitFor(
      async () => (await send(`${gw.url}/ready`, { from: '127.0.0.250' })).status === 200,
      10_000,
    );
  });
});

// ------------------------------------------------------------------ the openai SDK

describe('the official openai SDK', () => {
  const stores = freshStores('policies_sdk');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    await downstream.start();
    downstream.route = (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: 'chatcmpl-1',
            object: 'chat.completion',
            created: 1,
            model: 'gpt-4o-mini',
            choices: [{ index: 0, message: { role: 'assistant', content: 'hello' }, finish_reason: 'stop' }],
          }),
        );
      });
    };
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('shows rate_limited as its RateLimitError with the contract message, and model_not_allowed as a 403', async () => {
    const key = newKey('sdk');
    // The SDK connects from 127.0.0.1, a trusted proxy: it says who the client is, as nginx would.
    const client = new OpenAI({
      apiKey: key,
      baseURL: `${gw.url}/v1`,
      maxRetries: 0,
      defaultHeaders: { 'x-real-ip': '10.9.8.7' },
    });
    const ask = (model = 'gpt-4o-mini') =>
      client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
    expect((await ask()).choices[0]!.message.content).toBe('hello');
    const id = await bindingIdOf(stores.databaseUrl, key);
    const set = await admin.put('/admin/api/bindings/policy', {
      id,
      policy: { rate_per_second: 0.2, burst: 1, models: ['gpt-4o-mini'] },
    });
    expect(set.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await ask()).choices[0]!.message.content).toBe('hello');
    const err = await ask().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitError);
    const rl = err as RateLimitError;
    expect(rl.status).toBe(429);
    expect(rl.code).toBe('rate_limited');
    expect(rl.type).toBe('keypin_error');
    expect(rl.message).toMatch(/Rate limit reached: this API key may make 0\.2 requests per second/);
    expect(rl.headers?.get('retry-after')).toBe('5');

    const denied = await ask('gpt-4o').catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((denied as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe('model_not_allowed');
  });
});
