import { SETTING_DEFAULTS, type Settings } from '@keypin/shared';
import { describe, expect, it, vi } from 'vitest';
import type { Caller } from '../admin/common/roles';
import type { AlertMessagePayload } from '../alert/alert-formats';
import type { SendResult } from '../alert/webhook-sender';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { type SettingsAdminDeps, SettingsAdminService } from './settings-admin.service';

const CALLER: Caller = { userId: 1, username: 'admin', role: 'admin', ip: '127.0.0.1' };

function setup(settings: Partial<Settings>, answer: SendResult) {
  const sendAlert = vi.fn(
    (_url: string, _p: AlertMessagePayload, _f: string, _s: string | null): Promise<SendResult> =>
      Promise.resolve(answer),
  );
  const record = vi.fn(() => Promise.resolve());
  const deps = {
    settings: { current: { ...SETTING_DEFAULTS, ...settings }, webhookSecret: () => 'the-secret' },
    audit: { record },
    webhookSender: { sendAlert },
    publicUrl: 'https://keypin.example.com',
  } as unknown as SettingsAdminDeps;
  return { sut: new SettingsAdminService(deps), sendAlert, record };
}

const SAVED = { alert_webhook_url: 'https://hooks.example.com/x', alert_webhook_format: 'dingtalk' as const };

describe('SettingsAdminService.testAlert', () => {
  it('sends one sample alert with the saved URL, format and secret, and answers what the receiver said', async () => {
    const { sut, sendAlert, record } = setup(SAVED, {
      ok: false,
      retry: true,
      status: 200,
      body: '{"errcode":-1,"errmsg":"system busy"}',
      error: 'DingTalk errcode -1: system busy',
    });
    const r = await sut.testAlert(CALLER);
    expect(sendAlert).toHaveBeenCalledTimes(1);
    const [url, payload, format, secret] = sendAlert.mock.calls[0]!;
    expect([url, format, secret]).toEqual([SAVED.alert_webhook_url, 'dingtalk', 'the-secret']);
    expect(payload).toMatchObject({
      test: true,
      binding_id: 0,
      console_url: 'https://keypin.example.com/admin/ui/alerts',
    });
    expect(r).toMatchObject({
      format: 'dingtalk',
      delivered: false,
      status: 200,
      body: '{"errcode":-1,"errmsg":"system busy"}',
      body_truncated: false,
      error: 'DingTalk errcode -1: system busy',
      would_retry: true,
    });
    expect(record).toHaveBeenCalledWith(CALLER, 'settings.test_alert', 'settings', null, {
      format: 'dingtalk',
      alert_id: payload.id,
      delivered: false,
      status: 200,
      error: 'DingTalk errcode -1: system busy',
      refused: false,
    });
  });

  it('cuts a long answer and says so', async () => {
    const { sut } = setup(SAVED, { ok: true, status: 200, body: 'x'.repeat(5000) });
    const r = await sut.testAlert(CALLER);
    expect(r).toMatchObject({ delivered: true, error: null, would_retry: false, body_truncated: true });
    expect(r.body).toHaveLength(2000);
  });

  it('no answer at all: status null, the error, would be retried', async () => {
    const { sut } = setup(SAVED, { ok: false, retry: true, error: 'request failed: ECONNREFUSED' });
    expect(await sut.testAlert(CALLER)).toMatchObject({
      status: null,
      body: '',
      error: 'request failed: ECONNREFUSED',
      would_retry: true,
    });
  });

  it('a URL the SSRF guard refuses: 422 naming alert_webhook_url, audited as refused', async () => {
    const { sut, record } = setup(SAVED, {
      ok: false,
      retry: false,
      refused: true,
      error: 'the webhook host h resolves to a private, loopback or link-local address',
    });
    const err = await sut.testAlert(CALLER).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeypinError);
    expect(err).toMatchObject({ code: 'validation_failed', extra: { field: 'alert_webhook_url' } });
    expect(record).toHaveBeenCalledWith(
      CALLER,
      'settings.test_alert',
      'settings',
      null,
      expect.objectContaining({ refused: true }),
    );
  });

  it('no saved URL: 422 naming alert_webhook_url, nothing sent', async () => {
    const { sut, sendAlert } = setup({ alert_webhook_url: null }, { ok: true, status: 200 });
    await expect(sut.testAlert(CALLER)).rejects.toMatchObject({ code: 'validation_failed' });
    expect(sendAlert).not.toHaveBeenCalled();
  });
});
