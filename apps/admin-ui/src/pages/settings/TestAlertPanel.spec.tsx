import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { SETTING_DEFAULTS, type SettingsResponse, type TestAlertResult } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { fakeApi, renderInApp, type SeenRequest } from '../../test/render';
import { SettingsPage } from './SettingsPage';

const SAVED: SettingsResponse = {
  ...SETTING_DEFAULTS,
  alert_webhook_url: 'https://open.feishu.cn/open-apis/bot/v2/hook/abc',
  alert_webhook_format: 'feishu',
  alert_webhook_secret_set: true,
};

const REFUSED: TestAlertResult = {
  format: 'feishu',
  delivered: false,
  status: 200,
  body: '{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}',
  body_truncated: false,
  error: 'Feishu code 19021: sign match fail or timestamp is not within one hour from current time',
  would_retry: false,
  duration_ms: 42,
};

function api(settings: SettingsResponse, answer: (req: SeenRequest) => { status?: number; body: unknown }) {
  return fakeApi((req) => (req.url.pathname.endsWith('/test-alert') ? answer(req) : { body: settings }));
}

const testButton = () => screen.findByRole('button', { name: 'Send a test alert' });

describe('Settings: the alert format and the test alert', () => {
  it('offers every format beside the webhook URL', async () => {
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api(SAVED, () => ({ body: REFUSED })).fetchFn });
    const select = await screen.findByRole('combobox', { name: 'Alert format' });
    expect(select.textContent).toBe('Feishu / Lark');
    await user.click(select);
    expect(
      within(screen.getByRole('listbox'))
        .getAllByRole('option')
        .map((o) => o.textContent),
    ).toEqual([
      'Standard (JSON, Standard Webhooks)',
      'Slack',
      'Discord',
      'Feishu / Lark',
      'DingTalk',
      'WeCom (WeChat Work)',
    ]);
  });

  it('sends the test alert and shows the receiver’s status, its answer and the verdict', async () => {
    const user = userEvent.setup();
    const fake = api(SAVED, () => ({ body: REFUSED }));
    renderInApp(<SettingsPage />, { fetchFn: fake.fetchFn });
    await user.click(await testButton());
    const result = await screen.findByTestId('test-alert-result');
    expect(within(result).getByTestId('test-alert-outcome').textContent).toBe(
      'Feishu / Lark: Not delivered (HTTP 200): Feishu code 19021: sign match fail or timestamp is not ' +
        'within one hour from current time. A real alert would not be retried.',
    );
    expect(within(result).getByTestId('test-alert-answer').textContent).toBe(REFUSED.body);
    const posts = fake.seen.filter((r) => r.method === 'POST');
    expect(posts.map((r) => [r.url.pathname, r.body])).toEqual([['/admin/api/settings/test-alert', {}]]);
  });

  it('says delivered when it was', async () => {
    const user = userEvent.setup();
    const ok = { ...REFUSED, delivered: true, error: null, body: '{"code":0,"msg":"success"}' };
    renderInApp(<SettingsPage />, { fetchFn: api(SAVED, () => ({ body: ok })).fetchFn });
    await user.click(await testButton());
    expect((await screen.findByTestId('test-alert-outcome')).textContent).toBe(
      'Feishu / Lark: Delivered: the receiver answered HTTP 200 in 42 ms.',
    );
  });

  it('shows the API’s refusal (a URL the SSRF guard refuses)', async () => {
    const user = userEvent.setup();
    const message =
      'Invalid alert_webhook_url: the webhook host hooks.internal resolves to a private, loopback or link-local address';
    const refusal = {
      status: 422,
      body: {
        error: { message, type: 'keypin_error', code: 'validation_failed' },
        field: 'alert_webhook_url',
      },
    };
    renderInApp(<SettingsPage />, { fetchFn: api(SAVED, () => refusal).fetchFn });
    await user.click(await testButton());
    expect((await screen.findByTestId('test-alert-error')).textContent).toBe(message);
  });

  it('waits for unsaved URL or format changes to be saved, and for a URL', async () => {
    const user = userEvent.setup();
    renderInApp(<SettingsPage />, { fetchFn: api(SAVED, () => ({ body: REFUSED })).fetchFn });
    expect((await testButton()).hasAttribute('disabled')).toBe(false);
    await user.click(screen.getByRole('combobox', { name: 'Alert format' }));
    await user.click(within(screen.getByRole('listbox')).getByRole('option', { name: 'Slack' }));
    await waitFor(() =>
      expect(screen.getByRole('button', { name: 'Send a test alert' }).hasAttribute('disabled')).toBe(true),
    );
    expect(screen.getByText(/Save your changes first/)).toBeTruthy();
  });

  it('is disabled without a saved webhook URL', async () => {
    const none = { ...SAVED, alert_webhook_url: null };
    renderInApp(<SettingsPage />, { fetchFn: api(none, () => ({ body: REFUSED })).fetchFn });
    expect((await testButton()).hasAttribute('disabled')).toBe(true);
    expect(screen.getByText('Save a webhook URL first.')).toBeTruthy();
  });

  it('an auditor reads the format and has no test button', async () => {
    renderInApp(<SettingsPage />, {
      role: 'auditor',
      fetchFn: api(SAVED, () => ({ body: REFUSED })).fetchFn,
    });
    expect((await screen.findByTestId('setting-alert_webhook_format')).textContent).toBe('Feishu / Lark');
    expect(screen.queryByRole('button', { name: 'Send a test alert' })).toBeNull();
  });
});
