import { parseIp } from '@keypin/shared';
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
