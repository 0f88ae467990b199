import type { Alert, AlertWebhookFormat } from '@keypin/shared';
import { Agent } from 'undici';
import {
  type AlertMessagePayload,
  judgeAnswer,
  type RenderedWebhook,
  renderWebhook,
  signWebhook,
  WEBHOOK_USER_AGENT,
  webhookKey,
} from './alert-formats';
import { checkWebhookUrl, guardedLookup, UnsafeUrlError } from './url-guard';

// Kept here for the callers that import them from the sender.
export { signWebhook, webhookKey } from './alert-formats';

/**
 * One attempt's outcome. `status` and `body` (the answer, at most
 * `ANSWER_LIMIT` bytes read) are there when the receiver answered;
 * `refused` when the SSRF guard stopped the request before anything was
 * sent.
 */
export type SendResult =
  | { ok: true; status: number; body?: string }
  | { ok: false; retry: boolean; error: string; status?: number; body?: string; refused?: boolean };

/** How much of an answer is read (and judged); the rest is discarded. */
export const ANSWER_LIMIT = 64 * 1024;

/**
 * POSTs one webhook: 10 s timeout, no redirects, and no private
 * destinations unless allowed (the address is checked after DNS
 * resolution, on the socket actually used). The body, headers and URL come
 * from the alert's format (alert-formats.ts); so does the judgement of the
 * answer. One attempt per call: retries are the queue's.
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

  /** One alert in `format` (`standard`: the contract's JSON with Standard Webhooks headers). */
  sendAlert(
    url: string,
    payload: AlertMessagePayload,
    format: AlertWebhookFormat,
    secret: string | null,
    nowMs = Date.now(),
  ): Promise<SendResult> {
    let rendered: RenderedWebhook;
    try {
      checkWebhookUrl(url, this.allowPrivate);
      rendered = renderWebhook(payload, format, secret, nowMs, url);
    } catch (err) {
      return Promise.resolve(this.refusal(err));
    }
    return this.post(rendered.url, rendered.headers, rendered.body, format);
  }

  /**
   * A `standard` delivery of a body already serialised: Standard Webhooks
   * headers, signed with `secret` when set.
   */
  send(url: string, id: string, body: string, secret: string | null): Promise<SendResult> {
    try {
      checkWebhookUrl(url, this.allowPrivate);
    } catch (err) {
      return Promise.resolve(this.refusal(err));
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': WEBHOOK_USER_AGENT,
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
    };
    if (secret) headers['webhook-signature'] = signWebhook(webhookKey(secret), id, timestamp, body);
    return this.post(url, headers, body, 'standard');
  }

  private refusal(err: unknown): SendResult {
    return { ok: false, retry: false, refused: true, error: (err as Error).message };
  }

  private async post(
    url: string,
    headers: Record<string, string>,
    body: string,
    format: AlertWebhookFormat,
  ): Promise<SendResult> {
    let target: URL;
    try {
      target = checkWebhookUrl(url, this.allowPrivate);
    } catch (err) {
      return this.refusal(err);
    }
    try {
      const res = await this.agent.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const status = res.statusCode;
      const answer = await readAnswer(res.body);
      const verdict = judgeAnswer(format, status, answer);
      return verdict.ok ? { ok: true, status, body: answer } : { ...verdict, status, body: answer };
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      const code = e.code ?? e.cause?.code;
      if (e instanceof UnsafeUrlError || code === 'EUNSAFEADDRESS' || e.cause instanceof UnsafeUrlError) {
        return { ok: false, retry: false, refused: true, error: e.cause?.message ?? e.message };
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

/** The first `ANSWER_LIMIT` bytes of an answer as text; the rest is read and dropped. */
async function readAnswer(stream: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (size < ANSWER_LIMIT) chunks.push(b.subarray(0, ANSWER_LIMIT - size));
      size += b.length;
      if (size > 16 * ANSWER_LIMIT) break;
    }
  } catch {
    // A broken answer body: judge what arrived.
  }
  return Buffer.concat(chunks).toString('utf8');
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
