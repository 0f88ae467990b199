import { describe, expect, it } from 'vitest';
import { validateNetworks } from './networks';

describe('validateNetworks', () => {
  it.each([
    ['single', ['10.0.0.0/24'], ['10.0.0.0/24']],
    ['single', ['203.0.113.7'], ['203.0.113.7/32']],
    ['single', ['2001:DB8::/32'], ['2001:db8::/32']],
    ['multiple', ['10.0.0.0/8', '2001:db8::1'], ['10.0.0.0/8', '2001:db8::1/128']],
    ['multiple', ['10.0.0.0/8', '10.0.0.0/8'], ['10.0.0.0/8']],
    ['all', [], []],
  ] as const)('%s %j → %j', (rule, entries, networks) => {
    expect(validateNetworks(rule, entries)).toEqual({ ok: true, networks });
  });

  it.each([
    ['single', []],
    ['single', ['10.0.0.0/8', '11.0.0.0/8']],
    ['multiple', []],
    ['multiple', Array.from({ length: 101 }, (_, i) => `10.0.${i}.0/24`)],
    ['all', ['10.0.0.0/8']],
    ['single', ['10.0.0.1/24']],
    ['single', ['0.0.0.0/33']],
    ['single', ['010.0.0.0/8']],
    ['single', ['fe80::1%eth0']],
    ['single', [42]],
    ['multiple', ['10.0.0.0/8', 'nope']],
  ] as const)('refuses %s %j', (rule, entries) => {
    expect(validateNetworks(rule, entries as unknown[]).ok).toBe(false);
  });

  it('accepts exactly 100 networks for multiple', () => {
    const entries = Array.from({ length: 100 }, (_, i) => `10.0.${i}.0/24`);
    expect(validateNetworks('multiple', entries).ok).toBe(true);
  });
});
