import { createHmac } from 'node:crypto';
import type { AuditEntry, Page, TestAlertResult } from '@keypin/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { type ChatService, FakeChatService, messageText } from './support/chat-services';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';

/**
 * Alert formats (docs/contract.md 11, docs/alert-formats.md): real alerts
 * from a real gateway, delivered to stand-ins for each service that check
 * the body and the signature the way that service documents it, and answer
 * the way it answers, errors inside a 200 included. The test-alert route.
 */
const SECRET = 'SECformat-test-secret-0123456789';
const PUBLIC_URL = 'https://keypin.example.test';
const AUDITOR = { username: 'auditor.formats', password: 'auditor-password-123' };

type AlertRow = {
  id: string;
  delivery_status: string;
  attempts: number;
  last_error: string | null;
};

describe('alert formats: Slack, Discord, Feishu, DingTalk, WeCom', () => {
  const stores = freshStores('alertfmt');
  const downstream = new FakeDownstream();
  const services = {
    slack: new FakeChatService('slack'),
    discord: new FakeChatService('discord'),
    feishu: new FakeChatService('feishu', SECRET),
    dingtalk: new FakeChatService('dingtalk', SECRET),
    wecom: new FakeChatService('wecom'),
  } satisfies Record<ChatService, FakeChatService>;
  /** A Feishu bot configured with another secret: every KeyPin signature fails there. */
  const feishuOther = new FakeChatService('feishu', 'another-secret');
  let gw: GatewayProcess;
  let admin: AdminClient;
  let auditor: AdminClient;
  let n = 0;

  const useFormat = async (format: string, url: string) => {
    const r = await admin.put('/admin/api/settings', {
      alert_webhook_format: format,
      alert_webhook_url: url,
    });
    expect(r.status, r.body).toBe(200);
    expect(r.json()).toMatchObject({ alert_webhook_format: format, alert_webhook_url: url });
  };

  /** Binds a fresh key from `net`.1, has it refused from `net`.2 and `net`.3: one alert (threshold 2). */
  const raiseAlert = async (net: string) => {
    const key = `sk-fmt${Date.now().toString(36)}x${++n}`;
    expect((await send(`${gw.url}/v1/models`, { from: `${net}.1`, headers: bearer(key) })).status).toBe(200);
    for (const ip of [`${net}.2`, `${net}.3`]) {
      expect((await send(`${gw.url}/v1/models`, { from: ip, headers: bearer(key) })).status).toBe(403);
    }
    const [binding] = await sql<{ id: string; token_display: string }>(
      stores.databaseUrl,
      'SELECT id, token_display FROM bindings WHERE host(first_ip) = $1',
      [`${net}.1`],
    );
    return { bindingId: binding!.id, masked: binding!.token_display };
  };

  const alertOf = async (bindingId: string): Promise<AlertRow | undefined> =>
    (await sql<AlertRow>(stores.databaseUrl, 'SELECT * FROM alerts WHERE binding_id = $1', [bindingId]))[0];

  const settled = (bindingId: string, status: 'delivered' | 'failed') =>
    waitFor(async () => (await alertOf(bindingId))?.delivery_status === status, 15_000, 50);

  beforeAll(async () => {
    await downstream.start();
    await Promise.all([...Object.values(services), feishuOther].map((s) => s.start()));
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...ADMIN_ENV,
      ALERT_WEBHOOK_SECRET: SECRET,
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
      ALERT_THRESHOLD_COUNT: '2',
      ALERT_THRESHOLD_SECONDS: '60',
      WEBHOOK_RETRY_BASE_MS: '100',
      WEBHOOK_MAX_ATTEMPTS: '5',
      ALERT_SWEEP_MS: '1000',
      PUBLIC_URL,
    });
    admin = await AdminClient.login(gw.url);
    expect((await admin.post('/admin/api/users', { ...AUDITOR, role: 'auditor' })).status).toBe(201);
    auditor = await AdminClient.login(gw.url, AUDITOR.username, AUDITOR.password);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await Promise.all([...Object.values(services), feishuOther].map((s) => s.stop()));
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it.each([
    ['slack', '127.0.41'],
    ['discord', '127.0.42'],
    ['feishu', '127.0.43'],
    ['dingtalk', '127.0.44'],
    ['wecom', '127.0.45'],
  ] as const)(
    '%s: the service accepts the body (and signature), the alert is delivered in one attempt and reads well',
    async (format, net) => {
      const service = services[format];
      await useFormat(format, service.url);
      const before = service.requests.length;
      const { bindingId, masked } = await raiseAlert(net);
      await settled(bindingId, 'delivered');
      const got = service.requests.slice(before);
      expect(got.map((r) => r.refusal)).toEqual([null]);
      expect(await alertOf(bindingId)).toMatchObject({ attempts: 1, last_error: null });
      const alertId = (await alertOf(bindingId))!.id;
      const text = messageText(got[0]!);
      for (const needle of [
        masked,
        `${net}.2/32`,
        `${net}.3/32`,
        '2 refused requests',
        '1 min',
        `${PUBLIC_URL}/admin/ui/alerts/${alertId}`,
      ]) {
        expect(text, needle).toContain(needle);
      }
      // The raw key never leaves.
      expect(got[0]!.raw).not.toMatch(/sk-fmt[0-9a-z]{6,}x/);
    },
  );

  it('Feishu with another secret: code 19021 inside an HTTP 200 → failed at once, with Feishu’s words recorded', async () => {
    await useFormat('feishu', feishuOther.url);
    const { bindingId } = await raiseAlert('127.0.46');
    await settled(bindingId, 'failed');
    await new Promise((r) => setTimeout(r, 600));
    expect(feishuOther.requests.map((r) => r.answer)).toEqual([
      {
        status: 200,
        body: {
          code: 19021,
          msg: 'sign match fail or timestamp is not within one hour from current time',
          data: {},
        },
      },
    ]);
    expect(await alertOf(bindingId)).toMatchObject({
      delivery_status: 'failed',
      attempts: 1,
      last_error: 'Feishu code 19021: sign match fail or timestamp is not within one hour from current time',
    });
  });

  it('DingTalk answering errcode -1 (system busy) inside a 200: recorded, retried, then delivered once with the same msgUuid', async () => {
    const service = services.dingtalk;
    await useFormat('dingtalk', service.url);
    service.forced = [{ status: 200, body: { errcode: -1, errmsg: 'system busy' } }];
    const before = service.requests.length;
    const { bindingId } = await raiseAlert('127.0.47');
    await settled(bindingId, 'delivered');
    const got = service.requests.slice(before);
    expect(got.map((r) => r.refusal)).toEqual(['forced', null]);
    expect(new Set(got.map((r) => (r.json as { msgUuid: string }).msgUuid)).size).toBe(1);
    // Each attempt is signed afresh.
    expect(got.every((r) => new URL(r.url, 'http://x').searchParams.has('sign'))).toBe(true);
    expect(await alertOf(bindingId)).toMatchObject({ attempts: 2, last_error: null });
  });

  it('WeCom answering errcode 40008 inside a 200: failed at once, not retried', async () => {
    const service = services.wecom;
    await useFormat('wecom', service.url);
    service.forced = [{ status: 200, body: { errcode: 40008, errmsg: 'invalid message type' } }];
    const before = service.requests.length;
    const { bindingId } = await raiseAlert('127.0.48');
    await settled(bindingId, 'failed');
    await new Promise((r) => setTimeout(r, 600));
    expect(service.requests.length - before).toBe(1);
    expect(await alertOf(bindingId)).toMatchObject({
      attempts: 1,
      last_error: 'WeCom errcode 40008: invalid message type',
    });
  });

  it('Slack answering 200 with something other than "ok": recorded failed after every attempt', async () => {
    const service = services.slack;
    await useFormat('slack', service.url);
    service.forced = Array.from({ length: 5 }, () => ({ status: 200, body: 'no_service' }));
    const { bindingId } = await raiseAlert('127.0.49');
    await settled(bindingId, 'failed');
    expect(await alertOf(bindingId)).toMatchObject({
      attempts: 5,
      last_error: 'Slack answered HTTP 200 "no_service" instead of "ok"',
    });
    service.forced = [];
  });

  it('the stand-ins verify for real: Feishu refuses a stale timestamp and a wrong sign, DingTalk a wrong sign', async () => {
    const post = (url: string, body: unknown) =>
      send(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const feishuSign = (ts: number) => createHmac('sha256', `${ts}\n${SECRET}`).update('').digest('base64');
    const message = { msg_type: 'text', content: { text: 'hello' } };
    const now = Math.floor(Date.now() / 1000);
    const stale = now - 3700;
    expect(
      (await post(services.feishu.url, { timestamp: String(now), sign: feishuSign(now), ...message })).json(),
    ).toMatchObject({ code: 0 });
    expect(
      (
        await post(services.feishu.url, { timestamp: String(stale), sign: feishuSign(stale), ...message })
      ).json(),
    ).toMatchObject({ code: 19021 });
    expect(
      (
        await post(services.feishu.url, { timestamp: String(now), sign: feishuSign(now - 1), ...message })
      ).json(),
    ).toMatchObject({ code: 19021 });
    const ms = Date.now();
    const dingSign = encodeURIComponent(
      createHmac('sha256', SECRET).update(`${ms}\n${SECRET}`).digest('base64'),
    );
    const md = { msgtype: 'markdown', markdown: { title: 't', text: 'x' } };
    expect(
      (await post(`${services.dingtalk.url}&timestamp=${ms}&sign=${dingSign}`, md)).json(),
    ).toMatchObject({ errcode: 0 });
    expect(
      (await post(`${services.dingtalk.url}&timestamp=${ms + 1}&sign=${dingSign}`, md)).json(),
    ).toMatchObject({ errcode: 310000 });
  });

  describe('POST /admin/api/settings/test-alert', () => {
    it('an admin sends one sample alert in the saved format and reads the receiver’s status and answer', async () => {
      const service = services.feishu;
      await useFormat('feishu', service.url);
      const before = service.requests.length;
      const r = await admin.post('/admin/api/settings/test-alert');
      expect(r.status, r.body).toBe(200);
      const result = r.json<TestAlertResult>();
      expect(result).toMatchObject({
        format: 'feishu',
        delivered: true,
        status: 200,
        body_truncated: false,
        error: null,
        would_retry: false,
      });
      expect(JSON.parse(result.body)).toMatchObject({ code: 0, msg: 'success' });
      const got = service.requests.slice(before);
      expect(got.map((x) => x.refusal)).toEqual([null]);
      expect(messageText(got[0]!)).toContain('[Test] KeyPin alert');
      expect(messageText(got[0]!)).toContain(`${PUBLIC_URL}/admin/ui/alerts`);
    });

    it('an error inside a 200 is shown as not delivered, with the answer, and sent only once', async () => {
      await useFormat('feishu', feishuOther.url);
      const before = feishuOther.requests.length;
      const r = await admin.post('/admin/api/settings/test-alert');
      expect(r.status, r.body).toBe(200);
      expect(r.json<TestAlertResult>()).toMatchObject({
        delivered: false,
        status: 200,
        error: 'Feishu code 19021: sign match fail or timestamp is not within one hour from current time',
        would_retry: false,
      });
      expect(r.json<TestAlertResult>().body).toContain('19021');
      await new Promise((res) => setTimeout(res, 500));
      expect(feishuOther.requests.length - before).toBe(1);
    });

    it('standard: the contract body with test: true, Standard Webhooks headers; a 400 is shown as such', async () => {
      const service = services.slack;
      await useFormat('standard', service.url);
      const before = service.requests.length;
      const r = await admin.post('/admin/api/settings/test-alert');
      expect(r.status, r.body).toBe(200);
      const [got] = service.requests.slice(before);
      expect(got!.headers['webhook-id']).toBe((got!.json as { id: string }).id);
      expect(got!.headers['webhook-signature']).toMatch(/^v1,/);
      expect(got!.json).toMatchObject({ type: 'keypin.intercept_threshold', test: true, binding_id: 0 });
      // The Slack stand-in refuses a body without text or blocks, as Slack does.
      expect(r.json<TestAlertResult>()).toMatchObject({
        format: 'standard',
        delivered: false,
        status: 400,
        body: 'no_text',
        error: 'HTTP 400',
        would_retry: false,
      });
    });

    it('an auditor is refused (403) and nothing is sent', async () => {
      const before = services.slack.requests.length;
      const r = await auditor.post('/admin/api/settings/test-alert');
      expect(r.status, r.body).toBe(403);
      expect(services.slack.requests.length).toBe(before);
    });

    it('takes no input', async () => {
      const r = await admin.post('/admin/api/settings/test-alert', {
        alert_webhook_url: 'http://127.0.0.1:1/',
      });
      expect(r.status, r.body).toBe(422);
      expect(r.json()).toMatchObject({ error: { code: 'validation_failed' }, field: 'alert_webhook_url' });
    });

    it('is audited with its outcome', async () => {
      const r = await admin.get('/admin/api/audit?page_size=200');
      const tests = r.json<Page<AuditEntry>>().items.filter((e) => e.action === 'settings.test_alert');
      expect(tests.length).toBeGreaterThanOrEqual(3);
      expect(tests.every((e) => e.actor === ADMIN_ENV.ADMIN_USERNAME && e.target === 'settings')).toBe(true);
      expect(tests.map((e) => e.after)).toContainEqual(
        expect.objectContaining({ format: 'feishu', delivered: true, status: 200, refused: false }),
      );
    });

    it('is in the OpenAPI document, with the format setting', async () => {
      const spec = (await new AdminClient(gw.url).get('/admin/api/openapi.json')).json();
      expect(Object.keys(spec.paths['/admin/api/settings/test-alert'])).toEqual(['post']);
      const put = spec.paths['/admin/api/settings'].put.requestBody.content['application/json'].schema;
      expect(put.properties.alert_webhook_format.enum).toEqual([
        'standard',
        'slack',
        'discord',
        'feishu',
        'dingtalk',
        'wecom',
      ]);
    });

    it('without a saved URL: 422 naming alert_webhook_url', async () => {
      expect((await admin.put('/admin/api/settings', { alert_webhook_url: null })).status).toBe(200);
      const r = await admin.post('/admin/api/settings/test-alert');
      expect(r.status, r.body).toBe(422);
      expect(r.json()).toMatchObject({ error: { code: 'validation_failed' }, field: 'alert_webhook_url' });
    });
  });
});

describe('alert formats behind the SSRF guard (private destinations not allowed)', () => {
  const stores = freshStores('alertfmtssrf');
  const downstream = new FakeDownstream();
  const slack = new FakeChatService('slack');
  let gw: GatewayProcess;
  let admin: AdminClient;

  beforeAll(async () => {
    await downstream.start();
    await slack.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ...ADMIN_ENV,
      // A name, not an address: PUT /settings cannot see where it leads; the guard at connect time does.
      ALERT_WEBHOOK_URL: slack.url.replace('127.0.0.1', 'localhost'),
      ALERT_WEBHOOK_FORMAT: 'slack',
      ALERT_THRESHOLD_COUNT: '2',
      ALERT_THRESHOLD_SECONDS: '60',
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await slack.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('ALERT_WEBHOOK_FORMAT gives the initial format', async () => {
    expect((await admin.get('/admin/api/settings')).json()).toMatchObject({ alert_webhook_format: 'slack' });
  });

  it('the test alert to a name resolving to loopback is refused with 422, nothing sent', async () => {
    const r = await admin.post('/admin/api/settings/test-alert');
    expect(r.status, r.body).toBe(422);
    expect(r.json()).toMatchObject({ error: { code: 'validation_failed' }, field: 'alert_webhook_url' });
    expect(r.json<{ error: { message: string } }>().error.message).toMatch(
      /resolves to a private, loopback or link-local address/,
    );
    expect(slack.requests).toHaveLength(0);
  });

  it('a real alert in the Slack format is refused the same way and recorded failed', async () => {
    const key = `sk-fmtssrf${Date.now().toString(36)}`;
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.50.1', headers: bearer(key) })).status).toBe(
      200,
    );
    for (const ip of ['127.0.50.2', '127.0.50.3'])
      expect((await send(`${gw.url}/v1/models`, { from: ip, headers: bearer(key) })).status).toBe(403);
    await waitFor(
      async () => {
        const rows = await sql<AlertRow>(stores.databaseUrl, 'SELECT * FROM alerts');
        return rows[0]?.delivery_status === 'failed';
      },
      15_000,
      50,
    );
    const [row] = await sql<AlertRow>(stores.databaseUrl, 'SELECT * FROM alerts');
    expect(row).toMatchObject({ attempts: 1 });
    expect(row!.last_error).toMatch(/private, loopback or link-local/);
    expect(slack.requests).toHaveLength(0);
  });
});
