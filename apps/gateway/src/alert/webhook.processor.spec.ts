import { describe, expect, it } from 'vitest';
import type { AlertRecord } from './alert.repository';
import { consoleUrlOf, payloadOf } from './webhook.processor';

const record: AlertRecord = {
  id: '01900000-0000-7000-8000-0000000000aa',
  binding_id: '42',
  token_display: 'abcd\u2026wxyz',
  allowed_ips: ['203.0.113.7/32'],
  attempt_ips: ['198.51.100.9', '198.51.100.10'],
  attempt_networks: ['198.51.100.0/24'],
  status: 'open',
  acted_by: null,
  acted_at: null,
  allowed_network: null,
  count: 5,
  window_seconds: 300,
  first_at: new Date('2026-01-02T03:04:05.000Z'),
  last_at: new Date('2026-01-02T03:04:09.000Z'),
  occurred_at: new Date('2026-01-02T03:04:10.000Z'),
  auto_banned: false,
  delivery_status: 'pending',
  attempts: 0,
  last_error: null,
  last_attempt_at: null,
  delivered_at: null,
};

describe('payloadOf', () => {
  it('is the contract payload, then the networks, the status and console_url, in that order', () => {
    const sut = payloadOf(record, 'https://keypin.example.com/gw');
    expect(JSON.stringify(sut)).toBe(
      JSON.stringify({
        type: 'keypin.intercept_threshold',
        id: record.id,
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
        console_url: `https://keypin.example.com/gw/admin/ui/alerts/${record.id}`,
      }),
    );
  });

  it('has console_url null without PUBLIC_URL, and the status as stored', () => {
    expect(payloadOf({ ...record, status: 'banned' })).toMatchObject({ console_url: null, status: 'banned' });
  });
});

describe('consoleUrlOf', () => {
  it('joins PUBLIC_URL and the alert’s console page', () => {
    expect(consoleUrlOf('http://127.0.0.1:8080', 'abc')).toBe('http://127.0.0.1:8080/admin/ui/alerts/abc');
    expect(consoleUrlOf(null, 'abc')).toBeNull();
  });
});
