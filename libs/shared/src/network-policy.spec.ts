import { describe, expect, it } from 'vitest';
import {
  EMPTY_NETWORK_POLICY,
  isOpenNetworkPolicy,
  MAX_POLICY_NETWORKS,
  validateCidrList,
  validateNetworkPolicy,
} from './network-policy';

describe('validateCidrList', () => {
  it.each([
    [[], []],
    [['10.0.0.0/8'], ['10.0.0.0/8']],
    [['203.0.113.7'], ['203.0.113.7/32']],
    [
      ['2001:DB8::/32', '::1'],
      ['2001:db8::/32', '::1/128'],
    ],
    [[' 10.0.0.0/8 '], ['10.0.0.0/8']],
    [
      ['10.0.0.0/8', '10.0.0.0/8', '192.0.2.1/32', '192.0.2.1'],
      ['10.0.0.0/8', '192.0.2.1/32'],
    ],
  ])('%j → %j', (entries, canonical) => {
    expect(validateCidrList(entries, 'list')).toEqual({ ok: true, value: canonical });
  });

  it.each([
    [['10.0.0.1/8'], 'list[0]', 'host bits set'],
    [['10.0.0.0/8', '0.0.0.0/33'], 'list[1]', 'invalid prefix length'],
    [['010.0.0.0/8'], 'list[0]', 'is not an IP address'],
    [['fe80::1%eth0'], 'list[0]', 'is not an IP address'],
    [['::ffff:10.0.0.0/104'], 'list[0]', 'IPv4-mapped'],
    [['10.0.0.0/8', 42], 'list[1]', 'must be a string'],
  ] as [unknown[], string, string][])('refuses %j naming %s', (entries, field, message) => {
    const r = validateCidrList(entries, 'list');
    expect(r).toMatchObject({ ok: false, field });
    if (!r.ok) expect(r.message).toContain(message);
  });

  it('refuses what is not a list, and lists longer than the limit', () => {
    expect(validateCidrList('10.0.0.0/8', 'x')).toMatchObject({ ok: false, field: 'x' });
    expect(validateCidrList(null, 'x')).toMatchObject({ ok: false, field: 'x' });
    const many = Array.from({ length: MAX_POLICY_NETWORKS + 1 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    expect(validateCidrList(many, 'x')).toMatchObject({ ok: false, field: 'x' });
    expect(validateCidrList(many.slice(1), 'x').ok).toBe(true);
  });
});

describe('validateNetworkPolicy', () => {
  it('answers the canonical lists, a missing one empty', () => {
    expect(validateNetworkPolicy({ deny: ['192.0.2.1'] })).toEqual({
      ok: true,
      value: { allow: [], deny: ['192.0.2.1/32'], first_use_from: [] },
    });
    expect(
      validateNetworkPolicy({ allow: ['10.0.0.0/8'], deny: [], first_use_from: ['2001:db8::/48'] }),
    ).toEqual({
      ok: true,
      value: { allow: ['10.0.0.0/8'], deny: [], first_use_from: ['2001:db8::/48'] },
    });
    expect(validateNetworkPolicy({})).toEqual({
      ok: true,
      value: { allow: [], deny: [], first_use_from: [] },
    });
  });

  it.each([
    [{ allow: ['10.0.0.1/8'] }, 'networks.allow[0]'],
    [{ allow: [], first_use_from: ['10.0.0.0/8', 'nope'] }, 'networks.first_use_from[1]'],
    [{ deny: '10.0.0.0/8' }, 'networks.deny'],
    [{ deny: null }, 'networks.deny'],
    [{ block: [] }, 'networks.block'],
    [[], 'networks'],
    [null, 'networks'],
    ['10.0.0.0/8', 'networks'],
  ])('refuses %j naming %s', (input, field) => {
    expect(validateNetworkPolicy(input)).toMatchObject({ ok: false, field });
  });

  it('names the field under the name it is given', () => {
    expect(validateNetworkPolicy({ allow: ['x'] }, 'policy')).toMatchObject({ field: 'policy.allow[0]' });
  });
});

describe('isOpenNetworkPolicy', () => {
  it('is true only when no list restricts anything', () => {
    expect(isOpenNetworkPolicy(EMPTY_NETWORK_POLICY)).toBe(true);
    expect(isOpenNetworkPolicy({ allow: [], deny: ['10.0.0.0/8'], first_use_from: [] })).toBe(false);
    expect(isOpenNetworkPolicy({ allow: ['10.0.0.0/8'], deny: [], first_use_from: [] })).toBe(false);
    expect(isOpenNetworkPolicy({ allow: [], deny: [], first_use_from: ['10.0.0.0/8'] })).toBe(false);
  });
});
