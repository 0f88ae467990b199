import { availableParallelism } from 'node:os';
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
      alert_webhook_format: 'standard',
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
      networks: { allow: [], deny: [], first_use_from: [] },
    });
    expect(sut.routes).toEqual([]);
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
    [{ WORKERS: '0' }, 'WORKERS'],
    [{ WORKERS: '2.5' }, 'WORKERS'],
    [{ WORKERS: 'all' }, 'WORKERS'],
    [{ WORKERS: '65' }, 'WORKERS'],
    [{ CLUSTER_SCHEDULE: 'random' }, 'CLUSTER_SCHEDULE'],
    [{ NODE_SEMI_SPACE_MB: '-1' }, 'NODE_SEMI_SPACE_MB'],
    [{ NODE_SEMI_SPACE_MB: '257' }, 'NODE_SEMI_SPACE_MB'],
    [{ NODE_SEMI_SPACE_MB: '32MB' }, 'NODE_SEMI_SPACE_MB'],
    [{ DOWNSTREAM_CLIENT: 'fetch' }, 'DOWNSTREAM_CLIENT'],
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
    [{ ALERT_WEBHOOK_FORMAT: 'teams' }, 'ALERT_WEBHOOK_FORMAT'],
    [{ DEFAULT_POLICY: '{rate_per_second: 5}' }, 'DEFAULT_POLICY'],
    [{ DEFAULT_POLICY: '{"rate_per_second": 0}' }, 'DEFAULT_POLICY'],
    [{ DEFAULT_POLICY: '{"models": "gpt-4o"}' }, 'DEFAULT_POLICY'],
    [{ DEFAULT_POLICY: '[]' }, 'DEFAULT_POLICY'],
    [{ POLICY_BODY_LIMIT: '10' }, 'POLICY_BODY_LIMIT'],
    [{ NETWORK_ALLOW: '10.0.0.1/8' }, 'NETWORK_ALLOW'],
    [{ NETWORK_DENY: '192.0.2.0/24,nope' }, 'NETWORK_DENY'],
    [{ FIRST_USE_FROM: '010.0.0.0/8' }, 'FIRST_USE_FROM'],
    [{ ROUTES: '{"prefix": "/a/", "upstream": "http://a"}' }, 'ROUTES'],
    [{ ROUTES: '[{"prefix": "/a/", "upstream": "http://a"},]' }, 'ROUTES'],
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

  it('reads NETWORK_ALLOW, NETWORK_DENY and FIRST_USE_FROM into the networks setting, canonical', () => {
    const sut = loadConfig({
      NETWORK_ALLOW: ' 10.0.0.0/8, 2001:DB8::/32 ,',
      NETWORK_DENY: '10.1.2.3',
      FIRST_USE_FROM: '192.168.0.0/16,192.168.0.0/16',
    });
    expect(sut.settings.networks).toEqual({
      allow: ['10.0.0.0/8', '2001:db8::/32'],
      deny: ['10.1.2.3/32'],
      first_use_from: ['192.168.0.0/16'],
    });
    expect(failure({ NETWORK_ALLOW: '10.0.0.0/8,10.0.0.1/8' }).message).toBe(
      'Invalid configuration: NETWORK_ALLOW "10.0.0.1/8" has host bits set; write the network address',
    );
  });

  describe('ROUTES', () => {
    const env = { OPENAI_API_KEY: 'sk-from-env', PROXY_TOKEN: 'tok' };
    const routes = (value: unknown) => ({ ...env, ROUTES: JSON.stringify(value) });

    it('reads a JSON array of routes, checked as the admin API checks them', () => {
      const sut = loadConfig(
        routes([
          {
            prefix: '/openai/',
            upstream: 'https://api.openai.com/',
            strip_prefix: true,
            relay: 'openai',
            timeout_seconds: 600,
            upstream_headers: { Authorization: 'Bearer ${env:OPENAI_API_KEY}' },
            require_header: { name: 'x-proxy-token', value: '${env:PROXY_TOKEN}' },
          },
          { prefix: '/local/', upstream: 'http://127.0.0.1:3000' },
        ]),
      );
      expect(sut.routes).toEqual([
        {
          prefix: '/openai/',
          upstream: 'https://api.openai.com',
          strip_prefix: true,
          relay: 'openai',
          timeout_seconds: 600,
          // As written: references are resolved by each instance's routing table.
          upstream_headers: { authorization: 'Bearer ${env:OPENAI_API_KEY}' },
          require_header: { name: 'x-proxy-token', value: '${env:PROXY_TOKEN}' },
        },
        {
          prefix: '/local/',
          upstream: 'http://127.0.0.1:3000',
          strip_prefix: false,
          relay: null,
          timeout_seconds: null,
          upstream_headers: {},
          require_header: null,
        },
      ]);
      expect(loadConfig({ ROUTES: '[]' }).routes).toEqual([]);
      expect(loadConfig({ ROUTES: '  ' }).routes).toEqual([]);
    });

    const ok = { prefix: '/a/', upstream: 'http://a' };
    it.each([
      [[ok, { prefix: '/admin/', upstream: 'http://a' }], 'ROUTES[1].prefix'],
      [[{ prefix: '/b', upstream: 'http://a' }], 'ROUTES[0].prefix'],
      [[ok, { prefix: '/b/', upstream: 'gopher://a' }], 'ROUTES[1].upstream'],
      [[{ ...ok, upstream_headers: { 'bad name': 'x' } }], 'ROUTES[0].upstream_headers.bad name'],
      [[{ ...ok, color: 'blue' }], 'ROUTES[0].color'],
      [[ok, { ...ok, upstream: 'http://b' }], 'ROUTES[1].prefix repeats the prefix of ROUTES[0]'],
      [
        [{ ...ok, upstream_headers: { authorization: 'Bearer ${env:MISSING}' } }],
        'ROUTES[0].upstream_headers.authorization',
      ],
      [[{ ...ok, require_header: { name: 'x-t', value: '${env:EMPTY}' } }], 'ROUTES[0].require_header.value'],
      [[null], 'ROUTES[0]'],
      [Array.from({ length: 101 }, (_, i) => ({ prefix: `/p${i}/`, upstream: 'http://a' })), 'at most 100'],
    ])('refuses %j naming %s', (value, text) => {
      const err = failure({ ...routes(value), EMPTY: '' });
      expect(err.variable).toBe('ROUTES');
      expect(err.message).toContain(text);
      expect(err.message).not.toContain('\n');
    });

    it('names a missing variable, and never prints a header value or the JSON text', () => {
      const missing = failure(routes([{ ...ok, upstream_headers: { 'x-key': 'sk-clear ${env:NOT_SET}' } }]));
      expect(missing.message).toContain('NOT_SET');
      expect(missing.message).not.toContain('sk-clear');
      const bad = failure({ ROUTES: '[{"prefix": "/a/", "upstream_headers": {"a": "sk-clear-value"}' });
      expect(bad.message).not.toContain('sk-clear');
      const value = failure(routes([{ ...ok, upstream_headers: { a: 'sk-clear\u0001' } }]));
      expect(value.message).not.toContain('sk-clear');
    });
  });

  it('never prints secrets', () => {
    const sut = loadConfig({ ...prod, HMAC_SECRET: 'super-secret-value-that-is-long-enough' });
    expect(JSON.stringify(sut)).not.toContain('super-secret');
    expect(String(sut.hmacSecret)).toBe('[secret]');
  });

  it('reads WORKERS as a count, or `auto` as the cores this process may use', () => {
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ WORKERS: '3' }).workers).toBe(3);
    expect(loadConfig({ WORKERS: 'AUTO' }).workers).toBe(Math.min(64, availableParallelism()));
    expect(loadConfig({}).clusterSchedule).toBe('rr');
    expect(loadConfig({ CLUSTER_SCHEDULE: 'None' }).clusterSchedule).toBe('none');
    expect(loadConfig({}).semiSpaceMb).toBe(64);
    expect(loadConfig({ NODE_SEMI_SPACE_MB: '0' }).semiSpaceMb).toBe(0);
    expect(loadConfig({ NODE_SEMI_SPACE_MB: '128' }).semiSpaceMb).toBe(128);
  });

  it("uses KeyPin's own upstream client unless DOWNSTREAM_CLIENT=undici", () => {
    expect(loadConfig({}).downstreamClient).toBe('keypin');
    expect(loadConfig({ DOWNSTREAM_CLIENT: 'undici' }).downstreamClient).toBe('undici');
    expect(loadConfig({ DOWNSTREAM_CLIENT: 'KeyPin' }).downstreamClient).toBe('keypin');
  });

  it('takes enum values in any case', () => {
    expect(loadConfig({ FAILSAFE_MODE: 'OPEN', ROLE: 'Worker' })).toMatchObject({ role: 'worker' });
  });

  it('reads ALERT_WEBHOOK_FORMAT as the initial alert_webhook_format', () => {
    expect(loadConfig({ ALERT_WEBHOOK_FORMAT: 'Feishu' }).settings.alert_webhook_format).toBe('feishu');
    expect(loadConfig({}).settings.alert_webhook_format).toBe('standard');
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

describe('loadConfig: Redis topology (docs/redis.md)', () => {
  it('is a standalone server at REDIS_URL by default', () => {
    expect(loadConfig({}).redis).toEqual({ kind: 'standalone', url: 'redis://127.0.0.1:6379/0' });
  });

  it('reads a Sentinel group: REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_SENTINEL_PASSWORD', () => {
    const sut = loadConfig({
      REDIS_SENTINELS: ' s1:26379, 10.0.0.2:26380 ,[::1]:26381',
      REDIS_SENTINEL_NAME: 'mymaster',
      REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
      REDIS_URL: 'redis://:data-pw@ignored:6379/2',
    });
    expect(sut.redis).toMatchObject({
      kind: 'sentinel',
      url: 'redis://:data-pw@ignored:6379/2',
      name: 'mymaster',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
    });
    expect(sut.redis.kind === 'sentinel' && sut.redis.sentinelPassword?.revealText()).toBe('sentinel-pw');
    expect(JSON.stringify(sut.redis)).not.toContain('sentinel-pw');
    expect(sut.redis).toMatchObject({ sentinelTls: false });
  });

  it('reads REDIS_SENTINEL_TLS, only with REDIS_SENTINELS', () => {
    const sentinels = { REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'mymaster' };
    expect(loadConfig({ ...sentinels, REDIS_SENTINEL_TLS: 'true' }).redis).toMatchObject({
      sentinelTls: true,
    });
    expect(() => loadConfig({ ...sentinels, REDIS_SENTINEL_TLS: 'maybe' })).toThrow(/REDIS_SENTINEL_TLS/);
    expect(() => loadConfig({ REDIS_SENTINEL_TLS: 'true' })).toThrow(
      /REDIS_SENTINEL_TLS.*needs REDIS_SENTINELS/,
    );
  });

  it('reads a Redis Cluster: REDIS_CLUSTER_NODES', () => {
    expect(loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000,127.0.0.1:7001' }).redis).toEqual({
      kind: 'cluster',
      url: 'redis://127.0.0.1:6379/0',
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: '127.0.0.1', port: 7001 },
      ],
    });
  });

  it.each([
    [{ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm', REDIS_CLUSTER_NODES: 'b:2' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_SENTINELS: 'a:26379' }, 'REDIS_SENTINEL_NAME'],
    [{ REDIS_SENTINEL_NAME: 'mymaster' }, 'REDIS_SENTINEL_NAME'],
    [{ REDIS_SENTINEL_PASSWORD: 'pw' }, 'REDIS_SENTINEL_PASSWORD'],
    [{ REDIS_SENTINELS: 'a', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS'],
    [{ REDIS_SENTINELS: 'a:0', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS'],
    [{ REDIS_SENTINELS: 'a:70000', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS'],
    [{ REDIS_SENTINELS: ',', REDIS_SENTINEL_NAME: 'm' }, 'REDIS_SENTINELS'],
    [{ REDIS_CLUSTER_NODES: 'redis://a:7000' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_CLUSTER_NODES: 'a:7000 b:7001' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://a:7000/3' }, 'REDIS_URL'],
    [{ REDIS_CLUSTER_NODES: 'a:7000', REDIS_PREFIX: '{kp}:' }, 'REDIS_PREFIX'],
  ])('refuses %j naming %s', (env, variable) => {
    const err = failure(env);
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(variable);
  });
});
