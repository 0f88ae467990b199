import { maskKey } from '@keypin/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores } from './support/stores';

/**
 * ACCESS_LOG=json (docs/contract.md 10): one JSON line per proxied request
 * on stdout, with the masked key and the path without its query; never a
 * raw key, never a query string.
 */

let keyN = 0;
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;

type Line = Record<string, unknown>;
const accessLines = (gw: GatewayProcess): Line[] =>
  gw.logs.filter((l) => 'bytes_out' in l && 'decision' in l);

describe('ACCESS_LOG=json', () => {
  const stores = freshStores('access_log');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;

  beforeAll(async () => {
    await downstream.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ACCESS_LOG: 'json',
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('writes one line per proxied request with the contract fields, never the raw key or the query', async () => {
    const key = newKey('acc');
    const before = accessLines(gw).length;
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(1000) }] });
    const replies = [
      await send(`${gw.url}/v1/models?api_key=${key}&x=1`, { from: '127.0.0.2', headers: bearer(key) }),
      await send(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        from: '127.0.0.2',
        headers: { ...bearer(key), 'content-type': 'application/json' },
        body,
      }),
      await send(`${gw.url}/v1/models`, { from: '127.0.0.3', headers: bearer(key) }), // another network: 403
      await send(`${gw.url}/v1/models`, { from: '127.0.0.2' }), // no key
      await send(`${gw.url}/v1/models`, { from: '127.0.0.2', headers: bearer('sk-a\u0001b') }).catch(
        () => null,
      ),
    ];
    expect(replies.slice(0, 4).map((r) => r!.status)).toEqual([200, 200, 403, 200]);
    const expected = replies.filter((r) => r !== null).length;
    await waitFor(() => accessLines(gw).length >= before + expected, 5000);
    const lines = accessLines(gw).slice(before);
    expect(lines).toHaveLength(expected);

    const [list, chat, refused, anonymous] = lines;
    expect(Object.keys(list!)).toEqual([
      'time',
      'client_ip',
      'key',
      'route',
      'method',
      'path',
      'status',
      'decision',
      'bytes_in',
      'bytes_out',
      'duration_ms',
    ]);
    const masked = maskKey(key.slice(3)); // the canonical key: New API cuts `sk-`
    expect(list).toMatchObject({
      client_ip: '127.0.0.2',
      key: masked,
      route: null,
      method: 'GET',
      path: '/v1/models',
      status: 200,
      decision: 'first_bind',
      bytes_in: 0,
      bytes_out: Buffer.byteLength(replies[0]!.body),
    });
    expect(chat).toMatchObject({
      method: 'POST',
      path: '/v1/chat/completions',
      status: 200,
      decision: 'allowed',
      bytes_in: Buffer.byteLength(body),
      bytes_out: Buffer.byteLength(replies[1]!.body),
    });
    expect(refused).toMatchObject({
      client_ip: '127.0.0.3',
      key: masked,
      status: 403,
      decision: 'intercepted',
      bytes_out: Buffer.byteLength(replies[2]!.body),
    });
    expect(anonymous).toMatchObject({ key: null, status: 200, decision: 'unauthenticated' });
    for (const l of lines) {
      expect(typeof l['duration_ms']).toBe('number');
      expect(Date.parse(l['time'] as string)).not.toBeNaN();
    }
    // Nowhere in the whole output: the raw key or a query string.
    expect(gw.output()).not.toContain(key);
    expect(gw.output()).not.toContain('api_key=');
    expect(gw.output()).not.toContain('x=1');
  });

  it('logs admin API and health requests not at all (they are not proxied)', async () => {
    const before = accessLines(gw).length;
    await send(`${gw.url}/health`, { from: '127.0.0.250' });
    await send(`${gw.url}/admin/api/settings`, { from: '127.0.0.250' });
    await new Promise((r) => setTimeout(r, 300));
    expect(accessLines(gw).length).toBe(before);
  });
});
