import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, ADMIN_PASSWORD, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { startThrowawayRedis } from './support/throwaway';

const JWT_SECRET = 'integration-jwt-secret-0123456789abcdef0123';

function b64url(v: object | string): string {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}
function forge(payload: object, secret = JWT_SECRET, header: object = { alg: 'HS256', typ: 'JWT' }): string {
  const head = `${b64url(header)}.${b64url(payload)}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

describe('admin API: sessions, roles, users, settings, audit, docs', () => {
  const stores = freshStores('adminauth');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let admin: AdminClient;

  const anon = () => new AdminClient(gw.url);
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    await downstream.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ADMIN_JWT_SECRET: JWT_SECRET,
      ADMIN_JWT_TTL_SECONDS: '60',
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('logs in with the right password and answers the contract shape', async () => {
    const r = await anon().post('/admin/api/login', { username: 'admin', password: ADMIN_PASSWORD });
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({
      access_token: expect.any(String),
      token_type: 'Bearer',
      expires_in: 60,
      role: 'admin',
    });
    const header = JSON.parse(Buffer.from(r.json().access_token.split('.')[0], 'base64url').toString());
    expect(header.alg).toBe('HS256');
    expect((await admin.get('/admin/api/me')).json()).toEqual({ username: 'admin', role: 'admin' });
  });

  it('refuses a wrong password with 401 invalid_credentials', async () => {
    const r = await new AdminClient(gw.url, '127.0.5.1').post('/admin/api/login', {
      username: 'admin',
      password: 'nope',
    });
    expect(r.status).toBe(401);
    expect(r.json().error).toMatchObject({ code: 'invalid_credentials', type: 'keypin_error' });
    const unknown = await new AdminClient(gw.url, '127.0.5.1').post('/admin/api/login', {
      username: 'ghost',
      password: 'x',
    });
    expect(unknown.status).toBe(401);
    expect(unknown.json().error.message).toBe(r.json().error.message);
  });

  it('locks a username+IP after 5 failures (429 with Retry-After, even with the right password); other IPs are not locked', async () => {
    const c = new AdminClient(gw.url, '127.0.5.2');
    for (let i = 0; i < 5; i++) {
      expect((await c.post('/admin/api/login', { username: 'admin', password: `wrong-${i}` })).status).toBe(
        401,
      );
    }
    const locked = await c.post('/admin/api/login', { username: 'admin', password: ADMIN_PASSWORD });
    expect(locked.status).toBe(429);
    expect(locked.json().error.code).toBe('too_many_attempts');
    const retryAfter = Number(locked.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(800);
    expect(retryAfter).toBeLessThanOrEqual(900);
    // Another address is not locked out.
    expect(
      (
        await new AdminClient(gw.url, '127.0.5.3').post('/admin/api/login', {
          username: 'admin',
          password: ADMIN_PASSWORD,
        })
      ).status,
    ).toBe(200);
  });

  it('lifts the lockout once the failures are older than 15 minutes (also with Redis emptied)', async () => {
    const c = new AdminClient(gw.url, '127.0.5.4');
    for (let i = 0; i < 5; i++)
      await c.post('/admin/api/login', { username: 'admin', password: `wrong-${i}` });
    expect((await c.post('/admin/api/login', { username: 'admin', password: ADMIN_PASSWORD })).status).toBe(
      429,
    );
    // Age the failures as if 15 minutes had passed, in both stores.
    await sql(
      stores.databaseUrl,
      `UPDATE login_failures SET at = at - interval '16 minutes' WHERE ip = '127.0.5.4'`,
    );
    const { Redis } = await import('ioredis');
    const r = new Redis('redis://127.0.0.1:6379/0');
    await r.del(`${stores.redisPrefix}login-failures:127.0.5.4:admin`);
    r.disconnect();
    expect((await c.post('/admin/api/login', { username: 'admin', password: ADMIN_PASSWORD })).status).toBe(
      200,
    );
  });

  it('keeps the lockout when Redis forgets it (held in PostgreSQL too)', async () => {
    const c = new AdminClient(gw.url, '127.0.5.5');
    for (let i = 0; i < 5; i++)
      await c.post('/admin/api/login', { username: 'admin', password: `wrong-${i}` });
    const { Redis } = await import('ioredis');
    const r = new Redis('redis://127.0.0.1:6379/0');
    await r.del(`${stores.redisPrefix}login-failures:127.0.5.5:admin`);
    r.disconnect();
    expect((await c.post('/admin/api/login', { username: 'admin', password: ADMIN_PASSWORD })).status).toBe(
      429,
    );
  });

  /** 30 wrong-password logins at once for one username from one IP, spread over `urls`. */
  const parallelWrongLogins = (urls: string[], from: string) =>
    Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        new AdminClient(urls[i % urls.length]!, from).post('/admin/api/login', {
          username: 'admin',
          password: `parallel-wrong-${i}`,
        }),
      ),
    );
  const expectExactLockout = async (
    replies: Awaited<ReturnType<typeof parallelWrongLogins>>,
    from: string,
  ) => {
    const statuses = replies.map((r) => r.status);
    // Each attempt is counted before its password is checked: exactly 5 are checked.
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(25);
    for (const r of replies.filter((x) => x.status === 429)) {
      expect(r.json().error).toMatchObject({ code: 'too_many_attempts', type: 'keypin_error' });
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(800);
      expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(900);
    }
    const right = await new AdminClient(gw.url, from).post('/admin/api/login', {
      username: 'admin',
      password: ADMIN_PASSWORD,
    });
    expect(right.status).toBe(429);
    expect(Number(right.headers['retry-after'])).toBeGreaterThan(800);
    const rows = await sql<{ n: string }>(
      stores.databaseUrl,
      `SELECT count(*) AS n FROM login_failures WHERE ip = $1::inet`,
      [from],
    );
    expect(Number(rows[0]!.n)).toBe(5);
  };

  it('is exact under concurrency: of 30 parallel wrong logins only 5 are checked, the rest 429 with Retry-After; then the right password → 429', async () => {
    await expectExactLockout(await parallelWrongLogins([gw.url], '127.0.5.6'), '127.0.5.6');
  });

  it('stays exact across two instances, one of them with its Redis down (PostgreSQL decides)', async () => {
    const redis = await startThrowawayRedis();
    let second: GatewayProcess | null = null;
    try {
      second = await startGateway({
        DATABASE_URL: stores.databaseUrl,
        REDIS_PREFIX: stores.redisPrefix,
        REDIS_URL: redis.url,
        DOWNSTREAM_URL: downstream.url,
        ADMIN_JWT_SECRET: JWT_SECRET,
        ...ADMIN_ENV,
      });
      await redis.stop();
      await expectExactLockout(await parallelWrongLogins([gw.url, second.url], '127.0.5.7'), '127.0.5.7');
      const onSecond = await new AdminClient(second.url, '127.0.5.7').post('/admin/api/login', {
        username: 'admin',
        password: ADMIN_PASSWORD,
      });
      expect(onSecond.status).toBe(429);
    } finally {
      // This test is about logins, not about stopping after losing Redis
      // (streaming/faults cover shutdown): no graceful stop needed.
      await second?.stop('SIGKILL');
      await redis.destroy();
    }
  });

  it.each([
    ['no token', null],
    ['garbage', 'not-a-jwt'],
    [
      'alg none',
      `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: '1', usr: 'admin', role: 'admin', sv: 1, iss: 'keypin', aud: 'keypin-admin', exp: 9999999999 })}.`,
    ],
    [
      'wrong key',
      forge(
        { sub: '1', usr: 'admin', role: 'admin', sv: 1, iss: 'keypin', aud: 'keypin-admin', exp: 9999999999 },
        'another-secret-another-secret-another',
      ),
    ],
    [
      'wrong audience',
      forge({ sub: '1', usr: 'admin', role: 'admin', sv: 1, iss: 'keypin', aud: 'other', exp: 9999999999 }),
    ],
    [
      'wrong issuer',
      forge({
        sub: '1',
        usr: 'admin',
        role: 'admin',
        sv: 1,
        iss: 'evil',
        aud: 'keypin-admin',
        exp: 9999999999,
      }),
    ],
    [
      'expired',
      forge({
        sub: '1',
        usr: 'admin',
        role: 'admin',
        sv: 1,
        iss: 'keypin',
        aud: 'keypin-admin',
        iat: 1000,
        exp: 2000,
      }),
    ],
    [
      'HS512',
      forge(
        { sub: '1', usr: 'admin', role: 'admin', sv: 1, iss: 'keypin', aud: 'keypin-admin', exp: 9999999999 },
        JWT_SECRET,
        { alg: 'HS512', typ: 'JWT' },
      ),
    ],
  ])('answers 401 for %s', async (_name, token) => {
    const c = anon();
    c.token = token;
    const r = await c.get('/admin/api/me');
    expect(r.status).toBe(401);
    expect(r.json().error.code).toBe('unauthorized');
  });

  it('accepts a correctly signed token (the checks above are not vacuous)', async () => {
    const c = anon();
    c.token = forge({
      sub: '1',
      usr: 'admin',
      role: 'admin',
      sv: 1,
      iss: 'keypin',
      aud: 'keypin-admin',
      iat: now(),
      exp: now() + 60,
    });
    expect((await c.get('/admin/api/me')).status).toBe(200);
  });

  it('lets an auditor read but not change anything, and not see users', async () => {
    const created = await admin.post('/admin/api/users', {
      username: 'audrey',
      password: 'auditor-password-1',
      role: 'auditor',
    });
    expect(created.status).toBe(201);
    expect(created.json()).toMatchObject({ username: 'audrey', role: 'auditor' });
    expect(created.body).not.toContain('password');
    const auditor = await AdminClient.login(gw.url, 'audrey', 'auditor-password-1');
    expect((await auditor.get('/admin/api/me')).json()).toEqual({ username: 'audrey', role: 'auditor' });
    for (const path of [
      '/admin/api/settings',
      '/admin/api/audit',
      '/admin/api/bindings',
      '/admin/api/logs',
      '/admin/api/alerts',
      '/admin/api/dashboard',
    ]) {
      expect({ path, status: (await auditor.get(path)).status }).toEqual({ path, status: 200 });
    }
    expect((await auditor.get('/admin/api/users')).status).toBe(403);
    const before = await sql(stores.databaseUrl, 'SELECT count(*) FROM audit_logs');
    for (const [method, path, body] of [
      ['PUT', '/admin/api/settings', { auto_ban: true }],
      ['POST', '/admin/api/users', { username: 'x', password: 'xxxxxxxxxxxxxx', role: 'admin' }],
      ['DELETE', '/admin/api/users/1', undefined],
      ['PUT', '/admin/api/users/1/password', { password: 'hijacked-password' }],
      ['POST', '/admin/api/bindings', { key: 'sk-x', rule_type: 'all', allowed_ips: [] }],
      ['POST', '/admin/api/bindings/unbind', { id: 1 }],
      ['POST', '/admin/api/bindings/ban', { id: 1 }],
      ['POST', '/admin/api/bindings/unban', { id: 1 }],
      ['PUT', '/admin/api/bindings/ip', { id: 1, rule_type: 'all', allowed_ips: [] }],
    ] as [string, string, unknown][]) {
      const r = await auditor.request(method, path, body);
      expect({ method, path, status: r.status, code: r.json().error?.code }).toEqual({
        method,
        path,
        status: 403,
        code: 'forbidden',
      });
    }
    expect(await sql(stores.databaseUrl, 'SELECT count(*) FROM audit_logs')).toEqual(before);
    expect((await admin.get('/admin/api/settings')).json().auto_ban).toBe(false);
  });

  it('manages users: create, list, duplicate, password change ends sessions, delete', async () => {
    const bad = await admin.post('/admin/api/users', { username: 'bob', password: 'short', role: 'admin' });
    expect(bad.status).toBe(422);
    expect(bad.json().error.message).toContain('password');
    const badRole = await admin.post('/admin/api/users', {
      username: 'bob',
      password: 'long-enough-password',
      role: 'root',
    });
    expect(badRole.status).toBe(422);
    expect(badRole.json().error.message).toContain('role');
    const bob = await admin.post('/admin/api/users', {
      username: 'bob',
      password: 'bob-password-123',
      role: 'admin',
    });
    expect(bob.status).toBe(201);
    const dup = await admin.post('/admin/api/users', {
      username: 'BOB',
      password: 'bob-password-123',
      role: 'admin',
    });
    expect(dup.status).toBe(409);
    const list = (await admin.get('/admin/api/users')).json();
    expect(list).toMatchObject({ total: expect.any(Number), page: 1, page_size: 20 });
    expect(list.items.map((u: { username: string }) => u.username)).toContain('bob');

    const bobSession = await AdminClient.login(gw.url, 'bob', 'bob-password-123');
    expect((await bobSession.get('/admin/api/me')).status).toBe(200);
    const id = bob.json().id as number;
    expect(
      (await admin.put(`/admin/api/users/${id}/password`, { password: 'bob-new-password-1' })).status,
    ).toBe(200);
    expect((await bobSession.get('/admin/api/me')).status).toBe(401);
    await AdminClient.login(gw.url, 'bob', 'bob-new-password-1');

    expect((await admin.delete(`/admin/api/users/${id}`)).status).toBe(200);
    expect((await admin.delete(`/admin/api/users/${id}`)).status).toBe(404);
    expect((await admin.delete('/admin/api/users/abc')).status).toBe(422);
    const me = (await admin.get('/admin/api/users'))
      .json()
      .items.find((u: { username: string }) => u.username === 'admin');
    expect((await admin.delete(`/admin/api/users/${me.id}`)).status).toBe(409);
    const rows = await sql<{ password_hash: string }>(
      stores.databaseUrl,
      'SELECT password_hash FROM admin_users',
    );
    expect(rows.every((r) => r.password_hash.startsWith('scrypt$'))).toBe(true);
  });

  it('reads and changes settings, validates them, keeps the webhook secret write-only, and applies them within 1 s', async () => {
    const s = (await admin.get('/admin/api/settings')).json();
    expect(s).toEqual({
      failsafe_mode: 'closed',
      enforce_mode: 'enforce',
      alert_webhook_url: null,
      alert_threshold_count: 5,
      alert_threshold_seconds: 300,
      archive_days: 90,
      bind_ipv4_prefix: 32,
      bind_ipv6_prefix: 64,
      auto_ban: false,
      token_normalize: 'newapi',
      relay: 'newapi',
      key_case: 'sensitive',
      default_policy: null,
      networks: { allow: [], deny: [], first_use_from: [] },
      alert_webhook_format: 'standard',
      alert_webhook_secret_set: false,
    });
    for (const [body, field] of [
      [{ enforce_mode: 'off' }, 'enforce_mode'],
      [{ alert_threshold_count: 0 }, 'alert_threshold_count'],
      [{ alert_threshold_count: '5' }, 'alert_threshold_count'],
      [{ bind_ipv4_prefix: 33 }, 'bind_ipv4_prefix'],
      [{ auto_ban: 'yes' }, 'auto_ban'],
      [{ nonsense: 1 }, 'nonsense'],
      [{ alert_webhook_url: 'ftp://x' }, 'alert_webhook_url'],
      [{ alert_webhook_url: 'http://127.0.0.1:9/hook' }, 'alert_webhook_url'],
      [{ alert_webhook_url: 'http://169.254.169.254/' }, 'alert_webhook_url'],
      [{ alert_webhook_secret: 42 }, 'alert_webhook_secret'],
      [[1, 2], 'body'],
      [{}, 'body'],
    ] as [unknown, string][]) {
      const r = await admin.put('/admin/api/settings', body);
      expect({ body, status: r.status, code: r.json().error?.code, field: r.json().field }).toEqual({
        body,
        status: 422,
        code: 'validation_failed',
        field,
      });
    }
    expect((await admin.get('/admin/api/settings')).json()).toEqual(s);

    const changed = await admin.put('/admin/api/settings', {
      bind_ipv4_prefix: 24,
      alert_webhook_url: 'https://hooks.example.com/keypin',
      alert_webhook_secret: 'write-only-secret-value',
    });
    expect(changed.status).toBe(200);
    expect(changed.json()).toMatchObject({ bind_ipv4_prefix: 24, alert_webhook_secret_set: true });
    expect(changed.body).not.toContain('write-only-secret-value');
    expect((await admin.get('/admin/api/settings')).body).not.toContain('write-only-secret-value');
    const stored = await sql<{ value: unknown }>(
      stores.databaseUrl,
      `SELECT value FROM settings WHERE key = 'alert_webhook_secret'`,
    );
    expect(JSON.stringify(stored)).not.toContain('write-only-secret-value');

    // The proxy uses the new prefix for the next first use: a /24.
    const key = `sk-prefix${Date.now().toString(36)}`;
    expect((await send(`${gw.url}/v1/x`, { from: '127.0.6.9', headers: bearer(key) })).status).toBe(200);
    const row = await sql<{ allowed: string[] }>(
      stores.databaseUrl,
      `SELECT allowed_ips::text[] AS allowed FROM bindings WHERE host(first_ip) = '127.0.6.9'`,
    );
    expect(row[0]!.allowed).toEqual(['127.0.6.0/24']);
    expect((await send(`${gw.url}/v1/x`, { from: '127.0.6.200', headers: bearer(key) })).status).toBe(200);

    const cleared = await admin.put('/admin/api/settings', {
      alert_webhook_secret: null,
      bind_ipv4_prefix: 32,
      alert_webhook_url: null,
    });
    expect(cleared.json()).toMatchObject({
      alert_webhook_secret_set: false,
      bind_ipv4_prefix: 32,
      alert_webhook_url: null,
    });

    // Enforcement mode switches within a second.
    await admin.put('/admin/api/settings', { enforce_mode: 'monitor' });
    const ms = await waitFor(
      async () => (await send(`${gw.url}/v1/x`, { from: '127.0.7.1', headers: bearer(key) })).status === 200,
      1000,
    );
    expect(ms).toBeLessThan(1000);
    await admin.put('/admin/api/settings', { enforce_mode: 'enforce' });
    await waitFor(
      async () => (await send(`${gw.url}/v1/x`, { from: '127.0.7.1', headers: bearer(key) })).status === 403,
      1000,
    );
  });

  it('records an audit row for every change, without secrets', async () => {
    const audit = (await admin.get('/admin/api/audit?page_size=200')).json();
    expect(audit.total).toBeGreaterThanOrEqual(5);
    const actions = audit.items.map((a: { action: string }) => a.action);
    for (const a of ['user.create', 'user.password', 'user.delete', 'settings.update'])
      expect(actions).toContain(a);
    const entry = audit.items.find((a: { action: string }) => a.action === 'settings.update');
    expect(entry).toMatchObject({
      actor: 'admin',
      target: 'settings',
      ip: '127.0.0.250',
      at: expect.any(String),
    });
    expect(entry.before).toBeTypeOf('object');
    expect(entry.after).toBeTypeOf('object');
    expect(JSON.stringify(audit)).not.toContain('write-only-secret-value');
    expect(JSON.stringify(audit)).not.toContain('bob-new-password-1');
  });

  it('validates paging', async () => {
    for (const q of ['page=0', 'page=-1', 'page=x', 'page_size=201', 'page_size=0']) {
      const r = await admin.get(`/admin/api/audit?${q}`);
      expect({ q, status: r.status }).toEqual({ q, status: 422 });
    }
    expect((await admin.get('/admin/api/audit?page=2&page_size=2')).json()).toMatchObject({
      page: 2,
      page_size: 2,
    });
  });

  it('serves the OpenAPI document and Swagger UI without a token', async () => {
    const doc = await anon().get('/admin/api/openapi.json');
    expect(doc.status).toBe(200);
    const spec = doc.json();
    expect(spec.openapi).toMatch(/^3\./);
    expect(spec.info.title).toBe('KeyPin admin API');
    for (const p of [
      '/admin/api/login',
      '/admin/api/me',
      '/admin/api/users',
      '/admin/api/settings',
      '/admin/api/audit',
    ]) {
      expect(Object.keys(spec.paths)).toContain(p);
    }
    expect(Object.keys(spec.paths).some((p: string) => p === '/health' || p === '/metrics')).toBe(false);
    expect(spec.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    // A full OpenAPI validation (schema and $refs), not just a shape check.
    const { default: SwaggerParser } = await import('@apidevtools/swagger-parser');
    await expect(SwaggerParser.validate(structuredClone(spec))).resolves.toBeTruthy();
    for (const p of [
      '/admin/api/bindings',
      '/admin/api/logs',
      '/admin/api/logs/export',
      '/admin/api/dashboard',
      '/admin/api/alerts',
    ]) {
      expect(Object.keys(spec.paths)).toContain(p);
    }
    const ui = await anon().get('/admin/api/docs');
    expect(ui.status).toBe(200);
    expect(ui.body).toContain('swagger');
  });

  it('answers unknown admin routes with 404 in the contract shape and never forwards them', async () => {
    const seen = downstream.seen.length;
    const r = await admin.get('/admin/api/nope');
    expect(r.status).toBe(404);
    expect(r.json().error.code).toBe('not_found');
    expect(downstream.seen.length).toBe(seen);
  });
});
