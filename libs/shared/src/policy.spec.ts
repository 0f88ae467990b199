import { describe, expect, it } from 'vitest';
import { isUnlimited, modelAllowed, validatePolicy } from './policy';
import { validateSettingsPatch } from './settings';

describe('validatePolicy', () => {
  it('accepts null (no policy) and {} (explicitly unlimited)', () => {
    expect(validatePolicy(null)).toEqual({ ok: true, value: null });
    expect(validatePolicy({})).toEqual({ ok: true, value: {} });
    expect(isUnlimited({})).toBe(true);
    expect(isUnlimited(null)).toBe(true);
    expect(isUnlimited({ max_tokens: 5 })).toBe(false);
  });

  it('accepts every field in range, drops null fields, de-duplicates models', () => {
    const r = validatePolicy({
      rate_per_second: 0.5,
      burst: 3,
      requests_per_day: 1000,
      requests_per_month: 20000,
      max_concurrent: 2,
      models: ['gpt-4o-mini', 'claude-*', 'gpt-4o-mini'],
      max_tokens: 4096,
      requests_per_day_extra: undefined,
    });
    expect(r.ok).toBe(false); // unknown field, even undefined-valued, is named
    const ok = validatePolicy({ rate_per_second: 0.5, burst: 3, models: ['a', 'b*', 'a'], max_tokens: null });
    expect(ok).toEqual({ ok: true, value: { rate_per_second: 0.5, burst: 3, models: ['a', 'b*'] } });
  });

  it.each([
    [{ rate_per_second: 0 }, 'policy.rate_per_second', /from 0.001/],
    [{ rate_per_second: '5' }, 'policy.rate_per_second', /number/],
    [{ burst: 2 }, 'policy.burst', /needs rate_per_second/],
    [{ rate_per_second: 1, burst: 1.5 }, 'policy.burst', /integer/],
    [{ requests_per_day: -1 }, 'policy.requests_per_day', /integer/],
    [{ max_concurrent: 1e9 }, 'policy.max_concurrent', /100000/],
    [{ max_tokens: Number.NaN }, 'policy.max_tokens', /integer/],
    [{ models: 'gpt-4o' }, 'policy.models', /list/],
    [{ models: ['ok', ''] }, 'policy.models[1]', /1 to 200/],
    [{ models: ['a*b'] }, 'policy.models[0]', /last character/],
    [{ models: ['gpt 4'] }, 'policy.models[0]', /printable ASCII/],
    [{ models: ['gpt\u20114'] }, 'policy.models[0]', /printable ASCII/],
    [{ colour: 'red' }, 'policy.colour', /not a policy field/],
    [[], 'policy', /object or null/],
    ['x', 'policy', /object or null/],
  ])('refuses %j naming %s', (input, field, message) => {
    const r = validatePolicy(input);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.field).toBe(field);
      expect(r.message).toMatch(message);
    }
  });

  it('is the settings check for default_policy (field named under default_policy)', () => {
    expect(validateSettingsPatch({ default_policy: { max_tokens: 0 } })).toEqual({
      ok: false,
      field: 'default_policy.max_tokens',
      message: 'must be an integer from 1 to 100000000',
    });
    expect(validateSettingsPatch({ default_policy: { requests_per_day: 5 } })).toEqual({
      ok: true,
      value: { default_policy: { requests_per_day: 5 } },
    });
    expect(validateSettingsPatch({ default_policy: null })).toEqual({
      ok: true,
      value: { default_policy: null },
    });
  });
});

describe('modelAllowed', () => {
  it('matches exact names and prefixes ending in *', () => {
    const list = ['gpt-4o-mini', 'claude-3-*'];
    expect(modelAllowed(list, 'gpt-4o-mini')).toBe(true);
    expect(modelAllowed(list, 'gpt-4o-mini-2024')).toBe(false);
    expect(modelAllowed(list, 'GPT-4o-mini')).toBe(false);
    expect(modelAllowed(list, 'claude-3-opus')).toBe(true);
    expect(modelAllowed(list, 'claude-3-')).toBe(true);
    expect(modelAllowed(list, 'claude-2')).toBe(false);
    expect(modelAllowed(['*'], 'anything')).toBe(true);
    expect(modelAllowed([], 'gpt-4o-mini')).toBe(false);
  });
});
