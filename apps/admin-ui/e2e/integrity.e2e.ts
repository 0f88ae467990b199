import { randomBytes } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IntegrityReport } from '../../../libs/shared/src';
import { sql } from '../../gateway/test/support/stores';
import { launchBrowser, newContext, screenshot } from './support/browser';
import {
  ADMIN_PASSWORD,
  ADMIN_USERNAME,
  type ConsoleEnv,
  eventually,
  startConsoleEnv,
} from './support/console-env';
import { DashboardPage, LoginPage } from './support/pages';

describe('the dashboard shows the hash chains (Chromium against a real gateway)', () => {
  let env: ConsoleEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    env = await startConsoleEnv('e2eintegrity');
    browser = await launchBrowser();
    ({ context, page, errors } = await newContext(browser, {
      baseURL: env.consoleUrl,
      clientIp: '127.0.0.60',
    }));
    // A key bound from .61 and refused from .62 and .63: intercept records to seal.
    const key = `sk-chain${randomBytes(8).toString('hex')}`;
    expect((await env.proxy(key, '127.0.0.61')).status).toBe(200);
    for (const from of ['127.0.0.62', '127.0.0.63']) expect((await env.proxy(key, from)).status).toBe(403);
    await new LoginPage(page).open();
    await new LoginPage(page).logIn(ADMIN_USERNAME, ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await env?.stop();
  });

  it('green while both chains verify, then the first bad record once a row is changed in the database', async () => {
    // Intercepts are sealed a few seconds after their second.
    const sealed = await eventually(
      async () => (await env.api.get('/admin/api/integrity')).json<IntegrityReport>(),
      (r) => r.intercepts.head_seq >= 2 && r.intercepts.unsealed === 0,
      20_000,
    );
    expect(sealed.intercepts.ok).toBe(true);

    const dash = await new DashboardPage(page).open();
    await expect.poll(() => dash.integrity.getAttribute('data-state'), { timeout: 15_000 }).toBe('ok');
    const intercepts = dash.chain('Intercept log');
    expect(await intercepts.innerText()).toContain('Intercept log: intact');
    expect(await intercepts.innerText()).toContain(`head #${sealed.intercepts.head_seq}`);
    expect(await dash.chain('Audit trail').innerText()).toContain('Audit trail: intact');
    await screenshot(page, 'dashboard-integrity-ok');

    // Someone with database access changes a stored intercept.
    await sql(env.databaseUrl, 'UPDATE intercept_logs SET count = count + 1 WHERE seq = 2');
    await dash.verifyNow();
    await expect.poll(() => dash.integrity.getAttribute('data-state'), { timeout: 15_000 }).toBe('broken');
    expect(await intercepts.innerText()).toContain('Intercept log: broken at record #2');
    expect(await dash.chain('Audit trail').innerText()).toContain('Audit trail: intact');
    await dash.integrity.scrollIntoViewIfNeeded();
    await screenshot(page, 'dashboard-integrity-broken');
    expect(errors).toEqual([]);
  });
});
