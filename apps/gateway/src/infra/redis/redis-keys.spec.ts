import { describe, expect, it } from 'vitest';
import { RedisKeys } from './redis-keys';
import { clusterOptions, describeTopology, serverOptions } from './redis-topology';

describe('RedisKeys per topology (docs/redis.md)', () => {
  it('keeps the untagged layout of earlier versions on a standalone or Sentinel Redis', () => {
    const sut = new RedisKeys('kp:');
    expect(sut.binding('ab')).toBe('kp:binding:ab');
    expect(sut.bindingInvalidated('ab')).toBe('kp:binding-inv:ab');
    expect(sut.bullPrefix).toBe('kp:bull');
  });

  it('puts keys written together under one hash tag on a cluster', () => {
    const sut = new RedisKeys('kp:', { cluster: true });
    expect(sut.binding('ab')).toBe('kp:binding:{ab}');
    expect(sut.bindingInvalidated('ab')).toBe('kp:binding-inv:{ab}');
    expect(sut.bullPrefix).toBe('{kp:bull}');
    expect(sut.policyBucket(7)).toBe('kp:policy:{7}:bucket');
    expect(sut.policyLeases(7)).toBe('kp:policy:{7}:leases');
  });
});

describe('connection options per topology', () => {
  it('standalone: the server and credentials of REDIS_URL', () => {
    expect(serverOptions({ kind: 'standalone', url: 'rediss://u:p%40ss@h:6380/3' })).toEqual({
      host: 'h',
      port: 6380,
      username: 'u',
      password: 'p@ss',
      db: 3,
      tls: {},
    });
  });

  it('Sentinel: the Sentinels and the primary name; credentials and database from REDIS_URL, not its host', () => {
    const sut = serverOptions({
      kind: 'sentinel',
      url: 'redis://:pw@ignored:1/2',
      sentinels: [{ host: 's1', port: 26379 }],
      name: 'mymaster',
      sentinelPassword: { revealText: () => 'spw' },
      sentinelTls: false,
    });
    expect(sut.sentinelTLS).toBeUndefined();
    expect(sut).toMatchObject({
      sentinels: [{ host: 's1', port: 26379 }],
      name: 'mymaster',
      sentinelPassword: 'spw',
      password: 'pw',
      db: 2,
      failoverDetector: true,
    });
    expect(sut.host).toBeUndefined();
    expect(sut.port).toBeUndefined();
    const reconnect = sut.reconnectOnError as (err: Error) => boolean;
    expect(reconnect(new Error("READONLY You can't write against a read only replica."))).toBe(true);
    expect(reconnect(new Error('ERR something else'))).toBe(false);
  });

  it('Sentinel over TLS: the Sentinels with REDIS_SENTINEL_TLS, the data nodes with rediss:', () => {
    const t = {
      kind: 'sentinel' as const,
      url: 'rediss://ignored:1/0',
      sentinels: [{ host: 's1', port: 26379 }],
      name: 'mymaster',
      sentinelPassword: null,
      sentinelTls: true,
    };
    expect(serverOptions(t)).toMatchObject({ sentinelTLS: {}, tls: {}, enableTLSForSentinelMode: true });
    const plainData = serverOptions({ ...t, url: 'redis://ignored:1/0' });
    expect(plainData).toMatchObject({ sentinelTLS: {} });
    expect(plainData.tls).toBeUndefined();
    expect(plainData.enableTLSForSentinelMode).toBeUndefined();
  });

  it('Cluster: node options carry the credentials and the caller’s behaviour, never a database', () => {
    const t = {
      kind: 'cluster' as const,
      url: 'redis://:pw@ignored:1/0',
      nodes: [{ host: 'n1', port: 7000 }],
    };
    const sut = clusterOptions(t, { commandTimeout: 250 }, { enableOfflineQueue: false });
    expect(sut.enableOfflineQueue).toBe(false);
    expect(sut.redisOptions).toMatchObject({ password: 'pw', commandTimeout: 250 });
    expect(sut.redisOptions).not.toHaveProperty('db');
    expect(sut.redisOptions).not.toHaveProperty('host');
    expect(describeTopology(t)).toBe('cluster (1 seed node)');
  });
});
