/**
 * ProxyService, the hot path, in process: real IncomingMessage and
 * ServerResponse objects (a plain `node:http` server on loopback calls
 * `handle`, as the Fastify plugin does) and in-memory fakes for every
 * dependency, so each decision is checked by what it records, what it
 * forwards and what the client receives.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalKeyAt, keyRulesOf, maskKey, type Settings, SETTING_DEFAULTS } from '@keypin/shared';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BindingStoreService, LoadOutcome } from '../binding/binding-store.service';
import { toBindingRule } from '../binding/binding-rules';
import type { BindingRule, BindingRuleData, FirstUse } from '../binding/binding.types';
import type { UsageRecorder } from '../binding/usage-recorder.service';
import type { DailyStats } from '../dashboard/daily-stats.service';
import { type Decision, MetricsService } from '../infra/metrics/metrics.service';
import type { InterceptEvent } from '../intercept/intercept.types';
import type { SettingsService } from '../settings/settings.service';
import type { Forwarder, StatusListener } from './forwarder';
import { KeyHasher } from './key-hasher';
import { PolicyGate } from '../policy/policy-gate';
import type { PolicyLimiter } from '../policy/policy-limiter';
import { ProxyService } from './proxy.service';
import { RouteTable } from '../route/route-table';
import { REFUSED_PATH } from './request-target';
import type { WebSocketTunnel } from './websocket-tunnel';

const KEY = 'sk-ownerkey0123456789abcdef';
/** The key as New API looks it up (its `sk-` cut off): what is hashed and masked. */
const CANONICAL = canonicalKeyAt('authorization', `Bearer ${KEY}`, keyRulesOf(SETTING_DEFAULTS))!;
const hasher = new KeyHasher(Buffer.from('proxy-service-spec-secret'));
const HASH = hasher.hashHex(CANONICAL);

function rule(over: Partial<BindingRuleData> = {}): BindingRule {
  return toBindingRule({
    id: 41,
    status: 'active',
    rule_type: 'single',
    allowed_ips: ['127.0.0.1/32'],
    token_display: maskKey(CANONICAL),
    ...over,
  });
}

/** The binding store: a map of cached rules, and a scripted answer for loads. */
class FakeStore {
  cached = new Map<string, BindingRule>();
  loadAnswer: LoadOutcome = { kind: 'unavailable' };
  peeks: string[] = [];
  loads: { hash: string; first: FirstUse }[] = [];
  revoked: number[] = [];
  peek(hash: string): BindingRule | undefined {
    this.peeks.push(hash);
    return this.cached.get(hash);
  }
  load(hash: string, first: FirstUse): Promise<LoadOutcome> {
    this.loads.push({ hash, first });
    return Promise.resolve(this.loadAnswer);
  }
  revokeFirstUse(id: number): Promise<boolean> {
    this.revoked.push(id);
    return Promise.resolve(true);
  }
}

interface Forwarded {
  url: string | undefined;
  method: string | undefined;
  headers: string[];
  hasBody: boolean;
  onStatus: StatusListener | undefined;
}

/** The downstream: answers 200 itself (or `status`), tells `onStatus` as the real one does. */
class FakeForwarder {
  calls: Forwarded[] = [];
  status = 200;
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    _path: string,
    headers: string[],
    body: IncomingMessage | Buffer | null,
    onStatus?: StatusListener,
  ): void {
    this.calls.push({ url: req.url, method: req.method, headers, hasBody: body !== null, onStatus });
    onStatus?.(this.status);
    res.writeHead(this.status, { 'content-type': 'text/plain' });
    res.end('from downstream');
  }
}

interface Harness {
  store: FakeStore;
  forwarder: FakeForwarder;
  settings: { current: Settings };
  intercepts: InterceptEvent[];
  usage: { id: number; ip: string }[];
  decisions: Decision[];
  revokedStats: number[];
}

let server: Server;
let port: number;
let h: Harness;
let proxy: ProxyService;

function harness(): Harness {
  const hs: Harness = {
    store: new FakeStore(),
    forwarder: new FakeForwarder(),
    settings: { current: { ...SETTING_DEFAULTS } },
    intercepts: [],
    usage: [],
    decisions: [],
    revokedStats: [],
  };
  proxy = new ProxyService({
    policy: { trusted: [], header: 'x-real-ip' },
    hasher,
    store: hs.store as unknown as BindingStoreService,
    settings: hs.settings as unknown as SettingsService,
    usage: { record: (id: number, ip: string) => hs.usage.push({ id, ip }) } as unknown as UsageRecorder,
    stats: {
      count: (d: Decision) => hs.decisions.push(d),
      firstBindRevoked: (at: number) => hs.revokedStats.push(at),
      refused: () => undefined,
    } as unknown as DailyStats,
    intercepts: { record: (e: InterceptEvent) => hs.intercepts.push(e) },
    routes: new RouteTable(
      { listAll: () => Promise.resolve([]) },
      RouteTable.fallbackFor({
        forwarder: Object.assign(hs.forwarder, { pathFor: (url: string) => url }) as unknown as Forwarder,
        tunnel: {
          tunnel: () => {
            throw new Error('no WebSocket in these tests');
          },
        } as unknown as WebSocketTunnel,
      }),
      () => {
        throw new Error('no routes in these tests');
      },
      { open: () => null, env: {}, refreshMs: 60_000 },
      pino({ level: 'silent' }),
    ),
    // No key here has a policy (the default is none): the limiter is never asked.
    gate: new PolicyGate({} as PolicyLimiter, hs.settings as unknown as SettingsService, {
      bodyLimit: 1024,
      bodyTimeoutMs: 0,
    }),
    access: null,
    metrics: new MetricsService(),
    logger: pino({ level: 'silent' }),
    maxInflightPerIp: 0,
  });
  return hs;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request over a fresh loopback connection (the client is 127.0.0.1). */
function send(
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const bearer = (key = KEY) => ({ authorization: `Bearer ${key}` });

/** The contract's error body: `{"error": {"message", "type": "keypin_error", "code"}}`. */
function expectError(r: Reply, status: number, code: string): void {
  expect(r.status).toBe(status);
  expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
  const parsed = JSON.parse(r.body) as { error: Record<string, unknown> };
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(parsed.error).toEqual({ message: expect.any(String), type: 'keypin_error', code });
}

/** Nothing judged, recorded or forwarded. */
function expectUntouched(): void {
  expect(h.forwarder.calls).toHaveLength(0);
  expect(h.intercepts).toHaveLength(0);
  expect(h.usage).toHaveLength(0);
}

beforeAll(async () => {
  server = createServer((req, res) => proxy.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  h = harness();
});
afterEach(() => {
  expect(proxy.activeRequests).toBe(0);
});

describe('ProxyService', () => {
  it('allowed: a cached binding that covers the client forwards, counts usage, records nothing', async () => {
    h.store.cached.set(HASH, rule({ allowed_ips: ['127.0.0.0/8'] }));
    const r = await send('/v1/models?x=1', { ...bearer(), 'user-agent': 'spec' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('from downstream');
    expect(h.store.peeks).toEqual([HASH]);
    expect(h.store.loads).toHaveLength(0); // a cache hit needs no load
    expect(h.forwarder.calls).toHaveLength(1);
    const f = h.forwarder.calls[0]!;
    expect(f.url).toBe('/v1/models?x=1');
    expect(f.onStatus).toBeUndefined(); // only a first use listens for the relay's verdict
    // The downstream hears who the client is from KeyPin, and the key as sent.
    const pairs = new Map<string, string>();
    for (let i = 0; i < f.headers.length; i += 2) pairs.set(f.headers[i]!.toLowerCase(), f.headers[i + 1]!);
    expect(pairs.get('x-real-ip')).toBe('127.0.0.1');
    expect(pairs.get('x-forwarded-for')).toBe('127.0.0.1');
    expect(pairs.get('authorization')).toBe(`Bearer ${KEY}`);
    expect(h.usage).toEqual([{ id: 41, ip: '127.0.0.1' }]);
    expect(h.intercepts).toHaveLength(0);
    expect(h.decisions).toEqual(['allowed']);
  });

  it('first bind: an unknown key is loaded with the client network, bound and forwarded', async () => {
    h.store.loadAnswer = { kind: 'found', rule: rule(), created: true };
    const r = await send('/v1/chat/completions', bearer(), 'POST', '{}');
    expect(r.status).toBe(200);
    expect(h.store.loads).toHaveLength(1);
    const { hash, first } = h.store.loads[0]!;
    expect(hash).toBe(HASH);
    expect(first).toMatchObject({
      tokenDisplay: maskKey(CANONICAL),
      network: '127.0.0.1/32', // BIND_IPV4_PREFIX 32
      ip: '127.0.0.1',
    });
    expect(first.at).toBeInstanceOf(Date);
    expect(h.forwarder.calls).toHaveLength(1);
    expect(h.forwarder.calls[0]!.hasBody).toBe(true);
    expect(h.usage).toEqual([{ id: 41, ip: '127.0.0.1' }]);
    expect(h.intercepts).toHaveLength(0);
    expect(h.decisions).toEqual(['first_bind']);
    expect(h.store.revoked).toEqual([]); // the relay said 200: the binding stays
  });

  it('first bind under a wider BIND_IPV4_PREFIX binds the client network', async () => {
    h.settings.current = { ...h.settings.current, bind_ipv4_prefix: 24 };
    h.store.loadAnswer = { kind: 'found', rule: rule({ allowed_ips: ['127.0.0.0/24'] }), created: true };
    await send('/v1/models', bearer());
    expect(h.store.loads[0]!.first.network).toBe('127.0.0.0/24');
  });

  it('first bind the relay refuses (401) is undone', async () => {
    h.store.loadAnswer = { kind: 'found', rule: rule(), created: true };
    h.forwarder.status = 401;
    const r = await send('/v1/models', bearer());
    expect(r.status).toBe(401); // the relay's answer passes unchanged
    await new Promise((resolve) => setImmediate(resolve));
    expect(h.store.revoked).toEqual([41]);
    expect(h.revokedStats).toHaveLength(1);
  });

  it('a known key loaded from the stores is judged like a cached one (not created: no first bind)', async () => {
    h.store.loadAnswer = { kind: 'found', rule: rule({ allowed_ips: ['10.0.0.0/8'] }), created: false };
    const r = await send('/v1/models', bearer());
    expectError(r, 403, 'ip_not_allowed');
    expect(h.forwarder.calls).toHaveLength(0);
    expect(h.decisions).toEqual(['intercepted']);
  });

  it('intercepted: 403 in the contract shape, the intercept recorded with the right fields, nothing forwarded', async () => {
    const bound = rule({ id: 7, allowed_ips: ['10.1.0.0/16', '2001:db8::/48'] });
    h.store.cached.set(HASH, bound);
    const before = Date.now();
    const r = await send(
      '/v1/chat/completions?stream=true&key2=x',
      { ...bearer(), 'user-agent': 'curl/8' },
      'POST',
    );
    expectError(r, 403, 'ip_not_allowed');
    expect(JSON.parse(r.body)).toEqual({
      error: {
        message: 'This API key is bound to another network; requests from 127.0.0.1 are not allowed.',
        type: 'keypin_error',
        code: 'ip_not_allowed',
      },
    });
    expect(r.headers['cache-control']).toBe('no-store');
    expect(h.forwarder.calls).toHaveLength(0);
    expect(h.usage).toHaveLength(0);
    expect(h.intercepts).toHaveLength(1);
    const e = h.intercepts[0]!;
    expect(e).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      bindingId: 7,
      tokenDisplay: maskKey(CANONICAL),
      attemptIp: '127.0.0.1',
      allowedIps: ['10.1.0.0/16', '2001:db8::/48'],
      reason: 'ip_not_allowed',
      method: 'POST',
      path: '/v1/chat/completions', // without the query
      userAgent: 'curl/8',
      enforced: true,
      at: expect.any(Date),
    });
    expect(e.at.getTime()).toBeGreaterThanOrEqual(before);
    expect(h.decisions).toEqual(['intercepted']);
  });

  it('banned: 403 key_banned, recorded as key_banned, even from an allowed network', async () => {
    h.store.cached.set(HASH, rule({ status: 'banned' }));
    const r = await send('/v1/models', bearer());
    expectError(r, 403, 'key_banned');
    expect(JSON.parse(r.body).error.message).toBe('This API key has been banned.');
    expect(h.intercepts).toHaveLength(1);
    expect(h.intercepts[0]).toMatchObject({ reason: 'key_banned', enforced: true, bindingId: 41 });
    expect(h.forwarder.calls).toHaveLength(0);
    expect(h.decisions).toEqual(['banned']);
  });

  it('monitor mode: a request from another network is recorded (not enforced) and forwarded', async () => {
    h.settings.current = { ...h.settings.current, enforce_mode: 'monitor' };
    h.store.cached.set(HASH, rule({ allowed_ips: ['10.0.0.0/8'] }));
    const r = await send('/v1/models', bearer());
    expect(r.status).toBe(200);
    expect(r.body).toBe('from downstream');
    expect(h.intercepts).toHaveLength(1);
    expect(h.intercepts[0]).toMatchObject({
      reason: 'ip_not_allowed',
      enforced: false,
      attemptIp: '127.0.0.1',
    });
    expect(h.forwarder.calls).toHaveLength(1);
    expect(h.decisions).toEqual(['intercepted']);
  });

  it('monitor mode: a banned key is recorded and forwarded too', async () => {
    h.settings.current = { ...h.settings.current, enforce_mode: 'monitor' };
    h.store.cached.set(HASH, rule({ status: 'banned' }));
    const r = await send('/v1/models', bearer());
    expect(r.status).toBe(200);
    expect(h.intercepts[0]).toMatchObject({ reason: 'key_banned', enforced: false });
    expect(h.decisions).toEqual(['banned']);
  });

  it('failsafe closed: stores unavailable for an unknown key → 503, nothing forwarded or recorded', async () => {
    h.settings.current = { ...h.settings.current, failsafe_mode: 'closed' };
    h.store.loadAnswer = { kind: 'unavailable' };
    const r = await send('/v1/models', bearer());
    expectError(r, 503, 'binding_store_unavailable');
    expectUntouched();
    expect(h.decisions).toEqual(['failsafe_closed']);
  });

  it('failsafe open: stores unavailable for an unknown key → forwarded, counted failsafe_open', async () => {
    h.settings.current = { ...h.settings.current, failsafe_mode: 'open' };
    h.store.loadAnswer = { kind: 'unavailable' };
    const r = await send('/v1/models', bearer());
    expect(r.status).toBe(200);
    expect(h.forwarder.calls).toHaveLength(1);
    expect(h.intercepts).toHaveLength(0);
    expect(h.usage).toHaveLength(0); // no binding to count against
    expect(h.decisions).toEqual(['failsafe_open']);
  });

  it('FIRST_USE_LIMIT: a limited first use → 429 with Retry-After, nothing bound or forwarded', async () => {
    h.store.loadAnswer = { kind: 'limited', retryAfterSeconds: 17 };
    const r = await send('/v1/models', bearer());
    expectError(r, 429, 'too_many_new_keys');
    expect(r.headers['retry-after']).toBe('17');
    expectUntouched();
  });

  it('ambiguous key (two different keys): 400 ambiguous_key, the store never asked, nothing recorded or forwarded', async () => {
    h.store.cached.set(HASH, rule());
    const r = await send('/v1/models', { ...bearer(), 'x-api-key': 'sk-someoneelse0123456789' });
    expectError(r, 400, 'ambiguous_key');
    expect(h.store.peeks).toHaveLength(0);
    expect(h.store.loads).toHaveLength(0);
    expectUntouched();
    expect(h.decisions).toEqual(['bad_request']);
  });

  it('ambiguous key (query and header disagree): 400 ambiguous_key', async () => {
    const r = await send('/v1/models?key=sk-other0123456789', bearer());
    expectError(r, 400, 'ambiguous_key');
    expect(h.store.peeks).toHaveLength(0);
    expectUntouched();
  });

  it('invalid key (longer than any relay stores): 400 invalid_key, the store never asked, nothing recorded', async () => {
    const r = await send('/v1/models', bearer(`sk-${'a'.repeat(5000)}`));
    expectError(r, 400, 'invalid_key');
    expect(h.store.peeks).toHaveLength(0);
    expect(h.store.loads).toHaveLength(0);
    expectUntouched();
  });

  it('no key at all: forwarded as unauthenticated (the relay answers), nothing recorded', async () => {
    const r = await send('/v1/models');
    expect(r.status).toBe(200);
    expect(h.store.peeks).toHaveLength(0);
    expect(h.intercepts).toHaveLength(0);
    expect(h.usage).toHaveLength(0);
    expect(h.decisions).toEqual(['unauthenticated']);
  });

  it.each(['/admin/api/bindings', '/admin', '/health', '/ready?x', '/metrics', REFUSED_PATH])(
    'reserved path %s: 404 not_found, never judged nor forwarded',
    async (path) => {
      h.store.cached.set(HASH, rule());
      const r = await send(path, bearer());
      expectError(r, 404, 'not_found');
      expect(h.store.peeks).toHaveLength(0);
      expectUntouched();
      expect(h.decisions).toEqual([]);
    },
  );

  it('a path that only starts like a reserved one is proxied', async () => {
    h.store.cached.set(HASH, rule());
    const r = await send('/healthz', bearer());
    expect(r.status).toBe(200);
    expect(h.forwarder.calls).toHaveLength(1);
  });
});
