import { randomUUID } from 'node:crypto';
import { type SettingsResponse, TEST_ALERT_BODY_LIMIT, type TestAlertResult } from '@keypin/shared';
import type { RedisClient } from '../infra/redis/redis.factory';
import { invalid } from '../admin/common/validation';
import { sampleAlert } from '../alert/alert-formats';
import type { WebhookSender } from '../alert/webhook-sender';
import type { AuditRepository } from '../audit/audit.repository';
import type { Caller } from '../admin/common/roles';
import type { ChangeFeed } from '../infra/change-feed/change-feed.service';
import type { SecretBox } from './secret-box';
import { parseSettingsRequest, wouldUnbindAll } from './settings-request';
import type { SettingsService } from './settings.service';

export interface SettingsAdminDeps {
  settings: SettingsService;
  secretBox: SecretBox;
  audit: AuditRepository;
  changeFeed: ChangeFeed;
  publisher: RedisClient;
  /** ALERT_WEBHOOK_ALLOW_PRIVATE: whether a webhook URL may point inside. */
  allowPrivateWebhook: boolean;
  /** Sends the test alert: the alerts' own sender (same SSRF guard and timeout). */
  webhookSender: Pick<WebhookSender, 'sendAlert'>;
  /** PUBLIC_URL, for the test alert's link to the console. */
  publicUrl: string | null;
}

/**
 * The admin side of settings: the view (the webhook secret only as "set"),
 * and changes, committed with their audit row, then announced so every
 * instance applies them within a second.
 */
export class SettingsAdminService {
  constructor(private readonly d: SettingsAdminDeps) {}

  view(): SettingsResponse {
    return { ...this.d.settings.current, alert_webhook_secret_set: this.d.settings.webhookSecret() !== null };
  }

  async update(caller: Caller, body: unknown): Promise<SettingsResponse> {
    const req = parseSettingsRequest(body, this.d.allowPrivateWebhook);
    const result = await this.d.settings.change(
      {
        patch: req.patch,
        sealedSecret:
          req.secret === undefined
            ? undefined
            : req.secret === null
              ? null
              : this.d.secretBox.seal(req.secret),
        confirmUnbindAll: req.confirmUnbindAll,
        networkLists: req.networkLists,
      },
      caller.username,
      (tx, before, after) => {
        const audited: Record<string, unknown> = { ...after };
        if (req.secret !== undefined)
          audited['alert_webhook_secret'] = req.secret === null ? 'cleared' : 'changed';
        return this.d.audit.record(caller, 'settings.update', 'settings', before, audited, tx);
      },
    );
    if (!result.ok) throw wouldUnbindAll(result.refusal);
    await this.d.changeFeed.publishSettings(this.d.publisher).catch(() => undefined);
    await this.d.settings.reload();
    return this.view();
  }

  /**
   * `POST /settings/test-alert` (docs/alert-formats.md): a sample alert sent
   * once, without retries, through the saved format, URL and secret, and
   * the receiver's answer judged as a real delivery would be. Audited as
   * `settings.test_alert` with the outcome. No URL saved, or one the SSRF
   * guard refuses (nothing is sent then) → 422 naming `alert_webhook_url`.
   */
  async testAlert(caller: Caller): Promise<TestAlertResult> {
    const { alert_webhook_url: url, alert_webhook_format: format } = this.d.settings.current;
    if (url === null) throw invalid('alert_webhook_url', 'is not set: save a webhook URL first');
    const started = Date.now();
    const payload = sampleAlert(randomUUID(), started, this.d.publicUrl);
    const r = await this.d.webhookSender.sendAlert(url, payload, format, this.d.settings.webhookSecret());
    const answer = r.body ?? '';
    const result: TestAlertResult = {
      format,
      delivered: r.ok,
      status: r.status ?? null,
      body: answer.slice(0, TEST_ALERT_BODY_LIMIT),
      body_truncated: answer.length > TEST_ALERT_BODY_LIMIT,
      error: r.ok ? null : r.error,
      would_retry: !r.ok && r.retry,
      duration_ms: Date.now() - started,
    };
    const refused = !r.ok && r.refused === true;
    await this.d.audit.record(caller, 'settings.test_alert', 'settings', null, {
      format,
      alert_id: payload.id,
      delivered: result.delivered,
      status: result.status,
      error: result.error,
      refused,
    });
    if (refused) throw invalid('alert_webhook_url', result.error ?? 'is refused');
    return result;
  }
}
