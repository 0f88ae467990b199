import { Agent } from 'node:http';
import { type Intercept, type Page } from '@keypin/shared';
import { parse } from 'csv-parse/sync';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { startThrowawayRedis } from './support/throwaway';
import { signatureValid, WebhookReceiver } from './support/webhook-receiver';

const SECRET = 'whook-test-secret';

type AlertRow = {
  id: string;
  binding_id: string;
  count: number;
  delivery_status: string;
  attempts: number;
  last_error: string | null;
  auto_banned: boolean;
};

describe('intercepts, alert windows and webhooks', () => {
  const stores = freshStores('alerts');
  const downstream = new FakeDownstream();
  const receiver = new WebhookReceiver();
  const gateways: GatewayProcess[] = [];
  let gw: GatewayProcess;
  let n = 0;
  const newKey = () => `sk-alert${Date.now().toString(36)}x${++n}`;

  const baseEnv = () => ({
    DATABASE_URL: stores.databaseUrl,
    REDIS_PREFIX: stores.redisPrefix,
    DOWNSTREAM_URL: downstream.url,
    ALERT_WEBHOOK_URL: receiver.url,
    ALERT_WEBHOOK_SECRET: SECRET,
    ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
    ALERT_THRESHOLD_COUNT: '3',
    ALERT_THRESHOLD_SECONDS: '60',
    WEBHOOK_RETRY_BASE_MS: '200',
    ALERT_SWEEP_MS: '1000',
  });

  const start = async (extra: Record<string, string> = {}) => {
    const g = await startGateway({ ...baseEnv(), ...extra });
    gateways.push(g);
    return g;
  };

  /** Binds a fresh key from `home` and returns it with its binding id. */
  const bindKey = async (g: GatewayProcess, home: string) => {
    const key = newKey();
    expect((await send(`${g.url}/v1/models`, { from: home, headers: bearer(key) })).status).toBe(200);
    const rows = await sql<{ id: string }>(
      stores.databaseUrl,
      `SELECT id FROM bindings WHERE host(first_ip) = $1 ORDER BY id DESC LIMIT 1`,
      [home],
    );
    return { key, id: rows[0]!.id };
  };

  const intercepts = (bindingId: string) =>
    sql<{ id: string; alerted: boolean; alert_id: string | null; count: number }>(
      stores.databaseUrl,
      'SELECT id, alerted, alert_id, count FROM intercept_logs WHERE binding_id = $1',
      [bindingId],
    );
  /** Refused requests stored for a binding: the sum of its records' counts. */
  const requestsOf = async (bindingId: string) =>
    (await intercepts(bindingId)).reduce((sum, r) => sum + r.count, 0);
  const alerts = (bindingId: string) =>
    sql<AlertRow>(stores.databaseUrl, 'SELECT * FROM alerts WHERE binding_id = $1 ORDER BY occurred_at', [
      bindingId,
    ]);
  const deliveriesFor = (bindingId: string) =>
    receiver.deliveries.filter(
      (d) => (JSON.parse(d.body) as { binding_id: number }).binding_id === Number(bindingId),
    );

  beforeAll(async () => {
    await downstream.start();
    await receiver.start();
    gw = await start();
  });

  afterEach(() => {
    receiver.statuses = [];
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await downstream.stop();
    await receiver.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('counts every refused request exactly once', async () => {
    const { key, id } = await bindKey(gw, '127.0.2.1');
    const replies = await Promise.all(
      Array.from({ length: 2 }, () =>
        send(`${gw.url}/v1/models`, { from: '127.0.2.2', headers: bearer(key) }),
      ),
    );
    expect(replies.map((r) => r.status)).toEqual([403, 403]);
    await waitFor(async () => (await requestsOf(id)) === 2, 5000);
    await new Promise((r) => setTimeout(r, 500));
    expect(await requestsOf(id)).toBe(2);
  });

  it('raises exactly one signed alert per key and window, with the contract payload', async () => {
    const { key, id } = await bindKey(gw, '127.0.2.10');
    for (let i = 0; i < 3; i++) {
      expect(
        (await send(`${gw.url}/v1/chat`, { from: `127.0.2.${11 + i}`, headers: bearer(key) })).status,
      ).toBe(403);
    }
    await waitFor(() => deliveriesFor(id).length === 1, 10_000);
    // More intercepts in the same window: no second alert.
    for (let i = 0; i < 4; i++) {
      expect((await send(`${gw.url}/v1/chat`, { from: '127.0.2.14', headers: bearer(key) })).status).toBe(
        403,
      );
    }
    await waitFor(
      async () => (await intercepts(id)).every((r) => r.alerted) && (await requestsOf(id)) === 7,
      10_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const got = deliveriesFor(id);
    expect(got).toHaveLength(1);
    const d = got[0]!;
    expect(signatureValid(d, SECRET)).toBe(true);
    expect(signatureValid(d, 'another-secret')).toBe(false);
    const body = JSON.parse(d.body) as Record<string, unknown>;
    expect(body).toEqual({
      type: 'keypin.intercept_threshold',
      id: d.headers['webhook-id'],
      occurred_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      binding_id: Number(id),
      token_display: expect.stringContaining('\u2026'),
      allowed_ips: ['127.0.2.10/32'],
      attempt_ips: ['127.0.2.11', '127.0.2.12', '127.0.2.13'],
      count: 3,
      window_seconds: 60,
      first_at: expect.any(String),
      last_at: expect.any(String),
      // docs/alerts.md: the attempts' networks (BIND_IPV4_PREFIX 32), the status, no PUBLIC_URL.
      attempt_networks: ['127.0.2.11/32', '127.0.2.12/32', '127.0.2.13/32'],
      status: 'open',
      console_url: null,
    });
    expect(d.body).not.toContain(key.slice(3));
    const [alert] = await alerts(id);
    expect(alert).toMatchObject({ delivery_status: 'delivered', attempts: 1, last_error: null });
    expect((await intercepts(id)).every((r) => r.alert_id === alert!.id)).toBe(true);
  });

  it('retries a failing receiver with the same webhook-id and records the attempts', async () => {
    const { key, id } = await bindKey(gw, '127.0.2.20');
    receiver.statuses = [503, 500];
    for (let i = 0; i < 3; i++) await send(`${gw.url}/v1/chat`, { from: '127.0.2.21', headers: bearer(key) });
    await waitFor(async () => (await alerts(id))[0]?.delivery_status === 'delivered', 15_000);
    const got = deliveriesFor(id);
    expect(got.map((d) => d.status)).toEqual([503, 500, 200]);
    expect(new Set(got.map((d) => d.headers['webhook-id'])).size).toBe(1);
    expect(got.every((d) => signatureValid(d, SECRET))).toBe(true);
    // Backoff: the gaps grow.
    expect(got[2]!.at - got[1]!.at).toBeGreaterThan(got[1]!.at - got[0]!.at);
    expect((await alerts(id))[0]).toMatchObject({ attempts: 3, delivery_status: 'delivered' });
  });

  it('does not retry a 400 and records the failure', async () => {
    const { key, id } = await bindKey(gw, '127.0.2.30');
    receiver.statuses = [400];
    for (let i = 0; i < 3; i++) await send(`${gw.url}/v1/chat`, { from: '127.0.2.31', headers: bearer(key) });
    await waitFor(async () => (await alerts(id))[0]?.delivery_status === 'failed', 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(deliveriesFor(id)).toHaveLength(1);
    expect((await alerts(id))[0]).toMatchObject({
      attempts: 1,
      delivery_status: 'failed',
      last_error: 'HTTP 400',
    });
  });

  it('bans the key when AUTO_BAN is on', async () => {
    await sql(stores.databaseUrl, `INSERT INTO settings (key, value) VALUES ('auto_ban', 'true')`);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const { key, id } = await bindKey(gw, '127.0.2.40');
      for (let i = 0; i < 3; i++)
        await send(`${gw.url}/v1/chat`, { from: '127.0.2.41', headers: bearer(key) });
      await waitFor(async () => (await alerts(id)).length === 1, 10_000);
      expect((await alerts(id))[0]!.auto_banned).toBe(true);
      await waitFor(async () => {
        const r = await send(`${gw.url}/v1/chat`, { from: '127.0.2.40', headers: bearer(key) });
        return r.status === 403 && r.json<{ error: { code: string } }>().error.code === 'key_banned';
      }, 2000);
    } finally {
      await sql(stores.databaseUrl, `DELETE FROM settings WHERE key = 'auto_ban'`);
    }
  });

  it('raises one alert per window across two gateway instances', async () => {
    const other = await start();
    const { key, id } = await bindKey(gw, '127.0.2.50');
    const hits = Array.from({ length: 12 }, (_, i) =>
      send(`${(i % 2 === 0 ? gw : other).url}/v1/chat`, {
        from: `127.0.2.${51 + (i % 4)}`,
        headers: bearer(key),
      }),
    );
    expect((await Promise.all(hits)).every((r) => r.status === 403)).toBe(true);
    await waitFor(
      async () => (await requestsOf(id)) === 12 && (await intercepts(id)).every((r) => r.alerted),
      10_000,
    );
    await waitFor(() => deliveriesFor(id).length >= 1, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await alerts(id)).toHaveLength(1);
    expect(deliveriesFor(id)).toHaveLength(1);
  });

  it('archives bindings unused for ARCHIVE_DAYS; the key then binds afresh', async () => {
    const g = await start({ ARCHIVE_INTERVAL_MS: '500' });
    const { key, id } = await bindKey(g, '127.0.2.80');
    const fresh = await bindKey(g, '127.0.2.81');
    const banned = await bindKey(g, '127.0.2.82');
    await new Promise((r) => setTimeout(r, 2500)); // let usage flushes land first
    // Banned first: the archive runs every few hundred ms, and must never
    // see the second key old but not yet banned.
    await sql(stores.databaseUrl, `UPDATE bindings SET status = 'banned' WHERE id = $1`, [banned.id]);
    await sql(
      stores.databaseUrl,
      `UPDATE bindings SET last_used_at = now() - interval '100 days', created_at = now() - interval '100 days'
        WHERE id = ANY($1::bigint[])`,
      [[id, banned.id]],
    );
    await waitFor(
      async () => (await sql(stores.databaseUrl, 'SELECT 1 FROM bindings WHERE id = $1', [id])).length === 0,
      10_000,
    );
    const archived = await sql<{ archive_reason: string }>(
      stores.databaseUrl,
      'SELECT archive_reason FROM binding_archive WHERE id = $1',
      [id],
    );
    expect(archived).toHaveLength(1);
    expect(archived[0]!.archive_reason).toContain('90 days');
    // Still there: the recently used one, and the banned one (a ban never lapses by disuse).
    expect(
      await sql(stores.databaseUrl, 'SELECT 1 FROM bindings WHERE id = ANY($1::bigint[])', [
        [fresh.id, banned.id],
      ]),
    ).toHaveLength(2);
    // Every instance forgot it: the key binds afresh from a new address.
    await waitFor(
      async () =>
        (await send(`${gw.url}/v1/models`, { from: '127.0.2.83', headers: bearer(key) })).status === 200,
      2000,
    );
    expect((await send(`${g.url}/v1/models`, { from: '127.0.2.80', headers: bearer(key) })).status).toBe(403);
  });
});

describe('intercepts survive stops and store outages', () => {
  const downstream = new FakeDownstream();
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    await downstream.start();
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await downstream.stop();
  });

  /** A gateway on its own stores (so no other instance's worker can help). */
  const isolated = async (label: string, extra: Record<string, string> = {}) => {
    const stores = freshStores(label);
    cleanups.push(() => dropStores(stores.dbName, stores.redisPrefix));
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...extra,
    };
    const g = await startGateway(env);
    cleanups.push(async () => void (await g.stop()));
    return { stores, env, g };
  };

  const burst = async (g: GatewayProcess, key: string, count: number) => {
    const replies = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        send(`${g.url}/v1/chat`, { from: `127.0.4.${(i % 250) + 1}`, headers: bearer(key) }),
      ),
    );
    expect(replies.filter((r) => r.status === 403)).toHaveLength(count);
  };
  /** Refused requests stored: the sum of the records' counts. */
  const countRows = async (databaseUrl: string) =>
    Number(
      (await sql<{ n: string }>(databaseUrl, 'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs'))[0]!
        .n,
    );

  it('SIGTERM right after 200 intercepts: 200 counted after restart', async () => {
    const { stores, env, g } = await isolated('sigterm');
    const key = `sk-sigterm${Date.now().toString(36)}`;
    expect((await send(`${g.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) })).status).toBe(200);
    await burst(g, key, 200);
    expect(await g.stop('SIGTERM')).toBe(0);
    const again = await startGateway(env);
    cleanups.push(async () => void (await again.stop()));
    await waitFor(async () => (await countRows(stores.databaseUrl)) >= 200, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(await countRows(stores.databaseUrl)).toBe(200);
  });

  it('a gateway without any worker (ROLE=gateway) still gets every intercept into PostgreSQL by exit', async () => {
    const { stores, g } = await isolated('noworker', { ROLE: 'gateway' });
    const key = `sk-noworker${Date.now().toString(36)}`;
    expect((await send(`${g.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) })).status).toBe(200);
    await burst(g, key, 150);
    expect(await g.stop('SIGTERM')).toBe(0);
    expect(await countRows(stores.databaseUrl)).toBe(150);
  });

  it('Redis restarted (losing its queue) during a burst: every intercept reaches PostgreSQL', async () => {
    const redis = await startThrowawayRedis();
    cleanups.push(() => redis.destroy());
    const { stores, g } = await isolated('redisrestart', {
      REDIS_URL: redis.url,
      INTERCEPT_RESCUE_MS: '2000',
    });
    const key = `sk-redisrestart${Date.now().toString(36)}`;
    expect((await send(`${g.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) })).status).toBe(200);
    const during = burst(g, key, 300);
    await new Promise((r) => setTimeout(r, 20));
    await redis.stop();
    await during;
    await burst(g, key, 100); // while Redis is down: written to PostgreSQL directly
    await redis.start();
    await burst(g, key, 100);
    await waitFor(async () => (await countRows(stores.databaseUrl)) >= 500, 20_000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await countRows(stores.databaseUrl)).toBe(500);
  });

  it('refuses to deliver a webhook to a private address unless allowed, and records why', async () => {
    const receiver = await new WebhookReceiver().start();
    cleanups.push(() => receiver.stop());
    const { stores, g } = await isolated('ssrf', {
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_THRESHOLD_COUNT: '2',
    });
    const key = `sk-ssrf${Date.now().toString(36)}`;
    expect((await send(`${g.url}/v1/models`, { from: '127.0.0.2', headers: bearer(key) })).status).toBe(200);
    await burst(g, key, 2);
    await waitFor(async () => {
      const rows = await sql<AlertRow>(stores.databaseUrl, 'SELECT * FROM alerts');
      return rows.length === 1 && rows[0]!.delivery_status === 'failed';
    }, 10_000);
    const [alert] = await sql<AlertRow>(stores.databaseUrl, 'SELECT * FROM alerts');
    expect(alert!.last_error).toMatch(/private, loopback or link-local/);
    expect(receiver.deliveries).toHaveLength(0);
  });
});

describe('a record stands for the refused requests of one key from one IP within one second', () => {
  const stores = freshStores('icount');
  const downstream = new FakeDownstream();
  const receiver = new WebhookReceiver();
  let gw: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    await downstream.start();
    await receiver.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
      ALERT_THRESHOLD_COUNT: '5',
      ALERT_THRESHOLD_SECONDS: '60',
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await receiver.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  const bindFrom = async (home: string, label: string) => {
    const key = `sk-${label}${Date.now().toString(36)}`;
    expect((await send(`${gw.url}/v1/models`, { from: home, headers: bearer(key) })).status).toBe(200);
    const [row] = await sql<{ id: string }>(
      stores.databaseUrl,
      'SELECT id FROM bindings WHERE host(first_ip) = $1',
      [home],
    );
    return { key, id: row!.id };
  };
  const records = (bindingId: string) =>
    sql<{ id: string; ip: string; count: number; alerted: boolean }>(
      stores.databaseUrl,
      'SELECT id, host(attempt_ip) AS ip, count, alerted FROM intercept_logs WHERE binding_id = $1',
      [bindingId],
    );
  const requestsIn = (rows: { count: number }[]) => rows.reduce((sum, r) => sum + r.count, 0);
  const alertsOf = (bindingId: string) =>
    sql<{ id: string; count: number }>(
      stores.databaseUrl,
      'SELECT id, count FROM alerts WHERE binding_id = $1',
      [bindingId],
    );
  const deliveriesFor = (bindingId: string) =>
    receiver.deliveries
      .map((d) => JSON.parse(d.body) as { id: string; binding_id: number; count: number })
      .filter((b) => b.binding_id === Number(bindingId));
  /** Waits for the next UTC second to begin. */
  const nextSecond = () => new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 10));
  /** Waits, if need be, for the start of a UTC second, so that what follows falls within one. */
  const startOfASecond = async () => {
    if (Date.now() % 1000 > 100) await nextSecond();
  };

  it('a key hammered from one address grows the log by one row per second, and every request counts', async () => {
    const { key, id } = await bindFrom('127.0.6.1', 'hammer');
    const total = 3000;
    const agent = new Agent({ keepAlive: true, maxSockets: 32 });
    let next = 0;
    const statuses = new Map<number, number>();
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < total) {
          next++;
          const r = await send(`${gw.url}/v1/chat/completions`, {
            from: '127.0.6.2',
            headers: bearer(key),
            agent,
          });
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        }
      }),
    );
    const finished = Date.now();
    agent.destroy();
    expect(Object.fromEntries(statuses)).toEqual({ 403: total });

    await waitFor(async () => requestsIn(await records(id)) >= total, 20_000, 100);
    await new Promise((r) => setTimeout(r, 1500)); // nothing arrives twice either
    const rows = await records(id);
    expect(requestsIn(rows)).toBe(total);
    // At most one record per UTC second touched by the burst (one extra for a record handed on early).
    const seconds = Math.floor(finished / 1000) - Math.floor(started / 1000) + 1;
    expect(rows.length, `${rows.length} rows for ${finished - started} ms of requests`).toBeLessThanOrEqual(
      seconds + 1,
    );
    expect(rows.every((r) => r.ip === '127.0.6.2' && r.count >= 1)).toBe(true);
    const [binding] = await sql<{ intercept_count: string }>(
      stores.databaseUrl,
      'SELECT intercept_count FROM bindings WHERE id = $1',
      [id],
    );
    expect(Number(binding!.intercept_count)).toBe(total);

    // The threshold (5) counts requests: one alert, whose count is requests, delivered as such.
    await waitFor(() => deliveriesFor(id).length === 1, 10_000);
    const alerts = await alertsOf(id);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.count).toBeGreaterThanOrEqual(5);
    expect(deliveriesFor(id)[0]).toMatchObject({ id: alerts[0]!.id, count: alerts[0]!.count });
    expect(rows.every((r) => r.alerted)).toBe(true);

    // The admin API: items carry count, the CSV has it (and after it the hash chain).
    const page = (await admin.get(`/admin/api/logs?binding_id=${id}&page_size=200`)).json<Page<Intercept>>();
    expect(page.total).toBe(rows.length);
    const ascending = (counts: number[]) => counts.sort((x, y) => x - y);
    expect(ascending(page.items.map((i) => i.count))).toEqual(ascending(rows.map((r) => r.count)));
    expect(requestsIn(page.items)).toBe(total);
    const csv = await admin.get(`/admin/api/logs/export?binding_id=${id}`);
    expect(csv.status).toBe(200);
    const [header, ...lines]: string[][] = parse(csv.body);
    // count, then the hash chain's columns (docs/contract.md 11).
    const countAt = header!.indexOf('count');
    expect(header!.slice(countAt, countAt + 3)).toEqual(['count', 'seq', 'hash']);
    expect(lines).toHaveLength(rows.length);
    expect(lines.reduce((sum, l) => sum + Number(l[countAt]), 0)).toBe(total);
  });

  it('one record standing for 5 requests reaches a threshold of 5: one alert counting 5', async () => {
    const { key, id } = await bindFrom('127.0.6.10', 'five');
    await startOfASecond();
    const replies = await Promise.all(
      Array.from({ length: 5 }, () =>
        send(`${gw.url}/v1/models`, { from: '127.0.6.11', headers: bearer(key) }),
      ),
    );
    expect(replies.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
    await waitFor(async () => (await alertsOf(id)).length === 1, 10_000);
    const rows = await records(id);
    expect(rows.map((r) => [r.count, r.alerted])).toEqual([[5, true]]);
    expect((await alertsOf(id))[0]!.count).toBe(5);
    await waitFor(() => deliveriesFor(id).length === 1, 10_000);
    expect(deliveriesFor(id)[0]!.count).toBe(5);
  });

  it('requests from another address or in another second get records of their own', async () => {
    const { key, id } = await bindFrom('127.0.6.20', 'split');
    const hit = async (from: string) =>
      expect((await send(`${gw.url}/v1/models`, { from, headers: bearer(key) })).status).toBe(403);
    await startOfASecond();
    for (const from of ['127.0.6.21', '127.0.6.22', '127.0.6.21']) await hit(from);
    await nextSecond();
    await hit('127.0.6.21');
    await waitFor(async () => requestsIn(await records(id)) >= 4, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    const rows = await sql<{ ip: string; count: number }>(
      stores.databaseUrl,
      `SELECT host(attempt_ip) AS ip, count FROM intercept_logs WHERE binding_id = $1 ORDER BY intercepted_at`,
      [id],
    );
    expect(rows).toEqual([
      { ip: '127.0.6.21', count: 2 },
      { ip: '127.0.6.22', count: 1 },
      { ip: '127.0.6.21', count: 1 },
    ]);
  });
});
