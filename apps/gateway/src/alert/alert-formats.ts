import { createHmac } from 'node:crypto';
import type { AlertStatus, AlertWebhookFormat } from '@keypin/shared';
import type { WebhookPayload } from './webhook-sender';

/**
 * Alert formats (docs/contract.md 11, docs/alert-formats.md): one alert,
 * written as the body each service's incoming webhook accepts, signed the
 * way that service signs, and the service's answer judged the way it
 * reports errors. Pure functions: the payload, the format, the secret and
 * the clock go in; the request (URL, headers, body) or the verdict comes
 * out. Sending, the SSRF guard and retries are the sender's
 * (webhook-sender.ts) and the queue's, the same for every format.
 */

/**
 * The alert as every format reads it: the contract's fields (section 3),
 * then what section 11 adds. Those are optional here: a payload without
 * them still renders (the networks fall back to the attempted IPs, no
 * link without `console_url`). `test` marks the console's sample alert.
 */
export type AlertMessagePayload = WebhookPayload & {
  attempt_networks?: string[];
  status?: AlertStatus;
  console_url?: string | null;
  test?: boolean;
};

/** One HTTP request to make: always a POST of `body`. */
export interface RenderedWebhook {
  url: string;
  headers: Record<string, string>;
  body: string;
}

export type Verdict = { ok: true } | { ok: false; retry: boolean; error: string };

export const WEBHOOK_USER_AGENT = 'KeyPin-Webhook/1';

// --- signing -------------------------------------------------------------

/** Standard Webhooks key: `whsec_<base64>` is decoded, anything else is used as UTF-8 bytes. */
export function webhookKey(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

/** `v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>` */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/**
 * Feishu / Lark custom bot signature: base64 of HMAC-SHA256 keyed with
 * `timestamp + "\n" + secret` over an empty message (timestamp in seconds).
 */
export function feishuSign(timestampSeconds: number, secret: string): string {
  return createHmac('sha256', `${timestampSeconds}\n${secret}`).update('').digest('base64');
}

/**
 * DingTalk custom robot signature before URL encoding: base64 of
 * HMAC-SHA256 keyed with the secret over `timestamp + "\n" + secret`
 * (timestamp in milliseconds). The URL carries it URL-encoded.
 */
export function dingtalkSign(timestampMs: number, secret: string): string {
  return createHmac('sha256', secret).update(`${timestampMs}\n${secret}`).digest('base64');
}

// --- the message, shared by the chat formats -------------------------------

/** At most this many networks or addresses are listed; the rest are counted. */
const LIST_MAX = 10;

interface Fact {
  label: string;
  value: string;
}

interface AlertMessage {
  title: string;
  /** One line for notifications and previews. */
  summary: string;
  facts: Fact[];
  link: string | null;
  footer: string;
}

/** 300 → "5 min", 3600 → "1 h", 86400 → "1 d", 90 → "90 s". */
export function windowText(seconds: number): string {
  if (seconds >= 86400 && seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function listText(items: readonly string[]): string {
  if (items.length === 0) return 'none';
  const shown = items.slice(0, LIST_MAX).join(', ');
  return items.length > LIST_MAX ? `${shown} and ${items.length - LIST_MAX} more` : shown;
}

function networksOf(p: AlertMessagePayload): string[] {
  return p.attempt_networks && p.attempt_networks.length > 0 ? p.attempt_networks : p.attempt_ips;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The alert in words: every chat format shows these, each in its own markup. */
export function describeAlert(p: AlertMessagePayload): AlertMessage {
  const networks = networksOf(p);
  const prefix = p.test ? '[Test] ' : '';
  const title = `${prefix}KeyPin alert: key ${p.token_display} used from ${plural(networks.length, 'other network', 'other networks')}`;
  const requests = `${plural(p.count, 'refused request', 'refused requests')} in ${windowText(p.window_seconds)}`;
  const facts: Fact[] = [
    { label: 'Key', value: p.token_display },
    { label: 'Requests', value: requests },
    { label: 'Networks', value: listText(networks) },
    { label: 'Attempt IPs', value: listText(p.attempt_ips) },
    { label: 'Allowed', value: listText(p.allowed_ips) },
    { label: 'Window', value: `${p.first_at} – ${p.last_at}` },
    { label: 'Binding', value: `#${p.binding_id}` },
  ];
  if (p.status !== undefined) facts.push({ label: 'Status', value: p.status });
  return {
    title,
    summary: `${prefix}KeyPin alert: key ${p.token_display}, ${requests} from ${listText(networks)}`,
    facts,
    link: p.console_url ?? null,
    footer: `${p.test ? 'Test alert (sample data)' : 'Alert'} ${p.id} · raised ${p.occurred_at}`,
  };
}

/** Cuts a string to `max` characters (code points), ending with "…" when cut. */
export function clip(s: string, max: number): string {
  const chars = Array.from(s);
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('')}…`;
}

/** Cuts a string to at most `max` UTF-8 bytes, on a character boundary, ending with "…" when cut. */
export function clipBytes(s: string, max: number): string {
  if (Buffer.byteLength(s, 'utf8') <= max) return s;
  let out = '';
  let used = Buffer.byteLength('…', 'utf8');
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (used + n > max) break;
    out += ch;
    used += n;
  }
  return `${out}…`;
}

/** A code span without backticks inside (so a value cannot end it early). */
function code(s: string): string {
  return `\`${s.replace(/`/g, "'")}\``;
}

// --- Slack -----------------------------------------------------------------

/** Slack's three control characters, as its formatting reference asks. */
function slackEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function slackBody(m: AlertMessage): unknown {
  // Block Kit limits: header text 150, section fields 10 × 2000, section text 3000.
  const fields = m.facts.slice(0, 10).map((f) => ({
    type: 'mrkdwn',
    text: clip(
      `*${f.label}*\n${f.label === 'Key' ? code(slackEscape(f.value)) : slackEscape(f.value)}`,
      2000,
    ),
  }));
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: clip(m.title, 150), emoji: false } },
    { type: 'section', fields },
  ];
  if (m.link) {
    const text = `<${slackEscape(m.link)}|Open this alert in KeyPin>`;
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: clip(text, 3000) } });
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: clip(slackEscape(m.footer), 3000) }] });
  // `text` is what notifications show when blocks are present.
  const text = m.link ? `${m.summary} · ${m.link}` : m.summary;
  return { text: clip(slackEscape(text), 3000), blocks };
}

// --- Discord ---------------------------------------------------------------

function discordBody(m: AlertMessage, p: AlertMessagePayload): unknown {
  // Embed limits: title 256, description 4096, 25 fields (name 256, value 1024), footer 2048,
  // 6000 characters in all; content 2000.
  const embed: Record<string, unknown> = {
    title: clip(m.title, 256),
    description: clip(m.link ? `${m.summary}\n\n[Open this alert in KeyPin](${m.link})` : m.summary, 1500),
    color: p.test ? 0x3b82f6 : 0xe5484d,
    fields: m.facts.map((f) => ({
      name: f.label,
      value: clip(f.label === 'Key' ? code(f.value) : f.value, 500),
      inline: f.label !== 'Attempt IPs' && f.label !== 'Networks' && f.label !== 'Window',
    })),
    footer: { text: clip(m.footer, 300) },
    timestamp: p.occurred_at,
  };
  if (m.link) embed['url'] = m.link;
  return {
    content: clip(m.summary, 300),
    embeds: [embed],
    // Nothing in an alert may ping anyone.
    allowed_mentions: { parse: [] },
  };
}

/** `?wait=true`: Discord then confirms the message was saved (or answers the error). */
function discordUrl(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has('wait')) u.searchParams.set('wait', 'true');
  return u.toString();
}

// --- Feishu / Lark ----------------------------------------------------------

function feishuBody(m: AlertMessage, secret: string | null, nowMs: number): unknown {
  const lines: unknown[][] = m.facts.map((f) => [{ tag: 'text', text: `${f.label}: ${f.value}` }]);
  if (m.link) lines.push([{ tag: 'a', text: 'Open this alert in KeyPin', href: m.link }]);
  lines.push([{ tag: 'text', text: m.footer }]);
  const body: Record<string, unknown> = {};
  if (secret) {
    const timestamp = Math.floor(nowMs / 1000);
    body['timestamp'] = String(timestamp);
    body['sign'] = feishuSign(timestamp, secret);
  }
  body['msg_type'] = 'post';
  body['content'] = { post: { zh_cn: { title: m.title, content: lines } } };
  return body;
}

// --- DingTalk ---------------------------------------------------------------

function dingtalkBody(m: AlertMessage, p: AlertMessagePayload): unknown {
  const lines = [
    `#### ${m.title}`,
    '',
    ...m.facts.map((f) => `- **${f.label}**: ${f.value}`),
    '',
    ...(m.link ? [`[Open this alert in KeyPin](${m.link})`, ''] : []),
    `> ${m.footer}`,
  ];
  return {
    msgtype: 'markdown',
    markdown: { title: clip(m.summary, 100), text: lines.join('\n') },
    // DingTalk's idempotency key: a retried alert is not posted twice.
    msgUuid: p.id,
  };
}

/** The webhook URL with `timestamp` and `sign` appended (the URL's own query is kept as written). */
function dingtalkUrl(url: string, secret: string | null, nowMs: number): string {
  if (!secret) return url;
  const base = url.split('#')[0]!;
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${sep}timestamp=${nowMs}&sign=${encodeURIComponent(dingtalkSign(nowMs, secret))}`;
}

// --- WeCom --------------------------------------------------------------------

function wecomBody(m: AlertMessage): unknown {
  const lines = [
    `## ${m.title}`,
    ...m.facts.map((f) =>
      f.label === 'Networks'
        ? `> ${f.label}: <font color="warning">${f.value}</font>`
        : `> ${f.label}: ${f.label === 'Key' ? code(f.value) : f.value}`,
    ),
    ...(m.link ? [`[Open this alert in KeyPin](${m.link})`] : []),
    `<font color="comment">${m.footer}</font>`,
  ];
  // The markdown content is at most 4096 bytes.
  return { msgtype: 'markdown', markdown: { content: clipBytes(lines.join('\n'), 4096) } };
}

// --- rendering ---------------------------------------------------------------

/**
 * The request that delivers `payload` in `format` to `url`: the body, the
 * headers and, for DingTalk's signature and Discord's `wait`, the URL.
 * `secret` signs `standard` (Standard Webhooks), `feishu` and `dingtalk`;
 * the other services do not sign (their URL is the secret). `nowMs` is the
 * clock the signatures' timestamps come from.
 */
export function renderWebhook(
  payload: AlertMessagePayload,
  format: AlertWebhookFormat,
  secret: string | null,
  nowMs: number,
  url: string,
): RenderedWebhook {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': WEBHOOK_USER_AGENT,
  };
  if (format === 'standard') {
    const body = JSON.stringify(payload);
    const timestamp = Math.floor(nowMs / 1000);
    headers['webhook-id'] = payload.id;
    headers['webhook-timestamp'] = String(timestamp);
    if (secret) headers['webhook-signature'] = signWebhook(webhookKey(secret), payload.id, timestamp, body);
    return { url, headers, body };
  }
  const m = describeAlert(payload);
  switch (format) {
    case 'slack':
      return { url, headers, body: JSON.stringify(slackBody(m)) };
    case 'discord':
      return { url: discordUrl(url), headers, body: JSON.stringify(discordBody(m, payload)) };
    case 'feishu':
      return { url, headers, body: JSON.stringify(feishuBody(m, secret, nowMs)) };
    case 'dingtalk':
      return {
        url: dingtalkUrl(url, secret, nowMs),
        headers: { ...headers, 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify(dingtalkBody(m, payload)),
      };
    case 'wecom':
      return { url, headers, body: JSON.stringify(wecomBody(m)) };
  }
}

/**
 * The console's sample alert (`POST /admin/api/settings/test-alert`): the
 * shape of a real one with documentation addresses, binding 0, `test: true`
 * and, with PUBLIC_URL, a link to the console's alerts page.
 */
export function sampleAlert(id: string, nowMs: number, publicUrl: string | null): AlertMessagePayload {
  const at = (secondsAgo: number) => new Date(nowMs - secondsAgo * 1000).toISOString();
  return {
    type: 'keypin.intercept_threshold',
    id,
    occurred_at: at(0),
    binding_id: 0,
    token_display: 'sk-t\u2026test',
    allowed_ips: ['203.0.113.7/32'],
    attempt_ips: ['198.51.100.9', '198.51.100.23'],
    count: 5,
    window_seconds: 300,
    first_at: at(40),
    last_at: at(1),
    attempt_networks: ['198.51.100.9/32', '198.51.100.23/32'],
    status: 'open',
    console_url: publicUrl === null ? null : `${publicUrl}/admin/ui/alerts`,
    test: true,
  };
}

// --- judging the answer -----------------------------------------------------------

/**
 * Codes each service documents as a refusal of the request itself: a retry
 * would be refused the same way, so the delivery fails at once. Every other
 * error inside a 2xx is retried like a 5xx (docs/alert-formats.md).
 */
const FINAL_CODES: Partial<Record<AlertWebhookFormat, ReadonlySet<number>>> = {
  // 9499 Bad Request (body format or size), 19021 signature or timestamp refused.
  feishu: new Set([9499, 19021]),
  // 40008 invalid msgtype.
  wecom: new Set([40008]),
};

const SERVICE_NAMES: Record<AlertWebhookFormat, string> = {
  standard: 'The receiver',
  slack: 'Slack',
  discord: 'Discord',
  feishu: 'Feishu',
  dingtalk: 'DingTalk',
  wecom: 'WeCom',
};

function oneLine(s: string, max = 200): string {
  return clip(s.replace(/\s+/g, ' ').trim(), max);
}

function parseObject(body: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(body);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The service's own words about a refusal, for the recorded error: its message field, else the text. */
function detailOf(format: AlertWebhookFormat, body: string): string {
  const o = parseObject(body);
  const said =
    o === null
      ? body
      : format === 'discord'
        ? [o['message'], o['code']]
            .filter((v): v is string | number => typeof v === 'string' || typeof v === 'number')
            .join(' ')
        : [o['msg'], o['errmsg'], o['message'], o['StatusMessage']].find((v) => typeof v === 'string');
  const text = typeof said === 'string' ? oneLine(said) : '';
  return text === '' ? '' : `: ${text}`;
}

/** The result code inside a 2xx of the services that answer errors that way (undefined: none found). */
function resultCode(format: AlertWebhookFormat, o: Record<string, unknown>): number | undefined {
  const pick = (...keys: string[]) => keys.map((k) => o[k]).find((v): v is number => typeof v === 'number');
  return format === 'feishu' ? pick('code', 'StatusCode') : pick('errcode');
}

/**
 * Whether an answer means delivered, and if not, whether to try again.
 * The HTTP status first, the same for every format (no redirects; 5xx,
 * 408, 429 retried; other 4xx final); then, inside a 2xx, what the
 * service says: Slack's `ok`, Feishu's `code`, DingTalk's and WeCom's
 * `errcode`. An error inside a 2xx is recorded with the service's code
 * and message and retried unless the code is in `FINAL_CODES`.
 */
export function judgeAnswer(format: AlertWebhookFormat, status: number, body: string): Verdict {
  const name = SERVICE_NAMES[format];
  if (status >= 300 && status < 400) {
    return { ok: false, retry: false, error: `HTTP ${status}: redirects are not followed` };
  }
  if (status < 200 || status >= 300) {
    const retry = status >= 500 || status === 408 || status === 429;
    // `standard` keeps the contract's terse record; the services' own words help more.
    return {
      ok: false,
      retry,
      error: format === 'standard' ? `HTTP ${status}` : `HTTP ${status}${detailOf(format, body)}`,
    };
  }
  switch (format) {
    case 'standard':
    case 'discord':
      return { ok: true };
    case 'slack':
      return body.trim() === 'ok'
        ? { ok: true }
        : {
            ok: false,
            retry: true,
            error: `Slack answered HTTP ${status} "${oneLine(body, 100)}" instead of "ok"`,
          };
    case 'feishu':
    case 'dingtalk':
    case 'wecom': {
      const o = parseObject(body);
      const codeValue = o === null ? undefined : resultCode(format, o);
      if (codeValue === 0) return { ok: true };
      if (codeValue === undefined) {
        return {
          ok: false,
          retry: true,
          error: `${name} answered HTTP ${status} without a result code: "${oneLine(body, 100)}"`,
        };
      }
      const field = format === 'feishu' ? 'code' : 'errcode';
      return {
        ok: false,
        retry: !(FINAL_CODES[format]?.has(codeValue) ?? false),
        error: `${name} ${field} ${codeValue}${detailOf(format, body)}`,
      };
    }
  }
}
