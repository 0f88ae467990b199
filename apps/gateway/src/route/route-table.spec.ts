import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SETTING_DEFAULTS } from '@keypin/shared';
import type { Forwarder } from '../proxy/forwarder';
import type { WebSocketTunnel } from '../proxy/websocket-tunnel';
import type { SealedSecret } from '../settings/secret-box';
import {
  applyRouteHeaders,
  hasProxyToken,
  keyRulesOn,
  RouteTable,
  type Upstream,
  withoutKeyParams,
} from './route-table';
import type { StoredRoute } from './route.types';

/** Sealing is the SecretBox's business: here a "sealed" value is the clear text in `data`. */
const seal = (text: string): SealedSecret => ({ v: 1, iv: '', tag: '', data: text });

function upstream(url: URL, made: string[]): Upstream {
  made.push(url.href);
  const base = url.pathname.replace(/\/+$/, '');
  return {
    forwarder: {
      pathFor: (u: string) => base + u,
      close: () => Promise.resolve(),
    } as unknown as Forwarder,
    tunnel: {} as WebSocketTunnel,
  };
}

function stored(id: number, prefix: string, over: Partial<StoredRoute> = {}): StoredRoute {
  return {
    id,
    prefix,
    upstream: `http://127.0.0.1:900${id}`,
    strip_prefix: false,
    relay: null,
    timeout_seconds: null,
    upstream_headers: {},
    require_header: null,
    created_at: new Date(),
    updated_at: new Date(),
    ...over,
  };
}

async function table(routes: StoredRoute[], env: Record<string, string> = {}, withFallback = true) {
  const made: string[] = [];
  const warnings: string[] = [];
  let rows = routes;
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
  const t = new RouteTable(
    { listAll: () => Promise.resolve(rows) },
    withFallback ? RouteTable.fallbackFor(upstream(new URL('http://127.0.0.1:8999'), [])) : null,
    (url) => upstream(url, made),
    { open: (s) => (s.data === 'undecryptable' ? null : s.data), env, refreshMs: 60_000 },
    logger,
  );
  await t.reload();
  return { t, made, warnings, set: (r: StoredRoute[]) => (rows = r) };
}

describe('RouteTable', () => {
  it('picks the longest matching prefix, else the fallback, else nothing', async () => {
    const { t } = await table([stored(1, '/v1/'), stored(2, '/v1/audio/'), stored(3, '/')]);
    expect(t.match('/v1/audio/speech')!.id).toBe(2);
    expect(t.match('/v1/chat/completions?x=1')!.id).toBe(1);
    expect(t.match('/other')!.id).toBe(3);
    const { t: noCatchAll } = await table([stored(1, '/v1/')]);
    expect(noCatchAll.match('/v2/x')!.id).toBeNull();
    const { t: none } = await table([stored(1, '/v1/')], {}, false);
    expect(none.match('/v2/x')).toBeNull();
  });

  it('matches a prefix without its last slash, and not a longer segment', async () => {
    const { t } = await table([stored(1, '/openai/')], {}, false);
    expect(t.match('/openai')!.id).toBe(1);
    expect(t.match('/openai?x=1')!.id).toBe(1);
    expect(t.match('/openaix/v1')).toBeNull();
  });

  it('matches a path a server would resolve on its resolved form', async () => {
    const { t } = await table([stored(1, '/openai/'), stored(2, '/anthropic/')], {}, false);
    expect(t.match('/openai/../anthropic/v1/messages')!.id).toBe(2);
    expect(t.match('/anthropic%2Fv1')!.id).toBe(2);
    expect(t.match('//openai//v1')!.id).toBe(1);
  });

  it('strips the prefix (keeping its slash and the query) and prepends the upstream path', async () => {
    const { t } = await table([
      stored(1, '/openai/', { strip_prefix: true, upstream: 'https://api.example.test/base' }),
      stored(2, '/keep/'),
    ]);
    const r1 = t.match('/openai/v1/chat?stream=1')!;
    expect(t.upstreamPath(r1, '/openai/v1/chat?stream=1')).toBe('/base/v1/chat?stream=1');
    expect(t.upstreamPath(r1, '/openai')).toBe('/base/');
    expect(t.upstreamPath(r1, '/openai?x=1')).toBe('/base/?x=1');
    expect(t.upstreamPath(r1, '/openai/a/../v1')).toBe('/base/v1');
    const r2 = t.match('/keep/x')!;
    expect(t.upstreamPath(r2, '/keep/x?y=1')).toBe('/keep/x?y=1');
  });

  it('shares one upstream among routes with the same URL and timeout, and keeps it across reloads', async () => {
    const { t, made, set } = await table([
      stored(1, '/a/', { upstream: 'http://127.0.0.1:9100' }),
      stored(2, '/b/', { upstream: 'http://127.0.0.1:9100' }),
      stored(3, '/c/', { upstream: 'http://127.0.0.1:9100', timeout_seconds: 5 }),
    ]);
    expect(made).toHaveLength(2);
    expect(t.match('/a/')!.upstream).toBe(t.match('/b/')!.upstream);
    set([stored(1, '/a/', { upstream: 'http://127.0.0.1:9100' }), stored(4, '/d/')]);
    await t.reload();
    expect(made).toHaveLength(3);
    expect(t.match('/d/')!.id).toBe(4);
    expect(t.match('/b/x')!.id).toBeNull();
  });

  it('resolves ${env:NAME} once, and marks a route whose variable is missing as broken', async () => {
    const { t } = await table(
      [
        stored(1, '/ok/', { upstream_headers: { authorization: seal('Bearer ${env:K1}') } }),
        stored(2, '/bad/', { upstream_headers: { 'x-api-key': seal('${env:MISSING}') } }),
        stored(3, '/locked/', { require_header: { name: 'x-proxy-token', value: seal('undecryptable') } }),
      ],
      { K1: 'provider-secret' },
    );
    const ok = t.match('/ok/')!;
    expect(ok.broken).toBeNull();
    expect(ok.setHeaders).toEqual(['authorization', 'Bearer provider-secret']);
    expect(ok.replacesKey).toBe(true);
    expect(t.match('/bad/')!.broken).toMatch(/MISSING/);
    expect(t.match('/locked/')!.broken).toMatch(/decrypted/);
  });

  it('uses the route relay for key rules, rebuilt when the settings change', async () => {
    const { t } = await table([stored(1, '/l/', { relay: 'litellm' })]);
    const s1 = { ...SETTING_DEFAULTS };
    expect(keyRulesOn(t.match('/l/')!, s1).relay).toBe('litellm');
    expect(keyRulesOn(t.match('/x')!, s1).relay).toBe('newapi');
    const s2 = { ...SETTING_DEFAULTS, key_case: 'insensitive' as const };
    expect(keyRulesOn(t.match('/l/')!, s2)).toMatchObject({ relay: 'litellm', keyCase: 'insensitive' });
  });
});

describe('proxy token and route headers', () => {
  it('accepts exactly one line with the exact value, any header name case', async () => {
    const { t } = await table([
      stored(1, '/p/', { require_header: { name: 'x-proxy-token', value: seal('s3cret') } }),
    ]);
    const r = t.match('/p/')!;
    expect(hasProxyToken(r, ['X-Proxy-Token', 's3cret'])).toBe(true);
    expect(hasProxyToken(r, ['x-proxy-token', 's3cret '])).toBe(false);
    expect(hasProxyToken(r, ['x-proxy-token', 's3cre'])).toBe(false);
    expect(hasProxyToken(r, [])).toBe(false);
    expect(hasProxyToken(r, ['x-proxy-token', 's3cret', 'x-proxy-token', 's3cret'])).toBe(false);
  });

  it('removes the token and, when the route sends its own key, every client key header', async () => {
    const { t } = await table(
      [
        stored(1, '/p/', {
          require_header: { name: 'x-proxy-token', value: seal('t') },
          upstream_headers: { authorization: seal('Bearer ${env:P}') },
        }),
        stored(2, '/h/', { upstream_headers: { 'x-team': seal('blue') } }),
      ],
      { P: 'server-key' },
    );
    const h1 = [
      'Authorization',
      'Bearer client',
      'X-Proxy-Token',
      't',
      'x-api-key',
      'client',
      'accept',
      '*/*',
    ];
    applyRouteHeaders(t.match('/p/')!, h1);
    expect(h1).toEqual(['accept', '*/*', 'authorization', 'Bearer server-key']);
    const h2 = ['Authorization', 'Bearer client', 'X-Team', 'red'];
    applyRouteHeaders(t.match('/h/')!, h2);
    expect(h2).toEqual(['Authorization', 'Bearer client', 'x-team', 'blue']);
  });

  it('drops keys offered as WebSocket subprotocols only on routes that send their own key', async () => {
    const { t } = await table(
      [
        stored(1, '/p/', { upstream_headers: { authorization: seal('Bearer ${env:P}') } }),
        stored(2, '/h/', { upstream_headers: { 'x-team': seal('blue') } }),
      ],
      { P: 'server-key' },
    );
    const h1 = [
      'Sec-WebSocket-Protocol',
      'realtime, openai-insecure-api-key.sk-client ,openai-beta.realtime-v1',
      'sec-websocket-protocol',
      ' OPENAI-INSECURE-API-KEY.sk-other',
      'Sec-WebSocket-Protocol',
      '\u00a0openai-insecure-api-key.sk-nbsp',
      'sec-websocket-protocol',
      'openai-insecure-api-key.',
    ];
    applyRouteHeaders(t.match('/p/')!, h1);
    expect(h1).toEqual([
      'Sec-WebSocket-Protocol',
      'realtime, openai-beta.realtime-v1',
      // The bare prefix carries no key: no relay reads one from it.
      'sec-websocket-protocol',
      'openai-insecure-api-key.',
      'authorization',
      'Bearer server-key',
    ]);
    const offered = ['Sec-WebSocket-Protocol', 'realtime, openai-insecure-api-key.sk-client'];
    const h2 = [...offered];
    applyRouteHeaders(t.match('/h/')!, h2);
    expect(h2).toEqual([...offered, 'x-team', 'blue']);
  });

  it('warns once per route version when a provider-key route has no proxy token', async () => {
    const provider = stored(1, '/p/', { upstream_headers: { authorization: seal('Bearer x') } });
    const guarded = stored(2, '/g/', {
      upstream_headers: { authorization: seal('Bearer x') },
      require_header: { name: 'x-proxy-token', value: seal('t') },
    });
    const plain = stored(3, '/h/', { upstream_headers: { 'x-team': seal('blue') } });
    const { t, warnings, set } = await table([provider, guarded, plain]);
    const provWarnings = () => warnings.filter((w) => w.includes('provider key'));
    expect(provWarnings()).toHaveLength(1);
    expect(provWarnings()[0]).toContain('"prefix":"/p/"');
    expect(provWarnings()[0]).not.toContain('Bearer');
    await t.reload();
    expect(provWarnings()).toHaveLength(1);
    set([{ ...provider, updated_at: new Date(provider.updated_at.getTime() + 1000) }, guarded, plain]);
    await t.reload();
    expect(provWarnings()).toHaveLength(2);
  });

  it('drops key= query parameters however they are spelled', () => {
    expect(withoutKeyParams('/v1/m?key=abc&alt=sse')).toBe('/v1/m?alt=sse');
    expect(withoutKeyParams('/v1/m?k%65y=abc')).toBe('/v1/m');
    expect(withoutKeyParams('/v1/m?a=1&key&b=2')).toBe('/v1/m?a=1&b=2');
    expect(withoutKeyParams('/v1/m?keys=1')).toBe('/v1/m?keys=1');
    expect(withoutKeyParams('/v1/m')).toBe('/v1/m');
  });
});
