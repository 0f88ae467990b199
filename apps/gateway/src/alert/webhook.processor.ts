import type { Alert } from '@keypin/shared';
import { type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { SettingsService } from '../settings/settings.service';
import type { AlertRecord, AlertRepository } from './alert.repository';
import type { WebhookPayload, WebhookSender } from './webhook-sender';

export interface WebhookJob {
  alertId: string;
}

/**
 * The webhook body of an alert (docs/contract.md 3 and 11, docs/alerts.md):
 * the contract's fields, then the networks the attempts came from, the
 * alert's status when the body was built, and `console_url`, the alert's
 * page in the console (`PUBLIC_URL` + `/admin/ui/alerts/<id>`; null when
 * PUBLIC_URL is not set). A plain object: every format is rendered from it.
 */
export type AlertWebhookPayload = WebhookPayload &
  Pick<Alert, 'attempt_networks' | 'status'> & { console_url: string | null };

/** The console page of an alert under PUBLIC_URL (kept without a trailing slash), or null without one. */
export function consoleUrlOf(publicUrl: string | null, alertId: string): string | null {
  return publicUrl === null ? null : `${publicUrl}/admin/ui/alerts/${encodeURIComponent(alertId)}`;
}

export function payloadOf(a: AlertRecord, publicUrl: string | null = null): AlertWebhookPayload {
  return {
    type: 'keypin.intercept_threshold',
    id: a.id,
    occurred_at: new Date(a.occurred_at).toISOString(),
    binding_id: Number(a.binding_id),
    token_display: a.token_display,
    allowed_ips: a.allowed_ips,
    attempt_ips: a.attempt_ips,
    count: a.count,
    window_seconds: a.window_seconds,
    first_at: new Date(a.first_at).toISOString(),
    last_at: new Date(a.last_at).toISOString(),
    attempt_networks: a.attempt_networks ?? [],
    status: a.status,
    console_url: consoleUrlOf(publicUrl, a.id),
  };
}

/** Exponential backoff with ±20% jitter: base, 2×base, 4×base … */
export function backoffDelay(attemptsMade: number, baseMs: number, random = Math.random): number {
  return Math.round(baseMs * 2 ** Math.max(0, attemptsMade - 1) * (0.8 + 0.4 * random()));
}

/**
 * Delivers one alert. The body is rebuilt from the stored alert, so every
 * attempt sends the same bytes with the same `webhook-id` (unless an admin
 * acted on the alert in between: the retry then carries its new `status`).
 * Each attempt's outcome is recorded; 4xx other than 408/429 is final.
 */
export class WebhookProcessor {
  constructor(
    private readonly alerts: AlertRepository,
    private readonly sender: WebhookSender,
    private readonly settings: SettingsService,
    private readonly secret: () => string | null,
    private readonly logger: Logger,
    /** PUBLIC_URL, for the payload's `console_url`. */
    private readonly publicUrl: string | null = null,
  ) {}

  async process(job: Job<WebhookJob>): Promise<void> {
    const alert = await this.alerts.get(job.data.alertId);
    if (alert === null || alert.delivery_status !== 'pending') return;
    const url = this.settings.current.alert_webhook_url;
    if (url === null) {
      await this.alerts.markFailed(alert.id, 'no webhook URL is configured (ALERT_WEBHOOK_URL)');
      return;
    }
    // Rendered in the configured format (docs/alert-formats.md); `standard` is this payload as JSON.
    const result = await this.sender.sendAlert(
      url,
      payloadOf(alert, this.publicUrl),
      this.settings.current.alert_webhook_format,
      this.secret(),
    );
    const maxAttempts = job.opts.attempts ?? 1;
    const final = job.attemptsMade + 1 >= maxAttempts;
    if (result.ok) {
      await this.alerts.recordAttempt(alert.id, { status: 'delivered', error: null });
      this.logger.info({ alert: alert.id, status: result.status }, 'alert webhook delivered');
      return;
    }
    const status = !result.retry || final ? 'failed' : 'pending';
    await this.alerts.recordAttempt(alert.id, { status, error: result.error });
    this.logger.warn(
      { alert: alert.id, error: result.error, attempt: job.attemptsMade + 1 },
      'alert webhook failed',
    );
    if (!result.retry) throw new UnrecoverableError(result.error);
    throw new Error(result.error);
  }
}
