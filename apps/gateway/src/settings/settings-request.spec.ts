import { describe, expect, it } from 'vitest';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import { parseSettingsRequest, wouldUnbindAll } from './settings-request';

const fieldOf = (body: unknown): string | undefined => {
  try {
    parseSettingsRequest(body, false);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(KeypinError);
    expect((err as KeypinError).code).toBe('validation_failed');
    return (err as KeypinError).extra?.['field'] as string;
  }
};

describe('parseSettingsRequest', () => {
  it('takes confirm_unbind_all apart from the settings (never a setting itself)', () => {
    expect(parseSettingsRequest({ relay: 'litellm', confirm_unbind_all: true }, false)).toEqual({
      patch: { relay: 'litellm' },
      confirmUnbindAll: true,
    });
    expect(parseSettingsRequest({ key_case: 'insensitive' }, false)).toEqual({
      patch: { key_case: 'insensitive' },
      confirmUnbindAll: false,
    });
    expect(parseSettingsRequest({ alert_webhook_secret: null }, false)).toEqual({
      patch: {},
      secret: null,
      confirmUnbindAll: false,
    });
  });

  it.each([
    [{ relay: 'litellm', confirm_unbind_all: 'true' }, 'confirm_unbind_all'],
    [{ relay: 'litellm', confirm_unbind_all: 1 }, 'confirm_unbind_all'],
    [{ relay: 'litellm', confirm_unbind_all: null }, 'confirm_unbind_all'],
    [{ confirm_unbind_all: true }, 'body'],
    [{ relay: 'LiteLLM' }, 'relay'],
    [{ key_case: 'lower' }, 'key_case'],
    [{ alert_webhook_secret: '' }, 'alert_webhook_secret'],
    [{ alert_webhook_url: 'http://10.0.0.1/hook' }, 'alert_webhook_url'],
    [[], 'body'],
    [{ networks: { allow: ['10.0.0.1/8'] } }, 'networks.allow[0]'],
    [{ networks: { deny: ['10.0.0.0/8', '0.0.0.0/33'] } }, 'networks.deny[1]'],
    [{ networks: { deny: null } }, 'networks.deny'],
    [{ networks: { block: [] } }, 'networks.block'],
    [{ networks: null }, 'networks'],
  ])('refuses %j naming %s', (body, field) => {
    expect(fieldOf(body)).toBe(field);
  });
});

describe('parseSettingsRequest: networks', () => {
  it('answers the canonical lists and which lists the body named', () => {
    expect(parseSettingsRequest({ networks: { deny: ['192.0.2.7'] } }, false)).toEqual({
      patch: { networks: { allow: [], deny: ['192.0.2.7/32'], first_use_from: [] } },
      confirmUnbindAll: false,
      networkLists: ['deny'],
    });
    expect(
      parseSettingsRequest({ networks: { allow: [], deny: [], first_use_from: ['10.0.0.0/8'] } }, false)
        .networkLists,
    ).toEqual(['allow', 'deny', 'first_use_from']);
    expect(parseSettingsRequest({ networks: {} }, false).networkLists).toEqual([]);
  });
});

describe('wouldUnbindAll', () => {
  it('says how many bindings would stop matching, and how to go ahead', () => {
    const one = wouldUnbindAll({ fields: ['relay'], bindings: 1, banned: 0 });
    expect(one.code).toBe('would_unbind_all');
    expect(one.message).toMatch(/^Changing relay .* the 1 existing binding would stop matching/);
    expect(one.message).toMatch(/"confirm_unbind_all": true/);
    const many = wouldUnbindAll({ fields: ['token_normalize', 'key_case'], bindings: 12, banned: 3 });
    expect(many.message).toMatch(
      /^Changing token_normalize and key_case .* all 12 existing bindings \(3 of them banned/,
    );
    expect(many.extra).toEqual({ bindings: 12, banned: 3, fields: ['token_normalize', 'key_case'] });
  });
});
