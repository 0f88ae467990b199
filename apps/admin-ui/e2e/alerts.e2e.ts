import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Alert,
  type Binding,
  type AuditEntry,
  canonicalKey,
  maskKey,
  type Page as ListPage,
} from '../../../libs/shared/src';
import { launchBrowser, newContext, screenshot } from './support/browser';
import {
  ADMIN_PASSWORD,
  ADMIN_USERNAME,
  type ConsoleEnv,
  eventually,
  startConsoleEnv,
} from './support/console-env';
import {
  AlertActionsObject,
  AlertDetailPage,
  AlertsPage,
  BindingDetailPage,
  LoginPage,
  type Shell,
} from './support/pages';

/** The buttons on the page that are not in READ_ONLY_BUTTONS. */
async function changingButtons(shell: Shell): Promise<string[]> {
  return (await shell.buttonNames()).filter((b) => !READ_ONLY_BUTTONS.some((re) => re.test(b)));
}

const AUDITOR = 'auditor.alerts';
/** Buttons that only look, page or navigate: all an auditor may find. */
const READ_ONLY_BUTTONS = [
  /^Log out$/,
  /^Switch to (dark|light) theme$/,
  /^Skip to content$/,
  /^Retry$/,
  /^Go to (first|previous|next|last) page$/,
  /^All (alerts|bindings)$/,
];
const AUDITOR_PASSWORD = 'auditor-alerts-password-01';

/** A fresh key (no dash after "sk-", so newapi normalisation keeps it whole) and how the console shows it. */
function newKey(label: string): { key: string; masked: string } {
  const key = `sk-${label}${randomBytes(8).toString('hex')}`;
  return { key, masked: maskKey(canonicalKey(key, 'newapi')) };
}

describe('alerts in the console: from alert to action (Chromium against a real gateway)', () => {
  let env: ConsoleEnv;
  let browser: Browser;
  let admin: { context: BrowserContext; page: Page; errors: string[] };
  let auditor: { context: BrowserContext; page: Page; errors: string[] };

  /** Binds a key from `home`, has it refused three times from `from` (ALERT_THRESHOLD_COUNT=3): one alert. */
  async function raiseAlert(label: string, home: string, from: string) {
    const k = newKey(label);
    expect((await env.proxy(k.key, home)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await env.proxy(k.key, from)).status).toBe(403);
    const binding = (await env.api.get(`/admin/api/bindings?search=${encodeURIComponent(k.key)}`)).json<
      ListPage<Binding>
    >().items[0]!;
    const alerts = await eventually(
      () => env.api.get(`/admin/api/alerts?binding_id=${binding.id}`),
      // The items, not the total: the list and its count are two statements.
      (r) => r.json<ListPage<Alert>>().items.length === 1,
      10_000,
    );
    return { ...k, binding, alert: alerts.json<ListPage<Alert>>().items[0]! };
  }

  beforeAll(async () => {
    env = await startConsoleEnv('e2ealerts', { ALERT_THRESHOLD_COUNT: '3' });
    const created = await env.api.post('/admin/api/users', {
      username: AUDITOR,
      password: AUDITOR_PASSWORD,
      role: 'auditor',
    });
    expect(created.status).toBe(201);
    browser = await launchBrowser();
    admin = await newContext(browser, { baseURL: env.consoleUrl, clientIp: '127.0.0.60' });
    await (await new LoginPage(admin.page).open()).logIn(ADMIN_USERNAME, ADMIN_PASSWORD);
    auditor = await newContext(browser, { baseURL: env.consoleUrl, clientIp: '127.0.0.59' });
    await (await new LoginPage(auditor.page).open()).logIn(AUDITOR, AUDITOR_PASSWORD);
  });

  afterAll(async () => {
    await admin?.context.close();
    await auditor?.context.close();
    await browser?.close();
    await env?.stop();
  });

  it('an admin allows a network from an alert; then a request from that network passes', async () => {
    const { key, masked, binding, alert } = await raiseAlert('allow', '127.0.0.61', '127.0.0.62');
    expect(alert.attempt_networks).toEqual(['127.0.0.62/32']);

    const alerts = await new AlertsPage(admin.page).open();
    const row = new AlertActionsObject(alerts.row(masked));
    await row.status.filter({ hasText: 'Open' }).waitFor();
    await screenshot(admin.page, 'alerts-actions');
    await row.allow('127.0.0.62/32');
    await alerts.notice.filter({ hasText: `127.0.0.62/32 is allowed for ${masked}` }).waitFor();
    // The list refreshed: the alert is closed and offers nothing more.
    await row.status.filter({ hasText: 'Network allowed' }).waitFor();
    expect(await row.buttons.count()).toBe(0);

    // Enforced within a second.
    const passed = await eventually(
      () => env.proxy(key, '127.0.0.62'),
      (r) => r.status === 200,
      1000,
    );
    expect(passed.status).toBe(200);
    expect((await env.proxy(key, '127.0.0.61')).status).toBe(200);
    expect((await env.api.get(`/admin/api/bindings/${binding.id}`)).json<Binding>()).toMatchObject({
      rule_type: 'multiple',
      allowed_ips: ['127.0.0.61/32', '127.0.0.62/32'],
    });
    const audit = (await env.api.get('/admin/api/audit')).json<ListPage<AuditEntry>>();
    expect(audit.items.find((e) => e.target === `alert:${alert.id}`)).toMatchObject({
      actor: ADMIN_USERNAME,
      action: 'alert.allow_network',
    });

    // The alert's own page (the webhook's console_url) says what was done.
    const detail = await new AlertDetailPage(admin.page).open(alert.id);
    await detail.actions.status.filter({ hasText: 'Network allowed' }).waitFor();
    expect(await admin.page.getByTestId('alert-resolution').innerText()).toMatch(
      /^127\.0\.0\.62\/32 allowed by admin/,
    );
    await screenshot(admin.page, 'alert-detail-allowed');
  });

  it('an admin bans the key from the alerts on its binding’s page', async () => {
    const { key, binding } = await raiseAlert('ban', '127.0.0.63', '127.0.0.64');
    const page = await new BindingDetailPage(admin.page).open(binding.id);
    const row = new AlertActionsObject(page.alerts.getByTestId('alert-row'));
    await row.status.filter({ hasText: 'Open' }).waitFor();
    await row.ban();
    await row.status.filter({ hasText: 'Key banned' }).waitFor();
    // The binding's own facts follow.
    await page.status.filter({ hasText: 'Banned' }).waitFor();
    const refused = await eventually(
      () => env.proxy(key, '127.0.0.63'),
      (r) => r.status === 403,
      1000,
    );
    expect(refused.json<{ error: { code: string } }>().error.code).toBe('key_banned');
    await screenshot(admin.page, 'binding-alerts-banned');
  });

  it('an admin dismisses an alert from its own page, the binding unchanged', async () => {
    const { key, binding, alert } = await raiseAlert('dismiss', '127.0.0.65', '127.0.0.66');
    const detail = await new AlertDetailPage(admin.page).open(alert.id);
    await detail.actions.dismiss();
    await detail.actions.status.filter({ hasText: 'Dismissed' }).waitFor();
    expect(await detail.actions.buttons.count()).toBe(0);
    expect((await env.api.get(`/admin/api/bindings/${binding.id}`)).json<Binding>().allowed_ips).toEqual([
      '127.0.0.65/32',
    ]);
    expect((await env.proxy(key, '127.0.0.66')).status).toBe(403);
  });

  it('an auditor sees the alerts and their statuses, and no action anywhere', async () => {
    const { masked, binding, alert } = await raiseAlert('audit', '127.0.0.67', '127.0.0.68');
    const alerts = await new AlertsPage(auditor.page).open();
    const row = new AlertActionsObject(alerts.row(masked));
    await row.status.filter({ hasText: 'Open' }).waitFor();
    expect(await row.buttons.count()).toBe(0);
    expect(await auditor.page.getByRole('columnheader', { name: 'Actions' }).count()).toBe(0);
    expect(await changingButtons(alerts)).toEqual([]);
    await screenshot(auditor.page, 'auditor-alerts');

    const detail = await new AlertDetailPage(auditor.page).open(alert.id);
    await detail.actions.status.filter({ hasText: 'Open' }).waitFor();
    expect(await changingButtons(detail)).toEqual([]);

    const page = await new BindingDetailPage(auditor.page).open(binding.id);
    await page.alerts.getByTestId('alert-row').waitFor();
    expect(await page.alerts.getByRole('button').count()).toBe(0);
    expect(await changingButtons(page)).toEqual([]);
  });

  it('threw no uncaught error in the pages', () => {
    expect([...admin.errors, ...auditor.errors].filter((e) => e.startsWith('pageerror'))).toEqual([]);
  });
});
