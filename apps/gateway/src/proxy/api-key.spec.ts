import type { KeyRules } from '@keypin/shared';
import { describe, expect, it } from 'vitest';
import { isUsageTokenTarget, MAX_KEY_LENGTH, resolveApiKey } from './api-key';
import type { KeyCandidate } from './request-head';

const c = (place: KeyCandidate['place'], value: string): KeyCandidate => ({ place, value });
const NEWAPI: KeyRules = { relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive' };
const NONE: KeyRules = { ...NEWAPI, tokenNormalize: 'none' };
const LITELLM: KeyRules = { relay: 'litellm', tokenNormalize: 'newapi', keyCase: 'sensitive' };
/** The target of these requests. */
const AT = '/v1/chat/completions';

describe('resolveApiKey', () => {
  it('finds no key in an empty request', () => {
    expect(resolveApiKey([], null, NEWAPI, AT)).toEqual({ kind: 'none' });
  });

  it('accepts the same canonical key from several places', () => {
    const sut = resolveApiKey(
      [c('authorization', 'Bearer sk-abc-1'), c('x-api-key', 'abc'), c('query', ' sk-abc ')],
      null,
      NEWAPI,
      AT,
    );
    expect(sut).toMatchObject({ kind: 'key', canonical: 'abc' });
  });

  it('refuses two different canonical keys', () => {
    expect(
      resolveApiKey([c('authorization', 'sk-abc'), c('x-api-key', 'sk-def')], null, NEWAPI, AT).kind,
    ).toBe('ambiguous');
  });

  it('compares canonical forms under the selected rules', () => {
    const keys = [c('authorization', 'Bearer sk-abc-1'), c('x-api-key', 'sk-abc-2')];
    expect(resolveApiKey(keys, null, NEWAPI, AT).kind).toBe('key');
    expect(resolveApiKey(keys, null, NONE, AT).kind).toBe('ambiguous');
    expect(resolveApiKey(keys, null, LITELLM, AT).kind).toBe('ambiguous');
  });

  it('refuses a key header sent twice, even with equal values', () => {
    expect(
      resolveApiKey([c('authorization', 'a'), c('authorization', 'a')], 'authorization', NEWAPI, AT),
    ).toMatchObject({
      kind: 'ambiguous',
      message: expect.stringContaining('authorization'),
    });
  });

  it('treats places without a key as absent, and a key stripped to nothing as invalid', () => {
    expect(resolveApiKey([c('authorization', 'Bearer'), c('x-api-key', '')], null, NEWAPI, AT)).toEqual({
      kind: 'none',
    });
    expect(
      resolveApiKey([c('authorization', 'midjourney-proxy'), c('mj-api-secret', 'sk-k')], null, NEWAPI, AT),
    ).toMatchObject({
      kind: 'key',
      canonical: 'k',
    });
    expect(resolveApiKey([c('authorization', 'Bearer sk-')], null, NEWAPI, AT).kind).toBe('invalid');
    expect(resolveApiKey([c('authorization', 'Token abc')], null, LITELLM, AT).kind).toBe('invalid');
  });

  it('refuses a key with anything but printable ASCII, without echoing it', () => {
    const r = resolveApiKey([c('x-api-key', 'sk-ab\u0000c')], null, NEWAPI, AT);
    expect(r.kind).toBe('invalid');
    expect(JSON.stringify(r)).not.toContain('sk-ab');
    expect(resolveApiKey([c('authorization', 'Bearer sk- abc')], null, NEWAPI, AT).kind).toBe('invalid');
  });

  it('refuses overlong keys without hashing them', () => {
    expect(resolveApiKey([c('x-api-key', 'a'.repeat(MAX_KEY_LENGTH + 1))], null, NONE, AT).kind).toBe(
      'invalid',
    );
    expect(resolveApiKey([c('x-api-key', 'a'.repeat(MAX_KEY_LENGTH))], null, NONE, AT).kind).toBe('key');
  });

  it("refuses New API's Midjourney placeholder where the relay may read it as a key (/api/usage/token)", () => {
    let asked = 0;
    const relayTargetOf = (target: string) => {
      asked++;
      return target;
    };
    const at = (target: string) => [target, relayTargetOf] as const;
    const mj = [c('authorization', 'Bearer midjourney-proxy'), c('mj-api-secret', 'sk-k')];
    expect(resolveApiKey(mj, null, NEWAPI, ...at('/mj/submit/imagine'))).toMatchObject({
      kind: 'key',
      canonical: 'k',
    });
    const refused = resolveApiKey(mj, null, NEWAPI, ...at('/api/usage/token'));
    expect(refused).toMatchObject({
      kind: 'ambiguous',
      message: expect.stringContaining('/api/usage/token'),
    });
    expect(JSON.stringify(refused)).not.toContain('sk-k');
    expect(
      resolveApiKey([c('authorization', 'midjourney-proxy')], null, NEWAPI, ...at('/api/usage/token')).kind,
    ).toBe('ambiguous');
    // The target is asked for only when the placeholder is there.
    asked = 0;
    expect(
      resolveApiKey([c('authorization', 'Bearer sk-abc')], null, NEWAPI, ...at('/api/usage/token')).kind,
    ).toBe('key');
    expect(asked).toBe(0);
    // LiteLLM reads no placeholder: `midjourney-proxy` without a scheme is no key there.
    expect(
      resolveApiKey([c('authorization', 'midjourney-proxy')], null, LITELLM, ...at('/api/usage/token')).kind,
    ).toBe('invalid');
  });

  it('matches every spelling of the usage endpoint a relay could resolve', () => {
    for (const t of [
      '/api/usage/token',
      '/api/usage/token?x=1',
      '/api/usage/%74oken',
      '/API/Usage/Token/',
      '/r/api/usage/token',
      '/api/usage/%74oken/%ff%fe',
    ]) {
      expect(isUsageTokenTarget(t), t).toBe(true);
    }
    for (const t of ['/api/usage', '/api/usage/tok', '/v1/chat?next=/api/usage/token', '/api/usage/%zz']) {
      expect(isUsageTokenTarget(t), t).toBe(false);
    }
  });
});
