import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BindingRepository } from '../../src/binding/binding.repository';
import { BindingStoreService, type LoadOutcome } from '../../src/binding/binding-store.service';
import type { FirstUse } from '../../src/binding/binding.types';
import { createDataSource, runMigrations } from '../../src/infra/database/data-source';
import { ensureDatabase } from '../../src/infra/database/ensure-database';
import { MetricsService } from '../../src/infra/metrics/metrics.service';
import { createCommandClient } from '../../src/infra/redis/redis.factory';
import { RedisKeys } from '../../src/infra/redis/redis-keys';
import { dropStores, freshStores, REDIS_URL } from '../support/stores';
import { startThrowawayRedis, type ThrowawayRedis } from '../support/throwaway';

/**
 * The binding store (BindingStoreService over BindingRepository and an
 * ioredis command client, built as runtime.ts builds them) in-process
 * against the real PostgreSQL and Redis: the first-use race decided in SQL
 * across instances, and the shared cache's recovery after Redis was away.
 */

const logger = pino({ level: 'silent' });
const stores = freshStores('binding_store');
const keys = new RedisKeys(stores.redisPrefix);
/** Two "instances": each its own pool, repository, Redis client and store. */
let dsA: DataSource;
let dsB: DataSource;
const clients: Redis[] = [];

beforeAll(async () => {
  await ensureDatabase(stores.databaseUrl);
  dsA = createDataSource(stores.databaseUrl, 10);
  await dsA.initialize();
  await runMigrations(dsA);
  dsB = createDataSource(stores.databaseUrl, 10);
  await dsB.initialize();
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await dsA?.destroy();
  await dsB?.destroy();
  await dropStores(stores.dbName, stores.redisPrefix);
});

function commandClient(url: string): Redis {
  const c = createCommandClient(url, logger, 'commands');
  clients.push(c);
  return c;
}

function newStore(ds: DataSource, redis: Redis): BindingStoreService {
  return new BindingStoreService(new BindingRepository(ds), redis, keys, new MetricsService(), logger, {
    maxEntries: 1000,
    ttlMs: 60_000,
    serveUnconfirmed: () => false,
    firstUses: null,
  });
}

const newHash = () => randomBytes(32).toString('hex');

/** A first use from network 10.<n>.0.0/16. */
const firstFrom = (n: number): FirstUse => ({
  tokenDisplay: 'sk-m\u2026edum',
  network: `10.${n}.0.0/16`,
  ip: `10.${n}.0.7`,
  at: new Date(),
});

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type Row = { id: string; status: string; allowed_ips: string[]; first_ip: string };

async function rowsOf(hash: string): Promise<Row[]> {
  return dsA.query(
    `SELECT id, status, allowed_ips::text[] AS allowed_ips, host(first_ip) AS first_ip
       FROM bindings WHERE key_hash = decode($1, 'hex')`,
    [hash],
  );
}

function found(o: LoadOutcome) {
  if (o.kind !== 'found') throw new Error(`expected a binding, got ${JSON.stringify(o)}`);
  return o;
}

describe('first use: decided in PostgreSQL, across instances', () => {
  it('50 concurrent loads of one new key from 50 networks through two instances: one row, one creator, one id', async () => {
    const storeA = newStore(dsA, commandClient(REDIS_URL));
    const storeB = newStore(dsB, commandClient(REDIS_URL));
    await until('both Redis clients ready', () => clients.every((c) => c.status === 'ready'));
    // Several rounds, each a new key: the winner differs from round to round.
    for (let round = 0; round < 5; round++) {
      const hash = newHash();
      const firsts = Array.from({ length: 50 }, (_, i) => firstFrom(round * 50 + i));
      const outcomes = (
        await Promise.all(firsts.map((f, i) => (i % 2 === 0 ? storeA : storeB).load(hash, f)))
      ).map(found);

      const rows = await rowsOf(hash);
      expect(rows).toHaveLength(1);
      const row = rows[0]!;
      const creators = outcomes.flatMap((o, i) => (o.created ? [i] : []));
      expect(creators).toHaveLength(1);
      // Every caller was judged against the one row…
      for (const o of outcomes) {
        expect(o.rule.id).toBe(Number(row.id));
        expect(o.rule.allowedIps).toEqual(row.allowed_ips);
      }
      // …which is the creator's own first use.
      const creator = firsts[creators[0]!]!;
      expect(row.allowed_ips).toEqual([creator.network]);
      expect(row.first_ip).toBe(creator.ip);
      expect(row.status).toBe('active');
    }
  });

  it('50 concurrent first-use inserts on two pools (no coalescing in front): one created, every other gets the winner', async () => {
    const repos = [new BindingRepository(dsA), new BindingRepository(dsB)];
    for (let round = 0; round < 5; round++) {
      const hash = newHash();
      const firsts = Array.from({ length: 50 }, (_, i) => firstFrom(100 + i));
      const results = await Promise.all(firsts.map((f, i) => repos[i % 2]!.bindFirstUse(hash, f)));
      const rows = await rowsOf(hash);
      expect(rows).toHaveLength(1);
      const created = results.flatMap((r, i) => (r.created ? [i] : []));
      expect(created).toHaveLength(1);
      expect(new Set(results.map((r) => r.data.id))).toEqual(new Set([Number(rows[0]!.id)]));
      expect(rows[0]!.allowed_ips).toEqual([firsts[created[0]!]!.network]);
    }
  });
});

describe('the shared Redis cache', () => {
  /** A short-lived plain client for looking at (or into) a Redis. */
  async function probe<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      return await fn(r);
    } finally {
      r.disconnect();
    }
  }

  it('after a change, a reader that missed Redis does not put the old value back while the marker lives', async () => {
    const store = newStore(dsA, commandClient(REDIS_URL));
    await until('Redis client ready', () => clients.every((c) => c.status === 'ready'));
    const hash = newHash();
    found(await store.load(hash, firstFrom(1)));
    await until(
      'the binding cached in Redis',
      async () => (await probe(REDIS_URL, (r) => r.get(keys.binding(hash)))) !== null,
    );

    await dsA.query(`UPDATE bindings SET status = 'banned' WHERE key_hash = decode($1, 'hex')`, [hash]);
    await store.announceChange(hash);
    expect(await probe(REDIS_URL, (r) => r.exists(keys.binding(hash)))).toBe(0);
    expect(await probe(REDIS_URL, (r) => r.pttl(keys.bindingInvalidated(hash)))).toBeGreaterThan(0);

    // A load now goes to PostgreSQL and tries to cache the result in Redis:
    // refused while the marker exists.
    expect(found(await store.load(hash, firstFrom(1))).rule.status).toBe('banned');
    await new Promise((r) => setTimeout(r, 200));
    expect(await probe(REDIS_URL, (r) => r.exists(keys.binding(hash)))).toBe(0);
  });

  describe('Redis away during an eviction', () => {
    let redisServer: ThrowawayRedis;

    beforeAll(async () => {
      redisServer = await startThrowawayRedis();
    });
    afterAll(async () => {
      await redisServer?.destroy();
    });

    it('replays the pending eviction before trusting Redis again, even when Redis comes back with the old value', async () => {
      const url = redisServer.url;
      const redis = commandClient(url);
      const store = newStore(dsA, redis);
      await until('Redis client ready', () => redis.status === 'ready');

      // Bound, and cached in the shared Redis as active; a snapshot keeps that value.
      const hash = newHash();
      const id = found(await store.load(hash, firstFrom(2))).rule.id;
      await until(
        'the binding cached in Redis',
        async () => (await probe(url, (r) => r.get(keys.binding(hash)))) !== null,
      );
      await probe(url, (r) => r.save());

      // Redis goes away; meanwhile the binding is banned in PostgreSQL, and the
      // shared cache cannot be told.
      await redisServer.stop();
      await until('the client sees Redis gone', () => redis.status !== 'ready');
      await dsA.query(`UPDATE bindings SET status = 'banned', updated_at = now() WHERE id = $1`, [id]);
      store.invalidateLocal(hash);
      await expect(store.evictShared(hash)).rejects.toThrow();
      // With Redis down, loads are answered by PostgreSQL.
      expect(found(await store.load(hash, firstFrom(2))).rule.status).toBe('banned');

      // Hold the replay when it comes, to look at the store in between.
      const replays: string[] = [];
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const evictShared = store.evictShared.bind(store);
      store.evictShared = async (h: string) => {
        replays.push(h);
        await held;
        return evictShared(h);
      };

      // Redis comes back from its snapshot, with the old (active) value.
      await redisServer.start();
      await until('the replay to start after reconnecting', () => replays.length > 0);
      expect(replays).toEqual([hash]);
      const stale = await probe(url, (r) => r.get(keys.binding(hash)));
      expect(JSON.parse(stale!)).toMatchObject({ id, status: 'active' });

      // Until the replay is done, Redis is not read (nor written): the answer is PostgreSQL's.
      expect(redis.status).toBe('ready');
      store.invalidateLocal(hash);
      expect(found(await store.load(hash, firstFrom(2))).rule.status).toBe('banned');
      expect(await probe(url, (r) => r.get(keys.binding(hash)))).toBe(stale);

      release();
      await until(
        'the old value evicted',
        async () => (await probe(url, (r) => r.exists(keys.binding(hash)))) === 0,
      );
      expect(await probe(url, (r) => r.pttl(keys.bindingInvalidated(hash)))).toBeGreaterThan(0);
      store.invalidateLocal(hash);
      expect(found(await store.load(hash, firstFrom(2))).rule.status).toBe('banned');

      // Trusted again: a value only Redis holds is read from it.
      const other = newHash();
      await probe(url, (r) =>
        r.set(
          keys.binding(other),
          JSON.stringify({
            id: 987_654,
            status: 'active',
            rule_type: 'all',
            allowed_ips: [],
            token_display: 'sk-r\u2026edis',
          }),
        ),
      );
      await until('Redis trusted again', async () => {
        const o = await store.load(other, firstFrom(3));
        return o.kind === 'found' && o.rule.id === 987_654;
      });
      expect(await rowsOf(other)).toHaveLength(0); // answered by Redis, never bound in PostgreSQL
    });
  });
});
