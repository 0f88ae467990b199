import type { AuditEntry, Page, Route } from '@keypin/shared';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { type Reply } from './support/http-client';
import { dropStores, freshStores, REDIS_URL, sql } from './support/stores';

const ROUTE_FIELDS = [
  'created_at',
  'id',
  'prefix',
  'relay',
  'require_header_name',
  'strip_prefix',
  'timeout_seconds',
  'updated_at',
  'upstream',
  'upstream_header_names',
];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const AUDITOR = { username: 'auditor1', password: 'auditor-password-123' };

/** Values that must never leave the gateway but towards an upstream. */
const SEED_SECRET = 'sk-seed-secret-0d9c1f';
const ENV_SECRET = 'sk-env-secret-77aa31';
const CLEAR_SECRET = 'sk-clear-secret-5be2f0';
const TOKEN_SECRET = 'proxy-token-secret-91c3';
const SECRETS = [SEED_SECRET, ENV_SECRET, CLEAR_SECRET, TOKEN_SECRET];

describe('admin API: routes', () => {
  const stores = freshStores('admroutes');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let admin: AdminClient;
  let auditor: AdminClient;
  let subscriber: Redis;
  /** Messages seen on the routes pub/sub channel. */
  const published: string[] = [];
  /** Every admin API answer body, checked at the end for header values. */
  const bodies: string[] = [];
  const extra: GatewayProcess[] = [];

  const recording = (c: AdminClient): AdminClient => {
    const request = c.request.bind(c);
    c.request = async (method, path, body) => {
      const r = await request(method, path, body);
      bodies.push(r.body);
      return r;
    };
    return c;
  };

  const expectError = (r: Reply, status: number, code: string, field?: string) => {
    expect(r.status, r.body).toBe(status);
    const body = r.json();
    expect(body.error).toMatchObject({ code, type: 'keypin_error' });
    if (field !== undefined) {
      expect(body.field, r.body).toBe(field);
      expect(body.error.message).toContain(field);
    }
  };

  const create = async (body: Record<string, unknown>): Promise<Route> => {
    const r = await admin.post('/admin/api/routes', body);
    expect(r.status, r.body).toBe(201);
    return r.json<Route>();
  };

  const list = async (query = ''): Promise<Page<Route>> => {
    const r = await admin.get(`/admin/api/routes${query}`);
    expect(r.status, r.body).toBe(200);
    return r.json<Page<Route>>();
  };

  const auditFor = async (target: string): Promise<AuditEntry[]> => {
    const r = await admin.get('/admin/api/audit?page_size=200');
    expect(r.status).toBe(200);
    return r
      .json<Page<AuditEntry>>()
      .items.filter((e) => e.target === target)
      .reverse();
  };

  const stored = (id: number) =>
    sql<{ upstream_headers: string; require_header: string | null }>(
      stores.databaseUrl,
      'SELECT upstream_headers::text AS upstream_headers, require_header::text AS require_header FROM routes WHERE id = $1',
      [id],
    );

  const env = () => ({
    DATABASE_URL: stores.databaseUrl,
    REDIS_PREFIX: stores.redisPrefix,
    DOWNSTREAM_URL: downstream.url,
    ...ADMIN_ENV,
    SEED_KEY: SEED_SECRET,
    ROUTE_KEY: ENV_SECRET,
    NETWORK_DENY: '198.51.100.0/24',
    ROUTES: JSON.stringify([
      {
        prefix: '/seeded/',
        upstream: `${downstream.url}/base/`,
        strip_prefix: true,
        upstream_headers: { Authorization: 'Bearer ${env:SEED_KEY}' },
      },
    ]),
  });

  beforeAll(async () => {
    await downstream.start();
    subscriber = new Redis(REDIS_URL, { lazyConnect: true });
    await subscriber.connect();
    await subscriber.subscribe(`${stores.redisPrefix}events:routes`);
    subscriber.on('message', (_channel: string, message: string) => published.push(message));
    gw = await startGateway(env());
    admin = recording(await AdminClient.login(gw.url));
    const created = await admin.post('/admin/api/users', { ...AUDITOR, role: 'auditor' });
    expect(created.status, created.body).toBe(201);
    auditor = recording(await AdminClient.login(gw.url, AUDITOR.username, AUDITOR.password));
  });

  afterAll(async () => {
    await Promise.all([gw?.stop(), ...extra.map((g) => g.stop())]);
    subscriber?.disconnect();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('seeds ROUTES into the empty table at start, sealed and audited as env:ROUTES', async () => {
    expect(gw.logs.some((l) => l['msg'] === 'routes seeded from ROUTES (the table was empty)')).toBe(true);
    const page = await list();
    expect(page).toMatchObject({ total: 1, page: 1, page_size: 20 });
    const seeded = page.items[0]!;
    expect(Object.keys(seeded).sort()).toEqual(ROUTE_FIELDS);
    expect(seeded).toMatchObject({
      prefix: '/seeded/',
      upstream: `${downstream.url}/base`,
      strip_prefix: true,
      relay: null,
      timeout_seconds: null,
      upstream_header_names: ['authorization'],
      require_header_name: null,
    });
    const [row] = await stored(seeded.id);
    expect(row!.upstream_headers).not.toContain(SEED_SECRET);
    expect(row!.upstream_headers).not.toContain('SEED_KEY');
    const audit = await auditFor(`route:${seeded.id}`);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'env:ROUTES', action: 'route.create', before: null, ip: null });
    expect(audit[0]!.after).toEqual(seeded);
  });

  it('creates, reads, changes in part and deletes a route, each change audited', async () => {
    const before = published.length;
    const r = await create({
      prefix: '/openai/',
      upstream: 'https://api.openai.com/',
      strip_prefix: true,
      relay: 'openai',
      timeout_seconds: 600,
      upstream_headers: { Authorization: 'Bearer ${env:ROUTE_KEY}', 'X-Org': CLEAR_SECRET },
      require_header: { name: 'X-Proxy-Token', value: TOKEN_SECRET },
    });
    expect(Object.keys(r).sort()).toEqual(ROUTE_FIELDS);
    expect(r).toMatchObject({
      id: expect.any(Number),
      prefix: '/openai/',
      upstream: 'https://api.openai.com',
      strip_prefix: true,
      relay: 'openai',
      timeout_seconds: 600,
      upstream_header_names: ['authorization', 'x-org'],
      require_header_name: 'x-proxy-token',
    });
    expect(r.created_at).toMatch(ISO);
    expect(r.updated_at).toMatch(ISO);
    // Announced on Redis (the other instances' fast path).
    await waitFor(() => published.length > before, 2000);

    const one = await admin.get(`/admin/api/routes/${r.id}`);
    expect(one.status).toBe(200);
    expect(one.json()).toEqual(r);
    expect((await list()).items.map((x) => x.prefix)).toEqual(['/seeded/', '/openai/']);

    // Fields left out keep their value, header values included.
    const moved = await admin.put(`/admin/api/routes/${r.id}`, {
      upstream: 'http://127.0.0.1:9/',
      relay: null,
    });
    expect(moved.status, moved.body).toBe(200);
    const m = moved.json<Route>();
    expect(m).toMatchObject({
      id: r.id,
      upstream: 'http://127.0.0.1:9',
      relay: null,
      strip_prefix: true,
      timeout_seconds: 600,
      upstream_header_names: ['authorization', 'x-org'],
      require_header_name: 'x-proxy-token',
      created_at: r.created_at,
    });
    const sealedBefore = (await stored(r.id))[0]!;

    // upstream_headers replaces the whole set; require_header: null removes the token.
    const replaced = await admin.put(`/admin/api/routes/${r.id}`, {
      upstream_headers: { 'x-api-key': CLEAR_SECRET },
      require_header: null,
    });
    expect(replaced.status, replaced.body).toBe(200);
    expect(replaced.json()).toMatchObject({
      upstream_header_names: ['x-api-key'],
      require_header_name: null,
    });
    const sealedAfter = (await stored(r.id))[0]!;
    expect(sealedAfter.require_header).toBeNull();
    expect(sealedAfter.upstream_headers).not.toBe(sealedBefore.upstream_headers);

    // A change to nothing writes nothing.
    const same = await admin.put(`/admin/api/routes/${r.id}`, { strip_prefix: true });
    expect(same.status).toBe(200);

    const gone = await admin.delete(`/admin/api/routes/${r.id}`);
    expect(gone.status, gone.body).toBe(200);
    expect(gone.json()).toMatchObject({ id: r.id, prefix: '/openai/', upstream_header_names: ['x-api-key'] });
    expectError(await admin.get(`/admin/api/routes/${r.id}`), 404, 'not_found');
    expectError(await admin.delete(`/admin/api/routes/${r.id}`), 404, 'not_found');
    expectError(await admin.put(`/admin/api/routes/${r.id}`, { strip_prefix: false }), 404, 'not_found');
    expect(await sql(stores.databaseUrl, 'SELECT 1 FROM routes WHERE id = $1', [r.id])).toHaveLength(0);

    const audit = await auditFor(`route:${r.id}`);
    expect(audit.map((e) => [e.actor, e.action])).toEqual([
      ['admin', 'route.create'],
      ['admin', 'route.update'],
      ['admin', 'route.update'],
      ['admin', 'route.delete'],
    ]);
    expect(audit[0]).toMatchObject({ before: null, after: r, ip: '127.0.0.250' });
    expect(audit[1]).toMatchObject({ before: r, after: m });
    expect(audit[2]!.after).toMatchObject({
      upstream_header_names: ['x-api-key'],
      require_header_name: null,
      upstream_header_values: 'changed',
    });
    expect(audit[3]).toMatchObject({
      after: null,
      before: { id: r.id, upstream_header_names: ['x-api-key'] },
    });
  });

  it('stores header values sealed: the table holds no clear text', async () => {
    const r = await create({
      prefix: '/sealed/',
      upstream: downstream.url,
      upstream_headers: { authorization: `Bearer ${CLEAR_SECRET}`, 'x-env': 'k=${env:ROUTE_KEY}' },
      require_header: { name: 'x-proxy-token', value: TOKEN_SECRET },
    });
    const [row] = await stored(r.id);
    const all = JSON.stringify(row);
    for (const s of [CLEAR_SECRET, TOKEN_SECRET, ENV_SECRET, 'ROUTE_KEY', 'Bearer'])
      expect(all).not.toContain(s);
    const headers = JSON.parse(row!.upstream_headers) as Record<string, Record<string, unknown>>;
    expect(Object.keys(headers).sort()).toEqual(['authorization', 'x-env']);
    expect(Object.keys(headers['authorization']!).sort()).toEqual(['data', 'iv', 'tag', 'v']);
    const token = JSON.parse(row!.require_header!) as { name: string; value: Record<string, unknown> };
    expect(token.name).toBe('x-proxy-token');
    expect(Object.keys(token.value).sort()).toEqual(['data', 'iv', 'tag', 'v']);
    // Never answered either.
    const shown = await admin.get(`/admin/api/routes/${r.id}`);
    for (const s of SECRETS) expect(shown.body).not.toContain(s);
    expect(await admin.delete(`/admin/api/routes/${r.id}`)).toMatchObject({ status: 200 });
  });

  it.each([
    [{ prefix: '/admin/x/' }, 'prefix'],
    [{ prefix: '/metrics/' }, 'prefix'],
    [{ prefix: '/nope' }, 'prefix'],
    [{ prefix: 'nope/' }, 'prefix'],
    [{ prefix: '/a/../b/' }, 'prefix'],
    [{ upstream: 'ftp://example.com' }, 'upstream'],
    [{ upstream: 'https://user:pw@example.com' }, 'upstream'],
    [{ upstream: 'https://example.com/?q=1' }, 'upstream'],
    [{ upstream: 'not a url' }, 'upstream'],
    [{ relay: 'azure' }, 'relay'],
    [{ timeout_seconds: 0 }, 'timeout_seconds'],
    [{ strip_prefix: 'yes' }, 'strip_prefix'],
    [{ upstream_headers: { 'bad header': CLEAR_SECRET } }, 'upstream_headers.bad header'],
    [{ upstream_headers: { host: CLEAR_SECRET } }, 'upstream_headers.host'],
    [{ upstream_headers: { authorization: `${CLEAR_SECRET}\n` } }, 'upstream_headers.authorization'],
    [{ require_header: { name: 'x-t' } }, 'require_header.value'],
    [{ nonsense: true }, 'nonsense'],
  ])('refuses %j with 422 naming %s', async (over, field) => {
    const r = await admin.post('/admin/api/routes', { prefix: '/bad/', upstream: downstream.url, ...over });
    expectError(r, 422, 'validation_failed', field);
    expect(r.body).not.toContain(CLEAR_SECRET);
  });

  it('refuses a value naming an environment variable the gateway does not have, naming field and variable', async () => {
    const r = await admin.post('/admin/api/routes', {
      prefix: '/missing/',
      upstream: downstream.url,
      upstream_headers: { authorization: `Bearer ${CLEAR_SECRET}\${env:MISSING_ROUTE_KEY}` },
    });
    expectError(r, 422, 'validation_failed', 'upstream_headers.authorization');
    expect(r.body).toContain('MISSING_ROUTE_KEY');
    expect(r.body).not.toContain(CLEAR_SECRET);
    const t = await admin.post('/admin/api/routes', {
      prefix: '/missing/',
      upstream: downstream.url,
      require_header: { name: 'x-proxy-token', value: '${env:MISSING_TOKEN}' },
    });
    expectError(t, 422, 'validation_failed', 'require_header.value');
    expect(t.body).toContain('MISSING_TOKEN');
    // The same on a change.
    const seeded = (await list()).items[0]!;
    const u = await admin.put(`/admin/api/routes/${seeded.id}`, {
      upstream_headers: { authorization: '${env:MISSING_ROUTE_KEY}' },
    });
    expectError(u, 422, 'validation_failed', 'upstream_headers.authorization');
    expect(await sql(stores.databaseUrl, `SELECT 1 FROM routes WHERE prefix = '/missing/'`)).toHaveLength(0);
  });

  it('refuses a prefix another route has with 409, on create and on change', async () => {
    const a = await create({ prefix: '/dup-a/', upstream: downstream.url });
    const b = await create({ prefix: '/dup-b/', upstream: downstream.url });
    const again = await admin.post('/admin/api/routes', { prefix: '/dup-a/', upstream: 'http://other' });
    expectError(again, 409, 'conflict');
    expect(again.json().error.message).toContain('A route with prefix "/dup-a/" exists');
    const moved = await admin.put(`/admin/api/routes/${b.id}`, { prefix: '/dup-a/' });
    expectError(moved, 409, 'conflict');
    expect((await admin.get(`/admin/api/routes/${b.id}`)).json()).toEqual(b);
    expect(await auditFor(`route:${b.id}`)).toHaveLength(1);
    for (const r of [a, b]) expect((await admin.delete(`/admin/api/routes/${r.id}`)).status).toBe(200);
  });

  it('refuses bad ids, bodies and parameters with 422', async () => {
    expectError(await admin.get('/admin/api/routes/abc'), 422, 'validation_failed', 'id');
    expectError(await admin.get('/admin/api/routes/0'), 422, 'validation_failed', 'id');
    expectError(await admin.get('/admin/api/routes?page=0'), 422, 'validation_failed', 'page');
    expectError(await admin.get('/admin/api/routes?search=x'), 422, 'validation_failed', 'search');
    expectError(await admin.post('/admin/api/routes', '[]'), 422, 'validation_failed', 'body');
    expectError(await admin.post('/admin/api/routes', '{"prefix":'), 422, 'validation_failed', 'body');
    const seeded = (await list()).items[0]!;
    expectError(await admin.put(`/admin/api/routes/${seeded.id}`, {}), 422, 'validation_failed', 'body');
  });

  it('lets an auditor read routes but not change them; refuses callers without a token', async () => {
    const seeded = (await list()).items[0]!;
    const all = await auditor.get('/admin/api/routes');
    expect(all.status).toBe(200);
    expect(all.json<Page<Route>>().items.map((r) => r.id)).toContain(seeded.id);
    expect((await auditor.get(`/admin/api/routes/${seeded.id}`)).status).toBe(200);
    expectError(
      await auditor.post('/admin/api/routes', { prefix: '/aud/', upstream: downstream.url }),
      403,
      'forbidden',
    );
    expectError(
      await auditor.put(`/admin/api/routes/${seeded.id}`, { strip_prefix: false }),
      403,
      'forbidden',
    );
    expectError(await auditor.delete(`/admin/api/routes/${seeded.id}`), 403, 'forbidden');
    const anon = new AdminClient(gw.url);
    expectError(await anon.get('/admin/api/routes'), 401, 'unauthorized');
    expectError(await anon.get(`/admin/api/routes/${seeded.id}`), 401, 'unauthorized');
    expectError(
      await anon.post('/admin/api/routes', { prefix: '/anon/', upstream: downstream.url }),
      401,
      'unauthorized',
    );
    expectError(await anon.delete(`/admin/api/routes/${seeded.id}`), 401, 'unauthorized');
    expect((await list()).items.find((r) => r.id === seeded.id)).toEqual(seeded);
    expect(
      await sql(stores.databaseUrl, `SELECT 1 FROM routes WHERE prefix IN ('/aud/', '/anon/')`),
    ).toHaveLength(0);
  });

  it(`pages the list, and refuses a route past the limit of 100`, async () => {
    // Fill the table to the limit behind the API's back (the trigger still NOTIFYs).
    await sql(
      stores.databaseUrl,
      `INSERT INTO routes (prefix, upstream)
       SELECT '/fill-' || n || '/', 'http://127.0.0.1:9' FROM generate_series(1, 100 - (SELECT count(*) FROM routes)) AS n`,
    );
    const p2 = await list('?page=2&page_size=30');
    expect(p2).toMatchObject({ total: 100, page: 2, page_size: 30 });
    expect(p2.items).toHaveLength(30);
    const ids = p2.items.map((r) => r.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(await list('?page=9&page_size=30')).toMatchObject({ total: 100, items: [] });
    const over = await admin.post('/admin/api/routes', {
      prefix: '/one-too-many/',
      upstream: downstream.url,
    });
    expectError(over, 422, 'validation_failed', 'body');
    expect(over.json().error.message).toContain('at most 100 routes');
    await sql(stores.databaseUrl, `DELETE FROM routes WHERE prefix LIKE '/fill-%'`);
    expect((await list()).total).toBe(1);
  });

  it('changes the network policy through PUT /settings: canonical CIDRs only, unnamed lists kept', async () => {
    const s = (await admin.get('/admin/api/settings')).json();
    // NETWORK_DENY gives the initial value.
    expect(s.networks).toEqual({ allow: [], deny: ['198.51.100.0/24'], first_use_from: [] });
    for (const [body, field] of [
      [{ networks: { allow: ['10.0.0.1/8'] } }, 'networks.allow[0]'],
      [{ networks: { allow: ['127.0.0.0/8'], deny: ['0.0.0.0/33'] } }, 'networks.deny[0]'],
      [{ networks: { first_use_from: ['010.0.0.0/8'] } }, 'networks.first_use_from[0]'],
      [{ networks: { allow: '127.0.0.0/8' } }, 'networks.allow'],
      [{ networks: { everyone: [] } }, 'networks.everyone'],
    ] as const) {
      expectError(await admin.put('/admin/api/settings', body), 422, 'validation_failed', field);
    }
    expect((await admin.get('/admin/api/settings')).json().networks).toEqual(s.networks);

    const changed = await admin.put('/admin/api/settings', {
      networks: { allow: ['127.0.0.0/8', '::1'], first_use_from: ['127.0.0.0/8'] },
    });
    expect(changed.status, changed.body).toBe(200);
    const expected = {
      allow: ['127.0.0.0/8', '::1/128'],
      deny: ['198.51.100.0/24'],
      first_use_from: ['127.0.0.0/8'],
    };
    expect(changed.json().networks).toEqual(expected);
    expect((await admin.get('/admin/api/settings')).json().networks).toEqual(expected);
    const [row] = await sql<{ value: unknown }>(
      stores.databaseUrl,
      `SELECT value FROM settings WHERE key = 'networks'`,
    );
    expect(row!.value).toEqual(expected);
    const audit = (await admin.get('/admin/api/audit?page_size=5')).json<Page<AuditEntry>>().items[0]!;
    expect(audit).toMatchObject({ action: 'settings.update' });
    expect((audit.before as { networks: unknown }).networks).toEqual(s.networks);
    expect((audit.after as { networks: unknown }).networks).toEqual(expected);

    // Named empty, a list is emptied.
    const cleared = await admin.put('/admin/api/settings', { networks: { allow: [], first_use_from: [] } });
    expect(cleared.json().networks).toEqual({ allow: [], deny: ['198.51.100.0/24'], first_use_from: [] });
  });

  it('lists the routes paths in the OpenAPI document, which stays valid', async () => {
    const spec = (await new AdminClient(gw.url).get('/admin/api/openapi.json')).json();
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining(['/admin/api/routes', '/admin/api/routes/{id}']),
    );
    expect(Object.keys(spec.paths['/admin/api/routes/{id}']).sort()).toEqual(['delete', 'get', 'put']);
    const settings = spec.paths['/admin/api/settings'].put.requestBody.content['application/json'].schema;
    expect(Object.keys(settings.properties.networks.properties).sort()).toEqual([
      'allow',
      'deny',
      'first_use_from',
    ]);
    const { default: SwaggerParser } = await import('@apidevtools/swagger-parser');
    await expect(SwaggerParser.validate(structuredClone(spec))).resolves.toBeTruthy();
  });

  it('ignores ROUTES once routes are stored, saying so once', async () => {
    const before = await list();
    const other = await startGateway({
      ...env(),
      ROUTES: JSON.stringify([{ prefix: '/other/', upstream: downstream.url }]),
    });
    extra.push(other);
    const ignored = other.logs.filter((l) => String(l['msg']).startsWith('ROUTES ignored'));
    expect(ignored).toHaveLength(1);
    expect(ignored[0]).toMatchObject({ level: 30, stored: before.total });
    expect(other.logs.some((l) => String(l['msg']).startsWith('routes seeded'))).toBe(false);
    expect(await list()).toEqual(before);
    await other.stop();
  });

  it('refuses to start when ROUTES names an unset variable, naming it and not the value', async () => {
    const err = await startGateway({
      ...env(),
      ROUTES: JSON.stringify([
        {
          prefix: '/x/',
          upstream: downstream.url,
          upstream_headers: { 'x-key': `${CLEAR_SECRET}\${env:NOT_THERE}` },
        },
      ]),
    }).then(
      () => null,
      (e: Error) => e,
    );
    expect(err?.message).toContain('Invalid configuration: ROUTES ROUTES[0].upstream_headers.x-key');
    expect(err?.message).toContain('NOT_THERE');
    expect(err?.message).not.toContain(CLEAR_SECRET);
  });

  it('never shows a header value in an answer, the audit trail or the logs', async () => {
    const audit = await sql<{ t: string }>(
      stores.databaseUrl,
      `SELECT string_agg(coalesce(before::text, '') || coalesce(after::text, ''), ' ') AS t FROM audit_logs`,
    );
    for (const s of SECRETS) {
      for (const body of bodies) expect(body).not.toContain(s);
      expect(audit[0]!.t).not.toContain(s);
      expect(gw.output()).not.toContain(s);
    }
  });
});
