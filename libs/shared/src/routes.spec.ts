import { describe, expect, it } from 'vitest';
import {
  envReferences,
  longestPrefixMatch,
  prefixError,
  resolveEnvReferences,
  ROUTE_LIMITS,
  UNSETTABLE_ROUTE_HEADERS,
  upstreamError,
  validateRoute,
} from './routes';

const minimal = { prefix: '/openai/', upstream: 'https://api.openai.com' };

describe('prefixError', () => {
  it.each(['/', '/openai/', '/a/b/', '/v1.0/', "/x-y_z~!$&'()*+,=:@/", '/administrator/', '/Admin-ui/'])(
    'accepts %s',
    (prefix) => {
      expect(prefixError(prefix)).toBeNull();
    },
  );

  it.each([
    ['', '1 to'],
    ['/' + 'a'.repeat(ROUTE_LIMITS.prefixLength) + '/', '1 to'],
    ['openai/', 'start and end'],
    ['/openai', 'start and end'],
    ['/a b/', 'may hold only'],
    ['/a%2f/', 'may hold only'],
    ['/a;b/', 'may hold only'],
    ['/a\\b/', 'may hold only'],
    ['/a?b/', 'may hold only'],
    ['/a#b/', 'may hold only'],
    ['/é/', 'may hold only'],
    ['//', 'empty segment'],
    ['/a//b/', 'empty segment'],
    ['/./', '"." or ".."'],
    ['/a/../', '"." or ".."'],
    ['/admin/', 'reserved'],
    ['/ADMIN/api/', 'reserved'],
    ['/health/', 'reserved'],
    ['/ready/x/', 'reserved'],
    ['/metrics/', 'reserved'],
  ])('refuses %j (%s)', (prefix, message) => {
    expect(prefixError(prefix)).toContain(message);
  });
});

describe('upstreamError', () => {
  it.each([
    'http://127.0.0.1:8080',
    'https://api.openai.com',
    'https://host/base/path',
    'http://[::1]:3000/',
  ])('accepts %s', (u) => {
    expect(upstreamError(u)).toBeNull();
  });

  it.each([
    ['not a url', 'http or https'],
    ['ftp://host', 'http or https'],
    ['file:///etc/passwd', 'http or https'],
    ['https://user:pass@host', 'credentials'],
    ['https://host/?a=1', 'query or fragment'],
    ['https://host/#x', 'query or fragment'],
    ['https://host/?', 'query or fragment'],
    [`https://host/${'a'.repeat(ROUTE_LIMITS.upstreamLength)}`, 'at most'],
  ])('refuses %s (%s)', (u, message) => {
    expect(upstreamError(u)).toContain(message);
  });
});

describe('validateRoute', () => {
  it('fills the defaults of a minimal route and drops the upstream’s trailing slash', () => {
    expect(validateRoute({ ...minimal, upstream: 'https://api.openai.com/' })).toEqual({
      ok: true,
      value: {
        prefix: '/openai/',
        upstream: 'https://api.openai.com',
        strip_prefix: false,
        relay: null,
        timeout_seconds: null,
        upstream_headers: {},
        require_header: null,
      },
    });
  });

  it('keeps every field of a full route, header names lower case and values as written', () => {
    const r = validateRoute({
      prefix: '/openai/',
      upstream: 'https://api.openai.com/v1',
      strip_prefix: true,
      relay: 'openai',
      timeout_seconds: 600,
      upstream_headers: { Authorization: 'Bearer ${env:OPENAI_API_KEY}', 'X-Org': 'org-1\tx' },
      require_header: { name: 'X-Proxy-Token', value: '${env:PROXY_TOKEN}' },
    });
    expect(r).toEqual({
      ok: true,
      value: {
        prefix: '/openai/',
        upstream: 'https://api.openai.com/v1',
        strip_prefix: true,
        relay: 'openai',
        timeout_seconds: 600,
        upstream_headers: { authorization: 'Bearer ${env:OPENAI_API_KEY}', 'x-org': 'org-1\tx' },
        require_header: { name: 'x-proxy-token', value: '${env:PROXY_TOKEN}' },
      },
    });
  });

  it('answers only the fields given when partial, null clearing', () => {
    expect(validateRoute({ upstream: 'http://b:1/' }, '', true)).toEqual({
      ok: true,
      value: { upstream: 'http://b:1' },
    });
    expect(validateRoute({ relay: null, timeout_seconds: null, require_header: null }, '', true)).toEqual({
      ok: true,
      value: { relay: null, timeout_seconds: null, require_header: null },
    });
    expect(validateRoute({}, '', true)).toEqual({ ok: true, value: {} });
  });

  const bad: [unknown, string][] = [
    [null, 'route'],
    [[], 'route'],
    ['x', 'route'],
    [{ upstream: minimal.upstream }, 'route.prefix'],
    [{ prefix: '/admin/', upstream: minimal.upstream }, 'route.prefix'],
    [{ prefix: '/openai', upstream: minimal.upstream }, 'route.prefix'],
    [{ prefix: '/openai/' }, 'route.upstream'],
    [{ ...minimal, upstream: 'ftp://x' }, 'route.upstream'],
    [{ ...minimal, strip_prefix: 'yes' }, 'route.strip_prefix'],
    [{ ...minimal, relay: 'azure' }, 'route.relay'],
    [{ ...minimal, timeout_seconds: 0 }, 'route.timeout_seconds'],
    [{ ...minimal, timeout_seconds: 3601 }, 'route.timeout_seconds'],
    [{ ...minimal, timeout_seconds: 1.5 }, 'route.timeout_seconds'],
    [{ ...minimal, upstream_headers: [] }, 'route.upstream_headers'],
    [{ ...minimal, upstream_headers: 'authorization: x' }, 'route.upstream_headers'],
    [{ ...minimal, upstream_headers: { 'bad header': 'x' } }, 'route.upstream_headers.bad header'],
    [{ ...minimal, upstream_headers: { Host: 'x' } }, 'route.upstream_headers.Host'],
    [{ ...minimal, upstream_headers: { 'x-forwarded-for': 'x' } }, 'route.upstream_headers.x-forwarded-for'],
    [{ ...minimal, upstream_headers: { a: 'x', A: 'y' } }, 'route.upstream_headers.A'],
    [{ ...minimal, upstream_headers: { a: '' } }, 'route.upstream_headers.a'],
    [{ ...minimal, upstream_headers: { a: 5 } }, 'route.upstream_headers.a'],
    [{ ...minimal, upstream_headers: { a: 'x\ny' } }, 'route.upstream_headers.a'],
    [{ ...minimal, upstream_headers: { a: '${env:lower-case}' } }, 'route.upstream_headers.a'],
    [{ ...minimal, upstream_headers: { a: '${OPENAI_KEY}' } }, 'route.upstream_headers.a'],
    [{ ...minimal, require_header: 'x-token' }, 'route.require_header'],
    [{ ...minimal, require_header: { value: 'x' } }, 'route.require_header.name'],
    [{ ...minimal, require_header: { name: 'x-t', value: '' } }, 'route.require_header.value'],
    [{ ...minimal, require_header: { name: 'x-t', value: 'v', extra: 1 } }, 'route.require_header.extra'],
    [{ ...minimal, require_header: { name: 'connection', value: 'v' } }, 'route.require_header.name'],
    [
      { ...minimal, upstream_headers: { 'X-T': 'a' }, require_header: { name: 'x-t', value: 'b' } },
      'route.require_header.name',
    ],
    [{ ...minimal, headers: {} }, 'route.headers'],
  ];
  it.each(bad)('refuses %j naming %s', (input, field) => {
    expect(validateRoute(input)).toMatchObject({ ok: false, field });
  });

  it('refuses more headers than the limit', () => {
    const headers = Object.fromEntries(
      Array.from({ length: ROUTE_LIMITS.headers + 1 }, (_, i) => [`x-h${i}`, 'v']),
    );
    expect(validateRoute({ ...minimal, upstream_headers: headers })).toMatchObject({
      ok: false,
      field: 'route.upstream_headers',
    });
  });

  it('names fields under the name it is given, or bare with ""', () => {
    expect(validateRoute({ prefix: 'x' }, 'ROUTES[2]')).toMatchObject({ field: 'ROUTES[2].prefix' });
    expect(validateRoute({ prefix: 'x' }, '', true)).toMatchObject({ field: 'prefix' });
  });

  it('never puts a header value in a message', () => {
    const secret = 'sk-very-secret-value';
    for (const input of [
      { ...minimal, upstream_headers: { 'bad header': secret } },
      { ...minimal, upstream_headers: { a: `${secret}\n` } },
      { ...minimal, upstream_headers: { a: `${secret}\${` } },
      { ...minimal, require_header: { name: 'host', value: secret } },
    ]) {
      const r = validateRoute(input);
      expect(r.ok).toBe(false);
      expect(JSON.stringify(r)).not.toContain(secret);
    }
  });

  it('cannot set any of the headers KeyPin sets itself', () => {
    for (const name of UNSETTABLE_ROUTE_HEADERS) {
      expect(validateRoute({ ...minimal, upstream_headers: { [name]: 'x' } }).ok).toBe(false);
    }
  });
});

describe('envReferences and resolveEnvReferences', () => {
  it('finds every reference', () => {
    expect(envReferences('Bearer ${env:A_1} and ${env:_b}')).toEqual(['A_1', '_b']);
    expect(envReferences('no references, $env:X, {env:Y}')).toEqual([]);
  });

  it('resolves from the environment, or names the first missing or empty variable', () => {
    expect(resolveEnvReferences('Bearer ${env:K}', { K: 'sk-1' })).toEqual({
      ok: true,
      value: 'Bearer sk-1',
    });
    expect(resolveEnvReferences('plain', {})).toEqual({ ok: true, value: 'plain' });
    expect(resolveEnvReferences('${env:A}${env:B}', { A: 'x' })).toEqual({ ok: false, missing: 'B' });
    expect(resolveEnvReferences('${env:A}', { A: '' })).toEqual({ ok: false, missing: 'A' });
  });
});

describe('longestPrefixMatch', () => {
  const table = [{ prefix: '/openai/v1/' }, { prefix: '/openai/' }, { prefix: '/a/' }, { prefix: '/' }].sort(
    (a, b) => b.prefix.length - a.prefix.length,
  );
  it.each([
    ['/openai/v1/chat', '/openai/v1/'],
    ['/openai/v2/chat', '/openai/'],
    ['/openai', '/openai/'],
    ['/openai?x=1', '/openai/'],
    ['/openai/v1', '/openai/v1/'],
    ['/openaix/y', '/'],
    ['/a', '/a/'],
    ['/b', '/'],
  ])('%s → %s', (target, prefix) => {
    expect(longestPrefixMatch(table, target)?.prefix).toBe(prefix);
  });

  it('answers null when nothing matches', () => {
    expect(longestPrefixMatch([{ prefix: '/openai/' }], '/other')).toBeNull();
    expect(longestPrefixMatch([], '/x')).toBeNull();
  });
});
