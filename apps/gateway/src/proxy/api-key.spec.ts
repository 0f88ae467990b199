import type { KeyRules } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { MAX_KEY_LENGTH, resolveApiKey } from './api-key';
import type { KeyCandidate } from './request-head';

const c = (place: KeyCandidate['place'], value: string): KeyCandidate => ({ place, value });
const NEWAPI: KeyRules = { relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' };
const NONE: KeyRules = { ...NEWAPI, tokenNormalize: 'none' };
const LITELLM: KeyRules = { relay: 'litellm', tokenNormalize: 'newapi', keyCase: 'sensitive' };

describe('resolveApiKey', () => {
  it('finds no key in an empty request', () => {
    expect(resolveApiKey([], null, NEWAPI)).toEqual({ kind: 'none' });
  });

  it('accepts the same canonical key from several places', () => {
    const sut = resolveApiKey(
      [c('authorization', 'Bearer sk-abc-1'), c('x-api-key', 'abc'), c('query', ' sk-abc ')],
      null,
      NEWAPI,
    );
    expect(sut).toMatchObject({ kind: 'key', canonical: 'abc' });
  });

  it('refuses two different canonical keys', () => {
    expect(resolveApiKey([c('authorization', 'sk-abc'), c('x-api-key', 'sk-def')], null, NEWAPI).kind).toBe(
      'ambiguous',
    );
  });

  it('compares canonical forms under the selected rules', () => {
    const keys = [c('authorization', 'Bearer sk-abc-1'), c('x-api-key', 'sk-abc-2')];
    expect(resolveApiKey(keys, null, NEWAPI).kind).toBe('key');
    expect(resolveApiKey(keys, null, NONE).kind).toBe('ambiguous');
    expect(resolveApiKey(keys, null, LITELLM).kind).toBe('ambiguous');
  });

  it('refuses a key header sent twice, even with equal values', () => {
    expect(
      resolveApiKey([c('authorization', 'a'), c('authorization', 'a')], 'authorization', NEWAPI),
    ).toMatchObject({
      kind: 'ambiguous',
      message: expect.stringContaining('authorization'),
    });
  });

  it('treats places without a key as absent, and a key stripped to nothing as invalid', () => {
    expect(resolveApiKey([c('authorization', 'Bearer'), c('x-api-key', '')], null, NEWAPI)).toEqual({
      kind: 'none',
    });
    expect(
      resolveApiKey([c('authorization', 'midjourney-proxy'), c('mj-api-secret', 'sk-k')], null, NEWAPI),
    ).toMatchObject({
      kind: 'key',
      canonical: 'k',
    });
    expect(resolveApiKey([c('authorization', 'Bearer sk-')], null, NEWAPI).kind).toBe('invalid');
    expect(resolveApiKey([c('authorization', 'Token abc')], null, LITELLM).kind).toBe('invalid');
  });

  it('refuses a key with anything but printable ASCII, without echoing it', () => {
    const r = resolveApiKey([c('x-api-key', 'sk-ab\u0000c')], null, NEWAPI);
    expect(r.kind).toBe('invalid');
    expect(JSON.stringify(r)).not.toContain('sk-ab');
    expect(resolveApiKey([c('authorization', 'Bearer sk- abc')], null, NEWAPI).kind).toBe('invalid');
  });

  it('refuses overlong keys without hashing them', () => {
    expect(resolveApiKey([c('x-api-key', 'a'.repeat(MAX_KEY_LENGTH + 1))], null, NONE).kind).toBe('invalid');
    expect(resolveApiKey([c('x-api-key', 'a'.repeat(MAX_KEY_LENGTH))], null, NONE).kind).toBe('key');
  });
});
