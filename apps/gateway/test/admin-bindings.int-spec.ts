import type { AuditEntry, Binding, Page } from '@keypin/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send, type Reply } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';

const BINDING_FIELDS = [
  'allowed_ips',
  'created_at',
  'first_ip',
  'first_used_at',
  'id',
  'intercept_count',
  'last_ip',
  'last_used_at',
  'note',
  'policy',
  'request_count',
  'requests_today',
  'rule_type',
  'status',
  'token_display',
  'updated_at',
];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A binding without the usage fields that traffic moves (written in batches by the proxy). */
const stable = (b: Binding) => {
  const { last_ip: _ip, last_used_at: _at, request_count: _rc, intercept_count: _ic, ...rest } = b;
  return rest;
};
const AUDITOR = { username: 'auditor1', password: 'auditor-password-123' };

describe('admin API: bindings', () => {
  const stores = freshStores('admbind');
  const downstream = new FakeDownstream();
  let gwA: GatewayProcess;
  let gwB: GatewayProcess;
  let admin: AdminClient;
  let auditor: AdminClient;
  /** Every admin API answer body, checked at the end for raw keys. */
  const bodies: string[] = [];
  /** Canonical forms of every key used. */
  const canonicals: string[] = [];
  const timings: Record<string, number> = {};
  let n = 0;

  /** A key no other test uses (canonical form: everything after `sk-`). */
  const newKey = () => {
    const key = `sk-adm${Date.now().toString(36)}q${++n}z`;
    canonicals.push(key.slice(3));
    return key;
  };

  /** Keeps every reply body of a client for the raw-key sweep. */
  const recording = (c: AdminClient): AdminClient => {
    const request = c.request.bind(c);
    c.request = async (method, path, body) => {
      const r = await request(method, path, body);
      bodies.push(r.body);
      return r;
    };
    return c;
  };

  const use = (key: string, from: string, g: GatewayProcess = gwA): Promise<Reply> =>
    send(`${g.url}/v1/models`, { from, headers: bearer(key) });
  const statusOf = async (key: string, from: string, g?: GatewayProcess) => (await use(key, from, g)).status;

  const list = async (query: string): Promise<Page<Binding>> => {
    const r = await admin.get(`/admin/api/bindings${query}`);
    expect(r.status, r.body).toBe(200);
    return r.json<Page<Binding>>();
  };
  const search = (text: string) => list(`?search=${encodeURIComponent(text)}&page_size=200`);

  /** Binds a fresh key by using it from `from`; answers its binding (found by the raw key). */
  const bindByUse = async (from: string, g: GatewayProcess = gwA) => {
    const key = newKey();
    expect(await statusOf(key, from, g)).toBe(200);
    const page = await search(key);
    expect(page.total).toBe(1);
    return { key, binding: page.items[0]! };
  };

  const prebind = async (body: Record<string, unknown>): Promise<Binding> => {
    const r = await admin.post('/admin/api/bindings', body);
    expect(r.status, r.body).toBe(201);
    return r.json<Binding>();
  };

  const countOf = async (query: string): Promise<number> =>
    Number((await sql<{ n: string }>(stores.databaseUrl, query))[0]!.n);

  const getBinding = async (id: number): Promise<Binding> => {
    const r = await admin.get(`/admin/api/bindings/${id}`);
    expect(r.status, r.body).toBe(200);
    return r.json<Binding>();
  };

  const auditFor = async (id: number): Promise<AuditEntry[]> => {
    const r = await admin.get('/admin/api/audit?page_size=200');
    expect(r.status).toBe(200);
    return r
      .json<Page<AuditEntry>>()
      .items.filter((e) => e.target === `binding:${id}`)
      .reverse();
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

  beforeAll(async () => {
    await downstream.start();
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...ADMIN_ENV,
    };
    gwA = await startGateway(env);
    // A second instance sharing the database and the Redis prefix.
    gwB = await startGateway(env);
    admin = recording(await AdminClient.login(gwA.url));
    const created = await admin.post('/admin/api/users', { ...AUDITOR, role: 'auditor' });
    expect(created.status, created.body).toBe(201);
    auditor = recording(await AdminClient.login(gwA.url, AUDITOR.username, AUDITOR.password));
  });

  afterAll(async () => {
    if (Object.keys(timings).length > 0) console.info('propagation (ms):', JSON.stringify(timings));
    await Promise.all([gwA?.stop(), gwB?.stop()]);
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('answers a binding made by first use in the contract shape', async () => {
    const { key, binding } = await bindByUse('127.0.1.1');
    expect(Object.keys(binding).sort()).toEqual(BINDING_FIELDS);
    expect(binding).toMatchObject({
      id: expect.any(Number),
      rule_type: 'single',
      allowed_ips: ['127.0.1.1/32'],
      status: 'active',
      first_ip: '127.0.1.1',
      first_used_at: expect.stringMatching(ISO),
      request_count: expect.any(Number),
      intercept_count: 0,
      note: null,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(binding.token_display).toMatch(/^.{1,4}\u2026.{1,4}$/);
    expect(binding.token_display).not.toContain(key.slice(3));
    expect(stable(await getBinding(binding.id))).toEqual(stable(binding));
  });

  it('lists newest first, pages, and filters by status and rule', async () => {
    const single = await prebind({ key: newKey(), rule_type: 'single', allowed_ips: ['10.20.1.0/24'] });
    const multiple = await prebind({
      key: newKey(),
      rule_type: 'multiple',
      allowed_ips: ['10.20.2.0/24', '10.20.3.4/32'],
    });
    const all = await prebind({ key: newKey(), rule_type: 'all', allowed_ips: [] });
    expect((await admin.post('/admin/api/bindings/ban', { id: multiple.id })).status).toBe(200);

    const count = await countOf('SELECT count(*) AS n FROM bindings');
    const first = await list('?page_size=2');
    expect(first).toMatchObject({ total: count, page: 1, page_size: 2 });
    expect(first.items.map((b) => b.id)).toEqual([all.id, multiple.id]);
    const second = await list('?page=2&page_size=2');
    expect(second.items[0]!.id).toBe(single.id);
    for (const b of second.items.slice(1)) expect(b.id).toBeLessThan(single.id);
    const past = await list('?page=1000&page_size=200');
    expect(past).toEqual({ items: [], total: count, page: 1000, page_size: 200 });
    expect((await list('')).page_size).toBe(20);

    const banned = await list('?status=banned&page_size=200');
    expect(banned.items.map((b) => b.id)).toContain(multiple.id);
    expect(banned.items.every((b) => b.status === 'banned')).toBe(true);
    expect(banned.total).toBe(await countOf(`SELECT count(*) AS n FROM bindings WHERE status = 'banned'`));

    const active = await list('?status=active&rule_type=all&page_size=200');
    expect(active.items.map((b) => b.id)).toContain(all.id);
    expect(active.items.every((b) => b.status === 'active' && b.rule_type === 'all')).toBe(true);
    const multi = await list('?rule_type=multiple&page_size=200');
    expect(multi.items.map((b) => b.id)).toEqual(expect.arrayContaining([multiple.id]));
    expect(multi.items.every((b) => b.rule_type === 'multiple')).toBe(true);
    const ids = (await list('?page_size=200')).items.map((b) => b.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
  });

  it('searches by masked key, case-insensitively, with "..." for the mask', async () => {
    const b = await prebind({ key: newKey(), rule_type: 'single', allowed_ips: ['10.21.0.0/16'] });
    for (const text of [
      b.token_display,
      b.token_display.toUpperCase(),
      b.token_display.replace('\u2026', '...'),
      b.token_display.slice(-3),
    ]) {
      const page = await search(text);
      expect(
        page.items.map((x) => x.id),
        text,
      ).toContain(b.id);
      const needle = text.replace('...', '\u2026').toLowerCase();
      expect(page.items.every((x) => x.token_display.toLowerCase().includes(needle))).toBe(true);
    }
  });

  it('searches by an IP inside a binding’s networks, and by a CIDR', async () => {
    const b = await prebind({
      key: newKey(),
      rule_type: 'multiple',
      allowed_ips: ['10.22.0.0/16', '2001:db8:22::/48'],
    });
    expect((await search('10.22.33.44')).items.map((x) => x.id)).toEqual([b.id]);
    expect((await search('2001:DB8:22:0::1')).items.map((x) => x.id)).toEqual([b.id]);
    expect((await search('10.22.0.0/24')).items.map((x) => x.id)).toEqual([b.id]);
    expect((await search('10.23.0.1')).total).toBe(0);
    // Not a strict IPv4 spelling: a text search, which finds nothing.
    expect((await search('010.22.0.1')).total).toBe(0);
  });

  it('searches by last IP and first IP', async () => {
    // Rule "all": the binding has no networks, so only its last IP can match.
    const key = newKey();
    const b = await prebind({ key, rule_type: 'all', allowed_ips: [] });
    expect(await statusOf(key, '127.0.2.7')).toBe(200);
    await waitFor(async () => (await getBinding(b.id)).last_ip === '127.0.2.7', 8000, 100);
    expect((await search('127.0.2.7')).items.map((x) => x.id)).toEqual([b.id]);

    const used = await bindByUse('127.0.2.8');
    expect((await search('127.0.2.8')).items.map((x) => x.id)).toEqual([used.binding.id]);
  });

  it('searches by a full raw key in any spelling of it (hashed on the server)', async () => {
    const key = newKey();
    const r = await send(`${gwA.url}/v1/models`, {
      from: '127.0.2.9',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(r.status).toBe(200);
    const canonical = key.slice(3);
    const found = await search(`${key}-3`);
    expect(found.total).toBe(1);
    expect(found.items[0]).toMatchObject({ first_ip: '127.0.2.9', allowed_ips: ['127.0.2.9/32'] });
    for (const spelling of [key, canonical, `Bearer ${key}`, ` ${canonical}-77 `]) {
      expect(
        (await search(spelling)).items.map((x) => x.id),
        spelling,
      ).toEqual([found.items[0]!.id]);
    }
    expect((await search(`${key}x`)).total).toBe(0);
  });

  it('gets one binding, 404 for a missing one, 422 for an id that is not a positive integer', async () => {
    const b = await prebind({
      key: newKey(),
      rule_type: 'single',
      allowed_ips: ['10.24.0.0/16'],
      note: 'n1',
    });
    expect(await getBinding(b.id)).toEqual(b);
    expect(b.note).toBe('n1');
    expectError(await admin.get('/admin/api/bindings/987654321'), 404, 'not_found');
    for (const bad of ['abc', '0', '-1', '1.5', '1e3', '99999999999999999999']) {
      expectError(await admin.get(`/admin/api/bindings/${bad}`), 422, 'validation_failed', 'id');
    }
  });

  it('pre-binds a key: its first use from elsewhere is refused, from inside allowed', async () => {
    const key = newKey();
    const b = await prebind({ key, rule_type: 'single', allowed_ips: ['127.0.3.0/30'], note: 'ci runner' });
    expect(Object.keys(b).sort()).toEqual(BINDING_FIELDS);
    expect(b).toMatchObject({
      rule_type: 'single',
      allowed_ips: ['127.0.3.0/30'],
      status: 'active',
      first_ip: null,
      first_used_at: null,
      last_ip: null,
      request_count: 0,
      note: 'ci runner',
    });
    const refused = await use(key, '127.0.3.9');
    expect(refused.status).toBe(403);
    expect(refused.json().error.code).toBe('ip_not_allowed');
    expect(await statusOf(key, '127.0.3.2')).toBe(200);
    // Still one binding, still pinned to the pre-bound network.
    expect((await search(key)).items).toEqual([
      expect.objectContaining({ id: b.id, allowed_ips: ['127.0.3.0/30'] }),
    ]);
  });

  it('answers 409 already_bound for a key that is bound, in any spelling', async () => {
    const key = newKey();
    await prebind({ key, rule_type: 'all', allowed_ips: [] });
    for (const spelling of [key, key.slice(3), `${key}-9`]) {
      expectError(
        await admin.post('/admin/api/bindings', { key: spelling, rule_type: 'all', allowed_ips: [] }),
        409,
        'already_bound',
      );
    }
    const used = await bindByUse('127.0.3.20');
    expectError(
      await admin.post('/admin/api/bindings', { key: used.key, rule_type: 'all', allowed_ips: [] }),
      409,
      'already_bound',
    );
    expect((await search(key)).total).toBe(1);
  });

  it('unbinds: the binding is archived and the key binds afresh from a new IP on next use', async () => {
    const { key, binding } = await bindByUse('127.0.4.1');
    expect(await statusOf(key, '127.0.4.2')).toBe(403);
    const r = await admin.post('/admin/api/bindings/unbind', { id: binding.id });
    expect(r.status, r.body).toBe(200);
    expect(r.json()).toMatchObject({ id: binding.id, allowed_ips: ['127.0.4.1/32'] });
    expectError(await admin.get(`/admin/api/bindings/${binding.id}`), 404, 'not_found');
    expectError(await admin.post('/admin/api/bindings/unbind', { id: binding.id }), 404, 'not_found');
    const archived = await sql<{ archive_reason: string; token_display: string }>(
      stores.databaseUrl,
      'SELECT archive_reason, token_display FROM binding_archive WHERE id = $1',
      [binding.id],
    );
    expect(archived).toEqual([{ archive_reason: 'unbound by admin', token_display: binding.token_display }]);

    timings['unbind (same instance)'] = await waitFor(
      async () => (await statusOf(key, '127.0.4.2')) === 200,
      1000,
    );
    expect(await statusOf(key, '127.0.4.1')).toBe(403);
    const fresh = await search(key);
    expect(fresh.items).toEqual([
      expect.objectContaining({ first_ip: '127.0.4.2', allowed_ips: ['127.0.4.2/32'] }),
    ]);
    expect(fresh.items[0]!.id).not.toBe(binding.id);
  });

  it('edits rule and networks; live traffic honours each edit within 1 s', async () => {
    const { key, binding } = await bindByUse('127.0.5.1');
    const put = async (rule_type: string, allowed_ips: string[]) => {
      const r = await admin.put('/admin/api/bindings/ip', { id: binding.id, rule_type, allowed_ips });
      expect(r.status, r.body).toBe(200);
      return r.json<Binding>();
    };

    const multi = await put('multiple', ['127.0.5.2', '127.0.5.8/29', '127.0.5.2/32']);
    expect(multi).toMatchObject({ rule_type: 'multiple', allowed_ips: ['127.0.5.2/32', '127.0.5.8/29'] });
    expect(multi.updated_at > binding.updated_at).toBe(true);
    const ms = await waitFor(async () => (await statusOf(key, '127.0.5.2')) === 200, 1000);
    expect(await statusOf(key, '127.0.5.12')).toBe(200);
    expect(await statusOf(key, '127.0.5.1')).toBe(403);
    expect(ms).toBeLessThan(1000);
    timings['edit networks (same instance)'] = ms;

    expect(await put('all', [])).toMatchObject({ rule_type: 'all', allowed_ips: [] });
    timings['rule all (same instance)'] = await waitFor(
      async () => (await statusOf(key, '127.0.5.99')) === 200,
      1000,
    );

    expect(await put('single', ['127.0.5.128/26'])).toMatchObject({ allowed_ips: ['127.0.5.128/26'] });
    await waitFor(async () => (await statusOf(key, '127.0.5.99')) === 403, 1000);
    expect(await statusOf(key, '127.0.5.150')).toBe(200);
    expect(await getBinding(binding.id)).toMatchObject({
      rule_type: 'single',
      allowed_ips: ['127.0.5.128/26'],
    });
  });

  it('bans (403 key_banned within 1 s) and unbans (200 again within 1 s)', async () => {
    const { key, binding } = await bindByUse('127.0.6.1');
    const ban = await admin.post('/admin/api/bindings/ban', { id: binding.id });
    expect(ban.status, ban.body).toBe(200);
    expect(ban.json()).toMatchObject({ id: binding.id, status: 'banned' });
    const banMs = await waitFor(async () => (await statusOf(key, '127.0.6.1')) === 403, 1000);
    const refused = await use(key, '127.0.6.1');
    expect(refused.json().error.code).toBe('key_banned');
    expect(banMs).toBeLessThan(1000);
    timings['ban (same instance)'] = banMs;

    const unban = await admin.post('/admin/api/bindings/unban', { id: binding.id });
    expect(unban.status, unban.body).toBe(200);
    expect(unban.json()).toMatchObject({ id: binding.id, status: 'active' });
    const unbanMs = await waitFor(async () => (await statusOf(key, '127.0.6.1')) === 200, 1000);
    expect(unbanMs).toBeLessThan(1000);
    timings['unban (same instance)'] = unbanMs;
    expect(await statusOf(key, '127.0.6.2')).toBe(403);
    expectError(await admin.post('/admin/api/bindings/ban', { id: 987654321 }), 404, 'not_found');
  });

  it('a change made through instance A is enforced by instance B within 1 s', async () => {
    const { key, binding } = await bindByUse('127.0.7.1', gwB);
    // B has the binding in its in-process cache.
    for (let i = 0; i < 3; i++) expect(await statusOf(key, '127.0.7.1', gwB)).toBe(200);
    expect(await statusOf(key, '127.0.7.2', gwB)).toBe(403);

    const measure = async (label: string, change: () => Promise<Reply>, enforced: () => Promise<boolean>) => {
      const r = await change();
      expect(r.status, r.body).toBe(200);
      const ms = await waitFor(enforced, 1000, 5);
      timings[`${label} (A → B)`] = ms;
      expect(ms, label).toBeLessThan(1000);
    };

    await measure(
      'edit networks',
      () =>
        admin.put('/admin/api/bindings/ip', {
          id: binding.id,
          rule_type: 'single',
          allowed_ips: ['127.0.7.2'],
        }),
      async () => (await statusOf(key, '127.0.7.2', gwB)) === 200,
    );
    expect(await statusOf(key, '127.0.7.1', gwB)).toBe(403);

    await measure(
      'ban',
      () => admin.post('/admin/api/bindings/ban', { id: binding.id }),
      async () => (await use(key, '127.0.7.2', gwB)).json().error?.code === 'key_banned',
    );
    await measure(
      'unban',
      () => admin.post('/admin/api/bindings/unban', { id: binding.id }),
      async () => (await statusOf(key, '127.0.7.2', gwB)) === 200,
    );
    await measure(
      'unbind',
      () => admin.post('/admin/api/bindings/unbind', { id: binding.id }),
      async () => (await statusOf(key, '127.0.7.3', gwB)) === 200,
    );
    // B bound it afresh to 127.0.7.3; A sees that binding too.
    expect(await statusOf(key, '127.0.7.2', gwA)).toBe(403);
    expect(await statusOf(key, '127.0.7.3', gwA)).toBe(200);
  });

  describe('validation', () => {
    let target: Binding;
    let before: { bindings: number; audit: number };
    const counts = async () => {
      const [row] = await sql<{ b: string; a: string }>(
        stores.databaseUrl,
        `SELECT (SELECT count(*) FROM bindings) AS b, (SELECT count(*) FROM audit_logs) AS a`,
      );
      return { bindings: Number(row!.b), audit: Number(row!.a) };
    };

    beforeAll(async () => {
      target = await prebind({ key: newKey(), rule_type: 'single', allowed_ips: ['10.30.0.0/16'] });
      before = await counts();
    });

    const K = 'sk-validationkey1234';
    canonicals.push(K.slice(3));
    const ok = { key: K, rule_type: 'single', allowed_ips: ['10.31.0.0/16'] };
    const hundredAndOne = Array.from({ length: 101 }, (_, i) => `10.32.${i}.0/24`);
    const nonCanonical = [
      '10.0.0.1/24',
      '0.0.0.0/33',
      '010.0.0.0/8',
      '10.0.0.0/08',
      'fe80::1%eth0',
      '10.0.0.0/-1',
    ];
    const ids = [
      ['"7"', '7'],
      ['1.5', 1.5],
      ['0', 0],
      ['-1', -1],
      ['null', null],
      ['true', true],
      ['1e20', 1e20],
    ] as const;

    type Case = [
      label: string,
      method: 'POST' | 'PUT',
      path: string,
      body: (id: number) => unknown,
      field: string,
    ];
    const cases: Case[] = [
      ['create: no fields', 'POST', '/bindings', () => ({}), 'key'],
      ['create: key is a number', 'POST', '/bindings', () => ({ ...ok, key: 5 }), 'key'],
      ['create: key is empty', 'POST', '/bindings', () => ({ ...ok, key: '' }), 'key'],
      ['create: key too long', 'POST', '/bindings', () => ({ ...ok, key: 'k'.repeat(4097) }), 'key'],
      ['create: key has no canonical form', 'POST', '/bindings', () => ({ ...ok, key: 'sk-' }), 'key'],
      ['create: key with "Bearer "', 'POST', '/bindings', () => ({ ...ok, key: `Bearer ${K}` }), 'key'],
      ['create: unknown rule', 'POST', '/bindings', () => ({ ...ok, rule_type: 'any' }), 'rule_type'],
      ['create: rule is a number', 'POST', '/bindings', () => ({ ...ok, rule_type: 1 }), 'rule_type'],
      ['create: no networks', 'POST', '/bindings', () => ({ key: K, rule_type: 'single' }), 'allowed_ips'],
      [
        'create: networks a string',
        'POST',
        '/bindings',
        () => ({ ...ok, allowed_ips: '10.0.0.0/8' }),
        'allowed_ips',
      ],
      ['create: networks null', 'POST', '/bindings', () => ({ ...ok, allowed_ips: null }), 'allowed_ips'],
      ['create: network a number', 'POST', '/bindings', () => ({ ...ok, allowed_ips: [10] }), 'allowed_ips'],
      ['create: note a number', 'POST', '/bindings', () => ({ ...ok, note: 5 }), 'note'],
      ['create: note too long', 'POST', '/bindings', () => ({ ...ok, note: 'n'.repeat(1001) }), 'note'],
      ['create: unknown field', 'POST', '/bindings', () => ({ ...ok, owner: 'bob' }), 'owner'],
      ...nonCanonical.map((e): Case => [
        `create: ${e}`,
        'POST',
        '/bindings',
        () => ({ ...ok, allowed_ips: [e] }),
        'allowed_ips',
      ]),
      [
        'create: single with two',
        'POST',
        '/bindings',
        () => ({ ...ok, allowed_ips: ['10.1.0.0/16', '10.2.0.0/16'] }),
        'allowed_ips',
      ],
      ['create: single with none', 'POST', '/bindings', () => ({ ...ok, allowed_ips: [] }), 'allowed_ips'],
      ['create: all with one', 'POST', '/bindings', () => ({ ...ok, rule_type: 'all' }), 'allowed_ips'],
      [
        'create: multiple with 101',
        'POST',
        '/bindings',
        () => ({ ...ok, rule_type: 'multiple', allowed_ips: hundredAndOne }),
        'allowed_ips',
      ],
      ...ids.map(([label, id]): Case => [
        `ip: id ${label}`,
        'PUT',
        '/bindings/ip',
        () => ({ id, rule_type: 'all', allowed_ips: [] }),
        'id',
      ]),
      ['ip: no id', 'PUT', '/bindings/ip', () => ({ rule_type: 'all', allowed_ips: [] }), 'id'],
      [
        'ip: unknown rule',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'none', allowed_ips: [] }),
        'rule_type',
      ],
      ['ip: no rule', 'PUT', '/bindings/ip', (id) => ({ id, allowed_ips: [] }), 'rule_type'],
      [
        'ip: networks an object',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'all', allowed_ips: {} }),
        'allowed_ips',
      ],
      [
        'ip: unknown field',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'all', allowed_ips: [], note: 'x' }),
        'note',
      ],
      ...nonCanonical.map((e): Case => [
        `ip: ${e}`,
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'multiple', allowed_ips: ['10.9.0.0/16', e] }),
        'allowed_ips',
      ]),
      [
        'ip: single with two',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'single', allowed_ips: ['10.1.0.0/16', '10.2.0.0/16'] }),
        'allowed_ips',
      ],
      [
        'ip: single with none',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'single', allowed_ips: [] }),
        'allowed_ips',
      ],
      [
        'ip: multiple with none',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'multiple', allowed_ips: [] }),
        'allowed_ips',
      ],
      [
        'ip: multiple with 101',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'multiple', allowed_ips: hundredAndOne }),
        'allowed_ips',
      ],
      [
        'ip: all with one',
        'PUT',
        '/bindings/ip',
        (id) => ({ id, rule_type: 'all', allowed_ips: ['10.0.0.0/8'] }),
        'allowed_ips',
      ],
      ...(['ban', 'unban', 'unbind'] as const).flatMap((action): Case[] => [
        ...ids.map(([label, id]): Case => [
          `${action}: id ${label}`,
          'POST',
          `/bindings/${action}`,
          () => ({ id }),
          'id',
        ]),
        [`${action}: no id`, 'POST', `/bindings/${action}`, () => ({}), 'id'],
        [`${action}: unknown field`, 'POST', `/bindings/${action}`, (id) => ({ id, force: true }), 'force'],
      ]),
    ];

    it.each(cases.map(([label, ...rest]) => [`${label} → 422 naming ${rest[3]}`, ...rest] as Case))(
      '%s',
      async (_label, method, path, body, field) => {
        const r = await admin.request(method, `/admin/api${path}`, body(target.id));
        expectError(r, 422, 'validation_failed', field);
      },
    );

    it.each([
      ['status=expired', 'status'],
      ['rule_type=any', 'rule_type'],
      ['status=active&status=banned', 'status'],
      ['page=0', 'page'],
      ['page=x', 'page'],
      ['page_size=201', 'page_size'],
      ['sort=id', 'sort'],
      ['search=<4097 characters>', 'search'],
    ])('list ?%s → 422 naming %s', async (query, field) => {
      const q = query.replace('<4097 characters>', 's'.repeat(4097));
      expectError(await admin.get(`/admin/api/bindings?${q}`), 422, 'validation_failed', field);
    });

    it.each(['[1]', '"text"', 'null', '42'])('refuses the body %s with 422', async (raw) => {
      const r = await admin.request('POST', '/admin/api/bindings/ban', raw);
      expectError(r, 422, 'validation_failed');
    });

    it('refuses a body that is not JSON with 422 naming the body', async () => {
      expectError(
        await admin.request('POST', '/admin/api/bindings/ban', '{"id": 1'),
        422,
        'validation_failed',
        'body',
      );
    });

    it('changed nothing while refusing', async () => {
      expect(await getBinding(target.id)).toEqual(target);
      expect(await counts()).toEqual(before);
      expect((await search(K)).total).toBe(0);
    });
  });

  it('lets an auditor read but refuses every change with 403 forbidden, changing nothing', async () => {
    const { key, binding } = await bindByUse('127.0.8.1');
    const r = await auditor.get(`/admin/api/bindings?search=${encodeURIComponent(key)}`);
    expect(r.status).toBe(200);
    expect(r.json().items.map(stable)).toEqual([stable(binding)]);
    expect(stable((await auditor.get(`/admin/api/bindings/${binding.id}`)).json())).toEqual(stable(binding));

    const attempts: [string, string, unknown][] = [
      ['POST', '/admin/api/bindings', { key: newKey(), rule_type: 'all', allowed_ips: [] }],
      ['PUT', '/admin/api/bindings/ip', { id: binding.id, rule_type: 'all', allowed_ips: [] }],
      ['POST', '/admin/api/bindings/ban', { id: binding.id }],
      ['POST', '/admin/api/bindings/unban', { id: binding.id }],
      ['POST', '/admin/api/bindings/unbind', { id: binding.id }],
    ];
    for (const [method, path, body] of attempts) {
      expectError(await auditor.request(method, path, body), 403, 'forbidden');
    }
    expect(stable(await getBinding(binding.id))).toEqual(stable(binding));
    expect((await search(canonicals[canonicals.length - 1]!)).total).toBe(0);
    expect(await statusOf(key, '127.0.8.2')).toBe(403);
    expect(await statusOf(key, '127.0.8.1')).toBe(200);
    const audit = await admin.get('/admin/api/audit?page_size=200');
    expect(audit.json().items.filter((e: AuditEntry) => e.actor === AUDITOR.username)).toEqual([]);
  });

  it('writes an audit row for every change: actor, action, target, before and after', async () => {
    const b = await prebind({ key: newKey(), rule_type: 'single', allowed_ips: ['10.40.0.0/16'] });
    const steps: [string, string, Record<string, unknown>][] = [
      [
        'PUT',
        '/admin/api/bindings/ip',
        { id: b.id, rule_type: 'multiple', allowed_ips: ['10.40.0.0/16', '10.41.0.1'] },
      ],
      ['POST', '/admin/api/bindings/ban', { id: b.id }],
      // Banning a banned key changes nothing and writes no row.
      ['POST', '/admin/api/bindings/ban', { id: b.id }],
      ['POST', '/admin/api/bindings/unban', { id: b.id }],
      ['POST', '/admin/api/bindings/unbind', { id: b.id }],
    ];
    for (const [method, path, body] of steps) {
      const r = await admin.request(method, path, body);
      expect(r.status, r.body).toBe(200);
    }
    const rows = await auditFor(b.id);
    expect(rows.map((e) => e.action)).toEqual([
      'binding.create',
      'binding.update_ip',
      'binding.ban',
      'binding.unban',
      'binding.unbind',
    ]);
    for (const e of rows) {
      expect(e).toMatchObject({
        actor: 'admin',
        target: `binding:${b.id}`,
        ip: '127.0.0.250',
        at: expect.stringMatching(ISO),
      });
      for (const side of [e.before, e.after]) {
        if (side !== null) expect(Object.keys(side as object).sort()).toEqual(BINDING_FIELDS);
      }
    }
    const [create, edit, ban, unban, unbind] = rows as [
      AuditEntry,
      AuditEntry,
      AuditEntry,
      AuditEntry,
      AuditEntry,
    ];
    expect(create.before).toBeNull();
    expect(create.after).toEqual(b);
    expect(edit.before).toMatchObject({ rule_type: 'single', allowed_ips: ['10.40.0.0/16'] });
    expect(edit.after).toMatchObject({
      rule_type: 'multiple',
      allowed_ips: ['10.40.0.0/16', '10.41.0.1/32'],
    });
    expect(ban.before).toMatchObject({ status: 'active' });
    expect(ban.after).toMatchObject({ status: 'banned' });
    expect(unban.before).toMatchObject({ status: 'banned' });
    expect(unban.after).toMatchObject({ status: 'active' });
    expect(unbind.before).toMatchObject({ id: b.id, status: 'active' });
    expect(unbind.after).toBeNull();
  });

  it('never shows a raw key: not in any answer, audit row, archive or log', async () => {
    // One more full round trip, so this test stands on its own.
    const key = newKey();
    const b = await prebind({ key, rule_type: 'all', allowed_ips: [] });
    await search(key);
    await admin.post('/admin/api/bindings/unbind', { id: b.id });
    await admin.get('/admin/api/audit?page_size=200');

    const stored = await sql<{ t: string }>(
      stores.databaseUrl,
      `SELECT (SELECT coalesce(json_agg(a), '[]') FROM audit_logs a)::text ||
              (SELECT coalesce(json_agg(x), '[]') FROM binding_archive x)::text ||
              (SELECT coalesce(json_agg(b), '[]') FROM bindings b)::text AS t`,
    );
    const haystacks = [...bodies, stored[0]!.t, gwA.output(), gwB.output()];
    expect(canonicals.length).toBeGreaterThan(20);
    for (const canonical of canonicals) {
      for (const h of haystacks) expect(h.includes(canonical), canonical).toBe(false);
    }
  });
});
