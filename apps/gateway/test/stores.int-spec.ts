import { createHmac } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, type Reply, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import {
  startThrowawayPostgres,
  startThrowawayRedis,
  type ThrowawayPostgres,
  type ThrowawayRedis,
} from './support/throwaway';

/**
 * How the binding store behaves across instances and when a store goes away:
 * several gateways on one PostgreSQL + Redis, Redis down, PostgreSQL down,
 * both down. Stores that get stopped are throwaway servers on spare ports.
 */

const HMAC_SECRET = 'stores-int-spec-hmac-secret-0123456789abcdef';

/** Measured propagation/recovery times, printed at the end of the file. */
const timings: Record<string, number> = {};

let keyN = 0;
/** A key no other test uses (no dashes: its canonical form is the text after `sk-`). */
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;
/** The binding's key hash as the gateway computes it (HMAC-SHA256 of the canonical key). */
const hashOf = (key: string) => createHmac('sha256', HMAC_SECRET).update(key.slice(3), 'utf8').digest('hex');

const call = (gw: GatewayProcess, key: string, from: string): Promise<Reply> =>
  send(`${gw.url}/v1/models`, { from, headers: bearer(key) });
const statusOf = async (gw: GatewayProcess, key: string, from: string) => (await call(gw, key, from)).status;
const ready = (gw: GatewayProcess) => send(`${gw.url}/ready`, { from: '127.0.0.2' });

type BindingRow = { id: string; status: string; allowed_ips: string[]; request_count: string };

async function bindingOf(databaseUrl: string, key: string): Promise<BindingRow | undefined> {
  const rows = await sql<BindingRow>(
    databaseUrl,
    `SELECT id, status, allowed_ips::text[] AS allowed_ips, request_count FROM bindings WHERE key_hash = decode($1, 'hex')`,
    [hashOf(key)],
  );
  return rows[0];
}

async function setStatus(databaseUrl: string, key: string, status: 'active' | 'banned'): Promise<void> {
  const rows = await sql(
    databaseUrl,
    `UPDATE bindings SET status = $2 WHERE key_hash = decode($1, 'hex') RETURNING id`,
    [hashOf(key), status],
  );
  expect(rows).toHaveLength(1);
}

/** Whether a Redis key exists (false when that Redis does not answer). */
async function redisHas(url: string, key: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.exists(key)) === 1;
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs every step even when some fail; throws the first failure at the end. */
async function cleanup(...steps: (() => Promise<unknown> | undefined)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1 && errors[0] instanceof Error) throw errors[0];
  if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
}

const metricValue = (text: string, decision: string): number => {
  const m = new RegExp(`keypin_requests_total\\{decision="${decision}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
};

afterAll(() => {
  console.log(`stores.int-spec timings (ms): ${JSON.stringify(timings)}`);
});

describe('several gateway instances on one PostgreSQL and Redis', () => {
  const stores = freshStores('stores_multi');
  const downstream = new FakeDownstream();
  let a: GatewayProcess | undefined;
  let b: GatewayProcess | undefined;
  let A: GatewayProcess;
  let B: GatewayProcess;

  beforeAll(async () => {
    await downstream.start();
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      HMAC_SECRET,
    };
    a = await startGateway(env);
    b = await startGateway(env);
    A = a;
    B = b;
  });

  afterAll(() =>
    cleanup(
      () => a?.stop('SIGTERM', 10_000),
      () => b?.stop('SIGTERM', 10_000),
      () => downstream.stop(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  it('a key bound through one instance is enforced by the other', async () => {
    const key = newKey('multi');
    expect(await statusOf(A, key, '127.0.0.2')).toBe(200);
    const refused = await call(B, key, '127.0.0.3');
    expect(refused.status).toBe(403);
    expect(refused.json().error.code).toBe('ip_not_allowed');
    expect(await statusOf(B, key, '127.0.0.2')).toBe(200);
    expect(await statusOf(A, key, '127.0.0.3')).toBe(403);
    expect((await bindingOf(stores.databaseUrl, key))?.allowed_ips).toEqual(['127.0.0.2/32']);
  });

  it('settles a first use racing on two instances on one binding', async () => {
    const key = newKey('race');
    const replies = await Promise.all([
      call(A, key, '127.0.0.4'),
      call(B, key, '127.0.0.5'),
      call(A, key, '127.0.0.6'),
      call(B, key, '127.0.0.7'),
    ]);
    expect(replies.map((r) => r.status).sort()).toEqual([200, 403, 403, 403]);
    const winner = ['127.0.0.4', '127.0.0.5', '127.0.0.6', '127.0.0.7'][
      replies.findIndex((r) => r.status === 200)
    ]!;
    expect((await bindingOf(stores.databaseUrl, key))?.allowed_ips).toEqual([`${winner}/32`]);
    expect(await statusOf(A, key, winner)).toBe(200);
    expect(await statusOf(B, key, winner)).toBe(200);
  });

  it('enforces a ban and its lifting made in the database on both instances within 1 s', async () => {
    const key = newKey('ban');
    expect(await statusOf(A, key, '127.0.0.8')).toBe(200);
    // Both instances now hold the binding in memory: the change must evict it.
    expect(await statusOf(B, key, '127.0.0.8')).toBe(200);
    expect(await statusOf(A, key, '127.0.0.8')).toBe(200);

    await setStatus(stores.databaseUrl, key, 'banned');
    const banned = (gw: GatewayProcess) => async () => (await statusOf(gw, key, '127.0.0.8')) === 403;
    const [banA, banB] = await Promise.all([waitFor(banned(A), 5000), waitFor(banned(B), 5000)]);
    timings['ban propagation, instance A'] = banA;
    timings['ban propagation, instance B'] = banB;
    expect((await call(A, key, '127.0.0.8')).json().error.code).toBe('key_banned');
    expect((await call(B, key, '127.0.0.8')).json().error.code).toBe('key_banned');

    await setStatus(stores.databaseUrl, key, 'active');
    const allowed = (gw: GatewayProcess) => async () => (await statusOf(gw, key, '127.0.0.8')) === 200;
    const [liftA, liftB] = await Promise.all([waitFor(allowed(A), 5000), waitFor(allowed(B), 5000)]);
    timings['unban propagation, instance A'] = liftA;
    timings['unban propagation, instance B'] = liftB;

    expect(banA).toBeLessThan(1000);
    expect(banB).toBeLessThan(1000);
    expect(liftA).toBeLessThan(1000);
    expect(liftB).toBeLessThan(1000);
  });

  it.each([
    ['A', 'B'],
    ['B', 'A'],
  ] as const)(
    'after an unbind in the database the key binds afresh through %s, and %s agrees',
    async (first, second) => {
      const gw = { A: () => A, B: () => B };
      const key = newKey(`unbind${first}`);
      expect(await statusOf(A, key, '127.0.0.10')).toBe(200);
      expect(await statusOf(B, key, '127.0.0.10')).toBe(200);
      expect(await statusOf(A, key, '127.0.0.11')).toBe(403);
      expect(await statusOf(B, key, '127.0.0.11')).toBe(403);

      await sql(stores.databaseUrl, `DELETE FROM bindings WHERE key_hash = decode($1, 'hex')`, [hashOf(key)]);
      const rebindMs = await waitFor(
        async () => (await statusOf(gw[first](), key, '127.0.0.11')) === 200,
        5000,
      );
      const otherMs = await waitFor(
        async () => (await statusOf(gw[second](), key, '127.0.0.10')) === 403,
        5000,
      );
      timings[`rebind after DELETE via ${first}`] = rebindMs;
      expect(await statusOf(gw[second](), key, '127.0.0.11')).toBe(200);
      expect((await bindingOf(stores.databaseUrl, key))?.allowed_ips).toEqual(['127.0.0.11/32']);
      expect(rebindMs).toBeLessThan(1000);
      expect(rebindMs + otherMs).toBeLessThan(1000);
    },
  );
});

describe('instances starting together on a new database', () => {
  const stores = freshStores('stores_boot'); // only its Redis prefix is used: PostgreSQL is a throwaway
  const downstream = new FakeDownstream();
  let pg: ThrowawayPostgres | undefined;
  const started: PromiseSettledResult<GatewayProcess>[] = [];

  beforeAll(async () => {
    await downstream.start();
    pg = await startThrowawayPostgres();
  });

  afterAll(() =>
    cleanup(
      ...started.map((s) => () => (s.status === 'fulfilled' ? s.value.stop('SIGTERM', 10_000) : undefined)),
      () => downstream.stop(),
      () => pg?.destroy(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  it('two instances started at the same moment on a database that does not exist yet both come up', async () => {
    const env = {
      DATABASE_URL: `${pg!.url}/keypin`,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      HMAC_SECRET,
    };
    // Line both instances up: hold pg_database locked until both are waiting to connect
    // (backend start-up reads pg_database), so both look for the database and create it together.
    const admin = new Client({ connectionString: `${pg!.url}/postgres` });
    await admin.connect();
    let starting: Promise<PromiseSettledResult<GatewayProcess>[]> | undefined;
    try {
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE');
      starting = Promise.allSettled([startGateway(env), startGateway(env)]);
      await waitFor(
        async () => {
          const r = await admin.query(
            `SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'pg_catalog.pg_database'::regclass AND NOT granted`,
          );
          return (r.rows[0] as { n: number }).n >= 2;
        },
        15_000,
        20,
      );
    } finally {
      await admin.query('ROLLBACK').catch(() => undefined);
      await admin.end();
      // Whatever happened, keep hold of the processes so afterAll stops them.
      if (starting) started.push(...(await starting));
    }
    const failures = started.flatMap((s) => (s.status === 'rejected' ? [(s.reason as Error).message] : []));
    expect(failures).toEqual([]);
    const [g1, g2] = started.map((s) => (s as PromiseFulfilledResult<GatewayProcess>).value) as [
      GatewayProcess,
      GatewayProcess,
    ];
    const key = newKey('boot');
    expect(await statusOf(g1, key, '127.0.0.12')).toBe(200);
    expect(await statusOf(g2, key, '127.0.0.13')).toBe(403);
  });
});

describe('Redis down: decisions come from PostgreSQL', () => {
  const stores = freshStores('stores_redis');
  const downstream = new FakeDownstream();
  let redis: ThrowawayRedis | undefined;
  let gw: GatewayProcess;
  let g: GatewayProcess | undefined;
  let late: GatewayProcess | undefined;
  const env = () => ({
    DATABASE_URL: stores.databaseUrl,
    REDIS_PREFIX: stores.redisPrefix,
    REDIS_URL: redis!.url,
    DOWNSTREAM_URL: downstream.url,
    HMAC_SECRET,
    // Short in-process TTL: stale entries are re-read from Redis/PostgreSQL, not served for a minute.
    CACHE_TTL_SECONDS: '1',
  });
  const cachedInRedis = (key: string) => redisHas(redis!.url, `${stores.redisPrefix}binding:${hashOf(key)}`);
  const restartRedis = async () => {
    if (redis && !redis.running) await redis.start();
  };

  beforeAll(async () => {
    await downstream.start();
    redis = await startThrowawayRedis();
    g = await startGateway(env());
    gw = g;
  });

  afterAll(() =>
    cleanup(
      () => g?.stop('SIGTERM', 10_000),
      () => late?.stop('SIGTERM', 10_000),
      () => downstream.stop(),
      () => redis?.destroy(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  it('keeps binding and enforcing through PostgreSQL, reports Redis down, and recovers by itself', async () => {
    const k1 = newKey('rdown');
    expect(await statusOf(gw, k1, '127.0.0.2')).toBe(200);
    await waitFor(() => cachedInRedis(k1), 3000);

    await redis!.stop();
    try {
      expect(await statusOf(gw, k1, '127.0.0.2')).toBe(200);
      const other = await call(gw, k1, '127.0.0.3');
      expect(other.status).toBe(403);
      expect(other.json().error.code).toBe('ip_not_allowed');
      // Stale in-process entries are refreshed from PostgreSQL: still right after the TTL.
      await sleep(1200);
      expect(await statusOf(gw, k1, '127.0.0.2')).toBe(200);
      expect(await statusOf(gw, k1, '127.0.0.3')).toBe(403);

      const k2 = newKey('rdownnew');
      expect(await statusOf(gw, k2, '127.0.0.4')).toBe(200);
      expect((await bindingOf(stores.databaseUrl, k2))?.allowed_ips).toEqual(['127.0.0.4/32']);
      expect(await statusOf(gw, k2, '127.0.0.5')).toBe(403);
      expect(await statusOf(gw, k2, '127.0.0.4')).toBe(200);

      // The PostgreSQL NOTIFY path alone carries the change.
      await setStatus(stores.databaseUrl, k1, 'banned');
      const banMs = await waitFor(async () => (await statusOf(gw, k1, '127.0.0.2')) === 403, 5000);
      timings['ban propagation with Redis down'] = banMs;
      expect((await call(gw, k1, '127.0.0.2')).json().error.code).toBe('key_banned');
      expect(banMs).toBeLessThan(1000);

      const r = await ready(gw);
      expect(r.status).toBe(503);
      expect(r.json()).toMatchObject({
        error: { code: 'not_ready', message: expect.stringContaining('redis') },
        checks: { redis: 'down', postgres: 'ok' },
      });
      expect(r.json().error.message).not.toContain('postgres');
    } finally {
      await restartRedis();
    }

    const readyMs = await waitFor(async () => (await ready(gw)).status === 200, 10_000, 100);
    timings['/ready back after Redis restart'] = readyMs;
    expect((await ready(gw)).json()).toMatchObject({
      status: 'ready',
      checks: { redis: 'ok', postgres: 'ok' },
    });

    expect((await call(gw, k1, '127.0.0.2')).json().error.code).toBe('key_banned');
    const k3 = newKey('rback');
    expect(await statusOf(gw, k3, '127.0.0.6')).toBe(200);
    expect(await statusOf(gw, k3, '127.0.0.7')).toBe(403);
    // Redis is used again as the shared cache.
    await waitFor(() => cachedInRedis(k3), 3000);
  });

  it('starts while Redis is down, binding through PostgreSQL, and turns ready when Redis returns', async () => {
    await waitFor(async () => (await ready(gw)).status === 200, 10_000, 100);
    const key = newKey('rboot');
    expect(await statusOf(gw, key, '127.0.0.20')).toBe(200);
    await redis!.stop();
    try {
      late = await startGateway(env(), 15_000);
      // Sees the binding made by the other instance (from PostgreSQL).
      expect(await statusOf(late, key, '127.0.0.21')).toBe(403);
      expect(await statusOf(late, key, '127.0.0.20')).toBe(200);
      const fresh = newKey('rbootnew');
      expect(await statusOf(late, fresh, '127.0.0.22')).toBe(200);
      expect((await bindingOf(stores.databaseUrl, fresh))?.allowed_ips).toEqual(['127.0.0.22/32']);
      expect(await statusOf(gw, fresh, '127.0.0.23')).toBe(403);
      const r = await ready(late);
      expect(r.status).toBe(503);
      expect(r.json().checks).toEqual({ redis: 'down', postgres: 'ok' });
    } finally {
      await restartRedis();
    }
    if (late) {
      const ms = await waitFor(async () => (await ready(late!)).status === 200, 10_000, 100);
      timings['/ready after Redis restart, instance started while Redis was down'] = ms;
      await late.stop('SIGTERM', 10_000);
      late = undefined;
    }
  });

  it('a ban made while Redis was away still holds when Redis comes back with its old data', async () => {
    // Redis keeps its data across the outage (a network partition, or a restart with RDB/AOF
    // persistence): here SAVE before stopping, and the dump is loaded on start.
    // The gateway must be using Redis again (after the previous test's outage) so the binding gets cached there.
    await waitFor(async () => (await ready(gw)).status === 200, 10_000, 100);
    const key = newKey('rstale');
    expect(await statusOf(gw, key, '127.0.0.30')).toBe(200);
    await waitFor(() => cachedInRedis(key), 3000);
    const r = new Redis(redis!.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      expect(await r.save()).toBe('OK');
    } finally {
      r.disconnect();
    }

    await redis!.stop();
    try {
      await setStatus(stores.databaseUrl, key, 'banned');
      const banMs = await waitFor(async () => (await statusOf(gw, key, '127.0.0.30')) === 403, 5000);
      expect(banMs).toBeLessThan(1000);
    } finally {
      await restartRedis();
      rmSync(join(redis!.dir, 'dump.rdb'), { force: true });
    }
    // The pre-outage copy of the binding ("active") is back in Redis.
    expect(await cachedInRedis(key)).toBe(true);
    await waitFor(async () => (await ready(gw)).status === 200, 10_000, 100);

    // For a few in-process TTLs after the reconnect, every request must still be refused as banned.
    const statuses: number[] = [];
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      statuses.push(await statusOf(gw, key, '127.0.0.30'));
      await sleep(100);
    }
    expect(statuses.filter((s) => s !== 403)).toEqual([]);
    expect((await bindingOf(stores.databaseUrl, key))?.status).toBe('banned');
  });
});

describe('PostgreSQL down: the caches answer, unknown keys fail safe', () => {
  const stores = freshStores('stores_pg'); // only its Redis prefix is used: PostgreSQL is a throwaway
  const downstream = new FakeDownstream();
  let pg: ThrowawayPostgres | undefined;
  let closedGw: GatewayProcess | undefined;
  let openGw: GatewayProcess | undefined;
  const closedDb = () => `${pg!.url}/keypin`;
  const openDb = () => `${pg!.url}/keypin_open`;
  const restartPg = async () => {
    if (pg && !pg.running) await pg.start();
  };

  beforeAll(async () => {
    await downstream.start();
    pg = await startThrowawayPostgres();
    const base = { DOWNSTREAM_URL: downstream.url, HMAC_SECRET };
    closedGw = await startGateway({
      ...base,
      DATABASE_URL: closedDb(),
      REDIS_PREFIX: stores.redisPrefix,
      FAILSAFE_MODE: 'closed',
    });
    openGw = await startGateway({
      ...base,
      DATABASE_URL: openDb(),
      REDIS_PREFIX: `${stores.redisPrefix}open:`,
      FAILSAFE_MODE: 'open',
    });
  });

  afterAll(() =>
    cleanup(
      () => restartPg(), // lets the gateways flush and shut down cleanly
      () => closedGw?.stop('SIGTERM', 10_000),
      () => openGw?.stop('SIGTERM', 10_000),
      () => downstream.stop(),
      () => pg?.destroy(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  it('FAILSAFE_MODE=closed: known keys from the caches, unknown keys 503, nothing lost on recovery', async () => {
    const gw = closedGw!;
    const k1 = newKey('pgdown');
    let k1Allowed = 0;
    const k1From = async (from: string) => {
      const s = await statusOf(gw, k1, from);
      if (s === 200) k1Allowed++;
      return s;
    };
    expect(await k1From('127.0.0.2')).toBe(200);
    expect(await k1From('127.0.0.2')).toBe(200);
    const id = (await bindingOf(closedDb(), k1))!.id;

    const k3 = newKey('pgunknown');
    await pg!.stop();
    try {
      for (let i = 0; i < 3; i++) expect(await k1From('127.0.0.2')).toBe(200);
      const other = await call(gw, k1, '127.0.0.3');
      expect(other.status).toBe(403);
      expect(other.json().error.code).toBe('ip_not_allowed');

      const seen = downstream.seen.length;
      const unknown = await call(gw, k3, '127.0.0.4');
      expect(unknown.status).toBe(503);
      expect(unknown.json()).toEqual({
        error: { type: 'keypin_error', code: 'binding_store_unavailable', message: expect.any(String) },
      });
      expect(await statusOf(gw, k3, '127.0.0.4')).toBe(503);
      expect(downstream.seen.length).toBe(seen);

      const r = await ready(gw);
      expect(r.status).toBe(503);
      expect(r.json()).toMatchObject({
        error: { code: 'not_ready', message: expect.stringContaining('postgres') },
        checks: { postgres: 'down', redis: 'ok' },
      });
      const metrics = await send(`${gw.url}/metrics`, { from: '127.0.0.2' });
      expect(metricValue(metrics.body, 'failsafe_closed')).toBeGreaterThanOrEqual(2);
      // Still answering after the in-process entry has gone stale.
      await sleep(500);
      expect(await k1From('127.0.0.2')).toBe(200);
    } finally {
      await restartPg();
    }

    const bindMs = await waitFor(async () => (await statusOf(gw, k3, '127.0.0.4')) === 200, 10_000, 100);
    timings['unknown key binds after PostgreSQL restart'] = bindMs;
    expect((await bindingOf(closedDb(), k3))?.allowed_ips).toEqual(['127.0.0.4/32']);
    expect(await statusOf(gw, k3, '127.0.0.5')).toBe(403);

    // Usage counted during the outage reaches the row.
    await waitFor(
      async () => (await bindingOf(closedDb(), k1))?.request_count === String(k1Allowed),
      10_000,
      200,
    );
    // The intercept recorded during the outage reaches PostgreSQL too.
    await waitFor(
      async () =>
        (
          await sql(
            closedDb(),
            `SELECT 1 FROM intercept_logs WHERE binding_id = $1 AND host(attempt_ip) = '127.0.0.3'`,
            [id],
          )
        ).length === 1,
      10_000,
      200,
    );

    // The NOTIFY path is back: a change in the database is enforced within 1 s again.
    await waitFor(() => gw.logs.some((l) => l['why'] === 'postgres reconnected'), 10_000, 100);
    await setStatus(closedDb(), k1, 'banned');
    const banMs = await waitFor(async () => (await statusOf(gw, k1, '127.0.0.2')) === 403, 5000);
    timings['ban propagation after PostgreSQL restart'] = banMs;
    expect(banMs).toBeLessThan(1000);
  });

  it('FAILSAFE_MODE=open: unknown keys are forwarded, known keys are still enforced', async () => {
    const gw = openGw!;
    const known = newKey('openknown');
    expect(await statusOf(gw, known, '127.0.0.40')).toBe(200);
    const before = metricValue(
      (await send(`${gw.url}/metrics`, { from: '127.0.0.2' })).body,
      'failsafe_open',
    );

    await pg!.stop();
    try {
      const seen = downstream.seen.length;
      const key = newKey('openunknown');
      const r = await call(gw, key, '127.0.0.41');
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ ok: true, url: '/v1/models' });
      expect(downstream.seen.length).toBe(seen + 1);
      expect(downstream.last().headers['authorization']).toBe(`Bearer ${key}`);

      expect(await statusOf(gw, known, '127.0.0.40')).toBe(200);
      expect(await statusOf(gw, known, '127.0.0.42')).toBe(403);
      expect(downstream.seen.length).toBe(seen + 2);

      const metrics = await send(`${gw.url}/metrics`, { from: '127.0.0.2' });
      expect(metricValue(metrics.body, 'failsafe_open')).toBeGreaterThanOrEqual(Math.max(1, before + 1));
    } finally {
      await restartPg();
    }
  });
});

describe('PostgreSQL and Redis both down, FAILSAFE_MODE=closed', () => {
  const downstream = new FakeDownstream();
  let pg: ThrowawayPostgres | undefined;
  let redis: ThrowawayRedis | undefined;
  let gw: GatewayProcess | undefined;
  const prefix = `keypin-test-stores-both-${Date.now().toString(36)}:`;
  const restart = async () => {
    if (redis && !redis.running) await redis.start();
    if (pg && !pg.running) await pg.start();
  };

  beforeAll(async () => {
    await downstream.start();
    [pg, redis] = await Promise.all([startThrowawayPostgres(), startThrowawayRedis()]);
    gw = await startGateway({
      DATABASE_URL: `${pg.url}/keypin`,
      REDIS_URL: redis.url,
      REDIS_PREFIX: prefix,
      DOWNSTREAM_URL: downstream.url,
      HMAC_SECRET,
      FAILSAFE_MODE: 'closed',
    });
  });

  afterAll(() =>
    cleanup(
      () => restart(),
      () => gw?.stop('SIGTERM', 10_000),
      () => downstream.stop(),
      () => redis?.destroy(),
      () => pg?.destroy(),
    ),
  );

  it('refuses unknown keys with 503 and forwards none, still answers known keys from memory', async () => {
    const g = gw!;
    const k1 = newKey('both');
    expect(await statusOf(g, k1, '127.0.0.2')).toBe(200);

    await Promise.all([pg!.stop(), redis!.stop()]);
    try {
      const seen = downstream.seen.length;
      for (const from of ['127.0.0.4', '127.0.0.5']) {
        const r = await call(g, newKey('bothunknown'), from);
        expect(r.status).toBe(503);
        expect(r.json().error.code).toBe('binding_store_unavailable');
      }
      expect(downstream.seen.length).toBe(seen);

      expect(await statusOf(g, k1, '127.0.0.2')).toBe(200);
      expect(await statusOf(g, k1, '127.0.0.3')).toBe(403);
      expect(downstream.seen.length).toBe(seen + 1);

      const r = await ready(g);
      expect(r.status).toBe(503);
      expect(r.json().checks).toEqual({ postgres: 'down', redis: 'down' });
    } finally {
      await restart();
    }
    const k2 = newKey('bothback');
    const ms = await waitFor(async () => (await statusOf(g, k2, '127.0.0.6')) === 200, 10_000, 100);
    timings['unknown key binds after both stores restart'] = ms;
    await waitFor(async () => (await ready(g)).status === 200, 10_000, 100);
  });
});
