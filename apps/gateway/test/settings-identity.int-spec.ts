import type { AuditEntry, Page, SettingsResponse } from '@keypin/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';

/**
 * docs/contract.md 2.1: `relay`, `token_normalize` and `key_case` decide every key's
 * identity; changing one at run time while bindings exist → 409
 * `would_unbind_all` unless the request also says `"confirm_unbind_all": true`.
 */
describe('settings: changing how keys are identified (would_unbind_all)', () => {
  const stores = freshStores('setident');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let admin: AdminClient;

  const settings = async () => (await admin.get('/admin/api/settings')).json<SettingsResponse>();
  const storedKeys = async () =>
    (await sql<{ key: string }>(stores.databaseUrl, 'SELECT key FROM settings ORDER BY key')).map(
      (r) => r.key,
    );
  const settingsAudits = async () =>
    (await admin.get('/admin/api/audit?page_size=200'))
      .json<Page<AuditEntry>>()
      .items.filter((a) => a.action === 'settings.update');
  const proxy = (key: string, from: string) => send(`${gw.url}/v1/models`, { from, headers: bearer(key) });

  beforeAll(async () => {
    await downstream.start();
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

  it('with no binding yet, changes relay, token_normalize and key_case without asking', async () => {
    expect(await settings()).toMatchObject({
      relay: 'newapi',
      token_normalize: 'newapi',
      key_case: 'sensitive',
    });
    for (const body of [
      { relay: 'litellm' },
      { token_normalize: 'none', key_case: 'insensitive' },
      { relay: 'newapi', token_normalize: 'newapi', key_case: 'sensitive' },
    ]) {
      const r = await admin.put('/admin/api/settings', body);
      expect({ body, status: r.status }).toEqual({ body, status: 200 });
      expect(r.json()).toMatchObject(body);
    }
  });

  it('validates confirm_unbind_all (a boolean, accepted only beside a change) and never stores it', async () => {
    for (const [body, field] of [
      [{ relay: 'litellm', confirm_unbind_all: 'yes' }, 'confirm_unbind_all'],
      [{ relay: 'litellm', confirm_unbind_all: 1 }, 'confirm_unbind_all'],
      [{ relay: 'litellm', confirm_unbind_all: null }, 'confirm_unbind_all'],
      [{ confirm_unbind_all: true }, 'body'],
      [{ relay: 'mysql' }, 'relay'],
      [{ key_case: 'lower' }, 'key_case'],
    ] as [object, string][]) {
      const r = await admin.put('/admin/api/settings', body);
      expect({ body, status: r.status, code: r.json().error?.code, field: r.json().field }).toEqual({
        body,
        status: 422,
        code: 'validation_failed',
        field,
      });
    }
    expect((await settings()).relay).toBe('newapi');
    const ok = await admin.put('/admin/api/settings', { auto_ban: false, confirm_unbind_all: true });
    expect(ok.status).toBe(200);
    expect(ok.json()).not.toHaveProperty('confirm_unbind_all');
    expect(await storedKeys()).not.toContain('confirm_unbind_all');
  });

  it('refuses a change of any of the three while bindings exist: 409 would_unbind_all, nothing changed, no audit row', async () => {
    const bound = `sk-ident${Date.now().toString(36)}`;
    const banned = `sk-ident${Date.now().toString(36)}zban`;
    expect((await proxy(bound, '127.0.9.2')).status).toBe(200);
    expect((await proxy(banned, '127.0.9.2')).status).toBe(200);
    const [row] = await sql<{ id: string }>(
      stores.databaseUrl,
      `SELECT id FROM bindings WHERE token_display = $1`,
      ['iden…zban'],
    );
    expect((await admin.post('/admin/api/bindings/ban', { id: Number(row!.id) })).status).toBe(200);

    const before = await settings();
    const stored = await sql(stores.databaseUrl, 'SELECT key, value, updated_at FROM settings ORDER BY key');
    const audits = (await settingsAudits()).length;
    for (const body of [
      { relay: 'litellm' },
      { relay: 'openai' },
      { token_normalize: 'none' },
      { key_case: 'insensitive' },
      // With other settings: none of them is applied either.
      { key_case: 'insensitive', bind_ipv4_prefix: 24, auto_ban: true, alert_webhook_secret: 'not-stored-1' },
      { relay: 'litellm', confirm_unbind_all: false },
    ]) {
      const r = await admin.put('/admin/api/settings', body);
      expect({ body, status: r.status }).toEqual({ body, status: 409 });
      const field = Object.keys(body).find((k) => ['relay', 'token_normalize', 'key_case'].includes(k));
      expect(r.json()).toEqual({
        error: { message: expect.any(String), type: 'keypin_error', code: 'would_unbind_all' },
        bindings: 2,
        banned: 1,
        fields: [field],
      });
      expect(r.json().error.message).toMatch(
        /all 2 existing bindings \(1 of them banned.*would stop matching/,
      );
      expect(r.json().error.message).toContain('confirm_unbind_all');
    }
    expect(await settings()).toEqual(before);
    expect(await sql(stores.databaseUrl, 'SELECT key, value, updated_at FROM settings ORDER BY key')).toEqual(
      stored,
    );
    expect((await settingsAudits()).length).toBe(audits);
    // The proxy still reads keys the old way: the binding holds, the ban too.
    expect((await proxy(bound, '127.0.9.3')).status).toBe(403);
    expect((await proxy(banned, '127.0.9.2')).status).toBe(403);
  });

  it('accepts the same values again (no actual change) without asking', async () => {
    const audits = (await settingsAudits()).length;
    const r = await admin.put('/admin/api/settings', {
      relay: 'newapi',
      token_normalize: 'newapi',
      key_case: 'sensitive',
      alert_threshold_count: 6,
    });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ relay: 'newapi', alert_threshold_count: 6 });
    expect((await settingsAudits()).length).toBe(audits + 1);
  });

  it('with confirm_unbind_all: true, changes it, audits it, and every key binds afresh on its next use', async () => {
    const key = `sk-afresh${Date.now().toString(36)}`;
    expect((await proxy(key, '127.0.9.4')).status).toBe(200);
    expect((await proxy(key, '127.0.10.5')).status).toBe(403);
    const bindings = Number(
      (await sql<{ n: string }>(stores.databaseUrl, 'SELECT count(*) AS n FROM bindings'))[0]!.n,
    );

    const r = await admin.put('/admin/api/settings', {
      relay: 'litellm',
      bind_ipv4_prefix: 24,
      confirm_unbind_all: true,
    });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ relay: 'litellm', bind_ipv4_prefix: 24 });
    expect(await storedKeys()).not.toContain('confirm_unbind_all');

    const [audit] = await settingsAudits();
    expect(audit).toMatchObject({
      actor: 'admin',
      target: 'settings',
      before: { relay: 'newapi', bind_ipv4_prefix: 32 },
      after: { relay: 'litellm', bind_ipv4_prefix: 24 },
    });
    expect(audit!.after).not.toHaveProperty('confirm_unbind_all');

    // Within a second the proxy reads keys as LiteLLM does (`sk-` kept): the
    // old binding no longer matches, and the key binds afresh wherever it is
    // used next, here the address it was refused from a moment ago.
    await waitFor(async () => (await proxy(key, '127.0.10.5')).status === 200, 1000);
    expect((await proxy(key, '127.0.9.4')).status).toBe(403);
    expect(
      Number((await sql<{ n: string }>(stores.databaseUrl, 'SELECT count(*) AS n FROM bindings'))[0]!.n),
    ).toBe(bindings + 1);

    // Switching back is the same kind of change: refused, then confirmed.
    expect((await admin.put('/admin/api/settings', { relay: 'newapi' })).status).toBe(409);
    const back = await admin.put('/admin/api/settings', {
      relay: 'newapi',
      bind_ipv4_prefix: 32,
      confirm_unbind_all: true,
    });
    expect(back.status).toBe(200);
    await waitFor(async () => (await proxy(key, '127.0.10.5')).status === 403, 1000);
  });

  it('an auditor cannot change them, confirmed or not', async () => {
    expect(
      (
        await admin.post('/admin/api/users', {
          username: 'ident.auditor',
          password: 'ident-auditor-password',
          role: 'auditor',
        })
      ).status,
    ).toBe(201);
    const auditor = await AdminClient.login(gw.url, 'ident.auditor', 'ident-auditor-password');
    const r = await auditor.put('/admin/api/settings', { relay: 'openai', confirm_unbind_all: true });
    expect(r.status).toBe(403);
    expect((await settings()).relay).toBe('newapi');
  });
});
