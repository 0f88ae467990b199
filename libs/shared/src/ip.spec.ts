import { describe, expect, it } from 'vitest';
import {
  anyCidrContains,
  canonicalIp,
  cidrContains,
  formatCidr,
  networkOf,
  parseCidr,
  parseCidrList,
  parseIp,
  type Cidr,
} from './ip';

function cidr(s: string): Cidr {
  const r = parseCidr(s);
  if (!r.ok) throw new Error(`bad cidr in test: ${s}`);
  return r.cidr;
}

describe('parseIp', () => {
  it.each([
    ['0.0.0.0', '0.0.0.0'],
    ['127.0.0.1', '127.0.0.1'],
    ['255.255.255.255', '255.255.255.255'],
    ['10.0.0.10', '10.0.0.10'],
    ['192.168.100.200', '192.168.100.200'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['fe80::', 'fe80::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['1::8', '1::8'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:1.2.3.4', '1.2.3.4'],
    ['::ffff:0102:0304', '1.2.3.4'],
    ['0:0:0:0:0:ffff:127.0.0.2', '127.0.0.2'],
    ['::1.2.3.4', '::102:304'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('accepts %s as %s', (input, canonical) => {
    expect(canonicalIp(input)).toBe(canonical);
  });

  it.each([
    '',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '010.0.0.1',
    '01.2.3.4',
    '1.2.3.04',
    '00.0.0.0',
    '0x7f.0.0.1',
    '0x7f.1',
    '2130706433',
    '127.1',
    '127.0.1',
    '1.2.3.4.5',
    '1.2.3.',
    '.1.2.3',
    '1..2.3',
    '256.0.0.1',
    '1.2.3.256',
    '1.2.3.1000',
    '1.2.3.-1',
    '+1.2.3.4',
    'a.b.c.d',
    'localhost',
    'fe80::1%eth0',
    'fe80::1%1',
    ':::',
    '1:::2',
    '1::2::3',
    ':1',
    '1:',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:7:8',
    '12345::1',
    'g::1',
    '::ffff:010.0.0.1',
    '::ffff:1.2.3',
    '1:2:3:4:5:6:7:1.2.3.4',
    '[::1]',
    '1.2.3.4/32',
  ])('refuses %j', (input) => {
    expect(parseIp(input)).toBeNull();
  });

  it('folds IPv4-mapped IPv6 to IPv4', () => {
    const sut = parseIp('::ffff:203.0.113.7');
    expect(sut?.version).toBe(4);
    expect(Array.from(sut!.bytes)).toEqual([203, 0, 113, 7]);
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.0.0.0/24', '10.0.0.0/24'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['10.1.2.3/32', '10.1.2.3/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['2001:db8::1', '2001:db8::1/128'],
    ['::/0', '::/0'],
    ['::ffff:1.2.3.4', '1.2.3.4/32'],
    ['2001:db8:1:2::/64', '2001:db8:1:2::/64'],
  ])('accepts %s as %s', (input, canonical) => {
    const r = parseCidr(input);
    expect(r.ok).toBe(true);
    if (r.ok) expect(formatCidr(r.cidr)).toBe(canonical);
  });

  it.each([
    ['10.0.0.1/24', 'host_bits_set'],
    ['10.0.0.0/33', 'bad_prefix'],
    ['0.0.0.0/33', 'bad_prefix'],
    ['10.0.0.0/08', 'bad_prefix'],
    ['10.0.0.0/', 'bad_prefix'],
    ['10.0.0.0/-1', 'bad_prefix'],
    ['10.0.0.0/ 8', 'bad_prefix'],
    ['010.0.0.0/8', 'not_an_address'],
    ['10.0.0/8', 'not_an_address'],
    ['2001:db8::1/64', 'host_bits_set'],
    ['2001:db8::/129', 'bad_prefix'],
    ['fe80::%eth0/64', 'not_an_address'],
    ['::ffff:10.0.0.0/104', 'mapped_ipv6'],
    ['', 'not_an_address'],
  ])('refuses %j (%s)', (input, error) => {
    expect(parseCidr(input)).toEqual({ ok: false, error });
  });
});

describe('cidrContains', () => {
  it.each([
    ['10.0.0.0/8', '10.255.255.255', true],
    ['10.0.0.0/8', '11.0.0.0', false],
    ['10.0.0.0/8', '9.255.255.255', false],
    ['192.168.1.128/25', '192.168.1.128', true],
    ['192.168.1.128/25', '192.168.1.127', false],
    ['192.168.1.0/31', '192.168.1.1', true],
    ['192.168.1.0/31', '192.168.1.2', false],
    ['1.2.3.4/32', '1.2.3.4', true],
    ['1.2.3.4/32', '1.2.3.5', false],
    ['0.0.0.0/0', '255.255.255.255', true],
    ['0.0.0.0/0', '::1', false],
    ['::/0', '1.2.3.4', false],
    ['::/0', '2001:db8::1', true],
    ['2001:db8:1:2::/64', '2001:db8:1:2:ffff:ffff:ffff:ffff', true],
    ['2001:db8:1:2::/64', '2001:DB8:1:2::abcd', true],
    ['2001:db8:1:2::/64', '2001:db8:1:3::', false],
    ['2001:db8::/33', '2001:db8:7fff::1', true],
    ['2001:db8::/33', '2001:db8:8000::1', false],
    ['2001:db8::1', '2001:0db8:0:0:0:0:0:1', true],
    ['1.2.3.4', '::ffff:1.2.3.4', true],
  ])('%s contains %s: %s', (net, ip, expected) => {
    expect(cidrContains(cidr(net), parseIp(ip)!)).toBe(expected);
  });

  it('anyCidrContains checks every entry', () => {
    const list = [cidr('10.0.0.0/8'), cidr('2001:db8::/32')];
    expect(anyCidrContains(list, parseIp('2001:db8::5')!)).toBe(true);
    expect(anyCidrContains(list, parseIp('10.9.9.9')!)).toBe(true);
    expect(anyCidrContains(list, parseIp('11.9.9.9')!)).toBe(false);
    expect(anyCidrContains([], parseIp('10.9.9.9')!)).toBe(false);
  });
});

describe('networkOf', () => {
  it.each([
    ['203.0.113.77', 32, '203.0.113.77/32'],
    ['203.0.113.77', 24, '203.0.113.0/24'],
    ['203.0.113.77', 0, '0.0.0.0/0'],
    ['203.0.113.77', 23, '203.0.112.0/23'],
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:db8:1:2:3:4:5:6', 128, '2001:db8:1:2:3:4:5:6/128'],
    ['2001:db8:1:2:3:4:5:6', 56, '2001:db8:1::/56'],
    ['2001:db8:1:2:3:4:5:6', 0, '::/0'],
  ])('%s /%d is %s', (ip, prefix, expected) => {
    expect(formatCidr(networkOf(parseIp(ip)!, prefix))).toBe(expected);
  });
});

describe('parseCidrList', () => {
  it('parses a list and skips blanks', () => {
    const r = parseCidrList('127.0.0.1/32, ::1/128,,10.0.0.0/8');
    expect(r.ok && r.cidrs.map(formatCidr)).toEqual(['127.0.0.1/32', '::1/128', '10.0.0.0/8']);
  });
  it('names the first bad entry', () => {
    expect(parseCidrList('127.0.0.1/32,10.0.0.1/8')).toEqual({
      ok: false,
      entry: '10.0.0.1/8',
      error: 'host_bits_set',
    });
  });
});
