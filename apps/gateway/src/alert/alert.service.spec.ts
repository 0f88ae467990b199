import { describe, expect, it } from 'vitest';
import { attemptNetworks } from './alert.service';

describe('attemptNetworks', () => {
  it.each([
    [
      'each IPv4 address its /32',
      ['198.51.100.9', '203.0.113.7'],
      32,
      64,
      ['198.51.100.9/32', '203.0.113.7/32'],
    ],
    [
      'addresses of one /24 once',
      ['198.51.100.9', '198.51.100.200', '203.0.113.7'],
      24,
      64,
      ['198.51.100.0/24', '203.0.113.0/24'],
    ],
    ['IPv6 under its own prefix', ['2001:db8:1:2::5', '2001:db8:1:2:ffff::1'], 32, 64, ['2001:db8:1:2::/64']],
    ['IPv6 /128 as the exact address', ['2001:DB8::1'], 32, 128, ['2001:db8::1/128']],
    ['first seen first', ['10.0.0.1', '192.0.2.1', '10.0.0.2'], 8, 64, ['10.0.0.0/8', '192.0.0.0/8']],
    ['nothing from nothing', [], 32, 64, []],
    ['what is not an IP skipped', ['nope', '10.0.0.1'], 32, 64, ['10.0.0.1/32']],
  ])('%s', (_what, ips, v4, v6, expected) => {
    expect(attemptNetworks(ips, v4, v6)).toEqual(expected);
  });
});
