import { parseIp } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { checkWebhookUrl, guardedLookup, isPublicAddress, UnsafeUrlError } from './url-guard';

describe('isPublicAddress', () => {
  it.each([
    ['8.8.8.8', true],
    ['1.1.1.1', true],
    ['2606:4700:4700::1111', true],
    ['127.0.0.1', false],
    ['127.255.0.9', false],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['172.31.255.255', false],
    ['172.32.0.1', true],
    ['192.168.1.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['255.255.255.255', false],
    ['::1', false],
    ['::', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['fe80::1', false],
    ['fd00::1', false],
    ['64:ff9b::a00:1', false],
    ['2002:a00:1::', false],
  ])('%s public: %s', (ip, expected) => {
    expect(isPublicAddress(parseIp(ip)!)).toBe(expected);
  });
});

describe('checkWebhookUrl', () => {
  it.each([
    'http://127.0.0.1:9000/hook',
    'http://[::1]/hook',
    'http://10.0.0.5/hook',
    'http://169.254.169.254/latest/meta-data',
    'http://[::ffff:192.168.0.1]/',
  ])('refuses %s unless private destinations are allowed', (url) => {
    expect(() => checkWebhookUrl(url, false)).toThrow(UnsafeUrlError);
    expect(checkWebhookUrl(url, true)).toBeInstanceOf(URL);
  });

  it.each([
    'ftp://example.com/',
    'file:///etc/passwd',
    'gopher://x',
    'not a url',
    'https://user:pw@example.com/',
  ])('refuses %s always', (url) => {
    expect(() => checkWebhookUrl(url, true)).toThrow(UnsafeUrlError);
  });

  it('accepts a public https URL', () => {
    expect(checkWebhookUrl('https://hooks.example.com/keypin', false).hostname).toBe('hooks.example.com');
  });
});

describe('guardedLookup', () => {
  it('refuses a name that resolves to loopback', async () => {
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
      guardedLookup(false)('localhost', {}, (e) => resolve(e)),
    );
    expect(err?.code).toBe('EUNSAFEADDRESS');
  });

  it('lets it through when private destinations are allowed', async () => {
    const address = await new Promise<unknown>((resolve) =>
      guardedLookup(true)('localhost', {}, (_e, a) => resolve(a)),
    );
    expect(typeof address).toBe('string');
  });
});
