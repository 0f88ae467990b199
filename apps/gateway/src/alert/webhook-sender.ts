import { createHmac } from 'node:crypto';
import type { Alert } from '@keypin/shared';
import { Agent } from 'undici';
import { checkWebhookUrl, guardedLookup, UnsafeUrlError } from './url-guard';

export type SendResult =
  { ok: true; status: number } | { ok: false; retry: boolean; error: string; status?: number };

/** Standard Webhooks key: `whsec_<base64>` is decoded, anything else is used as UTF-8 bytes. */
export function webhookKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

/** `v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>` */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/**
 * POSTs one webhook: Standard Webhooks headers, 10 s timeout, no
 * redirects, and no private destinations unless allowed (the address is
 * checked after DNS resolution, on the socket actually used).
 */
export class WebhookSender {
  private readonly agent: Agent;

  constructor(
    private readonly allowPrivate: boolean,
    private readonly timeoutMs = 10_000,
  ) {
    this.agent = new Agent({
      connect: { lookup: guardedLookup(allowPrivate), timeout: timeoutMs },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4000,
    });
  }

  async send(url: string, id: string, body: string, secret: string | null): Promise<SendResult> {
    let target: URL;
    try {
      target = checkWebhookUrl(url, this.allowPrivate);
    } catch (err) {
      return { ok: false, retry: false, error: (err as Error).message };
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'KeyPin-Webhook/1',
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
    };
    if (secret) headers['webhook-signature'] = signWebhook(webhookKey(secret), id, timestamp, body);
    try {
      const res = await this.agent.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
      const status = res.statusCode;
      if (status >= 200 && status < 300) return { ok: true, status };
      if (status >= 300 && status < 400) {
        return { ok: false, retry: false, status, error: `HTTP ${status}: redirects are not followed` };
      }
      const retry = status >= 500 || status === 408 || status === 429;
      return { ok: false, retry, status, error: `HTTP ${status}` };
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      const code = e.code ?? e.cause?.code;
      if (e instanceof UnsafeUrlError || code === 'EUNSAFEADDRESS' || e.cause instanceof UnsafeUrlError) {
        return { ok: false, retry: false, error: e.cause?.message ?? e.message };
      }
      const reason =
        e.name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' ? 'timed out' : (code ?? e.message);
      return { ok: false, retry: true, error: `request failed: ${reason}` };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * The webhook body (contract section 3): the event type and the alert's
 * fields the contract names, typed as the admin API shows them (`Alert`);
 * not `auto_banned` nor the delivery outcome.
 */
export type WebhookPayload = { type: 'keypin.intercept_threshold' } & Pick<
  Alert,
  | 'id'
  | 'occurred_at'
  | 'binding_id'
  | 'token_display'
  | 'allowed_ips'
  | 'attempt_ips'
  | 'count'
  | 'window_seconds'
  | 'first_at'
  | 'last_at'
>;
