import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Stand-ins for the incoming webhooks of Slack, Discord, Feishu, DingTalk
 * and WeCom on loopback, each checking a request the way that service's
 * documentation says it does (docs/alert-formats.md lists the pages) and
 * answering the way it answers: Slack's `ok` or an error string, Discord's
 * message or 204, Feishu's `code`, DingTalk's and WeCom's `errcode`, with
 * the errors inside an HTTP 200 where those services put them. Written from
 * the documentation, not from KeyPin's code: nothing here imports it.
 * Feishu's 9499 and 19021 and the shapes of the answers are the documented
 * ones; DingTalk's 300001/310000/40035 and WeCom's 93000/40058 are the codes
 * those services are widely reported to answer (their pages list no table
 * for the webhook itself): KeyPin does not rely on their values.
 */
export type ChatService = 'slack' | 'discord' | 'feishu' | 'dingtalk' | 'wecom';

export interface Answer {
  status: number;
  body: unknown;
}

export interface ChatRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  headers: IncomingHttpHeaders;
  raw: string;
  json: unknown;
  at: number;
  /** Why the service refused it; null when it accepted it. */
  refusal: string | null;
  answer: Answer;
}

const PATHS: Record<ChatService, string> = {
  slack: '/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX',
  discord: '/api/webhooks/1234567890/webhook-token',
  feishu: '/open-apis/bot/v2/hook/0b5a6c8e-feishu-hook',
  dingtalk: '/robot/send?access_token=dingtalk-token-1',
  wecom: '/cgi-bin/webhook/send?key=693a91f6-wecom-key',
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): v is string => typeof v === 'string';
const len = (v: unknown): number => (str(v) ? Array.from(v).length : 0);

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

// --- Slack: a JSON message with text and/or blocks (Block Kit limits) --------------

function checkSlack(m: unknown): string | null {
  if (!isObj(m)) return 'invalid_payload';
  const blocks = m['blocks'];
  if (!str(m['text']) && !Array.isArray(blocks)) return 'no_text';
  if (Array.isArray(blocks)) {
    if (blocks.length > 50) return 'invalid_blocks';
    for (const b of blocks) {
      if (!isObj(b) || !str(b['type'])) return 'invalid_blocks';
      const text = b['text'];
      if (
        b['type'] === 'header' &&
        (!isObj(text) || text['type'] !== 'plain_text' || len(text['text']) > 150)
      )
        return 'invalid_blocks';
      if (b['type'] === 'section') {
        const fields = b['fields'];
        if (!isObj(text) && !Array.isArray(fields)) return 'invalid_blocks';
        if (isObj(text) && (len(text['text']) === 0 || len(text['text']) > 3000)) return 'invalid_blocks';
        if (
          Array.isArray(fields) &&
          (fields.length > 10 || fields.some((f) => !isObj(f) || len(f['text']) > 2000))
        )
          return 'invalid_blocks';
      }
    }
  }
  return null;
}

// --- Discord: content and/or embeds within the embed limits ------------------------

function checkDiscord(m: unknown): string | null {
  if (!isObj(m)) return 'Cannot send an empty message';
  const embeds = m['embeds'];
  if (!str(m['content']) && !Array.isArray(embeds)) return 'Cannot send an empty message';
  if (len(m['content']) > 2000) return 'content: Must be 2000 or fewer in length.';
  if (Array.isArray(embeds)) {
    if (embeds.length > 10) return 'embeds: Must be 10 or fewer in length.';
    let total = 0;
    for (const e of embeds) {
      if (!isObj(e)) return 'embeds: invalid';
      const fields = Array.isArray(e['fields']) ? (e['fields'] as unknown[]) : [];
      const footer = isObj(e['footer']) ? e['footer']['text'] : undefined;
      if (len(e['title']) > 256 || len(e['description']) > 4096 || fields.length > 25 || len(footer) > 2048)
        return 'embeds: limits exceeded';
      for (const f of fields) {
        if (
          !isObj(f) ||
          len(f['name']) === 0 ||
          len(f['name']) > 256 ||
          len(f['value']) === 0 ||
          len(f['value']) > 1024
        )
          return 'embeds.fields: invalid';
        total += len(f['name']) + len(f['value']);
      }
      total += len(e['title']) + len(e['description']) + len(footer);
    }
    if (total > 6000) return 'embeds: Embed size exceeds maximum size of 6000';
  }
  return null;
}

// --- Feishu / Lark custom bot ----------------------------------------------------------

/** Signature verification: sign = base64(HMAC-SHA256(key = timestamp + "\n" + secret, "")), timestamp within 1 h. */
function feishuSignatureOk(m: Obj, secret: string, nowMs: number): boolean {
  const ts = m['timestamp'];
  const sign = m['sign'];
  if ((!str(ts) && typeof ts !== 'number') || !str(sign)) return false;
  const seconds = Number(ts);
  if (!Number.isInteger(seconds) || Math.abs(nowMs / 1000 - seconds) > 3600) return false;
  const expected = createHmac('sha256', `${String(ts)}\n${secret}`)
    .update('')
    .digest('base64');
  return sameText(expected, sign);
}

function checkFeishuContent(m: Obj): boolean {
  const content = m['content'];
  if (!isObj(content)) return false;
  switch (m['msg_type']) {
    case 'text':
      return str(content['text']);
    case 'post': {
      const post = content['post'];
      if (!isObj(post)) return false;
      const locales = Object.values(post);
      return (
        locales.length > 0 &&
        locales.every(
          (l) =>
            isObj(l) &&
            Array.isArray(l['content']) &&
            (l['content'] as unknown[]).every(
              (line) =>
                Array.isArray(line) &&
                line.every(
                  (el) =>
                    isObj(el) &&
                    str(el['tag']) &&
                    (el['tag'] !== 'a' || (str(el['href']) && str(el['text']))),
                ),
            ),
        )
      );
    }
    case 'interactive':
      return isObj(m['card']) || isObj(content);
    default:
      return false;
  }
}

// --- DingTalk custom robot ----------------------------------------------------------------

/** Signature: sign (URL query, URL-encoded) = base64(HMAC-SHA256(secret, timestamp + "\n" + secret)), timestamp in ms within 1 h. */
function dingtalkSignatureOk(query: URLSearchParams, secret: string, nowMs: number): boolean {
  const ts = query.get('timestamp');
  const sign = query.get('sign'); // URLSearchParams has already URL-decoded it
  if (ts === null || sign === null || !/^\d+$/.test(ts)) return false;
  if (Math.abs(nowMs - Number(ts)) > 3600_000) return false;
  const expected = createHmac('sha256', secret).update(`${ts}\n${secret}`).digest('base64');
  return sameText(expected, sign);
}

function checkDingtalkBody(m: unknown): boolean {
  if (!isObj(m)) return false;
  if (m['msgtype'] === 'markdown') {
    const md = m['markdown'];
    return isObj(md) && len(md['title']) > 0 && len(md['text']) > 0;
  }
  if (m['msgtype'] === 'text') return isObj(m['text']) && str(m['text']['content']);
  return false;
}

// --- WeCom group robot ------------------------------------------------------------------------

function checkWecom(m: unknown): Answer | null {
  if (!isObj(m) || !['text', 'markdown', 'image', 'news', 'file'].includes(String(m['msgtype'])))
    return { status: 200, body: { errcode: 40008, errmsg: 'invalid message type' } };
  if (m['msgtype'] === 'markdown') {
    const md = m['markdown'];
    // markdown.content: at most 4096 bytes, UTF-8.
    if (!isObj(md) || !str(md['content']) || Buffer.byteLength(md['content'], 'utf8') > 4096)
      return { status: 200, body: { errcode: 40058, errmsg: 'markdown.content exceed max length 4096' } };
  }
  return null;
}

export class FakeChatService {
  readonly requests: ChatRequest[] = [];
  /** Answers to give instead of judging, first in first out (a service-side error, a rate limit). */
  forced: Answer[] = [];
  private server: Server | null = null;
  port = 0;

  constructor(
    readonly kind: ChatService,
    /** The signing secret the bot is configured with (Feishu, DingTalk); null: signature check off. */
    readonly secret: string | null = null,
    private readonly now: () => number = Date.now,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}${PATHS[this.kind]}`;
  }

  /** The requests the service accepted (would have posted to the channel). */
  get accepted(): ChatRequest[] {
    return this.requests.filter((r) => r.refusal === null);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          json = undefined;
        }
        const forced = this.forced.shift();
        const judged = forced
          ? { answer: forced, refusal: 'forced' }
          : this.judge(req.method ?? '', req.url ?? '', req.headers, json, raw);
        this.requests.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          raw,
          json,
          at: Date.now(),
          refusal: judged.refusal,
          answer: judged.answer,
        });
        const { status, body } = judged.answer;
        if (typeof body === 'string') {
          res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
          res.end(body);
        } else if (body === undefined) {
          res.writeHead(status);
          res.end();
        } else {
          res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
          res.end(JSON.stringify(body));
        }
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private judge(
    method: string,
    url: string,
    headers: IncomingHttpHeaders,
    json: unknown,
    raw: string,
  ): { answer: Answer; refusal: string | null } {
    const u = new URL(url, 'http://service.test');
    const ok = (answer: Answer) => ({ answer, refusal: null });
    const no = (answer: Answer, refusal: string) => ({ answer, refusal });
    const isJson = String(headers['content-type'] ?? '').startsWith('application/json');
    switch (this.kind) {
      case 'slack': {
        if (method !== 'POST') return no({ status: 405, body: 'invalid_method' }, 'method');
        const why = isJson ? checkSlack(json) : 'invalid_payload';
        return why === null ? ok({ status: 200, body: 'ok' }) : no({ status: 400, body: why }, why);
      }
      case 'discord': {
        const why = isJson ? checkDiscord(json) : 'Cannot send an empty message';
        if (why !== null)
          return no({ status: 400, body: { message: 'Invalid Form Body', code: 50035, errors: why } }, why);
        const wait = u.searchParams.get('wait') === 'true';
        return ok(
          wait
            ? { status: 200, body: { id: String(Date.now()), type: 0, ...(json as Obj) } }
            : { status: 204, body: undefined },
        );
      }
      case 'feishu': {
        if (Buffer.byteLength(raw) > 20 * 1024 || !isObj(json) || !checkFeishuContent(json))
          return no({ status: 200, body: { code: 9499, msg: 'Bad Request', data: {} } }, 'bad request');
        if (this.secret !== null && !feishuSignatureOk(json, this.secret, this.now()))
          return no(
            {
              status: 200,
              body: {
                code: 19021,
                msg: 'sign match fail or timestamp is not within one hour from current time',
                data: {},
              },
            },
            'signature',
          );
        return ok({
          status: 200,
          body: { StatusCode: 0, StatusMessage: 'success', code: 0, data: {}, msg: 'success' },
        });
      }
      case 'dingtalk': {
        if (u.searchParams.get('access_token') === null)
          return no({ status: 200, body: { errcode: 300001, errmsg: 'token is not exist' } }, 'token');
        if (this.secret !== null && !dingtalkSignatureOk(u.searchParams, this.secret, this.now()))
          return no({ status: 200, body: { errcode: 310000, errmsg: 'sign not match' } }, 'signature');
        if (!checkDingtalkBody(json))
          return no({ status: 200, body: { errcode: 40035, errmsg: 'missing parameter' } }, 'body');
        return ok({ status: 200, body: { errcode: 0, errmsg: 'ok' } });
      }
      case 'wecom': {
        if (u.searchParams.get('key') === null)
          return no({ status: 200, body: { errcode: 93000, errmsg: 'invalid webhook url' } }, 'key');
        const refused = checkWecom(json);
        return refused === null
          ? ok({ status: 200, body: { errcode: 0, errmsg: 'ok' } })
          : no(refused, 'body');
      }
    }
  }
}

/** Every text of a chat message, flattened, for "does it name …" checks. */
export function messageText(r: ChatRequest): string {
  return JSON.stringify(r.json);
}
