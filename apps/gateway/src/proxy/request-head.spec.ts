import { describe, expect, it } from 'vitest';
import { queryKeys, scanRequestHead } from './request-head';

const pairs = (flat: string[]) => {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
};

describe('scanRequestHead', () => {
  it('collects every key source and keeps key headers for the downstream', () => {
    const sut = scanRequestHead(
      [
        'Authorization',
        'Bearer a1',
        'X-Api-Key',
        'a2',
        'api-key',
        'a3',
        'x-goog-api-key',
        'a4',
        'MJ-API-SECRET',
        'a5',
        'X-LiteLLM-API-Key',
        'a7',
        'Ocp-Apim-Subscription-Key',
        'a8',
        'litellm_user_api_key',
        'a9',
        'Sec-WebSocket-Protocol',
        'chat, openai-insecure-api-key.a6',
        'Sec-WebSocket-Protocol',
        ' OpenAI-Insecure-API-Key.b6 ',
      ],
      'x-real-ip',
    );
    expect(sut.keys).toEqual([
      { place: 'authorization', value: 'Bearer a1' },
      { place: 'x-api-key', value: 'a2' },
      { place: 'api-key', value: 'a3' },
      { place: 'x-goog-api-key', value: 'a4' },
      { place: 'mj-api-secret', value: 'a5' },
      { place: 'x-litellm-api-key', value: 'a7' },
      { place: 'ocp-apim-subscription-key', value: 'a8' },
      { place: 'litellm_user_api_key', value: 'a9' },
      // Every subprotocol line (New API joins them), any case of the prefix.
      { place: 'websocket-protocol', value: 'a6' },
      { place: 'websocket-protocol', value: 'b6' },
    ]);
    expect(sut.duplicateKeyHeader).toBeNull();
    expect(pairs(sut.forward).map(([n]) => n)).toEqual([
      'Authorization',
      'X-Api-Key',
      'api-key',
      'x-goog-api-key',
      'MJ-API-SECRET',
      'X-LiteLLM-API-Key',
      'Ocp-Apim-Subscription-Key',
      'litellm_user_api_key',
      'Sec-WebSocket-Protocol',
      'Sec-WebSocket-Protocol',
    ]);
  });

  it.each(['Authorization', 'x-api-key', 'api-key', 'x-litellm-api-key', 'mj-api-secret'])(
    'flags %s given on two lines',
    (name) => {
      const sut = scanRequestHead([name, 'k', name.toUpperCase(), 'k'], 'x-real-ip');
      expect(sut.duplicateKeyHeader).toBe(name.toLowerCase());
    },
  );

  it('drops hop-by-hop headers, those named in Connection, and client IP claims', () => {
    const sut = scanRequestHead(
      [
        'Host',
        'gw.example',
        'Connection',
        'keep-alive, X-Hop',
        'X-Hop',
        'secret',
        'Keep-Alive',
        'timeout=5',
        'Proxy-Connection',
        'keep-alive',
        'TE',
        'trailers',
        'Trailer',
        'x',
        'Transfer-Encoding',
        'chunked',
        'Upgrade',
        'h2c',
        'Expect',
        '100-continue',
        'X-Real-IP',
        '6.6.6.6',
        'X-Forwarded-For',
        '6.6.6.6',
        'Forwarded',
        'for=6.6.6.6',
        'Proxy-Authorization',
        'Basic x',
        'Content-Type',
        'application/json',
        'X-Custom',
        'kept',
      ],
      'x-real-ip',
    );
    expect(pairs(sut.forward)).toEqual([
      ['Content-Type', 'application/json'],
      ['X-Custom', 'kept'],
    ]);
    expect(sut.ipHeaderLines).toEqual(['6.6.6.6']);
    expect(sut.host).toBe('gw.example');
    expect(sut.hasBody).toBe(true);
    expect(sut.websocket).toBe(false);
  });

  it('notes the user agent and keeps it for the downstream', () => {
    const sut = scanRequestHead(['User-Agent', 'openai-python/1.0'], 'x-real-ip');
    expect(sut.userAgent).toBe('openai-python/1.0');
    expect(sut.forward).toEqual(['User-Agent', 'openai-python/1.0']);
    expect(scanRequestHead([], 'x-real-ip').userAgent).toBeNull();
  });

  it('keeps key headers even when Connection names them', () => {
    const sut = scanRequestHead(['Connection', 'authorization', 'Authorization', 'Bearer k'], 'x-real-ip');
    expect(pairs(sut.forward)).toEqual([['Authorization', 'Bearer k']]);
  });

  it('collects every line of the configured client-IP header', () => {
    const sut = scanRequestHead(
      ['X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2', 'X-Real-IP', '3.3.3.3'],
      'x-forwarded-for',
    );
    expect(sut.ipHeaderLines).toEqual(['1.1.1.1', '2.2.2.2']);
    expect(sut.forward).toEqual([]);
  });

  it.each([
    [['Content-Length', '0'], false],
    [['Content-Length', '12'], true],
    [['Transfer-Encoding', 'chunked'], true],
    [[], false],
  ])('detects a body from %j: %s', (headers, hasBody) => {
    expect(scanRequestHead(headers, 'x-real-ip').hasBody).toBe(hasBody);
  });

  it('recognises a WebSocket upgrade only with Connection: upgrade', () => {
    expect(scanRequestHead(['Connection', 'Upgrade', 'Upgrade', 'websocket'], 'x-real-ip').websocket).toBe(
      true,
    );
    expect(scanRequestHead(['Upgrade', 'websocket'], 'x-real-ip').websocket).toBe(false);
  });
});

describe('queryKeys', () => {
  it.each([
    ['/v1/models', []],
    ['/v1/models?a=1', []],
    ['/v1/models?key=abc', ['abc']],
    ['/v1/models?a=1&key=sk-abc%2D1&b=2', ['sk-abc-1']],
    ['/v1/models?key=a&key=b', ['a', 'b']],
    ['/v1/models?monkey=a', []],
    ['/key=x', []],
    // Names are decoded as Go's url.ParseQuery and Python's parse_qsl decode them.
    ['/v1/models?%6Bey=abc', ['abc']],
    ['/v1/models?k%65y=abc&KEY=x', ['abc']],
    ['/v1/models?a=1;key=abc', ['abc']],
    ['/v1/models?key=a+b%20c', ['a b c']],
    ['/v1/models?key=%E3%80%80abc', ['\u00e3\u0080\u0080abc']],
    ['/v1/models?key=ab%zz', ['ab%zz']],
    ['/v1/models?key', ['']],
  ])('%s → %j', (url, keys) => {
    expect(queryKeys(url)).toEqual(keys);
  });
});
