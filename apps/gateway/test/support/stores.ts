import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client } from 'pg';

export const PG_BASE = process.env['TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432';
export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379/0';

/** A fresh database name and Redis prefix for one test file. */
export function freshStores(label: string): { databaseUrl: string; dbName: string; redisPrefix: string } {
  const id = `${label}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`.toLowerCase();
  const dbName = `keypin_test_${id}`.replace(/[^a-z0-9_]/g, '_');
  return { dbName, databaseUrl: `${PG_BASE}/${dbName}`, redisPrefix: `keypin-test-${id}:` };
}

export async function sql<T = Record<string, unknown>>(
  databaseUrl: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Drops the test database and deletes every Redis key under the prefix. */
export async function dropStores(dbName: string, redisPrefix: string, redisUrl = REDIS_URL): Promise<void> {
  const c = new Client({ connectionString: `${PG_BASE}/postgres` });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
  const r = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } catch {
    // Redis may be one a test stopped: nothing to clean.
  } finally {
    r.disconnect();
  }
}
