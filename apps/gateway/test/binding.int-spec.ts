import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';

type BindingRow = {
  id: string;
  token_display: string;
  rule_type: string;
  allowed_ips: string[];
  status: string;
  first_ip: string | null;
  last_ip: string | null;
  request_count: string;
};

describe('first-use binding and enforcement', () => {
  const stores = freshStores('binding');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let keyN = 0;
  /** A key no other test uses. */
  const newKey = () => `sk-bind${Date.now().toString(36)}x${++keyN}`;

  const bindings = () =>
    sql<BindingRow>(
      stores.databaseUrl,
      `SELECT id, token_display, rule_type, allowed_ips::text[] AS allowed_ips, status, host(first_ip) AS first_ip,
              host(last_ip) AS last_ip, request_count FROM bindings ORDER BY id`,
    );

  beforeAll(async () => {
    await downstream.start();
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

  it('binds on first use, allows the same IP and refuses another with a clear 403', async () => {
    const key = newKey();
    const first = await send(`${gw.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) });
    expect(first.status).toBe(200);
    expect(first.json()).toMatchObject({ ok: true, url: '/v1/models' });

    const rows = await bindings();
    const row = rows.find((r) => r.first_ip === '127.0.0.2')!;
    expect(row).toMatchObject({ rule_type: 'single', allowed_ips: ['127.0.0.2/32'], status: 'active' });
    expect(row.token_display).toMatch(/^.{1,4}\u2026.{1,4}$/);
    expect(JSON.stringify(rows)).not.toContain(key.slice(3));

    expect((await send(`${gw.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) })).status).toBe(200);

    const seenBefore = downstream.seen.length;
    const other = await send(`${gw.url}/v1/models`, { from: '127.0.0.3', headers: bearer(key) });
    expect(other.status).toBe(403);
    expect(other.json()).toEqual({
      error: {
        type: 'keypin_error',
        code: 'ip_not_allowed',
        message: expect.stringContaining('127.0.0.3'),
      },
    });
    expect(other.body).not.toContain('127.0.0.2');
    expect(downstream.seen.length).toBe(seenBefore);
  });

  it('treats sk-abc-7, abc and "Bearer sk-abc" as one key (newapi canonical form)', async () => {
    const base = `canon${Date.now().toString(36)}`;
    expect((await send(`${gw.url}/x`, { from: '127.0.0.4', headers: bearer(`sk-${base}-7`) })).status).toBe(
      200,
    );
    expect((await send(`${gw.url}/x`, { from: '127.0.0.4', headers: { authorization: base } })).status).toBe(
      200,
    );
    expect(
      (await send(`${gw.url}/x`, { from: '127.0.0.4', headers: { 'x-api-key': ` sk-${base} ` } })).status,
    ).toBe(200);
    const refused = await send(`${gw.url}/x`, { from: '127.0.0.5', headers: bearer(`sk-${base}-99`) });
    expect(refused.status).toBe(403);
  });

  it.each([
    [
      'authorization bearer (lower case, as New API reads it)',
      (k: string) => ({ headers: { authorization: `bearer ${k}` } }),
    ],
    ['x-litellm-api-key', (k: string) => ({ headers: { 'x-litellm-api-key': k } })],
    ['ocp-apim-subscription-key', (k: string) => ({ headers: { 'ocp-apim-subscription-key': k } })],
    ['a percent-encoded query name', (k: string) => ({ query: `?%6Bey=${encodeURIComponent(k)}` })],
    ['bare authorization', (k: string) => ({ headers: { authorization: k } })],
    ['x-api-key', (k: string) => ({ headers: { 'x-api-key': k } })],
    ['api-key', (k: string) => ({ headers: { 'api-key': k } })],
    ['x-goog-api-key', (k: string) => ({ headers: { 'x-goog-api-key': k } })],
    ['mj-api-secret', (k: string) => ({ headers: { 'mj-api-secret': k } })],
    ['query parameter key', (k: string) => ({ query: `?a=1&key=${encodeURIComponent(k)}` })],
  ])('finds the key in %s and pins it', async (_name, place) => {
    const key = newKey();
    const p = place(key) as { headers?: Record<string, string>; query?: string };
    const url = `${gw.url}/v1/chat${p.query ?? ''}`;
    expect((await send(url, { from: '127.0.0.6', headers: p.headers })).status).toBe(200);
    // The key headers reach the downstream unchanged.
    if (p.headers) {
      const [name, value] = Object.entries(p.headers)[0]!;
      expect(downstream.last().headers[name]).toBe(value);
    } else {
      expect(downstream.last().url).toBe(`/v1/chat${p.query ?? ''}`);
    }
    const other = await send(url, { from: '127.0.0.7', headers: p.headers });
    expect(other.status).toBe(403);
  });

  it('refuses two different keys or two Authorization lines with 400 ambiguous_key, binding nothing', async () => {
    const before = (await bindings()).length;
    const seen = downstream.seen.length;
    const a = newKey();
    const b = newKey();
    const cases: [string, string][][] = [
      [
        ['authorization', `Bearer ${a}`],
        ['x-api-key', b],
      ],
      [
        ['authorization', `Bearer ${a}`],
        ['authorization', `Bearer ${a}`],
      ],
      [
        ['authorization', `Bearer ${a}`],
        ['authorization', `Bearer ${b}`],
      ],
    ];
    for (const headers of cases) {
      const r = await send(`${gw.url}/v1/models`, { from: '127.0.0.8', headers });
      expect(r.status).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'ambiguous_key', type: 'keypin_error' });
    }
    const q = await send(`${gw.url}/v1/models?key=${b}`, { from: '127.0.0.8', headers: bearer(a) });
    expect(q.status).toBe(400);
    expect((await bindings()).length).toBe(before);
    expect(downstream.seen.length).toBe(seen);
  });

  it('forwards a request without a key untouched and binds nothing', async () => {
    const before = (await bindings()).length;
    const r = await send(`${gw.url}/v1/public`, { from: '127.0.0.9' });
    expect(r.status).toBe(200);
    expect((await bindings()).length).toBe(before);
    const metrics = await send(`${gw.url}/metrics`, { from: '127.0.0.9' });
    expect(metrics.body).toMatch(/keypin_requests_total\{decision="unauthenticated"\} [1-9]/);
  });

  it('ignores client-IP headers from untrusted peers and sends its own downstream', async () => {
    const key = newKey();
    const r = await send(`${gw.url}/v1/models`, {
      from: '127.0.0.10',
      headers: { ...bearer(key), 'x-real-ip': '203.0.113.50', 'x-forwarded-for': '203.0.113.50' },
    });
    expect(r.status).toBe(200);
    expect(downstream.last().headers['x-real-ip']).toBe('127.0.0.10');
    expect(downstream.last().headers['x-forwarded-for']).toBe('127.0.0.10');
    const row = (await bindings()).find((b) => b.first_ip === '127.0.0.10');
    expect(row?.allowed_ips).toEqual(['127.0.0.10/32']);
  });

  it('believes X-Real-IP from a trusted proxy (127.0.0.1), including IPv6 bound to its /64', async () => {
    const key = newKey();
    const from = '127.0.0.1';
    const ok = await send(`${gw.url}/v1/models`, {
      from,
      headers: { ...bearer(key), 'x-real-ip': '2001:DB8:1:2::5' },
    });
    expect(ok.status).toBe(200);
    expect(downstream.last().headers['x-real-ip']).toBe('2001:db8:1:2::5');
    const row = (await bindings()).find((b) => b.first_ip === '2001:db8:1:2::5');
    expect(row?.allowed_ips).toEqual(['2001:db8:1:2::/64']);
    const sameNet = await send(`${gw.url}/v1/models`, {
      from,
      headers: { ...bearer(key), 'x-real-ip': '2001:0db8:0001:0002:ffff:0:0:1' },
    });
    expect(sameNet.status).toBe(200);
    const otherNet = await send(`${gw.url}/v1/models`, {
      from,
      headers: { ...bearer(key), 'x-real-ip': '2001:db8:1:3::1' },
    });
    expect(otherNet.status).toBe(403);
    expect(otherNet.json().error.message).toContain('2001:db8:1:3::1');
  });

  it.each([
    ['missing', []],
    ['empty', [['x-real-ip', '']]],
    [
      'repeated',
      [
        ['x-real-ip', '10.0.0.1'],
        ['x-real-ip', '10.0.0.1'],
      ],
    ],
    ['leading zero', [['x-real-ip', '010.0.0.1']]],
    ['hex', [['x-real-ip', '0x7f.1']]],
    ['integer', [['x-real-ip', '2130706433']]],
    ['short form', [['x-real-ip', '127.1']]],
    ['zone id', [['x-real-ip', 'fe80::1%eth0']]],
    ['a list', [['x-real-ip', '10.0.0.1, 10.0.0.2']]],
    ['not an IP', [['x-real-ip', 'localhost']]],
  ] as [string, [string, string][]][])(
    'refuses a trusted proxy header that is %s with 400 bad_client_ip',
    async (_n, hdrs) => {
      const seen = downstream.seen.length;
      const r = await send(`${gw.url}/v1/models`, {
        from: '127.0.0.1',
        headers: [...hdrs, ['authorization', `Bearer ${newKey()}`]],
      });
      expect(r.status).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'bad_client_ip', type: 'keypin_error' });
      expect(downstream.seen.length).toBe(seen);
    },
  );

  it('settles 50 concurrent first uses from 50 IPs on exactly one binding', async () => {
    const key = newKey();
    const ips = Array.from({ length: 50 }, (_, i) => `127.0.1.${i + 1}`);
    const replies = await Promise.all(
      ips.map((from) => send(`${gw.url}/v1/models`, { from, headers: bearer(key) })),
    );
    const ok = replies.filter((r) => r.status === 200);
    const refused = replies.filter((r) => r.status === 403);
    expect(ok.length).toBe(1);
    expect(refused.length).toBe(49);
    const winner = ips[replies.findIndex((r) => r.status === 200)]!;
    const rows = (await bindings()).filter((b) => b.first_ip !== null && b.first_ip.startsWith('127.0.1.'));
    expect(rows.length).toBe(1);
    expect(rows[0]!.allowed_ips).toEqual([`${winner}/32`]);
  });

  it('counts every refused request in the intercept log, with the networks at that moment', async () => {
    const key = newKey();
    expect((await send(`${gw.url}/v1/x`, { from: '127.0.0.20', headers: bearer(key) })).status).toBe(200);
    for (let i = 0; i < 3; i++) {
      const r = await send(`${gw.url}/v1/x?key=${key}&secret=1`, {
        from: '127.0.0.21',
        headers: { 'user-agent': 'test-agent/1' },
      });
      expect(r.status).toBe(403);
    }
    const id = (await bindings()).find((b) => b.first_ip === '127.0.0.20')!.id;
    const requests = async () =>
      Number(
        (
          await sql<{ n: string }>(
            stores.databaseUrl,
            'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE binding_id = $1',
            [id],
          )
        )[0]!.n,
      );
    await waitFor(async () => (await requests()) === 3);
    const logs = await sql<Record<string, unknown>>(
      stores.databaseUrl,
      `SELECT host(attempt_ip) AS ip, allowed_ips::text[] AS allowed, reason, method, path, user_agent, enforced
         FROM intercept_logs WHERE binding_id = $1`,
      [id],
    );
    // Requests of one key from one IP within one second may share a record.
    expect(logs.length).toBeGreaterThanOrEqual(1);
    expect(logs.length).toBeLessThanOrEqual(3);
    expect(await requests()).toBe(3);
    expect(logs[0]).toEqual({
      ip: '127.0.0.21',
      allowed: ['127.0.0.20/32'],
      reason: 'ip_not_allowed',
      method: 'GET',
      path: '/v1/x',
      user_agent: 'test-agent/1',
      enforced: true,
    });
    const count = await sql<{ intercept_count: string }>(
      stores.databaseUrl,
      'SELECT intercept_count FROM bindings WHERE id = $1',
      [id],
    );
    expect(count[0]!.intercept_count).toBe('3');
  });

  it('keeps request count, last IP and last-used time, written in batches', async () => {
    const key = newKey();
    for (let i = 0; i < 5; i++) {
      expect((await send(`${gw.url}/v1/x`, { from: '127.0.0.22', headers: bearer(key) })).status).toBe(200);
    }
    await waitFor(
      async () => (await bindings()).some((b) => b.first_ip === '127.0.0.22' && b.request_count === '5'),
      6000,
    );
    const row = (await bindings()).find((b) => b.first_ip === '127.0.0.22')!;
    expect(row.last_ip).toBe('127.0.0.22');
  });

  it('enforces a ban, a rule change and a removal made directly in the database within 1 s', async () => {
    const key = newKey();
    const url = `${gw.url}/v1/models`;
    expect((await send(url, { from: '127.0.0.30', headers: bearer(key) })).status).toBe(200);
    const id = (await bindings()).find((b) => b.first_ip === '127.0.0.30')!.id;

    await sql(stores.databaseUrl, `UPDATE bindings SET status = 'banned' WHERE id = $1`, [id]);
    const banMs = await waitFor(
      async () => (await send(url, { from: '127.0.0.30', headers: bearer(key) })).status === 403,
      1000,
    );
    const banned = await send(url, { from: '127.0.0.30', headers: bearer(key) });
    expect(banned.json().error.code).toBe('key_banned');

    await sql(
      stores.databaseUrl,
      `UPDATE bindings SET status = 'active', rule_type = 'all', allowed_ips = '{}' WHERE id = $1`,
      [id],
    );
    const allMs = await waitFor(
      async () => (await send(url, { from: '127.0.0.31', headers: bearer(key) })).status === 200,
      1000,
    );

    await sql(
      stores.databaseUrl,
      `UPDATE bindings SET rule_type = 'multiple', allowed_ips = '{127.0.0.32/32,127.0.0.33/32}' WHERE id = $1`,
      [id],
    );
    await waitFor(
      async () => (await send(url, { from: '127.0.0.31', headers: bearer(key) })).status === 403,
      1000,
    );
    expect((await send(url, { from: '127.0.0.33', headers: bearer(key) })).status).toBe(200);

    await sql(stores.databaseUrl, `DELETE FROM bindings WHERE id = $1`, [id]);
    // Unbound: the next use binds afresh, from wherever it comes.
    await waitFor(
      async () => (await send(url, { from: '127.0.0.34', headers: bearer(key) })).status === 200,
      1000,
    );
    expect((await send(url, { from: '127.0.0.33', headers: bearer(key) })).status).toBe(403);
    expect(banMs).toBeLessThan(1000);
    expect(allMs).toBeLessThan(1000);
  });

  it('forwards would-be blocks in monitor mode and still records them', async () => {
    const key = newKey();
    const url = `${gw.url}/v1/models`;
    expect((await send(url, { from: '127.0.0.40', headers: bearer(key) })).status).toBe(200);
    await sql(stores.databaseUrl, `INSERT INTO settings (key, value) VALUES ('enforce_mode', '"monitor"')`);
    try {
      await waitFor(
        async () => (await send(url, { from: '127.0.0.41', headers: bearer(key) })).status === 200,
        1000,
      );
      const id = (await bindings()).find((b) => b.first_ip === '127.0.0.40')!.id;
      await waitFor(async () => {
        const rows = await sql(
          stores.databaseUrl,
          'SELECT 1 FROM intercept_logs WHERE binding_id = $1 AND NOT enforced',
          [id],
        );
        return rows.length >= 1;
      });
    } finally {
      await sql(stores.databaseUrl, `DELETE FROM settings WHERE key = 'enforce_mode'`);
    }
    await waitFor(
      async () => (await send(url, { from: '127.0.0.41', headers: bearer(key) })).status === 403,
      1000,
    );
  });

  it('answers health, readiness and metrics', async () => {
    expect((await send(`${gw.url}/health`, { from: '127.0.0.2' })).json()).toEqual({ status: 'ok' });
    const ready = await send(`${gw.url}/ready`, { from: '127.0.0.2' });
    expect(ready.status).toBe(200);
    const m = await send(`${gw.url}/metrics`, { from: '127.0.0.2' });
    expect(m.headers['content-type']).toContain('text/plain');
    for (const d of ['allowed', 'first_bind', 'intercepted', 'banned', 'bad_request']) {
      expect(m.body).toMatch(new RegExp(`keypin_requests_total\\{decision="${d}"\\} [1-9]`));
    }
    expect(m.body).toContain('keypin_decision_duration_seconds_bucket');
    expect(m.body).toContain('keypin_binding_cache_hit_ratio');
    expect(m.body).toContain('keypin_downstream_response_seconds');
    expect(m.body).toContain('keypin_queue_depth');
  });

  it('keeps /admin/ for itself', async () => {
    const seen = downstream.seen.length;
    const r = await send(`${gw.url}/admin/anything`, { from: '127.0.0.2', headers: bearer(newKey()) });
    expect(r.status).toBe(404);
    expect(r.json().error.code).toBe('not_found');
    expect(downstream.seen.length).toBe(seen);
  });
});
