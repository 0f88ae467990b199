import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Queue, Worker } from 'bullmq';
import pino from 'pino';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertService } from '../../src/alert/alert.service';
import { BindingRepository, type UsageUpdate } from '../../src/binding/binding.repository';
import { UsageRecorder } from '../../src/binding/usage-recorder.service';
import { type DailyCounts, DailyStatsRepository } from '../../src/dashboard/daily-stats.repository';
import { DailyStats } from '../../src/dashboard/daily-stats.service';
import { createDataSource, runMigrations } from '../../src/infra/database/data-source';
import { ensureDatabase } from '../../src/infra/database/ensure-database';
import { MetricsService } from '../../src/infra/metrics/metrics.service';
import { createQueue, QUEUE, workerConnection } from '../../src/infra/queue/queues';
import { RedisKeys } from '../../src/infra/redis/redis-keys';
import { InterceptRecorder } from '../../src/intercept/intercept-recorder.service';
import { InterceptSpool } from '../../src/intercept/intercept-spool';
import { InterceptWriter } from '../../src/intercept/intercept-writer.service';
import { InterceptRepository } from '../../src/intercept/intercept.repository';
import { fromWire, type InterceptEvent, type InterceptWire } from '../../src/intercept/intercept.types';
import { dropStores, freshStores, REDIS_URL } from '../support/stores';

/**
 * The recorders (usage, daily stats, intercepts) in-process against the real
 * PostgreSQL and Redis: a write that fails is merged back (usage, daily
 * stats) or put back unchanged (intercepts), and the totals stored in the
 * end are exact — no request lost, none counted twice.
 */

const logger = pino({ level: 'silent' });
const stores = freshStores('recorders');
const keys = new RedisKeys(stores.redisPrefix);
let ds: DataSource;
let spoolDir: string;

beforeAll(async () => {
  await ensureDatabase(stores.databaseUrl);
  ds = createDataSource(stores.databaseUrl, 4);
  await ds.initialize();
  await runMigrations(ds);
  spoolDir = await mkdtemp(join(tmpdir(), 'keypin-recorders-'));
});

afterAll(async () => {
  await ds?.destroy();
  await dropStores(stores.dbName, stores.redisPrefix);
  if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
});

async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function newBinding(): Promise<number> {
  const rows: { id: string }[] = await ds.query(
    `INSERT INTO bindings (key_hash, token_display, rule_type, allowed_ips)
     VALUES ($1, 'sk-t…' || substr(md5(random()::text), 1, 4), 'single', '{203.0.113.7/32}') RETURNING id`,
    [randomBytes(32)],
  );
  return Number(rows[0]!.id);
}

/**
 * Fails the first `failures` writes before they reach PostgreSQL (nothing
 * committed); with a `gate`, only once the gate opens.
 */
class FlakyBindingRepository extends BindingRepository {
  calls = 0;
  constructor(
    ds: DataSource,
    public failures = 1,
    private readonly gate: Promise<void> = Promise.resolve(),
  ) {
    super(ds);
  }
  override async applyUsage(batch: readonly UsageUpdate[]): Promise<void> {
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      await this.gate;
      throw new Error('injected: connection reset');
    }
    await super.applyUsage(batch);
  }
}

class FlakyDailyStatsRepository extends DailyStatsRepository {
  constructor(
    ds: DataSource,
    public failures = 1,
  ) {
    super(ds);
  }
  override async add(counts: readonly DailyCounts[]): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('injected: connection reset');
    }
    await super.add(counts);
  }
}

/**
 * The worst failure for exactly-once: the first `failures` inserts are
 * committed, then reported as failed (the acknowledgement was lost).
 */
class CommitThenFailRepository extends InterceptRepository {
  constructor(
    ds: DataSource,
    public failures = 1,
  ) {
    super(ds);
  }
  override async insertBatch(
    events: readonly InterceptEvent[],
    alertOf?: (e: InterceptEvent) => string | null,
  ): Promise<number> {
    const inserted = await super.insertBatch(events, alertOf);
    if (this.failures > 0) {
      this.failures--;
      throw new Error('injected: acknowledgement lost after commit');
    }
    return inserted;
  }
}

class FlakySpool extends InterceptSpool {
  failures = 0;
  override async write(events: readonly InterceptEvent[]): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('injected: disk full');
    }
    await super.write(events);
  }
}

/** Alert evaluation is not under test here: a window never opens. */
const noAlerts = {
  evaluate: () => Promise.resolve({ raised: [], last: null }),
} as unknown as AlertService;
const noDispatch = { dispatch: () => Promise.resolve() };

let seq = 0;
function refused(bindingId: number, at: Date, attemptIp = '198.51.100.9'): InterceptEvent {
  seq++;
  return {
    id: randomUUID(),
    bindingId,
    tokenDisplay: 'sk-t…medi',
    attemptIp,
    allowedIps: ['203.0.113.7/32'],
    reason: 'ip_not_allowed',
    method: 'POST',
    path: `/v1/chat/completions?n=${seq}`,
    userAgent: 'medium-spec',
    enforced: true,
    at,
  };
}

async function interceptTotals(bindingId: number) {
  const [row] = await ds.query<{ rows: string; requests: string | null; ids: string }[]>(
    `SELECT count(*)::text AS rows, sum(count)::text AS requests, count(DISTINCT id)::text AS ids
       FROM intercept_logs WHERE binding_id = $1`,
    [bindingId],
  );
  const [b] = await ds.query<{ intercept_count: string }[]>(
    'SELECT intercept_count::text FROM bindings WHERE id = $1',
    [bindingId],
  );
  return {
    rows: Number(row!.rows),
    requests: Number(row!.requests ?? 0),
    distinctIds: Number(row!.ids),
    interceptCount: Number(b!.intercept_count),
  };
}

describe('UsageRecorder against PostgreSQL', () => {
  it('merges a failed write into the next one: exact counts, the latest IP and time', async () => {
    const [a, b] = [await newBinding(), await newBinding()];
    let openGate!: () => void;
    const repo = new FlakyBindingRepository(ds, 1, new Promise<void>((r) => (openGate = r)));
    const sut = new UsageRecorder(repo, logger, 50);
    sut.start();
    const t0 = Date.UTC(2025, 5, 1, 12, 0, 0);
    sut.record(a, '10.1.0.1', t0);
    sut.record(a, '10.1.0.2', t0 + 10);
    sut.record(b, '10.2.0.1', t0 + 5);
    await until('the first write to start', () => repo.calls === 1);
    // Requests while that write is in flight (it will fail); binding b's
    // latest use is in the failing batch, not in these.
    sut.record(a, '10.1.0.3', t0 + 20);
    sut.record(a, '10.1.0.4', t0 + 30);
    sut.record(b, '10.2.0.0', t0 + 1);
    await new Promise((r) => setTimeout(r, 300)); // six timer periods
    // One write in flight at a time: the ticks meanwhile wrote nothing.
    expect(repo.calls).toBe(1);
    expect(sut.counters.busyTicks).toBeGreaterThan(0);
    const before: { request_count: string }[] = await ds.query(
      'SELECT request_count::text FROM bindings WHERE id = ANY($1::bigint[])',
      [[a, b]],
    );
    expect(before.map((r) => r.request_count)).toEqual(['0', '0']);
    openGate();
    await until('the first write to fail', () => sut.counters.failures === 1);
    await until('the merged write', () => sut.counters.written > 0 && sut.pendingCount === 0);
    await sut.stop();

    const rows: { id: string; request_count: string; last_ip: string; last_used_at: Date }[] = await ds.query(
      'SELECT id, request_count::text, host(last_ip) AS last_ip, last_used_at FROM bindings WHERE id = ANY($1::bigint[]) ORDER BY id',
      [[a, b]],
    );
    expect(rows.map((r) => ({ ...r, last_used_at: r.last_used_at.getTime() }))).toEqual([
      { id: String(a), request_count: '4', last_ip: '10.1.0.4', last_used_at: t0 + 30 },
      { id: String(b), request_count: '2', last_ip: '10.2.0.1', last_used_at: t0 + 5 },
    ]);
    expect(sut.counters).toMatchObject({ failures: 1, returned: 2 });
  });

  it('stop writes what is left, retrying once after a failure', async () => {
    const a = await newBinding();
    const repo = new FlakyBindingRepository(ds, 1);
    const sut = new UsageRecorder(repo, logger, 60_000);
    sut.start();
    for (let i = 0; i < 7; i++) sut.record(a, '10.3.0.1', Date.now());
    await sut.stop();
    const [row] = await ds.query<{ request_count: string }[]>(
      'SELECT request_count::text FROM bindings WHERE id = $1',
      [a],
    );
    expect(row!.request_count).toBe('7');
  });
});

describe('DailyStats against PostgreSQL', () => {
  it('merges a failed write into the next one and adds to the stored row exactly', async () => {
    const sums = async () => {
      const [row] = await ds.query<{ allowed: string; intercepted: string; first_binds: string }[]>(
        `SELECT coalesce(sum(allowed), 0)::text AS allowed, coalesce(sum(intercepted), 0)::text AS intercepted,
                coalesce(sum(first_binds), 0)::text AS first_binds FROM daily_stats`,
      );
      return {
        allowed: Number(row!.allowed),
        intercepted: Number(row!.intercepted),
        firstBinds: Number(row!.first_binds),
      };
    };
    const start = await sums();
    const repo = new FlakyDailyStatsRepository(ds, 1);
    const sut = new DailyStats(repo, logger, 50);
    sut.start();
    for (let i = 0; i < 5; i++) sut.count('allowed');
    sut.count('first_bind');
    sut.count('intercepted');
    await until('the first write to fail', () => sut.counters.failures === 1);
    expect(await sums()).toEqual(start);
    for (let i = 0; i < 3; i++) sut.count('banned');
    sut.count('allowed');
    await sut.stop();
    expect(await sums()).toEqual({
      allowed: start.allowed + 7,
      intercepted: start.intercepted + 4,
      firstBinds: start.firstBinds + 1,
    });
    expect(sut.pendingCount).toBe(0);
  });
});

describe('InterceptRecorder against PostgreSQL and Redis', () => {
  const metrics = new MetricsService();

  it('direct path: a batch committed but reported failed (and not spooled) is stored once, and nothing is merged into it', async () => {
    const bindingId = await newBinding();
    const repo = new CommitThenFailRepository(ds, 1);
    const writer = new InterceptWriter(repo, noAlerts, noDispatch, logger);
    const spool = new FlakySpool(spoolDir, stores.databaseUrl, logger);
    spool.failures = 1;
    const sut = new InterceptRecorder(null, writer, repo, spool, metrics, logger, {
      flushMs: 100,
      confirmAfterMs: 200,
      rescueAfterMs: 1000,
    });
    // Not started: the test drives the flushes.
    const second = new Date(Math.floor(Date.now() / 1000) * 1000);
    for (let i = 0; i < 40; i++) sut.record(refused(bindingId, second));
    await sut.flush();
    // Committed (the acknowledgement was lost), not spooled: the record is back in the buffer, as it was.
    expect(sut.counters).toMatchObject({ failures: 1, returned: 1 });
    expect(sut.pending).toBe(1);
    expect(await interceptTotals(bindingId)).toEqual({
      rows: 1,
      requests: 40,
      distinctIds: 1,
      interceptCount: 40,
    });

    // More of the same key, IP, reason and second: a new record, not merged into the kept one.
    for (let i = 0; i < 25; i++) sut.record(refused(bindingId, second));
    expect(sut.pending).toBe(2);
    await sut.flush();
    expect(sut.pending).toBe(0);
    expect(await interceptTotals(bindingId)).toEqual({
      rows: 2,
      requests: 65,
      distinctIds: 2,
      interceptCount: 65,
    });

    await sut.stop();
    expect(
      await readdir(spoolDir, { recursive: true }).then((f) => f.filter((n) => n.endsWith('.json'))),
    ).toEqual([]);
  });

  it('direct path: a failed write is spooled, replayed and stored once', async () => {
    const bindingId = await newBinding();
    const repo = new CommitThenFailRepository(ds, 1);
    const writer = new InterceptWriter(repo, noAlerts, noDispatch, logger);
    const spool = new FlakySpool(spoolDir, stores.databaseUrl, logger);
    const sut = new InterceptRecorder(null, writer, repo, spool, metrics, logger, {
      flushMs: 100,
      confirmAfterMs: 200,
      rescueAfterMs: 1000,
    });
    const second = new Date(Math.floor(Date.now() / 1000) * 1000);
    for (let i = 0; i < 12; i++) sut.record(refused(bindingId, second, '198.51.100.1'));
    for (let i = 0; i < 8; i++) sut.record(refused(bindingId, second, '198.51.100.2'));
    await sut.flush(); // committed, reported failed → spooled
    expect(await spool.pendingFiles()).toHaveLength(1);
    sut.start(); // the maintenance round replays the spool
    await until('the spool to be replayed', async () => (await spool.pendingFiles()).length === 0);
    await sut.stop();
    expect(await interceptTotals(bindingId)).toEqual({
      rows: 2,
      requests: 20,
      distinctIds: 2,
      interceptCount: 20,
    });
  });

  describe('through BullMQ', () => {
    let queue: Queue;
    let worker: Worker | undefined;

    beforeAll(() => {
      queue = createQueue(QUEUE.intercepts, REDIS_URL, keys, {
        defaultJobOptions: { attempts: 5, backoff: { type: 'fixed', delay: 100 }, removeOnComplete: true },
      });
    });

    afterAll(async () => {
      await worker?.close();
      await queue.close();
    });

    it('a job whose first attempt committed then failed is stored once; every request counted', async () => {
      const bindingId = await newBinding();
      const repo = new CommitThenFailRepository(ds, 1);
      const writer = new InterceptWriter(repo, noAlerts, noDispatch, logger);
      worker = new Worker<{ events: InterceptWire[] }>(
        QUEUE.intercepts,
        async (job) => {
          await writer.write(job.data.events.map(fromWire));
        },
        { connection: workerConnection(REDIS_URL), prefix: keys.bullPrefix, concurrency: 2 },
      );
      worker.on('error', () => undefined);
      const spool = new FlakySpool(spoolDir, stores.databaseUrl, logger);
      const sut = new InterceptRecorder(queue, writer, new InterceptRepository(ds), spool, metrics, logger, {
        flushMs: 100,
        confirmAfterMs: 200,
        rescueAfterMs: 10_000,
      });
      sut.start();
      // About 1.5 s of refusals from two addresses: several seconds, several batches.
      let sent = 0;
      const end = Date.now() + 1500;
      while (Date.now() < end) {
        for (const ip of ['198.51.100.7', '198.51.100.8']) {
          sut.record(refused(bindingId, new Date(), ip));
          sent++;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      await until('every batch confirmed in PostgreSQL', () => sut.pending === 0);
      await sut.stop();
      expect(repo.failures).toBe(0); // the injected failure happened
      const totals = await interceptTotals(bindingId);
      expect(totals.requests).toBe(sent);
      expect(totals.interceptCount).toBe(sent);
      expect(totals.distinctIds).toBe(totals.rows);
      // One record per address per second (a second split by a flush at most once more).
      expect(totals.rows).toBeLessThanOrEqual(2 * 4);
      expect(await spool.pendingFiles()).toEqual([]);
    });
  });
});
