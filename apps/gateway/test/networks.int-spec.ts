import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';

/**
 * The network policy (docs/contract.md 10), against the real gateway with
 * PostgreSQL and Redis: allow, deny and first_use_from from the environment
 * and after a live change; refusals are never forwarded, and those that
 * carry a key are intercepts with their own reason (binding_id null when
 * the key has no binding).
 *
 * Client addresses: 127.0.0.0/25 is allowed, 127.0.0.66 denied, and keys
 * bind first only from 127.0.0.0/28 (127.0.0.1–15).
 */

let keyN = 0;
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;

interface InterceptRow {
  binding_id: string | null;
  reason: string;
  attempt_ip: string;
  allowed_ips: string[];
  token_display: string;
  count: number;
}

describe('network policy', () => {
  const stores = freshStores('networks');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let admin: AdminClient;

  const intercepts = (token: string) =>
    sql<InterceptRow>(
      stores.databaseUrl,
      `SELECT binding_id, reason::text, host(attempt_ip) AS attempt_ip, allowed_ips::text[] AS allowed_ips,
              token_display, count
         FROM intercept_logs WHERE token_display = $1 ORDER BY intercepted_at`,
      [token],
    );
  const bindingOf = async (display: string) =>
    (
      await sql<{ id: string; allowed_ips: string[] }>(
        stores.databaseUrl,
        'SELECT id, allowed_ips::text[] AS allowed_ips FROM bindings WHERE token_display = $1',
        [display],
      )
    )[0];
  const mask = (k: string) => `${k.slice(0, 4)}…${k.slice(-4)}`;
  const forwardedWith = (key: string) =>
    downstream.seen.filter((s) => s.headers.authorization === `Bearer ${key}`).length;

  beforeAll(async () => {
    await downstream.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      TOKEN_NORMALIZE: 'none',
      NETWORK_ALLOW: '127.0.0.0/25',
      NETWORK_DENY: '127.0.0.66',
      FIRST_USE_FROM: '127.0.0.0/28',
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it("shows the environment's policy in settings, canonical", async () => {
    const s = (await admin.get('/admin/api/settings')).json<{ networks: unknown }>();
    expect(s.networks).toEqual({
      allow: ['127.0.0.0/25'],
      deny: ['127.0.0.66/32'],
      first_use_from: ['127.0.0.0/28'],
    });
  });

  it('denies a listed network: 403 network_denied, not forwarded, an intercept without a binding', async () => {
    const key = newKey('deny');
    const seen = downstream.seen.length;
    const r = await send(`${gw.url}/v1/models`, { from: '127.0.0.66', headers: bearer(key) });
    expect(r.status).toBe(403);
    expect(r.json().error.code).toBe('network_denied');
    expect(r.body).toContain('127.0.0.66');
    expect(r.body).not.toContain(key);
    // Without a key: refused the same way, but there is nothing to record.
    const bare = await send(`${gw.url}/v1/models`, { from: '127.0.0.66' });
    expect(bare.status).toBe(403);
    expect(bare.json().error.code).toBe('network_denied');
    expect(downstream.seen.length).toBe(seen);
    await waitFor(async () => (await intercepts(mask(key))).length === 1, 5000);
    const [row] = await intercepts(mask(key));
    expect(row).toMatchObject({ binding_id: null, reason: 'network_denied', attempt_ip: '127.0.0.66' });
    expect(row!.allowed_ips).toEqual([]);
    expect(await bindingOf(mask(key))).toBeUndefined();
  });

  it('refuses addresses outside allow: 403 network_not_allowed, not forwarded', async () => {
    const key = newKey('allow');
    const r = await send(`${gw.url}/v1/models`, { from: '127.0.0.200', headers: bearer(key) });
    expect(r.status).toBe(403);
    expect(r.json().error.code).toBe('network_not_allowed');
    expect(forwardedWith(key)).toBe(0);
    await waitFor(async () => (await intercepts(mask(key))).length === 1, 5000);
    expect((await intercepts(mask(key)))[0]!.reason).toBe('network_not_allowed');
  });

  it('first_use_from: a new key from outside is refused and not bound; from inside it binds', async () => {
    const key = newKey('first');
    const outside = await send(`${gw.url}/v1/models`, { from: '127.0.0.20', headers: bearer(key) });
    expect(outside.status).toBe(403);
    expect(outside.json().error.code).toBe('first_use_not_allowed');
    expect(forwardedWith(key)).toBe(0);
    expect(await bindingOf(mask(key))).toBeUndefined();
    await waitFor(async () => (await intercepts(mask(key))).length === 1, 5000);
    expect(await intercepts(mask(key))).toMatchObject([
      { binding_id: null, reason: 'first_use_not_allowed', attempt_ip: '127.0.0.20' },
    ]);

    const inside = await send(`${gw.url}/v1/models`, { from: '127.0.0.5', headers: bearer(key) });
    expect(inside.status).toBe(200);
    expect(forwardedWith(key)).toBe(1);
    expect((await bindingOf(mask(key)))!.allowed_ips).toEqual(['127.0.0.5/32']);

    // Bound now: the usual rule judges it from anywhere else.
    const later = await send(`${gw.url}/v1/models`, { from: '127.0.0.20', headers: bearer(key) });
    expect(later.status).toBe(403);
    expect(later.json().error.code).toBe('ip_not_allowed');
  });

  it('records a denied request of a bound key against its binding', async () => {
    const key = newKey('bound');
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.0.6', headers: bearer(key) })).status).toBe(200);
    const binding = (await bindingOf(mask(key)))!;
    const r = await send(`${gw.url}/v1/models`, { from: '127.0.0.66', headers: bearer(key) });
    expect(r.json().error.code).toBe('network_denied');
    await waitFor(async () => (await intercepts(mask(key))).length === 1, 5000);
    const [row] = await intercepts(mask(key));
    expect(row).toMatchObject({ binding_id: binding.id, reason: 'network_denied' });
    expect(row!.allowed_ips).toEqual(['127.0.0.6/32']);
  });

  it('lists, filters and exports the new reasons (binding_id null as empty)', async () => {
    const list = await admin.get('/admin/api/logs?reason=first_use_not_allowed');
    expect(list.status).toBe(200);
    const items = list.json<{ items: { reason: string; binding_id: number | null }[] }>().items;
    expect(items.length).toBeGreaterThan(0);
    expect(items.every((i) => i.reason === 'first_use_not_allowed' && i.binding_id === null)).toBe(true);
    const csv = await admin.get('/admin/api/logs/export?reason=network_denied');
    expect(csv.status).toBe(200);
    const lines = csv.body.trim().split(/\r?\n/);
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.slice(1).every((l) => l.includes(',network_denied,'))).toBe(true);
  });

  it('applies a live change within a second, and refuses a non-canonical CIDR with 422', async () => {
    const bad = await admin.put('/admin/api/settings', { networks: { deny: ['127.0.0.7/8'] } });
    expect(bad.status).toBe(422);
    expect(bad.body).toContain('networks.deny[0]');

    const key = newKey('live');
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.0.7', headers: bearer(key) })).status).toBe(200);
    const put = await admin.put('/admin/api/settings', {
      networks: { allow: [], deny: ['127.0.0.7'], first_use_from: [] },
    });
    expect(put.status).toBe(200);
    const took = await waitFor(
      async () =>
        (await send(`${gw.url}/v1/models`, { from: '127.0.0.7', headers: bearer(key) })).status === 403,
      1000,
    );
    expect(took).toBeLessThan(1000);
    const r = await send(`${gw.url}/v1/models`, { from: '127.0.0.7', headers: bearer(key) });
    expect(r.json().error.code).toBe('network_denied');
    // The allow list is empty now: an address outside the old one passes, and binds anywhere.
    const k2 = newKey('open');
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.0.200', headers: bearer(k2) })).status).toBe(
      200,
    );

    const audit = await admin.get('/admin/api/audit');
    expect(audit.body).toContain('127.0.0.7/32');
  });
});
