import { describe, expect, it } from 'vitest';
import { MAX_KEY_LENGTH, resolveApiKey } from './api-key';
import type { KeyCandidate } from './request-head';

const c = (source: KeyCandidate['source'], value: string): KeyCandidate => ({ source, value });

describe('resolveApiKey', () => {
  it('finds no key in an empty request', () => {
    expect(resolveApiKey([], null, 'newapi')).toEqual({ kind: 'none' });
  });

  it('accepts the same canonical key from several sources', () => {
    const sut = resolveApiKey(
      [c('authorization', 'sk-abc-1'), c('x-api-key', 'abc'), c('query', ' sk-abc ')],
      null,
      'newapi',
    );
    expect(sut).toMatchObject({ kind: 'key', canonical: 'abc' });
  });

  it('refuses two different canonical keys', () => {
    expect(resolveApiKey([c('authorization', 'sk-abc'), c('x-api-key', 'sk-def')], null, 'newapi').kind).toBe(
      'ambiguous',
    );
  });

  it('compares canonical forms under the selected mode', () => {
    const keys = [c('authorization', 'sk-abc-1'), c('x-api-key', 'sk-abc-2')];
    expect(resolveApiKey(keys, null, 'newapi').kind).toBe('key');
    expect(resolveApiKey(keys, null, 'none').kind).toBe('ambiguous');
  });

  it('refuses a key header sent twice, even with equal values', () => {
    expect(
      resolveApiKey([c('authorization', 'a'), c('authorization', 'a')], 'authorization', 'newapi'),
    ).toMatchObject({
      kind: 'ambiguous',
      message: expect.stringContaining('authorization'),
    });
  });

  it('treats empty keys as absent', () => {
    expect(resolveApiKey([c('authorization', 'sk-'), c('x-api-key', '   ')], null, 'newapi')).toEqual({
      kind: 'none',
    });
    expect(resolveApiKey([c('authorization', 'sk-'), c('x-api-key', 'k')], null, 'newapi')).toMatchObject({
      kind: 'key',
      canonical: 'k',
    });
  });

  it('refuses overlong keys without hashing them', () => {
    expect(resolveApiKey([c('x-api-key', 'a'.repeat(MAX_KEY_LENGTH + 1))], null, 'none').kind).toBe(
      'invalid',
    );
    expect(resolveApiKey([c('x-api-key', 'a'.repeat(MAX_KEY_LENGTH))], null, 'none').kind).toBe('key');
  });
});
