import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SettingsResponse } from '../../../libs/shared/src';
import { FakeChatService, messageText } from '../../gateway/test/support/chat-services';
import { launchBrowser, newContext, screenshot } from './support/browser';
import { ADMIN_PASSWORD, ADMIN_USERNAME, type ConsoleEnv, startConsoleEnv } from './support/console-env';
import { LoginPage, SettingsPage, type Shell } from './support/pages';

const SECRET = 'SECe2e-format-secret-0123456789';

/** The Settings page's alert format select and its test-alert panel, as a person uses them. */
class AlertFormatPanel {
  constructor(readonly page: Page) {}
  get format(): Locator {
    return this.page.getByRole('combobox', { name: 'Alert format' });
  }
  async choose(label: string): Promise<void> {
    await this.format.click();
    await this.page.getByRole('option', { name: label }).click();
  }
  get send(): Locator {
    return this.page.getByRole('button', { name: 'Send a test alert' });
  }
  get outcome(): Locator {
    return this.page.getByTestId('test-alert-outcome');
  }
  get answer(): Locator {
    return this.page.getByTestId('test-alert-answer');
  }
}

describe('alert formats: the format select and the test-alert button (Chromium against a real gateway)', () => {
  // A Feishu custom bot on loopback that checks the signature as Feishu documents it.
  const feishu = new FakeChatService('feishu', SECRET);
  let env: ConsoleEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let errors: string[];
  let shell: Shell;

  beforeAll(async () => {
    await feishu.start();
    env = await startConsoleEnv('e2eformats', {
      // The receiver is on 127.0.0.1: allow private webhook destinations, as the other console tests do.
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
      ALERT_WEBHOOK_URL: feishu.url,
      ALERT_WEBHOOK_SECRET: SECRET,
    });
    browser = await launchBrowser();
    ({ context, page, errors } = await newContext(browser, {
      baseURL: env.consoleUrl,
      clientIp: '127.0.0.70',
    }));
    shell = await (await new LoginPage(page).open()).logIn(ADMIN_USERNAME, ADMIN_PASSWORD);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await env?.stop();
    await feishu.stop();
  });

  it('chooses Feishu beside the webhook URL, saves, sends a test alert and shows the receiver’s answer', async () => {
    await shell.go('Settings');
    const settings = new SettingsPage(page);
    const panel = new AlertFormatPanel(page);
    expect(await panel.format.innerText()).toBe('Standard (JSON, Standard Webhooks)');
    await panel.choose('Feishu / Lark');
    // Unsaved: the test would not be what is saved.
    expect(await panel.send.isDisabled()).toBe(true);
    await page.getByText(/Save your changes first/).waitFor();
    await settings.save.click();
    await settings.notice.filter({ hasText: /Settings saved \(1 change\)/ }).waitFor();
    expect((await env.api.get('/admin/api/settings')).json<SettingsResponse>().alert_webhook_format).toBe(
      'feishu',
    );

    await panel.send.click();
    await panel.outcome.filter({ hasText: /Delivered/ }).waitFor();
    expect(await panel.outcome.innerText()).toMatch(
      /^Feishu \/ Lark: Delivered: the receiver answered HTTP 200 in \d+ ms\.$/,
    );
    expect(JSON.parse(await panel.answer.innerText())).toMatchObject({ code: 0, msg: 'success' });
    expect(feishu.accepted).toHaveLength(1);
    expect(messageText(feishu.accepted[0]!)).toContain('[Test] KeyPin alert');
    await screenshot(page, 'settings-test-alert');
  });

  it('a wrong secret: Feishu’s error inside the 200 is shown as not delivered, with its answer', async () => {
    const settings = new SettingsPage(page);
    const panel = new AlertFormatPanel(page);
    await settings.field('New secret').fill('not-the-bot-secret');
    await settings.save.click();
    await settings.notice.filter({ hasText: /Settings saved/ }).waitFor();
    await panel.send.click();
    await panel.outcome.filter({ hasText: /Not delivered/ }).waitFor();
    expect(await panel.outcome.innerText()).toBe(
      'Feishu / Lark: Not delivered (HTTP 200): Feishu code 19021: sign match fail or timestamp is not within ' +
        'one hour from current time. A real alert would not be retried.',
    );
    expect(await panel.answer.innerText()).toContain('"code":19021');
    expect(feishu.requests.at(-1)!.refusal).toBe('signature');
    await screenshot(page, 'settings-test-alert-refused');
    expect(errors).toEqual([]);
  });
});
