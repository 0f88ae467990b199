import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  canonicalKey,
  type ErrorBody,
  type Intercept,
  maskKey,
  type Page as ListPage,
  type Route,
  type SettingsResponse,
} from '../../../libs/shared/src';
import { bearer, send } from '../../gateway/test/support/http-client';
import { launchBrowser, newContext, screenshot } from './support/browser';
import {
  ADMIN_PASSWORD,
  ADMIN_USERNAME,
  type ConsoleEnv,
  eventually,
  startConsoleEnv,
} from './support/console-env';
import { helperTextOf, LoginPage, LogsPage, RoutesPage, SettingsPage, type Shell } from './support/pages';

/** The provider key the route's header names with ${env:…}: only the gateway's environment holds it. */
const UPSTREAM_KEY = `sk-upstream-${randomBytes(6).toString('hex')}`;
/** Header values typed into the console: write-only, never to be seen again. */
const EXTRA_VALUE = `extra-secret-${randomBytes(6).toString('hex')}`;
const PROXY_TOKEN = `proxy-token-${randomBytes(6).toString('hex')}`;

/** A fresh key (no dash after "sk-", so newapi normalisation keeps it whole) and how the console shows it. */
function newKey(label: string): { key: string; masked: string } {
  const key = `sk-${label}${randomBytes(8).toString('hex')}`;
  return { key, masked: maskKey(canonicalKey(key, 'newapi')) };
}

describe('routes and the network policy, as an admin (Chromium against a real gateway)', () => {
  let env: ConsoleEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let shell: Shell;

  /** One proxied request under `path` from `from`, with a key and any other headers. */
  const proxy = (path: string, from: string, key: string, headers: Record<string, string> = {}) =>
    send(`${env.gw.url}${path}`, {
      from,
      headers: { ...bearer(key), 'user-agent': 'keypin-e2e', ...headers },
    });

  /** The routes as the API answers them: its raw body too, to look for values. */
  const apiRoutes = async () => {
    const r = await env.api.get('/admin/api/routes');
    expect(r.status).toBe(200);
    return { body: r.body, routes: r.json<ListPage<Route>>().items };
  };

  /** Neither the page nor the API shows a header value the admin typed. */
  async function expectNoValueShown(): Promise<void> {
    const html = await page.content();
    const api = (await apiRoutes()).body;
    for (const secret of [EXTRA_VALUE, PROXY_TOKEN, UPSTREAM_KEY, '${env:E2E_UPSTREAM_KEY}']) {
      expect(html, 'page').not.toContain(secret);
      expect(api, 'API').not.toContain(secret);
    }
  }

  beforeAll(async () => {
    env = await startConsoleEnv('e2eroutes', { E2E_UPSTREAM_KEY: UPSTREAM_KEY });
    browser = await launchBrowser();
    ({ context, page, errors } = await newContext(browser, {
      baseURL: env.consoleUrl,
      clientIp: '127.0.0.60',
    }));
    shell = await (await new LoginPage(page).open()).logIn(ADMIN_USERNAME, ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await env?.stop();
  });

  it('creates a route with a checked form; the table shows header names, never values; the proxy follows it', async () => {
    await shell.go('Routes');
    const routes = new RoutesPage(page);
    await routes.empty.waitFor();
    const dialog = await routes.openCreate();
    const create = dialog.submit('Create route');

    await dialog.field('Prefix').fill('up');
    expect(await helperTextOf(dialog.field('Prefix'))).toBe(
      'The prefix must start and end with "/" (like "/openai/").',
    );
    expect(await create.isDisabled()).toBe(true);
    await dialog.field('Prefix').fill('/up/');
    expect(await dialog.field('Prefix').getAttribute('aria-invalid')).toBe('false');
    await dialog.field('Upstream').fill(env.downstream.url);
    await dialog.stripPrefix.check();
    await dialog.field('Timeout').fill('90000');
    await dialog.root.getByText('The timeout must be an integer from 1 to 3600.').waitFor();
    await dialog.field('Timeout').fill('300');
    await dialog.addHeader('Authorization', 'Bearer ${env:E2E_UPSTREAM_KEY}');
    await dialog.addHeader('X-Extra', EXTRA_VALUE);
    await dialog.field('Token header').fill('x-proxy-token');
    await dialog.field('Token value').fill(PROXY_TOKEN);
    await screenshot(page, 'route-create');
    await create.click();
    await routes.notice.filter({ hasText: `Created the route /up/ → ${env.downstream.url}.` }).waitFor();
    await dialog.root.waitFor({ state: 'detached' });

    expect(await routes.headerNames('/up/').innerText()).toMatch(/^authorization\s*x-extra$/);
    expect(await routes.token('/up/').innerText()).toBe('x-proxy-token');
    expect(await routes.row('/up/').innerText()).toMatch(
      /\/up\/\s+http:\/\/127\.0\.0\.1:\d+\s+Yes\s+Default \(setting\)\s+300 s/,
    );
    const [stored] = (await apiRoutes()).routes;
    expect(stored).toMatchObject({
      prefix: '/up/',
      upstream: env.downstream.url,
      strip_prefix: true,
      relay: null,
      timeout_seconds: 300,
      upstream_header_names: ['authorization', 'x-extra'],
      require_header_name: 'x-proxy-token',
    });
    await expectNoValueShown();
    await screenshot(page, 'routes');

    // Every instance routes by it within a second: the prefix stripped, the
    // provider key from the environment in place of the client's, the token checked and removed.
    const { key } = newKey('route');
    const ok = await eventually(
      () => proxy('/up/v1/models', '127.0.0.61', key, { 'x-proxy-token': PROXY_TOKEN }),
      (r) => r.status === 200 && env.downstream.last().url === '/v1/models',
      3000,
    );
    expect(ok.status).toBe(200);
    const seen = env.downstream.last();
    expect(seen.url).toBe('/v1/models');
    expect(seen.headers['authorization']).toBe(`Bearer ${UPSTREAM_KEY}`);
    expect(seen.headers['x-extra']).toBe(EXTRA_VALUE);
    expect(seen.headers['x-proxy-token']).toBeUndefined();
    const refused = await proxy('/up/v1/models', '127.0.0.61', key);
    expect(refused.status).toBe(401);
    expect(refused.json<ErrorBody>().error.code).toBe('proxy_token_required');
  });

  it('edits a route: stored values are kept unless the header set changes, and then all must be re-entered', async () => {
    const routes = await new RoutesPage(page).open();
    let dialog = await routes.openEdit('/up/');
    // Values are set, never shown: the fields are empty and say so.
    for (const i of [0, 1]) {
      expect(await dialog.headerValue(i).inputValue()).toBe('');
      expect(await dialog.headerValue(i).getAttribute('placeholder')).toBe('set — leave empty to keep');
    }
    expect(await dialog.headerName(1).inputValue()).toBe('x-extra');
    expect(await dialog.field('Token value').getAttribute('placeholder')).toBe('set — leave empty to keep');
    expect(await dialog.submit('Save route').isDisabled()).toBe(true);
    await screenshot(page, 'route-edit');

    await dialog.field('Timeout').fill('120');
    await dialog.submit('Save route').click();
    await routes.notice.filter({ hasText: 'Saved the route /up/.' }).waitFor();
    await routes.row('/up/').getByText('120 s').waitFor();
    let [stored] = (await apiRoutes()).routes;
    expect(stored).toMatchObject({
      timeout_seconds: 120,
      upstream_header_names: ['authorization', 'x-extra'],
      require_header_name: 'x-proxy-token',
    });
    // The kept values still go upstream.
    const { key } = newKey('edit');
    await new Promise((r) => setTimeout(r, 1100));
    expect((await proxy('/up/v1/x', '127.0.0.62', key, { 'x-proxy-token': PROXY_TOKEN })).status).toBe(200);
    expect(env.downstream.last().headers['x-extra']).toBe(EXTRA_VALUE);
    expect(env.downstream.last().headers['authorization']).toBe(`Bearer ${UPSTREAM_KEY}`);

    // Removing a header replaces the set: the kept one must be entered again.
    dialog = await routes.openEdit('/up/');
    await dialog.removeHeader('x-extra');
    await dialog.headersNote.filter({ hasText: 'Saving replaces all the upstream headers' }).waitFor();
    expect(await dialog.headerValue(0).getAttribute('aria-invalid')).toBe('true');
    expect(await helperTextOf(dialog.headerValue(0))).toMatch(/^Enter the value again/);
    expect(await dialog.submit('Save route').isDisabled()).toBe(true);
    await screenshot(page, 'route-edit-reenter');
    await dialog.headerValue(0).fill('Bearer ${env:E2E_UPSTREAM_KEY}');
    await dialog.removeToken.check();
    expect(await dialog.field('Token value').isDisabled()).toBe(true);
    await dialog.submit('Save route').click();
    await routes.notice.filter({ hasText: 'Saved the route /up/.' }).waitFor();
    await expect.poll(() => routes.token('/up/').innerText()).toBe('None');
    expect(await routes.headerNames('/up/').innerText()).toBe('authorization');
    [stored] = (await apiRoutes()).routes;
    expect(stored).toMatchObject({ upstream_header_names: ['authorization'], require_header_name: null });
    await expectNoValueShown();

    // No token needed any more; the removed header no longer goes upstream.
    const r = await eventually(
      () => proxy('/up/v1/y', '127.0.0.62', key),
      (x) => x.status === 200,
      3000,
    );
    expect(r.status).toBe(200);
    expect(env.downstream.last().headers['x-extra']).toBeUndefined();
    expect(env.downstream.last().headers['authorization']).toBe(`Bearer ${UPSTREAM_KEY}`);
  });

  it('deletes a route after confirmation; its paths go to the default downstream again', async () => {
    const routes = await new RoutesPage(page).open();
    await routes.delete('/up/');
    await routes.notice.filter({ hasText: 'Deleted the route /up/.' }).waitFor();
    await routes.empty.waitFor();
    expect((await apiRoutes()).routes).toEqual([]);
    const { key } = newKey('gone');
    await eventually(
      () => proxy('/up/v1/models', '127.0.0.63', key),
      (x) => x.status === 200 && env.downstream.last().url === '/up/v1/models',
      3000,
    );
    expect(env.downstream.last().url).toBe('/up/v1/models');
  });

  it('sets a network policy in Settings: checked as typed, the API’s 422 under its list, and the proxy follows', async () => {
    const settings = await new SettingsPage(page).open();
    const deny = settings.networkList('Denied networks');
    await deny.fill('127.0.0.66/24');
    expect(await helperTextOf(deny)).toBe('"127.0.0.66/24" has host bits set; write the network address.');
    expect(await settings.save.isDisabled()).toBe(true);
    await deny.fill('127.0.0.66');
    expect(await helperTextOf(deny)).toMatch(/Saved as 127\.0\.0\.66\/32\.$/);

    // The console never sends what the shared rules refuse: the request is
    // altered on its way to see the gateway's own 422 land under the list.
    await page.route('**/admin/api/settings', async (route) => {
      if (route.request().method() !== 'PUT') return route.continue();
      const body = route.request().postDataJSON() as { networks: Record<string, string[]> };
      await route.continue({
        postData: JSON.stringify({ ...body, networks: { ...body.networks, deny: ['127.0.0.66/24'] } }),
      });
    });
    try {
      await settings.save.click();
      await expect.poll(() => deny.getAttribute('aria-invalid')).toBe('true');
      expect(await helperTextOf(deny)).toBe(
        'Invalid networks.deny[0]: "127.0.0.66/24" has host bits set; write the network address',
      );
      expect(await page.locator('main').getByRole('alert').count()).toBe(0);
      expect(await settings.save.isDisabled()).toBe(true);
      await screenshot(page, 'settings-network-policy-refused');
    } finally {
      await page.unroute('**/admin/api/settings');
    }
    expect((await env.api.get('/admin/api/settings')).json<SettingsResponse>().networks.deny).toEqual([]);

    // Edited, the list is clean again and saves as its canonical form.
    await deny.fill('127.0.0.66\n');
    expect(await deny.getAttribute('aria-invalid')).toBe('false');
    await settings.save.click();
    await settings.notice.filter({ hasText: /Settings saved \(1 change\)/ }).waitFor();
    expect((await env.api.get('/admin/api/settings')).json<SettingsResponse>().networks).toEqual({
      allow: [],
      deny: ['127.0.0.66/32'],
      first_use_from: [],
    });
    await screenshot(page, 'settings-network-policy');

    try {
      // A key never seen before, from the denied address: refused before it binds.
      const { key, masked } = newKey('denied');
      const refused = await eventually(
        () => proxy('/v1/models', '127.0.0.66', key),
        (x) => x.status === 403,
        3000,
      );
      expect(refused.json<ErrorBody>().error.code).toBe('network_denied');
      await eventually(
        () => env.api.get('/admin/api/logs?reason=network_denied'),
        (r) => r.json<ListPage<Intercept>>().total > 0,
        10_000,
      );
      const logs = await new LogsPage(page).open();
      await logs.filterReason('Network denied');
      const row = logs.rows.filter({ hasText: masked });
      await row.waitFor();
      expect(await row.getByRole('link').count()).toBe(0);
      expect(await row.getByTestId('allowed-unbound').innerText()).toBe('—');
      expect(await row.innerText()).toContain('Network denied');
      await screenshot(page, 'logs-network-denied');
    } finally {
      expect(
        (await env.api.put('/admin/api/settings', { networks: { allow: [], deny: [], first_use_from: [] } }))
          .status,
      ).toBe(200);
    }
  });

  it('threw no uncaught error in the page', () => {
    expect(errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
  });
});
