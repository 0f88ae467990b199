import { describe, expect, it } from 'vitest';
import { canonicalKey, looksLikeDashedVendorKey, maskKey } from './key';

describe('canonicalKey', () => {
  it.each([
    ['sk-abc123-7', 'newapi', 'abc123'],
    ['abc123', 'newapi', 'abc123'],
    ['  sk-abc123  ', 'newapi', 'abc123'],
    ['sk-abc123', 'newapi', 'abc123'],
    ['abc123-channel-9', 'newapi', 'abc123'],
    ['sk-sk-abc', 'newapi', 'sk'],
    ['SK-abc123', 'newapi', 'SK'],
    ['sk-', 'newapi', ''],
    ['-abc', 'newapi', ''],
    ['', 'newapi', ''],
    ['sk-proj-abc', 'none', 'sk-proj-abc'],
    ['  sk-abc123-7 ', 'none', 'sk-abc123-7'],
    ['', 'none', ''],
  ] as const)('%j under %s is %j', (raw, mode, expected) => {
    expect(canonicalKey(raw, mode)).toBe(expected);
  });
});

describe('looksLikeDashedVendorKey', () => {
  it.each([
    ['sk-proj-AbC123', true],
    ['sk-ant-api03-xyz', true],
    ['sk-svcacct-xyz', true],
    ['sk-abc123XYZ', false],
    ['sk-AbCdEf0123456789-1', false],
    ['abc123', false],
  ])('%s: %s', (raw, expected) => {
    expect(looksLikeDashedVendorKey(raw)).toBe(expected);
  });
});

describe('maskKey', () => {
  it.each([
    ['abcdefghijklmnopwxyz', 'abcd\u2026wxyz'],
    ['abcdefghijklmnop', 'abcd\u2026mnop'],
    ['abcdefghijkl', 'abc\u2026jkl'],
    ['abcdefgh', 'ab\u2026gh'],
    ['abcd', 'a\u2026d'],
    ['abc', '\u2026'],
    ['', '\u2026'],
  ])('%s → %s', (key, masked) => {
    expect(maskKey(key)).toBe(masked);
  });

  it('never shows more than 8 characters of a long key', () => {
    const key = 'x'.repeat(200);
    expect(maskKey(key).replace('\u2026', '').length).toBe(8);
  });
});
