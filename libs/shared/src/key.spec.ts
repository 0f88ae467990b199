import { describe, expect, it } from 'vitest';
import {
  canonicalKey,
  canonicalKeyAt,
  canonicalPastedKey,
  goTrimSpace,
  isPrintableKey,
  type KeyPlace,
  type KeyRules,
  looksLikeDashedVendorKey,
  maskKey,
  pyLatin1Strip,
  type TokenNormalize,
} from './key';
import type { KeyCase, Relay } from './relay';

describe('canonicalKey (New API token form)', () => {
  it.each([
    ['sk-abc123-7', 'newapi', 'abc123'],
    ['abc123', 'newapi', 'abc123'],
    ['sk-abc123', 'newapi', 'abc123'],
    ['abc123-channel-9', 'newapi', 'abc123'],
    ['sk-sk-abc', 'newapi', 'sk'],
    ['SK-abc123', 'newapi', 'SK'],
    ['sk-', 'newapi', ''],
    ['-abc', 'newapi', ''],
    // New API trims before cutting, never after: the space stays (and is refused).
    ['sk- abc', 'newapi', ' abc'],
    ['', 'newapi', ''],
    ['sk-proj-abc', 'none', 'sk-proj-abc'],
    ['', 'none', ''],
  ] as const)('%j under %s is %j', (raw, mode, expected) => {
    expect(canonicalKey(raw, mode)).toBe(expected);
  });
});

const rules = (
  relay: Relay,
  keyCase: KeyCase = 'sensitive',
  tokenNormalize: TokenNormalize = 'newapi',
): KeyRules => ({
  relay,
  keyCase,
  tokenNormalize,
});
/** A UTF-8 character as Node hands it over in a header: one latin1 char per byte. */
const bytes = (s: string) => String.fromCharCode(...new TextEncoder().encode(s));

describe('canonicalKeyAt', () => {
  it.each<[KeyPlace, string, Relay, string | null]>([
    // New API (middleware/auth.go TokenAuth)
    ['authorization', 'Bearer sk-abc123-7', 'newapi', 'abc123'],
    ['authorization', 'bearer sk-abc123', 'newapi', 'abc123'],
    ['authorization', 'BEARER sk-abc123', 'newapi', 'BEARER sk'],
    ['authorization', 'sk-abc123', 'newapi', 'abc123'],
    ['authorization', 'Bearer midjourney-proxy', 'newapi', null],
    ['authorization', 'midjourney-proxy', 'newapi', null],
    ['authorization', 'Bearer', 'newapi', null],
    ['authorization', 'Basic dXNlcg==', 'newapi', 'Basic dXNlcg=='],
    ['mj-api-secret', 'Bearer sk-abc123', 'newapi', 'abc123'],
    ['mj-api-secret', 'sk-', 'newapi', ''],
    ['x-api-key', 'sk-abc123', 'newapi', 'abc123'],
    ['x-api-key', 'Bearer sk-abc123', 'newapi', 'Bearer sk'],
    ['x-api-key', 'midjourney-proxy', 'newapi', null],
    ['query', ' sk-abc123 ', 'newapi', 'abc123'],
    ['websocket-protocol', 'abc123', 'newapi', 'abc123'],
    // LiteLLM (proxy/auth/user_api_key_auth.py)
    ['authorization', 'Bearer sk-1234', 'litellm', 'sk-1234'],
    ['authorization', 'bearer sk-1234', 'litellm', 'sk-1234'],
    ['authorization', 'Basic sk-1234', 'litellm', 'sk-1234'],
    ['authorization', 'Bearer sk-12Bearer 34', 'litellm', 'sk-1234'],
    ['authorization', 'BEARER sk-1234', 'litellm', ''],
    ['authorization', 'sk-1234', 'litellm', ''],
    [
      'authorization',
      'AWS4-HMAC-SHA256 Credential=Bearer sk-1234/20260101/us/bedrock/aws4_request, Signature=x',
      'litellm',
      'sk-1234',
    ],
    ['authorization', 'AWS4-HMAC-SHA256 Credential=sk-1234/20260101/us, Signature=x', 'litellm', 'sk-1234'],
    ['authorization', 'AWS4-HMAC-SHA256 Signature=x', 'litellm', ''],
    ['x-litellm-api-key', 'Bearer sk-1234', 'litellm', 'sk-1234'],
    ['x-litellm-api-key', 'sk-1234', 'litellm', 'sk-1234'],
    ['ocp-apim-subscription-key', 'sk-1234', 'litellm', 'sk-1234'],
    ['x-api-key', 'sk-1234-5', 'litellm', 'sk-1234-5'],
    // a plain upstream
    ['authorization', 'BEARER   sk-proj-1', 'openai', 'sk-proj-1'],
    ['authorization', 'sk-proj-1', 'openai', 'sk-proj-1'],
    ['x-api-key', 'sk-proj-1', 'openai', 'sk-proj-1'],
  ])('%s: %j under %s is %j', (place, value, relay, expected) => {
    expect(canonicalKeyAt(place, value, rules(relay))).toBe(expected);
  });

  it('trims Unicode white space as Go does, once, before the token form is cut', () => {
    for (const space of ['\u3000', '\u00a0', '\u0085', '\u2028', '\u1680', '\u205f', '\u2009']) {
      const v = `${bytes(space)}sk-abc123${bytes(space)}`;
      expect(canonicalKeyAt('x-api-key', v, rules('newapi'))).toBe('abc123');
      expect(canonicalKeyAt('authorization', `Bearer ${v}`, rules('newapi'))).toBe('abc123');
      // Not trimmed by LiteLLM or a plain upstream: the bytes stay and the key is refused.
      expect(isPrintableKey(canonicalKeyAt('x-api-key', v, rules('litellm'))!)).toBe(false);
    }
    // An invalid UTF-8 byte is not white space to Go.
    expect(canonicalKeyAt('x-api-key', '\u00c2abc', rules('newapi'))).toBe('\u00c2abc');
  });

  it("honours the relay's key case and TOKEN_NORMALIZE=none", () => {
    expect(canonicalKeyAt('authorization', 'Bearer sk-AbC-1', rules('newapi', 'insensitive'))).toBe('abc');
    expect(canonicalKeyAt('authorization', 'Bearer sk-AbC-1', rules('newapi', 'sensitive', 'none'))).toBe(
      'sk-AbC-1',
    );
  });
});

describe('goTrimSpace', () => {
  it.each([
    ['  abc\t', 'abc'],
    [`${bytes('\u3000\u00a0')}a b${bytes('\u202f')}`, 'a b'],
    ['\u00c2', '\u00c2'],
    ['', ''],
    [bytes('\u3000'), ''],
  ])('%j → %j', (s, expected) => {
    expect(goTrimSpace(s)).toBe(expected);
  });
});

describe('isPrintableKey', () => {
  it.each([
    ['abc', true],
    ['', false],
    ['a b', false],
    ['a\u0000', false],
    ['\u00e9', false],
    ['x'.repeat(4096), true],
    ['x'.repeat(4097), false],
  ])('%j: %s', (k, expected) => {
    expect(isPrintableKey(k)).toBe(expected);
  });
});

describe('canonicalPastedKey', () => {
  it('reads a pasted key like a bare header value, Bearer and spaces dropped', () => {
    expect(canonicalPastedKey(' Bearer sk-abc-1 ', rules('newapi'))).toBe('abc');
    expect(canonicalPastedKey('sk-abc-1', rules('litellm'))).toBe('sk-abc-1');
    expect(canonicalPastedKey('   ', rules('openai'))).toBeNull();
  });
});

describe('looksLikeDashedVendorKey', () => {
  it.each([
    ['sk-proj-AbC123', true],
    ['sk-ant-api03-xyz', true],
    ['sk-svcacct-xyz', true],
    ['sk-abc123XYZ', false],
    ['Bearer sk-proj-AbC123', true],
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

describe('pyLatin1Strip', () => {
  it.each([
    ['\u0085abc\u00a0', 'abc'],
    ['\u001cabc\u001f', 'abc'],
    [' \tabc ', 'abc'],
    ['\u00c2\u0085abc', '\u00c2\u0085abc'],
  ])('%j → %j', (s, expected) => {
    expect(pyLatin1Strip(s)).toBe(expected);
  });
});
