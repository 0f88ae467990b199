import { createHmac } from 'node:crypto';
import type { AlertWebhookFormat } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import {
  type AlertMessagePayload,
  clipBytes,
  describeAlert,
  dingtalkSign,
  feishuSign,
  judgeAnswer,
  renderWebhook,
  sampleAlert,
  windowText,
} from './alert-formats';

const NOW = Date.UTC(2026, 0, 2, 3, 4, 10); // 2026-01-02T03:04:10Z
const URLS = {
  standard: 'https://hooks.example.com/keypin',
  slack: 'https://hooks.slack.com/services/T000/B000/XXXX',
  discord: 'https://discord.com/api/webhooks/123/token',
  feishu: 'https://open.feishu.cn/open-apis/bot/v2/hook/abc',
  dingtalk: 'https://oapi.dingtalk.com/robot/send?access_token=tok123',
  wecom: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-1',
} as const;

const payload: AlertMessagePayload = {
  type: 'keypin.intercept_threshold',
  id: '01900000-0000-7000-8000-0000000000aa',
  occurred_at: '2026-01-02T03:04:10.000Z',
  binding_id: 42,
  token_display: 'abcd\u2026wxyz',
  allowed_ips: ['203.0.113.7/32'],
  attempt_ips: ['198.51.100.9', '198.51.100.10'],
  count: 5,
  window_seconds: 300,
  first_at: '2026-01-02T03:04:05.000Z',
  last_at: '2026-01-02T03:04:09.000Z',
  attempt_networks: ['198.51.100.0/24'],
  status: 'open',
  console_url: 'https://keypin.example.com/admin/ui/alerts/01900000-0000-7000-8000-0000000000aa',
};

const bodyOf = (format: AlertWebhookFormat, p = payload, secret: string | null = null) => {
  const sut = renderWebhook(p, format, secret, NOW, URLS[format]);
  return { ...sut, json: JSON.parse(sut.body) as Record<string, any> };
};

/** Every text a chat message shows, flattened. */
const textOf = (v: unknown): string => JSON.stringify(v);

describe('signatures from fixed inputs (vectors computed with Python’s hmac)', () => {
  it('Feishu: base64(HMAC-SHA256(key = timestamp + "\\n" + secret, "")), timestamp in seconds', () => {
    expect(feishuSign(1599360473, 'feishu-test-secret')).toBe('7Gq8ROqhtzskcbk2fAPXpWnrRaTUDD2iIHvbmt3/cuo=');
  });

  it('DingTalk: base64(HMAC-SHA256(secret, timestamp + "\\n" + secret)), timestamp in milliseconds', () => {
    expect(dingtalkSign(1599360473000, 'SECdingtalk-test-secret')).toBe(
      'UYtm3M+bvaSUZxjHrVVmUdeNDBelWgVs0hW2iBZdpl8=',
    );
  });

  it('DingTalk: the URL carries timestamp and the URL-encoded sign after the access_token', () => {
    const sut = renderWebhook(payload, 'dingtalk', 'SECdingtalk-test-secret', 1599360473004, URLS.dingtalk);
    expect(sut.url).toBe(
      'https://oapi.dingtalk.com/robot/send?access_token=tok123&timestamp=1599360473004' +
        '&sign=NIB%2BbGAF54mDic0d8hKbhkmzg4%2F4XfO%2Ft20jV2XBfq0%3D',
    );
  });

  it('Feishu: timestamp (seconds, a string) and sign go in the body, before msg_type', () => {
    const sut = renderWebhook(payload, 'feishu', 'feishu-test-secret', 1599360473_999, URLS.feishu);
    const json = JSON.parse(sut.body) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['timestamp', 'sign', 'msg_type', 'content']);
    expect(json).toMatchObject({
      timestamp: '1599360473',
      sign: '7Gq8ROqhtzskcbk2fAPXpWnrRaTUDD2iIHvbmt3/cuo=',
    });
    expect(sut.url).toBe(URLS.feishu);
  });

  it('standard: Standard Webhooks headers over the exact body, signed with the secret', () => {
    const sut = renderWebhook(payload, 'standard', 'whook-secret', NOW, URLS.standard);
    expect(sut.body).toBe(JSON.stringify(payload));
    const ts = String(Math.floor(NOW / 1000));
    const expected = createHmac('sha256', 'whook-secret')
      .update(`${payload.id}.${ts}.${sut.body}`)
      .digest('base64');
    expect(sut.headers).toMatchObject({
      'content-type': 'application/json',
      'webhook-id': payload.id,
      'webhook-timestamp': ts,
      'webhook-signature': `v1,${expected}`,
    });
  });

  it.each(['slack', 'discord', 'wecom'] as const)('%s: no signature anywhere, the URL as given', (format) => {
    const sut = renderWebhook(payload, format, 'a-secret', NOW, URLS[format]);
    expect(Object.keys(sut.headers).sort()).toEqual(['content-type', 'user-agent']);
    expect(sut.body).not.toMatch(/sign|a-secret/);
    if (format !== 'discord') expect(sut.url).toBe(URLS[format]);
  });

  it('Feishu and DingTalk without a secret: no timestamp or sign at all', () => {
    expect(bodyOf('feishu').json).not.toHaveProperty('sign');
    expect(bodyOf('feishu').json).not.toHaveProperty('timestamp');
    expect(bodyOf('dingtalk').url).toBe(URLS.dingtalk);
  });
});

describe('each format’s body', () => {
  it('standard: exactly the payload, nothing added', () => {
    expect(bodyOf('standard').json).toEqual(payload);
  });

  it('Slack: text (the notification line) and blocks: header, fields, the console link, context', () => {
    const { json } = bodyOf('slack');
    expect(Object.keys(json)).toEqual(['text', 'blocks']);
    expect(json['text']).toContain('abcd\u2026wxyz');
    const blocks = json['blocks'] as {
      type: string;
      text?: { type: string; text: string };
      fields?: unknown[];
    }[];
    expect(blocks.map((b) => b.type)).toEqual(['header', 'section', 'section', 'context']);
    expect(blocks[0]!.text).toMatchObject({ type: 'plain_text' });
    expect(blocks[0]!.text!.text.length).toBeLessThanOrEqual(150);
    expect(blocks[1]!.fields!.length).toBeLessThanOrEqual(10);
    expect(blocks[2]!.text).toEqual({
      type: 'mrkdwn',
      text: `<${payload.console_url}|Open this alert in KeyPin>`,
    });
  });

  it('Slack: &, < and > in mrkdwn values are escaped (Slack’s control characters); plain_text is not', () => {
    const { json } = bodyOf('slack', { ...payload, token_display: 'a<b>&c' });
    const blocks = json['blocks'] as { type: string; text?: { text: string }; fields?: { text: string }[] }[];
    const mrkdwn = [json['text'] as string, ...blocks.flatMap((b) => b.fields ?? []).map((f) => f.text)];
    expect(mrkdwn.join('\n')).toContain('a&lt;b&gt;&amp;c');
    expect(mrkdwn.join('\n')).not.toContain('a<b>');
    expect(blocks[0]!.text!.text).toContain('a<b>&c');
  });

  it('Discord: content and one embed within the limits, no mentions, ?wait=true on the URL', () => {
    const sut = bodyOf('discord');
    expect(new URL(sut.url).searchParams.get('wait')).toBe('true');
    expect(sut.url.startsWith(URLS.discord)).toBe(true);
    const { json } = sut;
    expect(json['allowed_mentions']).toEqual({ parse: [] });
    expect((json['content'] as string).length).toBeLessThanOrEqual(2000);
    const [embed] = json['embeds'] as Record<string, any>[];
    expect(embed).toMatchObject({ url: payload.console_url, timestamp: payload.occurred_at });
    expect(embed!['title'].length).toBeLessThanOrEqual(256);
    expect(embed!['fields'].length).toBeLessThanOrEqual(25);
    for (const f of embed!['fields']) expect(f.value.length).toBeLessThanOrEqual(1024);
    const total = [embed!['title'], embed!['description'], embed!['footer'].text]
      .concat(embed!['fields'].flatMap((f: { name: string; value: string }) => [f.name, f.value]))
      .join('').length;
    expect(total).toBeLessThanOrEqual(6000);
  });

  it('Discord: a wait already in the URL is kept', () => {
    const sut = renderWebhook(payload, 'discord', null, NOW, `${URLS.discord}?wait=false&thread_id=9`);
    expect(sut.url).toBe(`${URLS.discord}?wait=false&thread_id=9`);
  });

  it('Feishu: a rich-text post with a title, one line per fact and the console link', () => {
    const { json } = bodyOf('feishu');
    expect(json['msg_type']).toBe('post');
    const post = json['content'].post.zh_cn as { title: string; content: { tag: string; href?: string }[][] };
    expect(post.title).toContain('abcd\u2026wxyz');
    expect(post.content.every((line) => Array.isArray(line) && line.length > 0)).toBe(true);
    expect(post.content.flat().filter((e) => e.tag === 'a')).toEqual([
      { tag: 'a', text: 'Open this alert in KeyPin', href: payload.console_url },
    ]);
  });

  it('DingTalk: msgtype markdown with a title and text, and the alert id as msgUuid', () => {
    const { json } = bodyOf('dingtalk');
    expect(json).toMatchObject({ msgtype: 'markdown', msgUuid: payload.id });
    expect(json['markdown'].title).toContain('abcd\u2026wxyz');
    expect(json['markdown'].text).toContain(`[Open this alert in KeyPin](${payload.console_url})`);
  });

  it('WeCom: msgtype markdown, content at most 4096 bytes even with many networks', () => {
    const many = Array.from({ length: 500 }, (_, i) => `2001:db8:${i.toString(16)}::/64`);
    const { json } = bodyOf('wecom', { ...payload, attempt_networks: many, attempt_ips: many });
    expect(json['msgtype']).toBe('markdown');
    expect(Buffer.byteLength(json['markdown'].content, 'utf8')).toBeLessThanOrEqual(4096);
    expect(json['markdown'].content).toContain('and 490 more');
  });

  it.each(['slack', 'discord', 'feishu', 'dingtalk', 'wecom'] as const)(
    '%s names the masked key, the networks, the attempt IPs, the count, the window and the console link',
    (format) => {
      const text = textOf(bodyOf(format).json);
      for (const needle of [
        'abcd\u2026wxyz',
        '198.51.100.0/24',
        '198.51.100.9',
        '198.51.100.10',
        '5 refused requests',
        '5 min',
        payload.console_url!,
      ]) {
        expect(text, needle).toContain(needle);
      }
      // Feishu's and DingTalk's keyword security setting: "KeyPin" is always there.
      expect(text).toContain('KeyPin');
    },
  );

  it.each(['slack', 'discord', 'feishu', 'dingtalk', 'wecom'] as const)(
    '%s renders a payload without the section 11 fields: networks from the IPs, no link',
    (format) => {
      const { attempt_networks: _n, status: _s, console_url: _c, ...bare } = payload;
      const text = textOf(bodyOf(format, bare).json);
      expect(text).toContain('198.51.100.9');
      expect(text).not.toContain('Open this alert');
      expect(textOf(bodyOf(format, { ...payload, console_url: null }).json)).not.toContain('Open this alert');
    },
  );
});

describe('the message', () => {
  it('counts and lists in words; a test alert says so', () => {
    const m = describeAlert(payload);
    expect(m.title).toBe('KeyPin alert: key abcd\u2026wxyz used from 1 other network');
    expect(m.facts).toContainEqual({ label: 'Requests', value: '5 refused requests in 5 min' });
    expect(describeAlert(sampleAlert('x', NOW, null)).title).toMatch(/^\[Test\] KeyPin alert/);
  });

  it.each([
    [1, '1 s'],
    [90, '90 s'],
    [300, '5 min'],
    [3600, '1 h'],
    [5400, '90 min'],
    [86400, '1 d'],
    [172800, '2 d'],
  ])('window %i s reads "%s"', (s, text) => {
    expect(windowText(s)).toBe(text);
  });

  it('clipBytes never splits a character', () => {
    expect(clipBytes('ééé', 5)).toBe('é…');
    expect(clipBytes('abc', 3)).toBe('abc');
  });

  it('the sample alert: documentation addresses, binding 0, test: true, the alerts page under PUBLIC_URL', () => {
    const sut = sampleAlert('id-1', NOW, 'https://k.example.com');
    expect(sut).toMatchObject({
      id: 'id-1',
      binding_id: 0,
      test: true,
      occurred_at: '2026-01-02T03:04:10.000Z',
      console_url: 'https://k.example.com/admin/ui/alerts',
    });
    expect(sampleAlert('id-1', NOW, null).console_url).toBeNull();
  });
});

describe('judging the answer', () => {
  it.each([
    // HTTP first, the same for every format.
    ['discord', 302, '', { ok: false, retry: false, error: 'HTTP 302: redirects are not followed' }],
    ['standard', 400, 'nope', { ok: false, retry: false, error: 'HTTP 400' }],
    ['standard', 503, '', { ok: false, retry: true, error: 'HTTP 503' }],
    ['slack', 404, 'channel_not_found', { ok: false, retry: false, error: 'HTTP 404: channel_not_found' }],
    ['slack', 429, 'rate_limited', { ok: false, retry: true, error: 'HTTP 429: rate_limited' }],
    [
      'discord',
      400,
      '{"message": "Invalid Form Body", "code": 50035}',
      { ok: false, retry: false, error: 'HTTP 400: Invalid Form Body 50035' },
    ],
    [
      'discord',
      429,
      '{"message": "You are being rate limited.", "retry_after": 1.5}',
      { ok: false, retry: true, error: 'HTTP 429: You are being rate limited.' },
    ],
    // Inside a 2xx.
    ['standard', 204, '', { ok: true }],
    ['discord', 200, '{"id": "1"}', { ok: true }],
    ['discord', 204, '', { ok: true }],
    ['slack', 200, 'ok', { ok: true }],
    [
      'slack',
      200,
      'invalid_payload',
      { ok: false, retry: true, error: 'Slack answered HTTP 200 "invalid_payload" instead of "ok"' },
    ],
    ['feishu', 200, '{"code":0,"msg":"success","data":{}}', { ok: true }],
    ['feishu', 200, '{"StatusCode":0,"StatusMessage":"success"}', { ok: true }],
    [
      'feishu',
      200,
      '{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}',
      {
        ok: false,
        retry: false,
        error: 'Feishu code 19021: sign match fail or timestamp is not within one hour from current time',
      },
    ],
    [
      'feishu',
      200,
      '{"code":9499,"msg":"Bad Request","data":{}}',
      { ok: false, retry: false, error: 'Feishu code 9499: Bad Request' },
    ],
    [
      'feishu',
      200,
      '{"code":11232,"msg":"frequency limited"}',
      { ok: false, retry: true, error: 'Feishu code 11232: frequency limited' },
    ],
    ['dingtalk', 200, '{"errcode":0,"errmsg":"ok"}', { ok: true }],
    [
      'dingtalk',
      200,
      '{"errcode":-1,"errmsg":"system busy"}',
      { ok: false, retry: true, error: 'DingTalk errcode -1: system busy' },
    ],
    ['wecom', 200, '{"errcode":0,"errmsg":"ok"}', { ok: true }],
    [
      'wecom',
      200,
      '{"errcode":40008,"errmsg":"invalid message type"}',
      { ok: false, retry: false, error: 'WeCom errcode 40008: invalid message type' },
    ],
    [
      'wecom',
      200,
      '{"errcode":-1,"errmsg":"system busy"}',
      { ok: false, retry: true, error: 'WeCom errcode -1: system busy' },
    ],
    [
      'wecom',
      200,
      '<html>captive portal</html>',
      {
        ok: false,
        retry: true,
        error: 'WeCom answered HTTP 200 without a result code: "<html>captive portal</html>"',
      },
    ],
  ] as const)('%s, HTTP %i %s', (format, status, body, verdict) => {
    expect(judgeAnswer(format, status, body)).toEqual(verdict);
  });
});
