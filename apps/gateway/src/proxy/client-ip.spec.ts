import { parseCidrList } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { type ClientIpPolicy, resolveClientIp } from './client-ip';

const trusted = (text: string) => {
  const r = parseCidrList(text);
  if (!r.ok) throw new Error('bad list');
  return r.cidrs;
};
const realIp: ClientIpPolicy = { trusted: trusted('127.0.0.1/32,::1/128'), header: 'x-real-ip' };
const xff: ClientIpPolicy = { trusted: trusted('127.0.0.1/32,10.0.0.0/8'), header: 'x-forwarded-for' };

describe('resolveClientIp', () => {
  it.each([
    ['127.0.0.2', [], '127.0.0.2'],
    ['::ffff:127.0.0.2', [], '127.0.0.2'],
    ['127.0.0.2', ['6.6.6.6'], '127.0.0.2'],
    ['2001:db8::1', ['6.6.6.6'], '2001:db8::1'],
    ['127.0.0.1', ['203.0.113.9'], '203.0.113.9'],
    ['::ffff:127.0.0.1', ['203.0.113.9'], '203.0.113.9'],
    ['::1', [' 2001:DB8::9 '], '2001:db8::9'],
    ['127.0.0.1', ['::ffff:203.0.113.9'], '203.0.113.9'],
  ])('x-real-ip: peer %s with %j → %s', (peer, lines, ip) => {
    expect(resolveClientIp(peer, lines, realIp)).toMatchObject({ ok: true, text: ip });
  });

  it.each([
    ['127.0.0.1', []],
    ['127.0.0.1', ['']],
    ['127.0.0.1', ['1.2.3.4', '1.2.3.4']],
    ['127.0.0.1', ['1.2.3.4, 5.6.7.8']],
    ['127.0.0.1', ['010.0.0.1']],
    ['127.0.0.1', ['0x7f.1']],
    ['127.0.0.1', ['2130706433']],
    ['127.0.0.1', ['127.1']],
    ['127.0.0.1', ['fe80::1%eth0']],
    ['127.0.0.1', ['unknown']],
    [undefined, []],
  ])('x-real-ip: peer %s with %j → refused', (peer, lines) => {
    expect(resolveClientIp(peer, lines, realIp).ok).toBe(false);
  });

  it.each([
    ['1.1.1.1, 203.0.113.9, 10.0.0.5', '203.0.113.9'],
    ['203.0.113.9', '203.0.113.9'],
    ['garbage, 203.0.113.9', '203.0.113.9'],
    ['10.0.0.9, 10.0.0.5', '10.0.0.9'],
    ['203.0.113.9,10.1.1.1,127.0.0.1', '203.0.113.9'],
  ])('x-forwarded-for %j → %s (walked from the right)', (value, ip) => {
    expect(resolveClientIp('10.0.0.1', [value], xff)).toMatchObject({ ok: true, text: ip });
  });

  it.each([['1.1.1.1, , 10.0.0.5'], ['203.0.113.9, 010.0.0.5'], ['']])(
    'x-forwarded-for %j → refused',
    (value) => {
      expect(resolveClientIp('10.0.0.1', [value], xff).ok).toBe(false);
    },
  );

  it('refuses x-forwarded-for on two lines from a trusted peer', () => {
    expect(resolveClientIp('10.0.0.1', ['1.1.1.1', '2.2.2.2'], xff).ok).toBe(false);
  });

  it('never reads the header when no proxy is trusted', () => {
    const none: ClientIpPolicy = { trusted: [], header: 'x-real-ip' };
    expect(resolveClientIp('127.0.0.1', ['6.6.6.6'], none)).toMatchObject({ ok: true, text: '127.0.0.1' });
  });
});
