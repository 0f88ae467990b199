import { type Cidr, cidrContains, formatCidr, networkOf, parseCidr, parseIp } from '@keypin/shared';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { judge, toBindingRule } from './binding-rules';
import type { BindingRuleData } from './binding.types';

function rule(over: Partial<BindingRuleData>) {
  return toBindingRule({
    id: 1,
    status: 'active',
    rule_type: 'single',
    allowed_ips: ['203.0.113.7/32'],
    token_display: 'abcd\u2026wxyz',
    ...over,
  });
}

describe('judge', () => {
  it.each([
    [{}, '203.0.113.7', 'allow'],
    [{}, '203.0.113.8', 'ip_not_allowed'],
    [{}, '::ffff:203.0.113.7', 'allow'],
    [{ allowed_ips: ['10.0.0.0/24'] }, '10.0.0.255', 'allow'],
    [{ allowed_ips: ['10.0.0.0/24'] }, '10.0.1.0', 'ip_not_allowed'],
    [{ allowed_ips: ['0.0.0.0/0'] }, '255.255.255.255', 'allow'],
    [{ allowed_ips: ['128.0.0.0/1'] }, '200.1.1.1', 'allow'],
    [{ allowed_ips: ['128.0.0.0/1'] }, '127.255.255.255', 'ip_not_allowed'],
    [{ allowed_ips: ['255.255.255.255/32'] }, '255.255.255.255', 'allow'],
    [{ allowed_ips: ['10.0.0.0/8'] }, '2001:db8::1', 'ip_not_allowed'],
    [{ allowed_ips: ['2001:db8::/32'] }, '10.0.0.1', 'ip_not_allowed'],
    [{ rule_type: 'multiple', allowed_ips: ['192.168.1.0/31', '10.0.0.0/8'] }, '192.168.1.1', 'allow'],
    [
      { rule_type: 'multiple', allowed_ips: ['192.168.1.0/31', '10.0.0.0/8'] },
      '192.168.1.2',
      'ip_not_allowed',
    ],
    [{ rule_type: 'multiple', allowed_ips: ['10.0.0.0/24', '2001:db8::/64'] }, '2001:db8::9', 'allow'],
    [
      { rule_type: 'multiple', allowed_ips: ['10.0.0.0/24', '2001:db8::/64'] },
      '2001:db8:0:1::9',
      'ip_not_allowed',
    ],
    [{ rule_type: 'all', allowed_ips: [] }, '198.51.100.1', 'allow'],
    [{ rule_type: 'all', allowed_ips: [], status: 'banned' }, '198.51.100.1', 'key_banned'],
    [{ status: 'banned' }, '203.0.113.7', 'key_banned'],
  ] as const)('%o from %s → %s', (over, ip, verdict) => {
    const sut = rule(over as Partial<BindingRuleData>);
    expect(judge(sut, parseIp(ip)!)).toBe(verdict);
  });

  it('ignores stored entries that do not parse instead of widening access', () => {
    const sut = rule({ allowed_ips: ['not-a-cidr'] });
    expect(judge(sut, parseIp('203.0.113.7')!)).toBe('ip_not_allowed');
  });
});

describe('judge agrees with the shared CIDR matcher', () => {
  it('for random IPv4 networks and addresses', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 32 }), (net, ip, prefix) => {
        const network = formatCidr(networkOf(parseIp(net)!, prefix));
        const sut = rule({ allowed_ips: [network] });
        const expected = cidrContains(
          parseCidr(network).ok ? (parseCidr(network) as { cidr: Cidr }).cidr : never(),
          parseIp(ip)!,
        );
        return (judge(sut, parseIp(ip)!) === 'allow') === expected;
      }),
      { numRuns: 2000 },
    );
  });
});

function never(): never {
  throw new Error('unreachable');
}
