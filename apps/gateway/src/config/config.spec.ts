import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config';

const secret32 = 'x'.repeat(32);
const prod = {
  NODE_ENV: 'production',
  DOWNSTREAM_URL: 'http://new-api:3000',
  HMAC_SECRET: secret32,
  ADMIN_JWT_SECRET: secret32,
};

function failure(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('has working defaults outside production', () => {
    const sut = loadConfig({});
    expect(sut).toMatchObject({
      production: false,
      port: 8080,
      host: '0.0.0.0',
      downstreamUrl: null,
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/keypin',
      redisUrl: 'redis://127.0.0.1:6379/0',
      redisPrefix: 'keypin:',
      realIpHeader: 'x-real-ip',
      role: 'all',
      hmacSecretIsDevDefault: true,
    });
    expect(sut.settings).toEqual({
      failsafe_mode: 'closed',
      enforce_mode: 'enforce',
      alert_webhook_url: null,
      alert_threshold_count: 5,
      alert_threshold_seconds: 300,
      archive_days: 90,
      bind_ipv4_prefix: 32,
      bind_ipv6_prefix: 64,
      auto_ban: false,
      token_normalize: 'newapi',
      relay: 'newapi',
      key_case: 'sensitive',
      default_policy: null,
    });
    expect(sut.trustedProxies).toHaveLength(2);
  });

  it('accepts a valid production configuration', () => {
    const sut = loadConfig(prod);
    expect(sut.production).toBe(true);
    expect(sut.downstreamUrl?.origin).toBe('http://new-api:3000');
  });

  it.each([
    [{ ...prod, HMAC_SECRET: '' }, 'HMAC_SECRET'],
    [{ ...prod, HMAC_SECRET: 'short' }, 'HMAC_SECRET'],
    [{ ...prod, ADMIN_JWT_SECRET: 'x'.repeat(31) }, 'ADMIN_JWT_SECRET'],
    [{ ...prod, DOWNSTREAM_URL: '' }, 'DOWNSTREAM_URL'],
    [{ ...prod, ADMIN_PASSWORD: 'short' }, 'ADMIN_PASSWORD'],
    [{ DOWNSTREAM_URL: 'ftp://x' }, 'DOWNSTREAM_URL'],
    [{ DOWNSTREAM_URL: 'not a url' }, 'DOWNSTREAM_URL'],
    [{ TRUSTED_PROXIES: '10.0.0.1/8' }, 'TRUSTED_PROXIES'],
    [{ TRUSTED_PROXIES: '127.0.0.1/32,010.0.0.0/8' }, 'TRUSTED_PROXIES'],
    [{ REAL_IP_HEADER: 'forwarded' }, 'REAL_IP_HEADER'],
    [{ ROLE: 'admin' }, 'ROLE'],
    [{ FAILSAFE_MODE: 'maybe' }, 'FAILSAFE_MODE'],
    [{ ENFORCE_MODE: 'off' }, 'ENFORCE_MODE'],
    [{ TOKEN_NORMALIZE: 'openai' }, 'TOKEN_NORMALIZE'],
    [{ BIND_IPV4_PREFIX: '33' }, 'BIND_IPV4_PREFIX'],
    [{ BIND_IPV6_PREFIX: '64.5' }, 'BIND_IPV6_PREFIX'],
    [{ ALERT_THRESHOLD_COUNT: '0' }, 'ALERT_THRESHOLD_COUNT'],
    [{ AUTO_BAN: 'sometimes' }, 'AUTO_BAN'],
    [{ PORT: '70000' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://x/y' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'postgres://x' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
    [{ ALERT_WEBHOOK_URL: 'file:///etc/passwd' }, 'ALERT_WEBHOOK_URL'],
    [{ DEFAULT_POLICY: '{rate_per_second: 5}' }, 'DEFAULT_POLICY'],
    [{ DEFAULT_POLICY: '{"rate_per_second": 0}' }, 'DEFAULT_POLICY'],
    [{ DEFAULT_POLICY: '{"models": "gpt-4o"}' }, 'DEFAULT_POLICY'],
    [{ DEFAULT_POLICY: '[]' }, 'DEFAULT_POLICY'],
    [{ POLICY_BODY_LIMIT: '10' }, 'POLICY_BODY_LIMIT'],
  ] as [Record<string, string>, string][])('refuses %o naming %s on one line', (env, variable) => {
    const err = failure(env);
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(variable);
    expect(err.message).not.toContain('\n');
  });

  it('reads DEFAULT_POLICY as JSON, checked as the admin API checks it', () => {
    expect(
      loadConfig({ DEFAULT_POLICY: ' {"rate_per_second": 2.5, "models": ["gpt-4o-mini"]} ' }).settings
        .default_policy,
    ).toEqual({ rate_per_second: 2.5, models: ['gpt-4o-mini'] });
    expect(loadConfig({ DEFAULT_POLICY: 'null' }).settings.default_policy).toBeNull();
    expect(failure({ DEFAULT_POLICY: '{"burst": 3}' }).message).toContain(
      'DEFAULT_POLICY.burst needs rate_per_second',
    );
    expect(loadConfig({}).policyBodyLimit).toBe(4 * 1024 * 1024);
  });

  it('never prints secrets', () => {
    const sut = loadConfig({ ...prod, HMAC_SECRET: 'super-secret-value-that-is-long-enough' });
    expect(JSON.stringify(sut)).not.toContain('super-secret');
    expect(String(sut.hmacSecret)).toBe('[secret]');
  });

  it('takes enum values in any case', () => {
    expect(loadConfig({ FAILSAFE_MODE: 'OPEN', ROLE: 'Worker' })).toMatchObject({ role: 'worker' });
  });

  it('has the proxy limits, 0 switching each off', () => {
    expect(loadConfig({})).toMatchObject({
      firstUseLimit: 30,
      bodyTimeoutMs: 60_000,
      maxInflightPerIp: 256,
      downstreamMaxConnections: 1024,
    });
    const off = { FIRST_USE_LIMIT: '0', BODY_TIMEOUT_SECONDS: '0', MAX_INFLIGHT_PER_IP: '0' };
    expect(loadConfig({ ...off, DOWNSTREAM_MAX_CONNECTIONS: '0' })).toMatchObject({
      firstUseLimit: 0,
      bodyTimeoutMs: 0,
      maxInflightPerIp: 0,
      downstreamMaxConnections: 0,
    });
    const names = [
      'FIRST_USE_LIMIT',
      'BODY_TIMEOUT_SECONDS',
      'MAX_INFLIGHT_PER_IP',
      'DOWNSTREAM_MAX_CONNECTIONS',
    ];
    for (const name of names) expect(failure({ [name]: '-1' }).variable).toBe(name);
  });
});
