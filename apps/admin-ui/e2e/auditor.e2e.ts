import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Alert,
  type Binding,
  type BindingUsage,
  canonicalKey,
  maskKey,
  type Page as ListPage,
} from '../../../libs/shared/src';
import { launchBrowser, newContext, screenshot } from './support/browser';
import { ADMIN_USERNAME, type ConsoleEnv, eventually, startConsoleEnv } from './support/console-env';
import {
  AlertsPage,
  AuditPage,
  BindingDetailPage,
  BindingsPage,
  DashboardPage,
  LoginPage,
  LogsPage,
  RoutesPage,
  SettingsPage,
  type Shell,
  UsersPage,
} from './support/pages';

const AUDITOR = 'auditor.e2e';
/** Values of a seeded route's headers: write-only, never on an auditor's screen either. */
const ROUTE_SECRETS = ['Bearer audit-upstream-secret-0001', 'audit-proxy-token-0001'];
const AUDITOR_PASSWORD = 'auditor-e2e-password-01';

/**
 * Buttons that only look, filter, page or navigate. Anything else on an
 * auditor's screen would be a control that changes something.
 */
const READ_ONLY_BUTTONS = [
  /^Log out$/,
  /^Switch to (dark|light) theme$/,
  /^Skip to content$/,
  /^Retry$/,
  /^Go to (first|previous|next|last) page$/,
  /^Export CSV$/,
  /^Clear filters$/,
  /^(Show|Hide) the change$/,
  /^All bindings$/,
  // The dashboard's hash chains: verifying reads.
  /^(Verify now|Verifying…)$/,
];

/** Form fields an auditor may use: filters, which change nothing. */
const FILTER_FIELDS = /^(Search bindings.*|Key|Attempted IP|From|To|Status|Rule|Reason|Rows per page:?)$/;

describe('admin console as an auditor, and the login page’s errors', () => {
  let env: ConsoleEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let bindingId: number;
  let masked: string;
  let usage: BindingUsage;

  beforeAll(async () => {
    env = await startConsoleEnv('e2eaudit', { ALERT_THRESHOLD_COUNT: '2' });
    // Seed through the API and real traffic: an auditor, a binding with intercepts and an alert.
    const created = await env.api.post('/admin/api/users', {
      username: AUDITOR,
      password: AUDITOR_PASSWORD,
      role: 'auditor',
    });
    expect(created.status).toBe(201);
    const key = `sk-audit${randomBytes(8).toString('hex')}`;
    masked = maskKey(canonicalKey(key, 'newapi'));
    expect((await env.proxy(key, '127.0.0.51')).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await env.proxy(key, '127.0.0.52')).status).toBe(403);
    const found = (await env.api.get(`/admin/api/bindings?search=${encodeURIComponent(key)}`)).json<
      ListPage<Binding>
    >();
    bindingId = found.items[0]!.id;
    await eventually(
      () => env.api.get('/admin/api/alerts'),
      (r) => r.json<ListPage<Alert>>().total > 0,
    );
    await env.api.put('/admin/api/settings', { alert_webhook_secret: 'whsec-seeded-secret' });
    // A policy of its own with a daily quota, a default policy, and traffic under both.
    // A quota counts the calendar day, from what was recorded when its counter
    // starts: wait for the request that bound the key to be recorded.
    await eventually(
      () => env.api.get(`/admin/api/bindings/${bindingId}`),
      (r) => r.json<Binding>().requests_today === 1,
      10_000,
    );
    expect(
      (await env.api.put('/admin/api/bindings/policy', { id: bindingId, policy: { requests_per_day: 10 } }))
        .status,
    ).toBe(200);
    expect(
      (
        await env.api.put('/admin/api/settings', {
          default_policy: { requests_per_month: 5000, models: ['gpt-4o', 'claude-*'] },
        })
      ).status,
    ).toBe(200);
    // Enforced everywhere within a second (docs/contract.md 9).
    await new Promise((r) => setTimeout(r, 1100));
    for (let i = 0; i < 2; i++) expect((await env.proxy(key, '127.0.0.51')).status).toBe(200);
    // The request before the policy counts in the day's total too (written in batches).
    usage = (
      await eventually(
        () => env.api.get(`/admin/api/bindings/${bindingId}/usage`),
        (r) => r.json<BindingUsage>().today === 3,
        10_000,
      )
    ).json<BindingUsage>();
    await eventually(
      () => env.api.get(`/admin/api/bindings/${bindingId}`),
      (r) => r.json<Binding>().requests_today === 3,
      10_000,
    );

    // A route and a network policy to read (none of this file's traffic goes under them).
    expect(
      (
        await env.api.post('/admin/api/routes', {
          prefix: '/audited/',
          upstream: env.downstream.url,
          strip_prefix: true,
          relay: 'openai',
          upstream_headers: { authorization: ROUTE_SECRETS[0] },
          require_header: { name: 'x-proxy-token', value: ROUTE_SECRETS[1] },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await env.api.put('/admin/api/settings', {
          networks: { allow: [], deny: ['192.0.2.0/24', '2001:db8::/32'], first_use_from: ['127.0.0.0/8'] },
        })
      ).status,
    ).toBe(200);

    browser = await launchBrowser();
    ({ context, page, errors } = await newContext(browser, {
      baseURL: env.consoleUrl,
      clientIp: '127.0.0.50',
    }));
    await new LoginPage(page).open();
    await new LoginPage(page).logIn(AUDITOR, AUDITOR_PASSWORD);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await env?.stop();
  });

  async function expectNothingChangeable(shell: Shell, where: string): Promise<void> {
    const buttons = await shell.buttonNames();
    const changing = buttons.filter((b) => !READ_ONLY_BUTTONS.some((re) => re.test(b)));
    expect(changing, `buttons on ${where}`).toEqual([]);
    const inputs = (await shell.editableInputs()).filter(
      (i) => !FILTER_FIELDS.test(i.name.replace(/\s*\*$/, '')),
    );
    expect(inputs, `editable fields on ${where}`).toEqual([]);
  }

  it('says who is logged in, with a read-only role, and hides Users from the navigation', async () => {
    const shell = new DashboardPage(page);
    expect(await shell.whoami.innerText()).toMatch(/auditor\.e2e\s*Auditor · read-only/);
    expect(await shell.navLink('Users').count()).toBe(0);
    for (const name of [
      'Dashboard',
      'Bindings',
      'Intercept logs',
      'Alerts',
      'Routes',
      'Settings',
      'Audit trail',
    ]) {
      expect(await shell.navLink(name).count(), name).toBe(1);
    }
  });

  it('sees every page and no control that changes anything', async () => {
    const dash = await new DashboardPage(page).open();
    await dash.recentIntercepts.getByText('127.0.0.52').first().waitFor();
    await expectNothingChangeable(dash, 'the dashboard');
    await screenshot(page, 'auditor-dashboard');

    const bindings = await new BindingsPage(page).open();
    await bindings.row(masked).waitFor();
    await expectNothingChangeable(bindings, 'bindings');
    await screenshot(page, 'auditor-bindings');

    const detail = await new BindingDetailPage(page).open(bindingId);
    await detail.recentIntercepts.getByText('127.0.0.52').first().waitFor();
    await expectNothingChangeable(detail, 'a binding');
    await screenshot(page, 'auditor-binding-detail');

    const logs = await new LogsPage(page).open();
    await logs.rows.first().waitFor();
    await expectNothingChangeable(logs, 'the intercept logs');
    // Exports are reading: allowed.
    const download = await logs.exportCsv();
    expect(download.suggestedFilename()).toMatch(/\.csv$/);

    const alerts = await new AlertsPage(page).open();
    await alerts.rows.first().waitFor();
    await expectNothingChangeable(alerts, 'alerts');

    const settings = await new SettingsPage(page).open();
    await page.getByText('Set (never shown)').waitFor();
    expect(await page.getByRole('button', { name: 'Save settings' }).count()).toBe(0);
    expect(await page.locator('main input, main textarea').count()).toBe(0);
    await expectNothingChangeable(settings, 'settings');
    await screenshot(page, 'auditor-settings');

    const audit = await new AuditPage(page).open();
    await audit.rows.first().waitFor();
    await expectNothingChangeable(audit, 'the audit trail');

    const users = await new UsersPage(page).open();
    await page.getByText('Only admins can see and manage user accounts.').waitFor();
    expect(await users.rows.count()).toBe(0);
    await expectNothingChangeable(users, 'users');
  });

  it('sees a key’s policy and its quota bar, and no control to change them', async () => {
    expect(usage).toMatchObject({ today: 3, limit_day: 10, limit_month: null, policy_source: 'binding' });
    const detail = await new BindingDetailPage(page).open(bindingId);
    await detail.policySource.filter({ hasText: 'Own policy' }).waitFor();
    expect(await detail.policyValue('requests_per_day').innerText()).toBe('10');
    await detail.quotaToday.filter({ hasText: '3 of 10 (30%)' }).waitFor();
    expect(await detail.quotaTodayBar.getAttribute('aria-valuenow')).toBe('30');
    expect(await detail.quotaMonth.innerText()).toBe('No monthly quota · 3 requests this month');
    expect(await page.getByRole('button', { name: 'Edit policy' }).count()).toBe(0);
    expect(await detail.policyCard.getByRole('button').count()).toBe(0);
    await screenshot(page, 'auditor-binding-policy');

    const bindings = await new BindingsPage(page).open();
    await bindings.today(masked).filter({ hasText: '3 / 10' }).waitFor();
    expect(await bindings.today(masked).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('30');
  });

  it('reads the default key policy in Settings, with nothing to edit', async () => {
    const settings = await new SettingsPage(page).open();
    await settings.defaultPolicyValue('requests_per_month').filter({ hasText: '5,000' }).waitFor();
    expect(await settings.defaultPolicyValue('models').innerText()).toBe('gpt-4o, claude-*');
    expect(await settings.defaultPolicyValue('requests_per_day').innerText()).toBe('No daily quota');
    expect(await settings.defaultPolicySection.getByRole('radio').count()).toBe(0);
    expect(await settings.defaultPolicySection.getByRole('textbox').count()).toBe(0);
    expect(await page.locator('main input, main textarea').count()).toBe(0);
  });

  it('reads the routes (header names, never values) and the network policy, with nothing to change', async () => {
    const routes = await new RoutesPage(page).open();
    await routes.row('/audited/').waitFor();
    expect(await routes.headerNames('/audited/').innerText()).toBe('authorization');
    expect(await routes.token('/audited/').innerText()).toBe('x-proxy-token');
    expect(await routes.row('/audited/').innerText()).toMatch(/Yes\s+OpenAI-compatible/);
    expect(await page.getByRole('button', { name: 'Add route' }).count()).toBe(0);
    expect(await routes.row('/audited/').getByRole('button').count()).toBe(0);
    await expectNothingChangeable(routes, 'routes');
    const html = await page.content();
    for (const secret of ROUTE_SECRETS) expect(html).not.toContain(secret);
    await screenshot(page, 'auditor-routes');

    const settings = await new SettingsPage(page).open();
    await settings.networkPolicySection.waitFor();
    expect(await settings.networkListValue('allow').innerText()).toBe('Every address');
    expect(await settings.networkListValue('deny').innerText()).toMatch(
      /^192\.0\.2\.0\/24\s*2001:db8::\/32$/,
    );
    expect(await settings.networkListValue('first_use_from').innerText()).toBe('127.0.0.0/8');
    await settings.networkPolicySection.getByText(/always refused with 403 network_denied/).waitFor();
    expect(await settings.networkPolicySection.getByRole('textbox').count()).toBe(0);
    expect(await page.locator('main input, main textarea').count()).toBe(0);
    await expectNothingChangeable(settings, 'settings');
    await screenshot(page, 'auditor-network-policy');
  });

  it('refuses a wrong password with the API’s message', async () => {
    const other = await newContext(browser, { baseURL: env.consoleUrl, clientIp: '127.0.0.53' });
    try {
      const login = await new LoginPage(other.page).open();
      await login.attempt(ADMIN_USERNAME, 'not-the-password');
      expect(await login.error.innerText()).toBe('Wrong username or password.');
      expect(await login.password.inputValue()).toBe('');
      await screenshot(other.page, 'login-wrong-password');
    } finally {
      await other.context.close();
    }
  });

  it('after 5 failures says the login is locked and for how long, even with the right password', async () => {
    const other = await newContext(browser, { baseURL: env.consoleUrl, clientIp: '127.0.0.54' });
    try {
      const login = await new LoginPage(other.page).open();
      for (let i = 0; i < 5; i++) {
        await login.attempt(AUDITOR, `wrong-${i}`);
        expect(await login.error.innerText()).toBe('Wrong username or password.');
      }
      await login.attempt(AUDITOR, AUDITOR_PASSWORD);
      await login.locked.waitFor();
      expect(await login.locked.innerText()).toMatch(
        /Too many failed logins.*Try again in 1[45] min \d\d s/s,
      );
      expect(await login.submit.isDisabled()).toBe(true);
      await screenshot(other.page, 'login-locked');
      // Another address is not locked out.
      const third = await newContext(browser, { baseURL: env.consoleUrl, clientIp: '127.0.0.55' });
      try {
        await (await new LoginPage(third.page).open()).logIn(AUDITOR, AUDITOR_PASSWORD);
      } finally {
        await third.context.close();
      }
    } finally {
      await other.context.close();
    }
  });

  it('keeps the session over a reload, and sends the person back to log in when the token expires', async () => {
    const shell = await new AuditPage(page).open();
    await page.reload();
    await shell.nav.waitFor();
    // Make this session's token run out in a moment.
    await page.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('keypin.session') ?? '{}') as { expiresAt: number };
      s.expiresAt = Date.now() + 1500;
      sessionStorage.setItem('keypin.session', JSON.stringify(s));
    });
    await page.reload();
    await shell.nav.waitFor();
    const login = new LoginPage(page);
    await login.notice.waitFor({ timeout: 10_000 });
    expect(await login.notice.innerText()).toMatch(/Your session expired\. Log in again\./);
    expect(await page.evaluate(() => sessionStorage.getItem('keypin.session'))).toBeNull();
    await screenshot(page, 'login-session-expired');
  });

  it('threw no uncaught error in the page', () => {
    expect(errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
  });
});
