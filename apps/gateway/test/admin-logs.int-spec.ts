import { request as httpRequest, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { type Alert, CSV_HEADER, type Dashboard, type Intercept, type Page } from '@keypin/shared';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { notAcrossUtcMidnight } from './support/clock';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send, type Reply } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { WebhookReceiver } from './support/webhook-receiver';

/** Rows inserted with SQL for characters no HTTP request can carry. */
const ODD_BINDING = 990_001;
/** The bulk rows of the large export. */
const BULK_BINDING = 990_002;
const BULK_ROWS = 100_000;

const run = Date.now().toString(36);
const KEY_A = `sk-alpha${run}aa11`;
const KEY_B = `sk-bravo${run}bb22`;
const KEY_C = `sk-charlie${run}cc33`;
/** A key whose masked form starts like a formula. */
const KEY_E = `=cmd${run}ee44`;

/** User agents of A's refused requests, from 127.0.3.2. */
const HOSTILE_AGENTS = [
  '=cmd|" /C calc"!A0',
  '+1',
  '-1',
  '@SUM(1+1)',
  'Mozilla/5.0 (X11; Linux), "quoted" agent',
];
/** A's sixth refused request, from 127.0.3.3. */
const ODD_PATH = '/v1/a,b';

/** What a spreadsheet-safe export must turn a text field into (a leading ' too, so it stays removable). */
const neutral = (v: string) => (/^[=+\-@\t\r']/.test(v) ? `'${v}` : v);

/**
 * A seal column of the export: the record may have been sealed between the
 * export and the list read after it (docs/integrity.md), never the other way.
 */
const sealCell = (v: string | number | null | undefined): unknown =>
  v === null || v === undefined ? '' : expect.stringMatching(new RegExp(`^(${String(v)})?$`));

/** The CSV record expected for an intercept, as csv-parse reads it back. */
function expectedRecord(i: Intercept): unknown[] {
  return [
    i.intercepted_at,
    neutral(i.token_display),
    i.attempt_ip,
    i.allowed_ips.join(' '),
    i.reason,
    neutral(i.method),
    neutral(i.path),
    i.user_agent === null ? '' : neutral(i.user_agent),
    String(i.alerted),
    String(i.binding_id),
    i.id,
    String(i.count),
    sealCell(i.seq),
    sealCell(i.hash),
    sealCell(i.prev_hash),
    String(i.enforced),
  ];
}

/** Every line break outside quoted fields is CRLF. */
function crlfOnly(csv: string): boolean {
  const outside = csv.replace(/"(?:[^"]|"")*"/g, 'Q');
  return !/[^\r]\n|\r[^\n]|\r$/.test(outside) && outside.endsWith('\r\n');
}

const errorOf = (r: Reply) => r.json<{ error: { code: string }; field?: string }>();

describe('admin API: intercept logs, CSV export, dashboard, alerts', () => {
  const stores = freshStores('adminlogs');
  const downstream = new FakeDownstream();
  const receiver = new WebhookReceiver();
  let gw: GatewayProcess;
  let admin: AdminClient;
  let auditor: AdminClient;
  const ids: Record<'A' | 'B' | 'C' | 'E', number> = { A: 0, B: 0, C: 0, E: 0 };
  /** Today's traffic as the gateway's daily counters should see it. */
  const tally = { allowed: 0, intercepted: 0, firstBinds: 0 };
  const seen = new Set<string>();

  /** One proxied request, counted the way the daily counters count it. */
  const hit = async (key: string, from: string, opts: { path?: string; ua?: string } = {}) => {
    const headers: Record<string, string> = bearer(key);
    if (opts.ua !== undefined) headers['user-agent'] = opts.ua;
    const r = await send(`${gw.url}${opts.path ?? '/v1/models'}`, { from, headers });
    if (r.status === 200) {
      tally.allowed++;
      if (!seen.has(key)) tally.firstBinds++;
      seen.add(key);
    } else if (r.status === 403) tally.intercepted++;
    else throw new Error(`unexpected ${r.status}: ${r.body}`);
    return r;
  };
  const bindingId = async (home: string) =>
    Number(
      (
        await sql<{ id: string }>(stores.databaseUrl, 'SELECT id FROM bindings WHERE host(first_ip) = $1', [
          home,
        ])
      )[0]!.id,
    );
  const alertRows = () =>
    sql<{ binding_id: string; delivery_status: string }>(
      stores.databaseUrl,
      'SELECT binding_id, delivery_status FROM alerts',
    );
  /** Refused requests stored for a binding: the sum of its records' counts. */
  const storedRequests = async (binding: number) =>
    Number(
      (
        await sql<{ n: string }>(
          stores.databaseUrl,
          'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE binding_id = $1',
          [binding],
        )
      )[0]!.n,
    );

  const getJson = async <T>(client: AdminClient, path: string): Promise<T> => {
    const r = await client.get(path);
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${r.body}`);
    return r.json<T>();
  };
  const list = (q = '', client = admin) => getJson<Page<Intercept>>(client, `/admin/api/logs${q}`);
  /** Every intercept matching a query, newest first (through paging). */
  const all = async (q: string) => {
    const items: Intercept[] = [];
    for (let page = 1; ; page++) {
      const p = await list(`?page_size=200&page=${page}${q ? `&${q}` : ''}`);
      items.push(...p.items);
      if (p.items.length < 200) return items;
    }
  };
  const parseCsv = (text: string): string[][] => parse(text);

  beforeAll(async () => {
    // The traffic sent below and the checks of "today's" figures must fall
    // on one UTC day (the whole file takes well under two minutes).
    await notAcrossUtcMidnight(120_000);
    await downstream.start();
    await receiver.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
      ALERT_THRESHOLD_COUNT: '3',
      ALERT_THRESHOLD_SECONDS: '60',
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
    const created = await admin.post('/admin/api/users', {
      username: 'reader',
      password: 'auditor-password-1',
      role: 'auditor',
    });
    expect(created.status).toBe(201);
    auditor = await AdminClient.login(gw.url, 'reader', 'auditor-password-1');

    // A: six refusals with hostile user agents and an odd path; one alert (raised by the
    // third), delivered. Each refusal is stored before the next is sent, so each is a
    // record of its own (requests of one key from one IP within one second share one).
    expect((await hit(KEY_A, '127.0.3.1')).status).toBe(200);
    ids.A = await bindingId('127.0.3.1');
    for (const [n, ua] of HOSTILE_AGENTS.entries()) {
      expect((await hit(KEY_A, '127.0.3.2', { ua })).status).toBe(403);
      await waitFor(async () => (await storedRequests(ids.A)) === n + 1, 10_000, 50);
      if (n === 2) await waitFor(async () => (await alertRows()).length === 1, 10_000, 50);
    }
    expect((await hit(KEY_A, '127.0.3.3', { path: ODD_PATH, ua: 'odd-path' })).status).toBe(403);
    await waitFor(async () => (await alertRows()).some((a) => a.delivery_status === 'delivered'), 15_000);

    // E: a key that masks to a formula; one refusal.
    expect((await hit(KEY_E, '127.0.3.20')).status).toBe(200);
    ids.E = await bindingId('127.0.3.20');
    expect((await hit(KEY_E, '127.0.3.21', { ua: 'e-agent' })).status).toBe(403);

    // B: one refusal by IP, then banned: one refusal as banned.
    expect((await hit(KEY_B, '127.0.3.10')).status).toBe(200);
    ids.B = await bindingId('127.0.3.10');
    expect((await hit(KEY_B, '127.0.3.11', { ua: 'b-agent' })).status).toBe(403);
    await sql(stores.databaseUrl, `UPDATE bindings SET status = 'banned' WHERE id = $1`, [ids.B]);
    await waitFor(async () => (await hit(KEY_B, '127.0.3.10', { ua: 'b-banned' })).status === 403, 5000, 100);

    // C: three refusals; the receiver refuses its alert with a 400 (no retry).
    expect((await hit(KEY_C, '127.0.4.1')).status).toBe(200);
    ids.C = await bindingId('127.0.4.1');
    receiver.statuses = [400];
    for (let i = 0; i < 3; i++)
      expect((await hit(KEY_C, `127.0.4.${2 + i}`, { ua: 'c-agent' })).status).toBe(403);
    await waitFor(async () => (await alertRows()).some((a) => a.delivery_status === 'failed'), 15_000);

    // Every refusal stored and every alerted one marked (counted in requests).
    await waitFor(async () => {
      const rows = await sql<{ n: string; alerted: string }>(
        stores.databaseUrl,
        `SELECT coalesce(sum(count), 0) AS n, coalesce(sum(count) FILTER (WHERE alerted), 0) AS alerted
           FROM intercept_logs`,
      );
      return Number(rows[0]!.n) === 12 && Number(rows[0]!.alerted) === 9;
    }, 15_000);

    // Characters no HTTP request can carry (a leading tab or CR, line breaks), two days ago.
    await sql(
      stores.databaseUrl,
      `INSERT INTO intercept_logs (id, binding_id, token_display, attempt_ip, allowed_ips, reason, method, path,
                                   user_agent, alerted, intercepted_at)
       SELECT gen_random_uuid(), $1, 'odd\u2026' || n, ('192.0.2.' || n)::inet, ARRAY['203.0.113.0/24']::cidr[],
              'ip_not_allowed', 'GET', p, ua, false, now() - interval '2 days' - n * interval '1 minute'
         FROM (VALUES (1, '/tab', E'\\tTAB agent'), (2, '/cr', E'\\rCR agent'),
                      (3, E'/multi\\r\\nline', E'line one\\nline two'), (4, '/none', NULL)) AS v(n, p, ua)`,
      [ODD_BINDING],
    );
  }, 90_000);

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await receiver.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('needs a token for every route', async () => {
    for (const path of [
      '/admin/api/logs',
      '/admin/api/logs/export',
      '/admin/api/dashboard',
      '/admin/api/alerts',
    ]) {
      const r = await send(`${gw.url}${path}`, { from: '127.0.0.250' });
      expect(r.status, path).toBe(401);
    }
  });

  it('lists intercepts newest first, with paging', async () => {
    const everything = await list('?page_size=200');
    expect(everything.total).toBe(16);
    expect(everything.items).toHaveLength(16);
    const keys = everything.items.map((i) => `${i.intercepted_at}|${i.id}`);
    expect([...keys].sort().reverse()).toEqual(keys);
    expect(new Set(everything.items.map((i) => i.id)).size).toBe(16);

    const first = everything.items[0]!;
    expect(first).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      binding_id: ids.C,
      token_display: expect.stringMatching(/^char\u2026cc33$/),
      attempt_ip: '127.0.4.4',
      allowed_ips: ['127.0.4.1/32'],
      reason: 'ip_not_allowed',
      method: 'GET',
      path: '/v1/models',
      user_agent: 'c-agent',
      alerted: true,
      intercepted_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      count: 1,
      // The hash chain (docs/integrity.md): null until the sealer has taken the record.
      seq: first.seq === null ? null : expect.any(Number),
      hash: first.seq === null ? null : expect.stringMatching(/^[0-9a-f]{64}$/),
      prev_hash: first.seq === null ? null : expect.stringMatching(/^[0-9a-f]{64}$/),
      enforced: true,
    });

    const byDefault = await list();
    expect(byDefault).toMatchObject({ total: 16, page: 1, page_size: 20 });
    const pages: string[] = [];
    for (let page = 1; page <= 4; page++) {
      const p = await list(`?page=${page}&page_size=5`);
      expect(p).toMatchObject({ total: 16, page, page_size: 5 });
      expect(p.items).toHaveLength(page < 4 ? 5 : 1);
      pages.push(...p.items.map((i) => i.id));
    }
    expect(pages).toEqual(everything.items.map((i) => i.id));
    expect(await list('?page=5&page_size=5')).toEqual({ items: [], total: 16, page: 5, page_size: 5 });
  });

  it('filters by binding, masked key, IP or network, reason and time', async () => {
    const everything = await all('');
    const idsOf = (items: Intercept[]) => items.map((i) => i.id);
    const where = (f: (i: Intercept) => boolean) => idsOf(everything.filter(f));
    const check = async (q: string, expected: string[], count: number) => {
      const page = await list(`?page_size=200&${q}`);
      expect(idsOf(page.items), q).toEqual(expected);
      expect(page.total, q).toBe(count);
      expect(expected, q).toHaveLength(count);
    };

    await check(
      `binding_id=${ids.A}`,
      where((i) => i.binding_id === ids.A),
      6,
    );
    await check(
      `binding_id=${ids.B}`,
      where((i) => i.binding_id === ids.B),
      2,
    );
    await check('binding_id=424242', [], 0);
    await check(
      'search=AA11',
      where((i) => i.binding_id === ids.A),
      6,
    );
    await check(
      'search=alph...aa11',
      where((i) => i.binding_id === ids.A),
      6,
    );
    await check(
      'search=%3DCMD',
      where((i) => i.binding_id === ids.E),
      1,
    );
    await check('search=%25', [], 0);
    await check('search=odd_', [], 0);
    await check(
      'ip=127.0.3.2',
      where((i) => i.attempt_ip === '127.0.3.2'),
      5,
    );
    await check(
      'ip=%3A%3Affff%3A127.0.3.2',
      where((i) => i.attempt_ip === '127.0.3.2'),
      5,
    );
    await check(
      'ip=127.0.3.0%2F24',
      where((i) => i.attempt_ip.startsWith('127.0.3.')),
      9,
    );
    await check(
      'ip=192.0.2.0%2F30',
      where((i) => ['192.0.2.1', '192.0.2.2', '192.0.2.3'].includes(i.attempt_ip)),
      3,
    );
    await check(
      'reason=key_banned',
      where((i) => i.reason === 'key_banned'),
      1,
    );
    await check(
      'reason=ip_not_allowed',
      where((i) => i.reason === 'ip_not_allowed'),
      15,
    );
    await check(
      `binding_id=${ids.A}&ip=127.0.3.3`,
      where((i) => i.path === ODD_PATH),
      1,
    );

    const pivot = everything[4]!.intercepted_at;
    await check(
      `from=${pivot}`,
      where((i) => i.intercepted_at >= pivot),
      everything.filter((i) => i.intercepted_at >= pivot).length,
    );
    await check(
      `to=${pivot}`,
      where((i) => i.intercepted_at <= pivot),
      everything.filter((i) => i.intercepted_at <= pivot).length,
    );
    await check(
      `from=${pivot}&to=${pivot}`,
      where((i) => i.intercepted_at === pivot),
      everything.filter((i) => i.intercepted_at === pivot).length,
    );
    const today = new Date().toISOString().slice(0, 10);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    await check(
      `from=${today}&to=${today}`,
      where((i) => i.intercepted_at.startsWith(today)),
      12,
    );
    await check(`to=${today}`, idsOf(everything), 16);
    await check(`from=${tomorrow}`, [], 0);
    // A zone offset is honoured: an hour later in +01:00 is the same instant.
    const shifted = new Date(Date.parse(pivot) + 3_600_000).toISOString().replace('Z', '+01:00');
    await check(
      `from=${encodeURIComponent(shifted)}`,
      where((i) => i.intercepted_at >= pivot),
      everything.filter((i) => i.intercepted_at >= pivot).length,
    );
  });

  it.each<[string, string]>([
    ['binding_id=abc', 'binding_id'],
    ['binding_id=0', 'binding_id'],
    ['binding_id=1&binding_id=2', 'binding_id'],
    ['search=<300 characters>', 'search'],
    ['ip=nope', 'ip'],
    ['ip=010.0.0.1', 'ip'],
    ['ip=10.0.0.1%2F24', 'ip'],
    ['ip=10.0.0.0%2F33', 'ip'],
    ['reason=blocked', 'reason'],
    ['from=yesterday', 'from'],
    ['from=2025-02-30', 'from'],
    ['from=2025-01-01T10%3A00%3A00', 'from'],
    ['to=2025-13-01', 'to'],
    ['from=2025-01-02T00%3A00%3A00Z&to=2025-01-01T00%3A00%3A00Z', 'from'],
    ['page=0', 'page'],
    ['page_size=201', 'page_size'],
    ['bindingid=1', 'bindingid'],
  ])('refuses a bad filter with 422: %s', async (q, field) => {
    for (const path of ['/admin/api/logs', '/admin/api/logs/export']) {
      if (path.endsWith('export') && q.startsWith('page')) continue;
      const r = await admin.get(`${path}?${q.replace('<300 characters>', 'x'.repeat(300))}`);
      expect(r.status, `${path}?${q}`).toBe(422);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(errorOf(r).error.code).toBe('validation_failed');
      expect(errorOf(r).field).toBe(field);
    }
  });

  it('exports the log as RFC 4180 CSV with formula injection neutralised', async () => {
    const r = await admin.get('/admin/api/logs/export');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(r.headers['content-disposition']).toMatch(
      /^attachment; filename="keypin-intercepts-\d{8}T\d{6}Z\.csv"$/,
    );
    expect(r.body.startsWith(`${CSV_HEADER.join(',')}\r\n`)).toBe(true);
    expect(crlfOnly(r.body)).toBe(true);

    const [header, ...records] = parseCsv(r.body);
    expect(header).toEqual([...CSV_HEADER]);
    const everything = await all('');
    expect(records).toEqual(everything.map(expectedRecord));

    const byUa = new Map(records.map((rec) => [rec[7], rec]));
    // The formula starts came from real refused requests and are neutralised.
    for (const ua of ['=cmd|" /C calc"!A0', '+1', '-1', '@SUM(1+1)'])
      expect(byUa.has(`'${ua}`), ua).toBe(true);
    expect(r.body).toContain(`,"'=cmd|"" /C calc""!A0",`);
    expect(r.body).toContain(',"Mozilla/5.0 (X11; Linux), ""quoted"" agent",');
    expect(r.body).toContain(',"/v1/a,b",odd-path,');
    // A masked key that looks like a formula is neutralised too.
    expect(records.filter((rec) => rec[9] === String(ids.E)).map((rec) => rec[1])).toEqual([
      expect.stringMatching(/^'=cmd\u2026ee44$/),
    ]);
    // Leading tab and CR, and line breaks inside fields (rows written with SQL).
    expect(byUa.get("'\tTAB agent")?.[6]).toBe('/tab');
    expect(byUa.get("'\rCR agent")?.[6]).toBe('/cr');
    expect(r.body).toContain(`,"'\rCR agent",`);
    expect(byUa.get('line one\nline two')?.[6]).toBe('/multi\r\nline');
    expect(records.find((rec) => rec[6] === '/none')?.[7]).toBe('');
    // Allowed IPs as one space-separated field, alerted as true/false.
    expect(records.find((rec) => rec[6] === '/tab')?.[3]).toBe('203.0.113.0/24');
    expect(new Set(records.map((rec) => rec[8]))).toEqual(new Set(['true', 'false']));
  });

  it('exports exactly the filtered set', async () => {
    for (const q of [
      `binding_id=${ids.A}`,
      'ip=127.0.3.0%2F24&reason=ip_not_allowed',
      'search=cc33',
      `binding_id=${ODD_BINDING}`,
      'from=2000-01-01&to=2000-01-02',
    ]) {
      const r = await admin.get(`/admin/api/logs/export?${q}`);
      expect(r.status, q).toBe(200);
      const [header, ...records] = parseCsv(r.body);
      expect(header).toEqual([...CSV_HEADER]);
      expect(records, q).toEqual((await all(q)).map(expectedRecord));
    }
    const none = await admin.get('/admin/api/logs/export?from=2000-01-01&to=2000-01-02');
    expect(none.body).toBe(`${CSV_HEADER.join(',')}\r\n`);
  });

  it('shows the dashboard figures of the traffic sent', async () => {
    // The gateway flushes its per-day counters every two seconds.
    const got: { dash?: Dashboard } = {};
    await waitFor(
      async () => {
        const d = await getJson<Dashboard>(admin, '/admin/api/dashboard');
        got.dash = d;
        return d.today.intercepted === tally.intercepted && d.today.allowed === tally.allowed;
      },
      10_000,
      250,
    );
    const dash = got.dash!;
    expect(tally).toMatchObject({ intercepted: 12, firstBinds: 4 });
    expect(dash.today).toEqual({
      allowed: tally.allowed,
      intercepted: tally.intercepted,
      first_binds: tally.firstBinds,
    });
    expect(dash.bindings).toEqual({ active: 3, banned: 1 });

    const today = new Date().toISOString().slice(0, 10);
    expect(dash.series).toHaveLength(7);
    expect(dash.series.map((s) => s.date)).toEqual(
      Array.from({ length: 7 }, (_, i) =>
        new Date(Date.parse(today) - (6 - i) * 86_400_000).toISOString().slice(0, 10),
      ),
    );
    expect(dash.series[6]).toEqual({ date: today, allowed: tally.allowed, intercepted: tally.intercepted });
    expect(dash.series.slice(0, 6).every((s) => s.allowed === 0 && s.intercepted === 0)).toBe(true);

    expect(dash.top_intercepted).toEqual([
      { binding_id: ids.A, token_display: expect.stringMatching(/^alph\u2026aa11$/), count: 6 },
      { binding_id: ids.C, token_display: expect.stringMatching(/^char\u2026cc33$/), count: 3 },
      { binding_id: ids.B, token_display: expect.stringMatching(/^brav\u2026bb22$/), count: 2 },
      { binding_id: ids.E, token_display: expect.stringMatching(/^=cmd\u2026ee44$/), count: 1 },
    ]);
    expect(dash.recent_intercepts).toEqual((await list('?page_size=10')).items);
  });

  it('zero-fills the series around days with counters', async () => {
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    await sql(
      stores.databaseUrl,
      `INSERT INTO daily_stats (day, allowed, intercepted, first_binds)
       VALUES ($1, 70, 7, 1), ($2, 50, 5, 2), ($3, 999, 999, 999)`,
      [day(-3), day(-6), day(-7)],
    );
    try {
      const dash = await getJson<Dashboard>(admin, '/admin/api/dashboard');
      expect(dash.series.map((s) => [s.date, s.allowed, s.intercepted])).toEqual([
        [day(-6), 50, 5],
        [day(-5), 0, 0],
        [day(-4), 0, 0],
        [day(-3), 70, 7],
        [day(-2), 0, 0],
        [day(-1), 0, 0],
        [day(0), tally.allowed, tally.intercepted],
      ]);
    } finally {
      await sql(stores.databaseUrl, `DELETE FROM daily_stats WHERE day < $1::date`, [day(0)]);
    }
  });

  it('lists alerts newest first with their delivery outcome', async () => {
    const page = await getJson<Page<Alert>>(admin, '/admin/api/alerts');
    expect(page).toMatchObject({ total: 2, page: 1, page_size: 20 });
    const [c, a] = page.items;
    expect(c).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      binding_id: ids.C,
      token_display: expect.stringMatching(/^char\u2026cc33$/),
      allowed_ips: ['127.0.4.1/32'],
      attempt_ips: ['127.0.4.2', '127.0.4.3', '127.0.4.4'],
      count: 3,
      window_seconds: 60,
      first_at: expect.any(String),
      last_at: expect.any(String),
      occurred_at: expect.any(String),
      auto_banned: false,
      delivery_status: 'failed',
      attempts: 1,
      last_error: 'HTTP 400',
      last_attempt_at: expect.any(String),
      delivered_at: null,
      // docs/alerts.md: the networks of the attempts (BIND_IPV4_PREFIX 32 here) and the action state.
      attempt_networks: ['127.0.4.2/32', '127.0.4.3/32', '127.0.4.4/32'],
      status: 'open',
      acted_by: null,
      acted_at: null,
      allowed_network: null,
    });
    expect(a).toMatchObject({
      binding_id: ids.A,
      allowed_ips: ['127.0.3.1/32'],
      // Raised by the third refusal (each was stored before the next was sent); the
      // later ones in the window joined the alert (marked alerted) without changing it.
      attempt_ips: ['127.0.3.2'],
      count: 3,
      delivery_status: 'delivered',
      attempts: 1,
      last_error: null,
      delivered_at: expect.any(String),
    });
    expect(Date.parse(c!.occurred_at)).toBeGreaterThanOrEqual(Date.parse(a!.occurred_at));
    expect(Date.parse(c!.first_at)).toBeLessThanOrEqual(Date.parse(c!.last_at));

    const second = await getJson<Page<Alert>>(admin, '/admin/api/alerts?page=2&page_size=1');
    expect(second).toMatchObject({ total: 2, page: 2, page_size: 1 });
    expect(second.items.map((x) => x.id)).toEqual([a!.id]);
    const bad = await admin.get('/admin/api/alerts?page_size=0');
    expect([bad.status, errorOf(bad).field]).toEqual([422, 'page_size']);
    const unknown = await admin.get('/admin/api/alerts?status=failed');
    expect([unknown.status, errorOf(unknown).field]).toEqual([422, 'status']);
  });

  it('lets an auditor read all of it', async () => {
    expect((await list('?page_size=200', auditor)).total).toBe(16);
    const csv = await auditor.get(`/admin/api/logs/export?binding_id=${ids.A}`);
    expect(csv.status).toBe(200);
    expect(parseCsv(csv.body)).toHaveLength(7);
    expect((await getJson<Dashboard>(auditor, '/admin/api/dashboard')).bindings).toEqual({
      active: 3,
      banned: 1,
    });
    expect((await getJson<Page<Alert>>(auditor, '/admin/api/alerts')).total).toBe(2);
  });

  describe('large exports', () => {
    beforeAll(async () => {
      await sql(
        stores.databaseUrl,
        `INSERT INTO intercept_logs (id, binding_id, token_display, attempt_ip, allowed_ips, reason, method, path,
                                     user_agent, alerted, intercepted_at)
         SELECT gen_random_uuid(), $1, 'bulk\u2026' || lpad((g % 10000)::text, 4, '0'),
                ('10.' || (g / 65536) || '.' || (g / 256 % 256) || '.' || (g % 256))::inet,
                ARRAY['203.0.113.0/24', '2001:db8::/64']::cidr[], 'ip_not_allowed', 'POST',
                '/v1/chat/completions/' || g,
                'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 #' || g,
                g % 2 = 0, now() - interval '3 days' - g * interval '1 second'
           FROM generate_series(1, $2::int) AS g`,
        [BULK_BINDING, BULK_ROWS],
      );
      await sql(stores.databaseUrl, 'ANALYZE intercept_logs');
    }, 60_000);

    afterAll(async () => {
      // Behind KeyPin's back while its sealer may be sealing these very rows:
      // under the intercept chain's advisory lock (docs/integrity.md), as
      // KeyPin's own removal does, so the two never deadlock.
      await sql(
        stores.databaseUrl,
        `BEGIN; SELECT pg_advisory_xact_lock(728461540, 1);
         DELETE FROM intercept_logs WHERE binding_id = ${BULK_BINDING}; COMMIT;`,
      );
    });

    const rssKb = () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'));
      return Number(m![1]);
    };
    const exportSessions = async () =>
      Number(
        (
          await sql<{ n: string }>(
            stores.databaseUrl,
            `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'keypin-export' AND datname = $1`,
            [stores.dbName],
          )
        )[0]!.n,
      );

    /** Starts a streamed GET and resolves with the response (its body not read yet). */
    const open = (path: string, token: string) =>
      new Promise<{ res: IncomingMessage; destroy: () => void }>((resolve, reject) => {
        const u = new URL(`${gw.url}${path}`);
        const req = httpRequest({
          host: u.hostname,
          port: u.port,
          path: u.pathname + u.search,
          localAddress: '127.0.0.250',
          agent: false,
          headers: { authorization: `Bearer ${token}` },
        });
        req.on('response', (res) => resolve({ res, destroy: () => req.destroy() }));
        req.on('error', reject);
        req.end();
      });

    it(`streams ${BULK_ROWS} rows with flat memory, the first bytes long before the end`, async () => {
      // (The export code paths are warm: the tests above ran small exports.)
      const baseline = Math.max(rssKb(), rssKb());
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, rssKb())), 100);
      const started = performance.now();
      let firstByteMs = 0;
      let chunks = 0;
      const parts: Buffer[] = [];
      try {
        const { res } = await open(`/admin/api/logs/export?binding_id=${BULK_BINDING}`, admin.token!);
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
        await new Promise<void>((resolve, reject) => {
          res.on('data', (c: Buffer) => {
            if (chunks++ === 0) firstByteMs = performance.now() - started;
            parts.push(c);
          });
          res.on('end', resolve);
          res.on('error', reject);
        });
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, rssKb());
      const totalMs = performance.now() - started;
      const body = Buffer.concat(parts).toString('utf8');
      const growthMb = (peak - baseline) / 1024;
      console.log(
        `[admin-logs] export of ${BULK_ROWS} rows: ${(body.length / 1e6).toFixed(1)} MB in ${totalMs.toFixed(0)} ms ` +
          `(first byte after ${firstByteMs.toFixed(0)} ms, ${chunks} chunks); gateway RSS ${(baseline / 1024).toFixed(0)} MB → ` +
          `peak ${(peak / 1024).toFixed(0)} MB (growth ${growthMb.toFixed(1)} MB)`,
      );

      const [header, ...records] = parseCsv(body);
      expect(header).toEqual([...CSV_HEADER]);
      expect(records).toHaveLength(BULK_ROWS);
      expect(records[0]![6]).toBe('/v1/chat/completions/1');
      expect(records[BULK_ROWS - 1]![6]).toBe(`/v1/chat/completions/${BULK_ROWS}`);
      expect(records[0]![3]).toBe('203.0.113.0/24 2001:db8::/64');
      expect(crlfOnly(body.slice(0, 100_000).replace(/[^\n]*$/, ''))).toBe(true);
      expect(firstByteMs).toBeLessThan(totalMs / 5);
      expect(chunks).toBeGreaterThan(20);
      expect(growthMb).toBeLessThan(60);
      await waitFor(async () => (await exportSessions()) === 0, 5000, 50);
    });

    it('holds a slow reader with backpressure, caps concurrent exports and frees the connection on disconnect', async () => {
      const baseline = rssKb();
      const opened: { res: IncomingMessage; destroy: () => void }[] = [];
      try {
        // Four readers that stop reading after the first chunk.
        for (let i = 0; i < 4; i++) {
          const o = await open(`/admin/api/logs/export?binding_id=${BULK_BINDING}`, admin.token!);
          expect(o.res.statusCode).toBe(200);
          await new Promise<void>((resolve) => o.res.once('data', () => resolve()));
          o.res.pause();
          opened.push(o);
        }
        expect(await exportSessions()).toBe(4);
        const busy = await admin.get(`/admin/api/logs/export?binding_id=${BULK_BINDING}`);
        expect(busy.status).toBe(429);
        expect(busy.headers['retry-after']).toBe('10');
        expect(errorOf(busy).error.code).toBe('too_many_attempts');
        // Paused readers: the gateway stops reading rows instead of buffering them.
        await new Promise((r) => setTimeout(r, 1000));
        expect((rssKb() - baseline) / 1024).toBeLessThan(60);
        // The list still answers while the exports hold their own connections.
        expect((await list('?page_size=1')).total).toBe(16 + BULK_ROWS);
      } finally {
        for (const o of opened) o.destroy();
      }
      await waitFor(async () => (await exportSessions()) === 0, 5000, 50);
      // And exports work again.
      const again = await admin.get(`/admin/api/logs/export?binding_id=${ODD_BINDING}`);
      expect(again.status).toBe(200);
      expect(parseCsv(again.body)).toHaveLength(5);
    });
  });
});
