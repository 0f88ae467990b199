import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Alert,
  type Binding,
  type BindingUsage,
  canonicalKey,
  CSV_HEADER,
  type Dashboard,
  type ErrorBody,
  type Intercept,
  maskKey,
  type Page as ListPage,
  type SettingsResponse,
} from '../../../libs/shared/src';
import { notAcrossUtcMidnight } from '../../gateway/test/support/clock';
import { WebhookReceiver } from '../../gateway/test/support/webhook-receiver';
import { launchBrowser, newContext, screenshot } from './support/browser';
import {
  ADMIN_PASSWORD,
  ADMIN_USERNAME,
  type ConsoleEnv,
  eventually,
  startConsoleEnv,
} from './support/console-env';
import {
  AlertsPage,
  AuditPage,
  BindingDetailPage,
  BindingsPage,
  DashboardPage,
  helperTextOf,
  LoginPage,
  LogsPage,
  RoutesPage,
  SettingsPage,
  type Shell,
  UsersPage,
} from './support/pages';

/** A fresh key (no dash after "sk-", so newapi normalisation keeps it whole) and how the console shows it. */
function newKey(label: string): { key: string; masked: string } {
  const key = `sk-${label}${randomBytes(8).toString('hex')}`;
  return { key, masked: maskKey(canonicalKey(key, 'newapi')) };
}

describe('admin console as an admin (Chromium against a real gateway)', () => {
  let env: ConsoleEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let shell: Shell;
  const webhook = new WebhookReceiver();

  beforeAll(async () => {
    // The dashboard checks "today's" figures: keep the run on one UTC day.
    await notAcrossUtcMidnight(240_000);
    await webhook.start();
    env = await startConsoleEnv('e2eadmin', {
      ALERT_THRESHOLD_COUNT: '3',
      ALERT_WEBHOOK_URL: webhook.url,
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
    });
    browser = await launchBrowser();
    ({ context, page, errors } = await newContext(browser, {
      baseURL: env.consoleUrl,
      clientIp: '127.0.0.20',
    }));
    // Some traffic before the first look: one key bound from .21, refused from .22.
    const { key } = newKey('dash');
    expect((await env.proxy(key, '127.0.0.21')).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await env.proxy(key, '127.0.0.22')).status).toBe(403);
    // Log in once for the whole file, through the login page.
    const login = await new LoginPage(page).open();
    await screenshot(page, 'login');
    shell = await login.logIn(ADMIN_USERNAME, ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await env?.stop();
    await webhook.stop();
  });

  it('logs in and shows the dashboard: today’s figures, the week, recent intercepts', async () => {
    expect(await shell.whoami.innerText()).toMatch(/admin\s*Admin/);
    // Intercepts reach PostgreSQL in batches: wait until the API has them.
    await eventually(
      () => env.api.get('/admin/api/dashboard'),
      (r) => r.status === 200 && r.json<Dashboard>().today.intercepted >= 4,
    );
    const dash = await new DashboardPage(page).open();
    await expect.poll(async () => dash.figure('Intercepted today').innerText()).toMatch(/\b4\b/);
    expect(await dash.figure('Active bindings').innerText()).toMatch(/\b1\b/);
    await dash.chart.waitFor();
    await dash.recentIntercepts.getByText('127.0.0.22').first().waitFor();
    await screenshot(page, 'dashboard');
    await dash.toggleTheme();
    await screenshot(page, 'dashboard-dark');
    await dash.toggleTheme();
  });

  it('shows a binding made by real proxied traffic and finds it by IP and by the full key', async () => {
    const { key, masked } = newKey('search');
    expect((await env.proxy(key, '127.0.0.31')).status).toBe(200);
    const other = newKey('other');
    expect((await env.proxy(other.key, '127.0.0.41')).status).toBe(200);

    const bindings = await new BindingsPage(page).open();
    await bindings.row(masked).waitFor();
    expect(await bindings.row(masked).innerText()).toContain('127.0.0.31');

    await bindings.search('127.0.0.31');
    await expect.poll(() => bindings.rows.count()).toBe(1);
    expect(await bindings.rows.first().innerText()).toContain(masked);
    await screenshot(page, 'bindings-search-ip');

    await bindings.search(key);
    await expect.poll(() => bindings.rows.count()).toBe(1);
    expect(await bindings.rows.first().innerText()).toContain(masked);

    await bindings.search('127.0.0.99');
    await bindings.empty.waitFor();

    await bindings.open();
    await bindings.filter('Status', 'Banned');
    await bindings.empty.waitFor();
    await bindings.filter('Status', 'Active');
    await bindings.row(masked).waitFor();
    await screenshot(page, 'bindings');
  });

  it('edits the networks (checked as typed) and the proxy honours the change', async () => {
    const { key, masked } = newKey('edit');
    expect((await env.proxy(key, '127.0.0.32')).status).toBe(200);
    expect((await env.proxy(key, '127.0.0.33')).status).toBe(403);

    const bindings = await new BindingsPage(page).open();
    await bindings.search(key);
    const detail = await bindings.openBinding(masked);
    const form = await detail.openEdit();
    await form.rule('Several networks');
    await detail.editDialog.getByRole('button', { name: 'Add network' }).click();
    await form.entry(1).fill('127.0.0.33/24');
    await detail.editDialog.getByText(/has host bits set/).waitFor();
    expect(await detail.editDialog.getByRole('button', { name: 'Save' }).isDisabled()).toBe(true);
    await screenshot(page, 'binding-edit-invalid');
    await form.entry(1).fill('127.0.0.33');
    await detail.editDialog.getByText('Saved as 127.0.0.33/32').waitFor();
    await detail.saveEdit();
    await detail.notice.filter({ hasText: /Saved/ }).waitFor();
    await detail.page.locator('main').getByText('127.0.0.33/32').first().waitFor();

    const r = await eventually(
      () => env.proxy(key, '127.0.0.33'),
      (x) => x.status === 200,
      2000,
    );
    expect(r.status).toBe(200);
    expect((await env.proxy(key, '127.0.0.32')).status).toBe(200);
    expect((await env.proxy(key, '127.0.0.34')).status).toBe(403);
    await screenshot(page, 'binding-detail');
  });

  it('pre-binds a key before its first use', async () => {
    const { key, masked } = newKey('pre');
    const bindings = await new BindingsPage(page).open();
    const detail = await bindings.prebind(key, ['127.0.0.35'], 'laptop of the e2e test');
    await detail.heading.filter({ hasText: masked }).waitFor();
    await detail.page.getByText('laptop of the e2e test').waitFor();
    expect((await env.proxy(key, '127.0.0.36')).status).toBe(403);
    expect((await env.proxy(key, '127.0.0.35')).status).toBe(200);
  });

  it('unbinds a key: it is gone from the list and binds afresh on its next use', async () => {
    const { key, masked } = newKey('unbind');
    expect((await env.proxy(key, '127.0.0.37')).status).toBe(200);
    const bindings = await new BindingsPage(page).open();
    await bindings.search(key);
    const detail = await bindings.openBinding(masked);
    await detail.confirm('Unbind');
    await detail.notice.filter({ hasText: /Unbound/ }).waitFor();
    await page.waitForURL(/\/admin\/ui\/bindings$/);
    await bindings.search(key);
    await bindings.empty.waitFor();
    expect(await bindings.rows.count()).toBe(0);
    // The next use, from anywhere, binds it again.
    expect((await env.proxy(key, '127.0.0.38')).status).toBe(200);
    await bindings.search(key);
    await expect.poll(() => bindings.rows.count()).toBe(1);
    expect(await bindings.rows.first().innerText()).toContain('127.0.0.38');
  });

  it('bans and unbans a key, and the proxy follows', async () => {
    const { key, masked } = newKey('ban');
    expect((await env.proxy(key, '127.0.0.39')).status).toBe(200);
    const bindings = await new BindingsPage(page).open();
    await bindings.search(key);
    const detail = await bindings.openBinding(masked);

    await detail.confirm('Ban');
    await detail.notice.filter({ hasText: /Banned/ }).waitFor();
    await page.getByRole('button', { name: 'Unban', exact: true }).waitFor();
    const banned = await eventually(
      () => env.proxy(key, '127.0.0.39'),
      (x) => x.status === 403,
      2000,
    );
    expect(banned.json<ErrorBody>().error.code).toBe('key_banned');
    await screenshot(page, 'binding-banned');

    await detail.confirm('Unban');
    await detail.notice.filter({ hasText: /Lifted the ban/ }).waitFor();
    await page.getByRole('button', { name: 'Ban', exact: true }).waitFor();
    expect(
      (
        await eventually(
          () => env.proxy(key, '127.0.0.39'),
          (x) => x.status === 200,
          2000,
        )
      ).status,
    ).toBe(200);
    // The banned request is in the binding's recent intercepts.
    await page.reload();
    await new BindingDetailPage(page).recentIntercepts.getByText('Key banned').first().waitFor();
  });

  it('gives a key its own policy with a daily quota; the quota bar, the list and the dashboard follow its traffic', async () => {
    // Bound before its first use, so every request it makes counts against the quota.
    const { key, masked } = newKey('quota');
    const created = await env.api.post('/admin/api/bindings', {
      key,
      rule_type: 'single',
      allowed_ips: ['127.0.0.44/32'],
    });
    expect(created.status).toBe(201);
    const id = created.json<Binding>().id;

    const detail = await new BindingDetailPage(page).open(id);
    await detail.policySource.filter({ hasText: 'No policy' }).waitFor();
    expect(await detail.quotaToday.innerText()).toBe('No daily quota · 0 requests today');

    const form = await detail.openPolicyEditor();
    expect(await form.root.getByRole('radio', { name: /Use the default policy/ }).isChecked()).toBe(true);
    await form.choose('Give this key its own policy');
    await form.field('Requests per day').fill('0');
    await form.root.getByText('Requests per day must be an integer from 1 to 1000000000.').waitFor();
    expect(await form.root.getByRole('button', { name: 'Save policy' }).isDisabled()).toBe(true);
    await form.field('Requests per day').fill('3');
    await form.field('Allowed models').fill('gpt-4o*\nclaude-*');
    await screenshot(page, 'binding-policy-edit');
    await detail.savePolicy();
    await detail.notice.filter({ hasText: `Saved: ${masked} now has its own policy.` }).waitFor();
    await detail.policySource.filter({ hasText: 'Own policy' }).waitFor();
    await detail.quotaToday.filter({ hasText: '0 of 3 (0%)' }).waitFor();
    expect(await detail.policyValue('models').innerText()).toBe('gpt-4o*, claude-*');
    const stored = (await env.api.get(`/admin/api/bindings/${id}`)).json<Binding>();
    expect(stored.policy).toEqual({ requests_per_day: 3, models: ['gpt-4o*', 'claude-*'] });

    // Every instance enforces a change within a second (docs/contract.md 9).
    await new Promise((r) => setTimeout(r, 1100));
    // Three requests are the day's quota; the fourth is refused.
    const first = await env.proxy(key, '127.0.0.44');
    expect(first.status).toBe(200);
    expect(first.headers['x-ratelimit-limit-requests']).toBe('3');
    for (let i = 0; i < 2; i++) expect((await env.proxy(key, '127.0.0.44')).status).toBe(200);
    const refused = await env.proxy(key, '127.0.0.44');
    expect(refused.status).toBe(429);
    expect(refused.json<ErrorBody>().error.code).toBe('quota_exceeded');

    await page.reload();
    await detail.quotaToday.filter({ hasText: '3 of 3 (100%) · used up' }).waitFor();
    expect(await detail.quotaTodayBar.getAttribute('aria-valuenow')).toBe('100');

    // Without a monthly quota the month's count is the stored one, written in
    // batches (as is the list's "Today"): once there, the card shows it.
    const usage = await eventually(
      async () => (await env.api.get(`/admin/api/bindings/${id}/usage`)).json<BindingUsage>(),
      (u) => u.month === 3,
      10_000,
    );
    expect(usage).toMatchObject({
      today: 3,
      month: 3,
      limit_day: 3,
      limit_month: null,
      policy_source: 'binding',
    });
    await page.reload();
    await detail.quotaMonth.filter({ hasText: 'No monthly quota · 3 requests this month' }).waitFor();
    await screenshot(page, 'binding-policy');

    // The list's "Today" and the dashboard's refusals.
    await eventually(
      () => env.api.get(`/admin/api/bindings/${id}`),
      (r) => r.json<Binding>().requests_today === 3,
      10_000,
    );
    const bindings = await new BindingsPage(page).open();
    await bindings.search(key);
    await bindings.today(masked).filter({ hasText: '3 / 3' }).waitFor();
    expect(await bindings.today(masked).getByRole('progressbar').getAttribute('aria-valuenow')).toBe('100');

    await eventually(
      () => env.api.get('/admin/api/dashboard'),
      (r) => r.json<Dashboard>().refusals.some((x) => x.code === 'quota_exceeded'),
      10_000,
    );
    const dash = await new DashboardPage(page).open();
    const row = dash.refusal('quota_exceeded');
    await row.waitFor();
    expect(await row.innerText()).toMatch(/Daily or monthly quota used up\s+429 quota_exceeded\s+1\b/);
    await screenshot(page, 'dashboard-refusals');
  });

  it('shows the API’s refusal of a policy under the field it names', async () => {
    const { key, masked } = newKey('refuse');
    expect((await env.proxy(key, '127.0.0.45')).status).toBe(200);
    const bindings = await new BindingsPage(page).open();
    await bindings.search(key);
    const detail = await bindings.openBinding(masked);
    const form = await detail.openPolicyEditor();
    await form.choose('Give this key its own policy');
    await form.field('Max tokens per request').fill('4096');
    await form.field('Allowed models').fill('gpt-4o-mini');

    // The console checks with the API's own rules and never sends what they
    // refuse: the request is altered on its way (as a console older than the
    // gateway's rules would send it) to see the gateway's real 422 land.
    await page.route('**/admin/api/bindings/policy', async (route) => {
      const body = route.request().postDataJSON() as { id: number; policy: Record<string, unknown> };
      await route.continue({
        postData: JSON.stringify({ ...body, policy: { ...body.policy, models: ['gpt-4o-mini', 'gpt-*-x'] } }),
      });
    });
    try {
      await form.root.getByRole('button', { name: 'Save policy' }).click();
      const models = form.field('Allowed models');
      await expect.poll(() => models.getAttribute('aria-invalid')).toBe('true');
      expect(await helperTextOf(models)).toBe(
        "Invalid policy.models[1]: may hold '*' only as its last character (a prefix)",
      );
      expect(await form.field('Max tokens per request').getAttribute('aria-invalid')).toBe('false');
      expect(await form.root.getByRole('alert').count()).toBe(0);
      expect(await form.root.getByRole('button', { name: 'Save policy' }).isDisabled()).toBe(true);
      await screenshot(page, 'binding-policy-refused');
    } finally {
      await page.unroute('**/admin/api/bindings/policy');
    }
    expect(
      (await env.api.get(`/admin/api/bindings?search=${encodeURIComponent(key)}`)).json<ListPage<Binding>>()
        .items[0]!.policy,
    ).toBeNull();

    // Edited, the field is clean again and the policy saves as typed.
    await form.field('Allowed models').fill('gpt-4o-mini\ngpt-4o');
    expect(await form.field('Allowed models').getAttribute('aria-invalid')).toBe('false');
    await detail.savePolicy();
    await detail.policySource.filter({ hasText: 'Own policy' }).waitFor();
    expect(await detail.policyValue('max_tokens').innerText()).toBe('4,096 tokens');
  });

  it('sets a default key policy in Settings, which keys without their own follow, and removes it', async () => {
    const { key, masked } = newKey('default');
    expect((await env.proxy(key, '127.0.0.46')).status).toBe(200);

    const settings = await new SettingsPage(page).open();
    const form = settings.defaultPolicy;
    expect(await form.root.getByRole('radio', { name: /No default policy/ }).isChecked()).toBe(true);
    await form.choose('Set a default policy');
    await form.field('Rate per second').fill('0.5');
    await form.field('Burst').fill('20');
    await form.field('Requests per day').fill('1000');
    await form.field('Max tokens per request').fill('abc');
    await form.root.getByText('Max tokens per request must be an integer from 1 to 100000000.').waitFor();
    expect(await settings.save.isDisabled()).toBe(true);
    await form.field('Max tokens per request').fill('2048');
    await settings.save.click();
    await settings.notice.filter({ hasText: /Settings saved \(1 change\)/ }).waitFor();
    expect((await env.api.get('/admin/api/settings')).json<SettingsResponse>().default_policy).toEqual({
      rate_per_second: 0.5,
      burst: 20,
      requests_per_day: 1000,
      max_tokens: 2048,
    });
    await screenshot(page, 'settings-default-policy');

    try {
      const bindings = await new BindingsPage(page).open();
      await bindings.search(key);
      await bindings.today(masked).getByRole('progressbar').waitFor();
      expect(await bindings.today(masked).innerText()).toMatch(/\/ 1,000\s*$/);
      const detail = await bindings.openBinding(masked);
      await detail.policySource.filter({ hasText: 'Default policy' }).waitFor();
      expect(await detail.policyValue('requests_per_day').innerText()).toBe('1,000');
      expect(await detail.policyValue('rate_per_second').innerText()).toBe('0.5 per second');
      await detail.quotaToday.filter({ hasText: /of 1,000/ }).waitFor();
      // The editor says what the default is.
      const editor = await detail.openPolicyEditor();
      expect(await editor.root.getByTestId('default-policy-max_tokens').innerText()).toBe('2,048 tokens');
      await editor.root.getByRole('button', { name: 'Cancel' }).click();
      await detail.policyDialog.waitFor({ state: 'detached' });
    } finally {
      // Back to no default for the rest of this file, through the form.
      const again = await new SettingsPage(page).open();
      await again.defaultPolicy.choose('No default policy');
      await again.save.click();
      await again.page.getByText('No unsaved changes.').waitFor();
    }
    const after = await eventually(
      () => env.api.get('/admin/api/settings'),
      (r) => r.json<SettingsResponse>().default_policy === null,
    );
    expect(after.json<SettingsResponse>().default_policy).toBeNull();
  });

  it('filters the intercept log and exports exactly the filtered rows as CSV', async () => {
    const { key, masked } = newKey('logs');
    expect((await env.proxy(key, '127.0.0.40')).status).toBe(200);
    // Refusals of one key from one IP within one second are one record
    // (with a count): one refusal per second gives one row each.
    const nextSecond = () => new Promise((r) => setTimeout(r, 1010 - (Date.now() % 1000)));
    for (let i = 0; i < 3; i++) {
      await nextSecond();
      expect(
        (await env.proxy(key, '127.0.0.42', { userAgent: `e2e-agent-${i}`, path: `/v1/chat/x${i}` })).status,
      ).toBe(403);
    }
    for (let i = 0; i < 2; i++) {
      await nextSecond();
      expect((await env.proxy(key, '127.0.0.43')).status).toBe(403);
    }
    await eventually(
      () => env.api.get('/admin/api/logs?ip=127.0.0.42'),
      (r) => r.json<ListPage<Intercept>>().total === 3,
    );

    const logs = await new LogsPage(page).open();
    // An invalid filter is flagged and never applied.
    await logs.ipBox.fill('127.0.0.42/32x');
    await logs.ipBox.press('Enter');
    await page.getByText(/invalid prefix length/).waitFor();
    expect(new URL(page.url()).searchParams.has('ip')).toBe(false);
    await logs.filterIp('127.0.0.42');
    await logs.filterKey(masked.slice(0, 4));
    await logs.filterReason('IP not allowed');
    await expect.poll(() => logs.rows.count()).toBe(3);
    expect(await logs.total.innerText()).toMatch(/^3 intercepts match/);
    await screenshot(page, 'logs-filtered');

    const download = await logs.exportCsv();
    expect(download.suggestedFilename()).toMatch(/^keypin-intercepts-.*\.csv$/);
    const text = readFileSync(await download.path(), 'utf8');
    const rows = parse<Record<string, string>>(text, { columns: true, skip_empty_lines: true });
    expect(text.split(/\r?\n/)[0]).toBe(CSV_HEADER.join(','));
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      expect(r['attempt_ip']).toBe('127.0.0.42');
      expect(r['token_display']).toBe(masked);
      expect(r['reason']).toBe('ip_not_allowed');
    }
    expect(rows.map((r) => r['user_agent']).sort()).toEqual(['e2e-agent-0', 'e2e-agent-1', 'e2e-agent-2']);
    await shell.notice.filter({ hasText: /Downloaded keypin-intercepts-/ }).waitFor();

    // Wider: the other address too, by CIDR.
    await logs.filterIp('127.0.0.40/29');
    await expect.poll(() => logs.rows.count()).toBe(5);
  });

  it('shows alerts with their delivery outcome', async () => {
    // ALERT_THRESHOLD_COUNT=3: the intercepts above raised alerts, sent to the receiver.
    await eventually(
      () => env.api.get('/admin/api/alerts'),
      (r) => {
        const items = r.json<ListPage<Alert>>().items;
        return items.length > 0 && items.every((a) => a.delivery_status === 'delivered');
      },
      15_000,
    );
    expect(webhook.deliveries.length).toBeGreaterThan(0);
    const alerts = await new AlertsPage(page).open();
    await alerts.rows.first().waitFor();
    const first = await alerts.rows.first().innerText();
    expect(first).toContain('Delivered');
    expect(first).toMatch(/\d+ in 5 min/);
    await screenshot(page, 'alerts');
  });

  it('changes a setting with a validated form; the webhook secret is set but never shown', async () => {
    const settings = await new SettingsPage(page).open();
    const count = settings.field('Alert after');
    await count.fill('0');
    await page.getByText(/Alert threshold count must be an integer from 1/).waitFor();
    expect(await settings.save.isDisabled()).toBe(true);
    await screenshot(page, 'settings-invalid');
    await count.fill('7');
    await settings.field('Secret').fill('whsec-e2e-secret-value');
    await settings.save.click();
    await settings.notice.filter({ hasText: /Settings saved \(2 changes\)/ }).waitFor();
    await settings.secretState.filter({ hasText: 'Set' }).waitFor();
    expect(await settings.field('New secret').inputValue()).toBe('');
    expect(await page.content()).not.toContain('whsec-e2e-secret-value');

    const s = (await env.api.get('/admin/api/settings')).json<SettingsResponse>();
    expect(s.alert_threshold_count).toBe(7);
    expect(s.alert_webhook_secret_set).toBe(true);
    await screenshot(page, 'settings');

    const audit = await new AuditPage(page).open();
    await audit.rows.filter({ hasText: 'settings.update' }).first().waitFor();
    await audit.rows.first().getByRole('button', { name: 'Show the change' }).click();
    await screenshot(page, 'audit');
  });

  it('asks before changing how keys are identified while keys are bound, and changes it only when confirmed', async () => {
    const settings = await new SettingsPage(page).open();
    const relay = page.getByRole('combobox', { name: 'Relay' });
    expect(await relay.innerText()).toBe('New API / One API');
    await relay.click();
    await page.getByRole('option', { name: 'LiteLLM proxy' }).click();
    await page
      .getByTestId('identity-note')
      .filter({ hasText: /You will be asked to confirm/ })
      .waitFor();
    await settings.save.click();

    // Keys were bound in beforeAll: the API refuses without confirmation.
    let dialog = page.getByRole('dialog', { name: 'Unbind every key?' });
    await dialog.getByText(/existing binding.* would stop matching/).waitFor();
    await dialog.getByText(/Every key will bind afresh on its next use/).waitFor();
    await screenshot(page, 'settings-unbind-all');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect((await env.api.get('/admin/api/settings')).json<SettingsResponse>().relay).toBe('newapi');

    await settings.save.click();
    dialog = page.getByRole('dialog', { name: 'Unbind every key?' });
    await dialog.getByRole('button', { name: 'Change it and unbind all keys' }).click();
    await settings.notice.filter({ hasText: /Settings saved \(1 change\)/ }).waitFor();
    await dialog.waitFor({ state: 'hidden' });
    expect((await env.api.get('/admin/api/settings')).json<SettingsResponse>().relay).toBe('litellm');

    // Back to New API for the rest of this file (its keys are read that way).
    const back = await env.api.put('/admin/api/settings', { relay: 'newapi', confirm_unbind_all: true });
    expect(back.status).toBe(200);
  });

  it('adds and deletes a user', async () => {
    const users = await new UsersPage(page).open();
    await users.rows.filter({ hasText: ADMIN_USERNAME }).waitFor();
    await page.getByRole('button', { name: 'Add user' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add a user' });
    await dialog.getByLabel('Username').fill('temp.auditor');
    await dialog.getByLabel('Password').fill('short');
    await dialog.getByText(/At least 12 characters \(5 so far\)/).waitFor();
    expect(await dialog.getByRole('button', { name: 'Create user' }).isDisabled()).toBe(true);
    await dialog.getByLabel('Password').fill('temp-auditor-password');
    await dialog.getByRole('button', { name: 'Create user' }).click();
    await users.notice.filter({ hasText: 'Created auditor "temp.auditor"' }).waitFor();
    await users.rows.filter({ hasText: 'temp.auditor' }).waitFor();
    await screenshot(page, 'users');

    await users.rows
      .filter({ hasText: 'temp.auditor' })
      .getByRole('button', { name: 'Delete temp.auditor' })
      .click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await users.notice.filter({ hasText: 'Deleted "temp.auditor"' }).waitFor();
    await expect.poll(() => users.rows.filter({ hasText: 'temp.auditor' }).count()).toBe(0);
  });

  it('is usable by keyboard alone', async () => {
    const bindings = await new BindingsPage(page).open();
    await bindings.rows.first().waitFor();
    await page.locator('body').focus();
    const reached: string[] = [];
    for (let i = 0; i < 25; i++) {
      await page.keyboard.press('Tab');
      reached.push(
        await page.evaluate(() => {
          const e = document.activeElement as HTMLElement | null;
          return (e?.getAttribute('aria-label') ?? e?.innerText ?? '').trim();
        }),
      );
    }
    expect(reached[0]).toBe('Skip to content');
    for (const name of [
      'Bindings',
      'Intercept logs',
      'Log out',
      'Pre-bind a key',
      'Search bindings by masked key, IP or full key',
    ]) {
      expect(reached, name).toContain(name);
    }
    // Enter on a focused navigation link goes there.
    await page.getByRole('link', { name: 'Intercept logs' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Intercept logs' }).waitFor();
  });

  it('fits a laptop-width window: no page-wide horizontal scrolling', async () => {
    await page.setViewportSize({ width: 1024, height: 768 });
    try {
      for (const [name, open] of [
        ['dashboard', () => new DashboardPage(page).open()],
        ['bindings', () => new BindingsPage(page).open()],
        ['logs', () => new LogsPage(page).open()],
        ['alerts', () => new AlertsPage(page).open()],
        ['routes', () => new RoutesPage(page).open()],
        ['settings', () => new SettingsPage(page).open()],
        ['audit', () => new AuditPage(page).open()],
      ] as const) {
        await open();
        await page.waitForLoadState('networkidle');
        const overflow = await page.evaluate(
          () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
        );
        expect(overflow, name).toBeLessThanOrEqual(0);
        await screenshot(page, `laptop-1024-${name}`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it('threw no uncaught error in the page', () => {
    expect(errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
  });
});
