import type { Alert, AlertActionResult, AuditEntry, Binding, Page } from '@keypin/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send, type Reply } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * From alert to action (docs/contract.md 11, docs/alerts.md): alerts raised
 * by real intercepts on real gateway processes, then allowed, banned or
 * dismissed through the admin API; each change enforced by a second
 * instance within 1 s and audited with the alert's id.
 */
const AUDITOR = { username: 'auditor.alerts', password: 'auditor-password-123' };
const PUBLIC_URL = 'https://keypin.example.test/base/';

describe('alert actions: allow a network, ban, dismiss', () => {
  const stores = freshStores('alertact');
  const downstream = new FakeDownstream();
  const receiver = new WebhookReceiver();
  let gwA: GatewayProcess;
  let gwB: GatewayProcess;
  let admin: AdminClient;
  let auditor: AdminClient;
  const timings: Record<string, number> = {};
  let n = 0;
  const newKey = () => `sk-act${Date.now().toString(36)}q${++n}z`;

  const use = (key: string, from: string, g: GatewayProcess = gwA): Promise<Reply> =>
    send(`${g.url}/v1/models`, { from, headers: bearer(key) });
  const codeOf = async (key: string, from: string, g?: GatewayProcess) => {
    const r = await use(key, from, g);
    return r.status === 200 ? 'ok' : (r.json<{ error?: { code: string } }>().error?.code ?? String(r.status));
  };

  const expectError = (r: Reply, status: number, code: string) => {
    expect(r.status, r.body).toBe(status);
    expect(r.json().error).toMatchObject({ code, type: 'keypin_error' });
    return r.json<{ error: { message: string }; field?: string }>();
  };

  const alertsOf = async (bindingId: number): Promise<Alert[]> => {
    const r = await admin.get(`/admin/api/alerts?binding_id=${bindingId}`);
    expect(r.status, r.body).toBe(200);
    return r.json<Page<Alert>>().items;
  };

  /**
   * Binds a fresh key from `home` (and lets instance B serve it once, so B
   * holds it in its cache), then has it refused from `from` until an alert
   * (ALERT_THRESHOLD_COUNT=3) is raised; answers the key, binding and alert.
   */
  const raiseAlert = async (home: string, from: string[]) => {
    const key = newKey();
    expect(await codeOf(key, home)).toBe('ok');
    expect(await codeOf(key, home, gwB)).toBe('ok');
    for (const ip of from) expect(await codeOf(key, ip)).toBe('ip_not_allowed');
    const found = (await admin.get(`/admin/api/bindings?search=${encodeURIComponent(key)}`)).json<
      Page<Binding>
    >();
    const binding = found.items[0]!;
    await waitFor(async () => (await alertsOf(binding.id)).length === 1, 10_000, 50);
    const alert = (await alertsOf(binding.id))[0]!;
    return { key, binding, alert };
  };

  const auditOf = async (alertId: string): Promise<AuditEntry[]> => {
    const r = await admin.get('/admin/api/audit?page_size=200');
    expect(r.status).toBe(200);
    return r.json<Page<AuditEntry>>().items.filter((e) => e.target === `alert:${alertId}`);
  };

  const act = (id: string, action: string, body?: unknown, client = admin) =>
    client.post(`/admin/api/alerts/${id}/${action}`, body);

  beforeAll(async () => {
    await downstream.start();
    await receiver.start();
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...ADMIN_ENV,
      ALERT_THRESHOLD_COUNT: '3',
      ALERT_THRESHOLD_SECONDS: '60',
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_RETRY_BASE_MS: '200',
      PUBLIC_URL,
    };
    gwA = await startGateway(env);
    // A second instance sharing the stores; it proxies and serves the API, no background jobs.
    gwB = await startGateway({ ...env, ROLE: 'gateway' });
    admin = await AdminClient.login(gwA.url);
    const created = await admin.post('/admin/api/users', { ...AUDITOR, role: 'auditor' });
    expect(created.status, created.body).toBe(201);
    auditor = await AdminClient.login(gwB.url, AUDITOR.username, AUDITOR.password);
  });

  afterAll(async () => {
    if (Object.keys(timings).length > 0)
      console.info('alert actions enforced (ms):', JSON.stringify(timings));
    await Promise.all([gwA?.stop(), gwB?.stop()]);
    await downstream.stop();
    await receiver.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('an alert lists its networks and status; the webhook carries them and console_url', async () => {
    const { binding, alert } = await raiseAlert('127.0.30.1', ['127.0.30.2', '127.0.30.3', '127.0.30.2']);
    expect(alert).toMatchObject({
      binding_id: binding.id,
      attempt_ips: ['127.0.30.2', '127.0.30.3'],
      attempt_networks: ['127.0.30.2/32', '127.0.30.3/32'],
      status: 'open',
      acted_by: null,
      acted_at: null,
      allowed_network: null,
      count: 3,
    });
    const one = await admin.get(`/admin/api/alerts/${alert.id}`);
    expect(one.status, one.body).toBe(200);
    expect(one.json<Alert>()).toMatchObject({ id: alert.id, status: 'open' });

    await waitFor(() => receiver.deliveries.some((d) => JSON.parse(d.body).id === alert.id), 10_000, 50);
    const body = JSON.parse(receiver.deliveries.find((d) => JSON.parse(d.body).id === alert.id)!.body);
    expect(body).toMatchObject({
      type: 'keypin.intercept_threshold',
      id: alert.id,
      binding_id: binding.id,
      attempt_ips: ['127.0.30.2', '127.0.30.3'],
      attempt_networks: ['127.0.30.2/32', '127.0.30.3/32'],
      status: 'open',
      // PUBLIC_URL is kept without its trailing slash.
      console_url: `https://keypin.example.test/base/admin/ui/alerts/${alert.id}`,
    });
  });

  it('allow-network: the key passes from that network on both instances within 1 s, rule multiple with both networks, audited', async () => {
    const { key, binding, alert } = await raiseAlert('127.0.31.1', [
      '127.0.31.2',
      '127.0.31.3',
      '127.0.31.3',
    ]);
    expect(await codeOf(key, '127.0.31.3', gwB)).toBe('ip_not_allowed');

    const r = await act(alert.id, 'allow-network', { network: '127.0.31.3' });
    expect(r.status, r.body).toBe(200);
    const out = r.json<AlertActionResult>();
    expect(out.alert).toMatchObject({
      id: alert.id,
      status: 'allowed',
      acted_by: 'admin',
      allowed_network: '127.0.31.3/32',
      acted_at: expect.any(String),
    });
    expect(out.binding).toMatchObject({
      id: binding.id,
      rule_type: 'multiple',
      allowed_ips: ['127.0.31.1/32', '127.0.31.3/32'],
    });
    timings['allow-network (A)'] = await waitFor(
      async () => (await codeOf(key, '127.0.31.3')) === 'ok',
      1000,
    );
    timings['allow-network (B)'] = await waitFor(
      async () => (await codeOf(key, '127.0.31.3', gwB)) === 'ok',
      1000,
    );
    expect(await codeOf(key, '127.0.31.1', gwB)).toBe('ok');
    expect(await codeOf(key, '127.0.31.2', gwB)).toBe('ip_not_allowed');
    const b = (await admin.get(`/admin/api/bindings/${binding.id}`)).json<Binding>();
    expect(b).toMatchObject({ rule_type: 'multiple', allowed_ips: ['127.0.31.1/32', '127.0.31.3/32'] });
    expect((await admin.get(`/admin/api/alerts/${alert.id}`)).json<Alert>().status).toBe('allowed');

    const audit = await auditOf(alert.id);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actor: 'admin',
      action: 'alert.allow_network',
      target: `alert:${alert.id}`,
      before: { alert_id: alert.id, status: 'open', binding: { rule_type: 'single' } },
      after: {
        alert_id: alert.id,
        status: 'allowed',
        network: '127.0.31.3/32',
        binding: { rule_type: 'multiple', allowed_ips: ['127.0.31.1/32', '127.0.31.3/32'] },
      },
    });

    // Acting twice: 409, nothing changed, nothing audited.
    const again = expectError(
      await act(alert.id, 'allow-network', { network: '127.0.31.2/32' }),
      409,
      'alert_not_open',
    );
    expect(again.error.message).toMatch(/network 127\.0\.31\.3\/32 was allowed by admin/);
    expectError(await act(alert.id, 'dismiss'), 409, 'alert_not_open');
    expect(await auditOf(alert.id)).toHaveLength(1);
    expect((await admin.get(`/admin/api/bindings/${binding.id}`)).json<Binding>().allowed_ips).toHaveLength(
      2,
    );
  });

  it('ban: 403 key_banned on a second instance within 1 s, audited; twice → 409', async () => {
    const { key, binding, alert } = await raiseAlert('127.0.32.1', [
      '127.0.32.2',
      '127.0.32.2',
      '127.0.32.2',
    ]);
    const r = await act(alert.id, 'ban');
    expect(r.status, r.body).toBe(200);
    expect(r.json<AlertActionResult>()).toMatchObject({
      alert: { status: 'banned', acted_by: 'admin', allowed_network: null },
      binding: { id: binding.id, status: 'banned' },
    });
    timings['ban (B)'] = await waitFor(
      async () => (await codeOf(key, '127.0.32.1', gwB)) === 'key_banned',
      1000,
      5,
    );
    expect(await codeOf(key, '127.0.32.1')).toBe('key_banned');
    expect(await auditOf(alert.id)).toEqual([
      expect.objectContaining({
        action: 'alert.ban',
        before: expect.objectContaining({
          alert_id: alert.id,
          status: 'open',
          binding: expect.objectContaining({ status: 'active' }),
        }),
        after: expect.objectContaining({
          alert_id: alert.id,
          status: 'banned',
          binding: expect.objectContaining({ status: 'banned' }),
        }),
      }),
    ]);
    const twice = expectError(await act(alert.id, 'ban'), 409, 'alert_not_open');
    expect(twice.error.message).toMatch(/the key was banned by admin/);
  });

  it('dismiss: the alert is closed, the binding stays as it was, audited', async () => {
    const { key, binding, alert } = await raiseAlert('127.0.33.1', [
      '127.0.33.2',
      '127.0.33.2',
      '127.0.33.2',
    ]);
    const r = await act(alert.id, 'dismiss');
    expect(r.status, r.body).toBe(200);
    expect(r.json<AlertActionResult>()).toMatchObject({
      alert: { status: 'dismissed', acted_by: 'admin' },
      binding: null,
    });
    const b = (await admin.get(`/admin/api/bindings/${binding.id}`)).json<Binding>();
    expect(b).toMatchObject({ rule_type: 'single', allowed_ips: ['127.0.33.1/32'], status: 'active' });
    expect(await codeOf(key, '127.0.33.2')).toBe('ip_not_allowed');
    expect(await auditOf(alert.id)).toEqual([
      expect.objectContaining({
        action: 'alert.dismiss',
        before: { alert_id: alert.id, status: 'open', binding_id: binding.id },
        after: { alert_id: alert.id, status: 'dismissed', binding_id: binding.id },
      }),
    ]);
    expectError(await act(alert.id, 'ban'), 409, 'alert_not_open');
    const open = (await admin.get(`/admin/api/alerts?binding_id=${binding.id}&status=open`)).json<
      Page<Alert>
    >();
    expect(open.total).toBe(0);
    const dismissed = (await admin.get(`/admin/api/alerts?status=dismissed`)).json<Page<Alert>>();
    expect(dismissed.items.map((a) => a.id)).toContain(alert.id);
  });

  it('refuses an auditor (403), a network not the alert’s (422), a bad id (422) and an unknown alert (404)', async () => {
    const { binding, alert } = await raiseAlert('127.0.34.1', ['127.0.34.2', '127.0.34.2', '127.0.34.2']);
    for (const [action, body] of [
      ['allow-network', { network: '127.0.34.2/32' }],
      ['ban', {}],
      ['dismiss', {}],
    ] as const) {
      expectError(await act(alert.id, action, body, auditor), 403, 'forbidden');
    }
    // An auditor reads alerts.
    expect((await auditor.get(`/admin/api/alerts/${alert.id}`)).status).toBe(200);

    const wrong = expectError(
      await act(alert.id, 'allow-network', { network: '127.0.34.0/24' }),
      422,
      'validation_failed',
    );
    expect(wrong.field).toBe('network');
    expect(wrong.error.message).toContain('127.0.34.2/32');
    expect(
      expectError(await act(alert.id, 'allow-network', { network: 'nope' }), 422, 'validation_failed').field,
    ).toBe('network');
    expect(expectError(await act(alert.id, 'allow-network', {}), 422, 'validation_failed').field).toBe(
      'network',
    );
    expect(
      expectError(await admin.post('/admin/api/alerts/not-a-uuid/ban'), 422, 'validation_failed').field,
    ).toBe('id');
    expectError(await act('01900000-0000-7000-8000-000000000000', 'dismiss'), 404, 'not_found');
    expectError(await admin.get('/admin/api/alerts?status=bogus'), 422, 'validation_failed');

    // Nothing of that changed the alert or the binding.
    expect((await admin.get(`/admin/api/alerts/${alert.id}`)).json<Alert>().status).toBe('open');
    expect((await admin.get(`/admin/api/bindings/${binding.id}`)).json<Binding>().allowed_ips).toEqual([
      '127.0.34.1/32',
    ]);
    expect(await auditOf(alert.id)).toEqual([]);
  });

  it('a banned key cannot get a network (409 binding_banned); a binding that is gone → 404, and dismissing still works', async () => {
    const banned = await raiseAlert('127.0.35.1', ['127.0.35.2', '127.0.35.2', '127.0.35.2']);
    expect((await admin.post('/admin/api/bindings/ban', { id: banned.binding.id })).status).toBe(200);
    const refused = expectError(
      await act(banned.alert.id, 'allow-network', { network: '127.0.35.2/32' }),
      409,
      'binding_banned',
    );
    expect(refused.error.message).toMatch(/banned: lift the ban/);
    expect((await admin.get(`/admin/api/alerts/${banned.alert.id}`)).json<Alert>().status).toBe('open');
    // Banning a key that is banned already closes the alert all the same.
    expect((await act(banned.alert.id, 'ban')).json<AlertActionResult>().alert.status).toBe('banned');

    const gone = await raiseAlert('127.0.36.1', ['127.0.36.2', '127.0.36.2', '127.0.36.2']);
    expect((await admin.post('/admin/api/bindings/unbind', { id: gone.binding.id })).status).toBe(200);
    const missing = expectError(await act(gone.alert.id, 'ban'), 404, 'not_found');
    expect(missing.error.message).toMatch(/no longer exists/);
    expectError(await act(gone.alert.id, 'allow-network', { network: '127.0.36.2/32' }), 404, 'not_found');
    expect((await act(gone.alert.id, 'dismiss')).json<AlertActionResult>().alert.status).toBe('dismissed');
  });

  it('two admins acting on one alert at once: one wins, the other gets 409', async () => {
    const { alert } = await raiseAlert('127.0.37.1', ['127.0.37.2', '127.0.37.3', '127.0.37.3']);
    const other = await AdminClient.login(gwB.url);
    const [a, b] = await Promise.all([
      act(alert.id, 'allow-network', { network: '127.0.37.2/32' }),
      act(alert.id, 'ban', {}, other),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    expect(await auditOf(alert.id)).toHaveLength(1);
  });

  it('an alert AUTO_BAN banned the key for is born banned', async () => {
    await sql(stores.databaseUrl, `INSERT INTO settings (key, value) VALUES ('auto_ban', 'true')`);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const { alert } = await raiseAlert('127.0.38.1', ['127.0.38.2', '127.0.38.2', '127.0.38.2']);
      expect(alert).toMatchObject({ auto_banned: true, status: 'banned', acted_by: null });
      expect(alert.acted_at).not.toBeNull();
      const r = expectError(await act(alert.id, 'dismiss'), 409, 'alert_not_open');
      expect(r.error.message).toMatch(/banned by AUTO_BAN/);
    } finally {
      await sql(stores.databaseUrl, `DELETE FROM settings WHERE key = 'auto_ban'`);
    }
  });
});
