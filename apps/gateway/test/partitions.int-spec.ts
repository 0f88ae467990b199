import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../../db/migrations';
import { createDataSource, runMigrations } from '../src/infra/database/data-source';
import { ensureDatabase } from '../src/infra/database/ensure-database';
import { ChainSealer } from '../src/integrity/chain-sealer.service';
import { IntegrityRepository } from '../src/integrity/integrity.repository';
import { IntegrityService, verifyAll } from '../src/integrity/integrity.service';
import { GENESIS_HASH } from '../src/integrity/record-hash';
import type { InterceptFilter } from '../src/intercept/intercept-filter';
import { formatInstant } from '../src/intercept/intercept-filter';
import { InterceptLogRepository, whereOf } from '../src/intercept/intercept-log.repository';
import { InterceptRepository } from '../src/intercept/intercept.repository';
import type { InterceptEvent } from '../src/intercept/intercept.types';
import { addMonths, monthStart, partitionName } from '../src/retention/partition-months';
import { RetentionRepository } from '../src/retention/retention.repository';
import { RetentionService } from '../src/retention/retention.service';
import { dropStores, freshStores } from './support/stores';

/**
 * The intercept log partitioned by month (docs/data.md): the migration
 * converts a populated log in place, inserts for any time land, retention
 * drops whole months behind a checkpoint and the chain still verifies.
 * In-process against the real PostgreSQL (a fresh database).
 */

const logger = pino({ level: 'silent' });
const stores = freshStores('partitions');
const ROOT = join(__dirname, '..', '..', '..');
let ds: DataSource;
let integrityRepo: IntegrityRepository;
let integrity: IntegrityService;
let intercepts: InterceptRepository;
let partitions: RetentionRepository;

const NOW = new Date();
/** The migrations before this feature's (partitions, hourly counts, admin counts). */
const BEFORE = MIGRATIONS.findIndex((m) => m.name === 'InterceptPartitions1769000100000');
const OURS = [
  'InterceptPartitions1769000100000',
  'InterceptCounts1769000200000',
  'AdminCounts1769000300000',
  'InterceptIpCounts1769000400000',
  'BindingSearchIndex1769000500000',
  'AdminListCounts1769000600000',
];
const DAY = 86_400_000;

let n = 0;
function event(at: Date, change: Partial<InterceptEvent> = {}): InterceptEvent {
  n++;
  return {
    id: randomUUID(),
    bindingId: n % 5 === 0 ? null : n,
    tokenDisplay: `abcd\u2026${n % 97}`,
    attemptIp: n % 4 === 0 ? `2001:db8::${n.toString(16)}` : `198.51.100.${n % 250}`,
    allowedIps: ['203.0.113.0/24'],
    reason: n % 2 === 0 ? 'ip_not_allowed' : 'key_banned',
    method: 'POST',
    path: `/v1/x/${n}`,
    userAgent: n % 7 === 0 ? null : `ua ${n}`,
    enforced: true,
    at,
    count: 1 + (n % 3),
    ...change,
  };
}

async function sealAll(): Promise<void> {
  const sealer = new ChainSealer(integrityRepo, logger, { batch: 200, marginMs: 0 });
  await sealer.sealAll('wait', null);
}

/** Where each intercept lives: id → partition name. */
async function placement(): Promise<Map<string, string>> {
  const rows: { id: string; part: string }[] = await ds.query(
    `SELECT id, tableoid::regclass::text AS part FROM intercept_logs`,
  );
  return new Map(rows.map((r) => [r.id, r.part]));
}

async function partitionNames(): Promise<string[]> {
  const rows: { name: string }[] = await ds.query(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'intercept_logs'::regclass ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

async function verified(): Promise<{ ok: boolean; checked: number; checkpoint: number | null }> {
  const r = await verifyAll(integrityRepo, stores.databaseUrl);
  return {
    ok: r.intercepts.ok && r.audit.ok,
    checked: r.intercepts.checked,
    checkpoint: r.intercepts.checkpoint_seq,
  };
}

beforeAll(async () => {
  await ensureDatabase(stores.databaseUrl);
});

afterAll(async () => {
  await ds?.destroy();
  await dropStores(stores.dbName, stores.redisPrefix);
});

describe('the migration', () => {
  it('converts a populated log in place: every row, id and seal kept, the chain verifies', async () => {
    // The schema as the previous migration left it.
    const before = new DataSource({
      type: 'postgres',
      url: stores.databaseUrl,
      migrations: MIGRATIONS.slice(0, BEFORE),
      migrationsTableName: 'keypin_migrations',
    });
    await before.initialize();
    const kind: { relkind: string }[] = await before.query(
      `SELECT relkind FROM pg_class WHERE relname = 'intercept_logs'`,
    );
    expect(kind).toEqual([]);
    await before.runMigrations({ transaction: 'each' });
    // 14 months of intercepts, the old way (the id alone is the key), some of them alerted.
    await before.query(
      `INSERT INTO intercept_logs (id, binding_id, token_display, attempt_ip, allowed_ips, reason, method, path,
                                   user_agent, enforced, alerted, alert_id, intercepted_at, count)
       SELECT gen_random_uuid(), CASE WHEN i % 9 = 0 THEN NULL ELSE i % 40 END, 'sk-a…' || (i % 40),
              ('10.0.' || (i % 200) || '.' || (i % 250))::inet, '{203.0.113.0/24}', 
              (ARRAY['ip_not_allowed','key_banned'])[1 + i % 2]::intercept_reason, 'GET', '/v1/' || i,
              CASE WHEN i % 5 = 0 THEN NULL ELSE 'ua' END, i % 6 <> 0, i % 10 = 0,
              CASE WHEN i % 10 = 0 THEN gen_random_uuid() END,
              now() - make_interval(days => 425) + i * interval '1 hour', 1 + i % 4
         FROM generate_series(1, 10000) AS i`,
    );
    // Sealed with the old shape's code path (the sealer reads and writes by id).
    const oldRepo = new IntegrityRepository(before);
    await new ChainSealer(oldRepo, logger, { batch: 1000, marginMs: 0 }).sealAll('wait', null);
    // A few left unsealed: the sealer carries on with them after the migration.
    await before.query(
      `INSERT INTO intercept_logs (id, binding_id, token_display, attempt_ip, allowed_ips, reason, method, path,
                                   intercepted_at)
       SELECT gen_random_uuid(), 1, 'sk-a…1', '10.9.9.9', '{}', 'key_banned', 'GET', '/late', now() - interval '1 minute'
         FROM generate_series(1, 5)`,
    );
    const snapshot: unknown[] = await before.query(`SELECT * FROM intercept_logs ORDER BY id`);
    await before.destroy();

    ds = createDataSource(stores.databaseUrl, 6);
    await ds.initialize();
    expect(await runMigrations(ds)).toEqual(OURS);
    integrityRepo = new IntegrityRepository(ds);
    integrity = new IntegrityService(integrityRepo, stores.databaseUrl, logger);
    intercepts = new InterceptRepository(ds);
    partitions = new RetentionRepository(ds);

    const after: unknown[] = await ds.query(`SELECT * FROM intercept_logs ORDER BY id`);
    expect(after).toEqual(snapshot);
    const kindAfter: { relkind: string }[] = await ds.query(
      `SELECT relkind FROM pg_class WHERE relname = 'intercept_logs'`,
    );
    expect(kindAfter).toEqual([{ relkind: 'p' }]);

    // One partition per month from the oldest row's to two months ahead, and the DEFAULT one.
    const names = await partitionNames();
    const oldest = monthStart(new Date(NOW.getTime() - 425 * DAY));
    const expected: string[] = [];
    for (let m = oldest; m <= addMonths(NOW, 2); m = addMonths(m, 1)) expected.push(partitionName(m));
    expect(names).toEqual([...expected, 'intercept_logs_default'].sort());
    const inDefault: { n: number }[] = await ds.query(
      `SELECT count(*)::int AS n FROM intercept_logs_default`,
    );
    expect(inDefault[0]!.n).toBe(0);

    let state = await verified();
    expect(state).toEqual({ ok: true, checked: 10_000, checkpoint: null });
    await sealAll();
    state = await verified();
    expect(state).toEqual({ ok: true, checked: 10_005, checkpoint: null });
  });

  it('keeps the keys the code relies on: (id, time) primary key for ON CONFLICT, seq in order', async () => {
    const idx: { indexdef: string }[] = await ds.query(
      `SELECT indexdef FROM pg_indexes WHERE tablename = 'intercept_logs' ORDER BY indexname`,
    );
    const defs = idx.map((r) => r.indexdef).join('\n');
    expect(defs).toContain(
      'UNIQUE INDEX intercept_logs_pkey ON ONLY public.intercept_logs USING btree (id, intercepted_at)',
    );
    expect(defs).toContain('intercept_logs_seq_idx ON ONLY public.intercept_logs USING btree (seq)');
    // A duplicate seq forged behind KeyPin's back is reported (nothing declares seq unique any more).
    const last: { id: string; at: Date; seq: string }[] = await ds.query(
      `SELECT id, intercepted_at AS at, seq FROM intercept_logs WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 2`,
    );
    await ds.query(`UPDATE intercept_logs SET seq = $1 WHERE id = $2`, [last[1]!.seq, last[0]!.id]);
    const r = await verifyAll(integrityRepo, stores.databaseUrl);
    expect(r.intercepts.ok).toBe(false);
    expect(r.intercepts.first_bad_seq).toBe(Number(last[1]!.seq));
    await ds.query(`UPDATE intercept_logs SET seq = $1 WHERE id = $2`, [last[0]!.seq, last[0]!.id]);
    expect((await verified()).ok).toBe(true);
  });

  it('can be undone and redone, rows intact', async () => {
    const snapshot: unknown[] = await ds.query(`SELECT * FROM intercept_logs ORDER BY id`);
    for (let i = 0; i < OURS.length; i++) await ds.undoLastMigration({ transaction: 'each' });
    const kind: { relkind: string }[] = await ds.query(
      `SELECT relkind FROM pg_class WHERE relname = 'intercept_logs'`,
    );
    expect(kind).toEqual([{ relkind: 'r' }]);
    expect(await ds.query(`SELECT * FROM intercept_logs ORDER BY id`)).toEqual(snapshot);
    expect((await verified()).ok).toBe(true);
    expect(await runMigrations(ds)).toEqual(OURS);
    expect(await ds.query(`SELECT * FROM intercept_logs ORDER BY id`)).toEqual(snapshot);
    expect((await verified()).ok).toBe(true);
  });
});

describe('inserts', () => {
  it('land for any time: their month, or DEFAULT when there is none; a replay stores nothing twice', async () => {
    const nextMonth = event(new Date(addMonths(NOW, 1).getTime() + 3 * DAY));
    const longAgo = event(new Date(Date.UTC(2019, 4, 17, 12)));
    const farAhead = event(new Date(addMonths(NOW, 60).getTime() + DAY));
    const now = event(new Date(NOW.getTime() - 5000));
    const batch = [nextMonth, longAgo, farAhead, now];
    expect(await intercepts.insertBatch(batch)).toBe(4);
    expect(await intercepts.insertBatch(batch)).toBe(0);
    expect(await intercepts.existingIds(batch.map((e) => e.id))).toEqual(new Set(batch.map((e) => e.id)));
    let where = await placement();
    expect(where.get(nextMonth.id)).toBe(partitionName(nextMonth.at));
    expect(where.get(now.id)).toBe(partitionName(NOW));
    expect(where.get(longAgo.id)).toBe('intercept_logs_default');
    expect(where.get(farAhead.id)).toBe('intercept_logs_default');

    // Creating a month moves its rows out of DEFAULT; twice is a no-op; two at once are safe.
    const [a, b] = await Promise.all([
      partitions.ensurePartition(longAgo.at),
      partitions.ensurePartition(longAgo.at),
    ]);
    expect(a).toBe('intercept_logs_p2019_05');
    expect(b).toBe(a);
    where = await placement();
    expect(where.get(longAgo.id)).toBe('intercept_logs_p2019_05');
    expect(where.get(farAhead.id)).toBe('intercept_logs_default');
    expect(await intercepts.insertBatch(batch)).toBe(0);

    await sealAll();
    expect((await verified()).ok).toBe(true);
  });
});

describe('totals', () => {
  it('the hourly counts give /logs exactly the totals count(*) gives, whatever the range', async () => {
    const logs = new InterceptLogRepository(ds, stores.databaseUrl, logger);
    const base = Date.UTC(2026, 5, 10, 7, 0, 0);
    const events: InterceptEvent[] = [];
    for (let k = 0; k < 400; k++) events.push(event(new Date(base + k * 7 * 60_000 + (k % 13) * 997)));
    await intercepts.insertBatch(events);
    // Removed by rows: the counts follow.
    await ds.query(`DELETE FROM intercept_logs WHERE id = ANY($1::uuid[])`, [
      events.slice(0, 25).map((e) => e.id),
    ]);
    const at = (ms: number) => formatInstant(BigInt(base + ms) * 1000n);
    const none: InterceptFilter = {
      bindingId: null,
      tokenLike: null,
      network: null,
      reason: null,
      from: null,
      to: null,
    };
    const filters: InterceptFilter[] = [
      none,
      { ...none, reason: 'key_banned' },
      { ...none, from: at(0) },
      { ...none, from: at(3_600_000 + 1) },
      { ...none, to: { at: at(5 * 3_600_000), inclusive: true } },
      { ...none, to: { at: at(5 * 3_600_000), inclusive: false } },
      { ...none, from: at(1_234_567), to: { at: at(31_234_567), inclusive: true } },
      { ...none, from: at(60_000), to: { at: at(1_800_000), inclusive: true } }, // within one hour
      { ...none, from: at(7_200_000), to: { at: at(10_800_000), inclusive: false } }, // whole hours
      { ...none, reason: 'ip_not_allowed', from: at(999), to: { at: at(20_000_001), inclusive: true } },
      { ...none, bindingId: 3 },
      { ...none, tokenLike: '%abcd…1%' },
      { ...none, tokenLike: '%…4%', reason: 'key_banned' },
      { ...none, network: '198.51.100.0/24' },
      { ...none, network: '198.51.100.7/32' },
      { ...none, network: '2001:db8::/64' },
      { ...none, network: '198.51.100.0/24', reason: 'key_banned' },
    ];
    for (const f of filters) {
      const params: unknown[] = [];
      const counted: { n: string }[] = await ds.query(
        `SELECT count(*) AS n FROM intercept_logs ${whereOf(f, params)}`,
        params,
      );
      const { total } = await logs.list(f, 5, 0);
      expect({ f, total }).toEqual({ f, total: Number(counted[0]!.n) });
    }
  });
});

describe('binding counts', () => {
  it("the dashboard's active and banned figures follow inserts, bans, deletes and truncation", async () => {
    const counts = async () => {
      const rows: { status: string; n: string }[] = await ds.query(
        `SELECT status::text AS status, n::text AS n FROM binding_status_counts ORDER BY 1`,
      );
      const real: { status: string; n: string }[] = await ds.query(
        `SELECT status::text AS status, count(*)::text AS n FROM bindings GROUP BY 1 ORDER BY 1`,
      );
      return { kept: rows.filter((r) => r.n !== '0'), real };
    };
    await ds.query(
      `INSERT INTO bindings (key_hash, token_display, allowed_ips)
       SELECT sha256(convert_to('k' || i, 'UTF8')), 'k…' || i, '{10.0.0.1/32}' FROM generate_series(1, 30) AS i`,
    );
    await ds.query(`UPDATE bindings SET status = 'banned' WHERE id % 3 = 0`);
    await ds.query(`UPDATE bindings SET status = 'banned' WHERE id % 6 = 0`); // no change
    await ds.query(`DELETE FROM bindings WHERE id % 5 = 0`);
    let c = await counts();
    expect(c.kept).toEqual(c.real);
    expect(c.real.length).toBe(2);
    await ds.query(`TRUNCATE bindings CASCADE`);
    c = await counts();
    expect(c).toEqual({ kept: [], real: [] });
  });
});

describe('retention', () => {
  /** A fresh log: `months` of intercepts ending now, each month's rows sealed in time order. */
  async function freshLog(months: number, perMonth: number): Promise<void> {
    await ds.query(`TRUNCATE intercept_logs, audit_logs, integrity_checkpoints`);
    await ds.query(`UPDATE integrity_heads SET seq = 0, hash = $1`, [GENESIS_HASH]);
    for (let i = months - 1; i >= 0; i--) {
      const start = addMonths(NOW, -i);
      await partitions.ensurePartition(start);
      const events: InterceptEvent[] = [];
      for (let k = 0; k < perMonth; k++) {
        const at = new Date(start.getTime() + (k + 1) * 3600_000 + (k % 1000));
        if (at.getTime() < NOW.getTime() - 5000) events.push(event(at));
      }
      await intercepts.insertBatch(events);
    }
    await sealAll();
  }

  function service(days: number): RetentionService {
    return new RetentionService(partitions, integrity, logger, { days, lockTimeoutMs: 5000 });
  }

  it('drops exactly the months past the cutoff, behind a checkpoint; the chain still verifies', async () => {
    await freshLog(14, 50);
    // An old record stored late in the DEFAULT partition (its month has no partition), sealed
    // after every other record: later in the chain than records to keep, so it stays for now.
    const stray = event(new Date(Date.UTC(2001, 0, 1)));
    await intercepts.insertBatch([stray]);
    await sealAll();
    const total: { n: number }[] = await ds.query(`SELECT count(*)::int AS n FROM intercept_logs`);

    // 200 days: the months ending at or before the month of (now - 200 days) go.
    const cut = monthStart(new Date(NOW.getTime() - 200 * DAY));
    const expectedDropped = (await partitionNames()).filter(
      (p) => p.startsWith('intercept_logs_p') && addMonths(monthStartOf(p), 1) <= cut,
    );
    expect(expectedDropped.length).toBeGreaterThanOrEqual(7);
    const expectedRows: { n: number }[] = await ds.query(
      `SELECT count(*)::int AS n FROM intercept_logs WHERE intercepted_at < $1 AND tableoid <> 'intercept_logs_default'::regclass`,
      [cut],
    );

    const r = await service(200).run(NOW);
    expect(r).not.toBeNull();
    expect(r!.dropped.map((d) => d.name)).toEqual(expectedDropped);
    expect(r!.dropped.reduce((s, d) => s + d.rows, 0)).toBe(expectedRows[0]!.n);
    expect(r!.rowsDeleted).toBe(0);
    expect((await placement()).get(stray.id)).toBe('intercept_logs_default');
    const left = await partitionNames();
    for (const p of expectedDropped) expect(left).not.toContain(p);
    expect(left).toContain(partitionName(cut));
    expect(left).toContain(partitionName(addMonths(NOW, 2)));
    const after: { n: number }[] = await ds.query(`SELECT count(*)::int AS n FROM intercept_logs`);
    expect(after[0]!.n).toBe(total[0]!.n - expectedRows[0]!.n);
    const nothingOld: { n: number }[] = await ds.query(
      `SELECT count(*)::int AS n FROM intercept_logs WHERE intercepted_at >= '2002-01-01' AND intercepted_at < $1`,
      [cut],
    );
    expect(nothingOld[0]!.n).toBe(0);

    const state = await verified();
    expect(state.ok).toBe(true);
    expect(state.checkpoint).toBe(r!.checkpointSeq);
    expect(state.checkpoint).toBe(r!.dropped.at(-1)!.lastSeq);
    // The dropped months left the hourly counts too.
    const counts: { rows: string; counted: string }[] = await ds.query(
      `SELECT (SELECT sum(rows) FROM intercept_log_counts)::text AS rows, (SELECT count(*) FROM intercept_logs)::text AS counted`,
    );
    expect(counts[0]!.rows).toBe(counts[0]!.counted);
    const perKey: { n: number }[] = await ds.query(
      `SELECT count(*)::int AS n FROM (SELECT token_display, count(*) AS rows FROM intercept_logs GROUP BY 1) a
         FULL JOIN (SELECT * FROM intercept_token_counts WHERE rows > 0) b USING (token_display)
        WHERE a.rows IS DISTINCT FROM b.rows`,
    );
    expect(perKey[0]!.n).toBe(0);
    const perIp: { n: number }[] = await ds.query(
      `SELECT count(*)::int AS n FROM (SELECT attempt_ip, count(*) AS rows FROM intercept_logs GROUP BY 1) a
         FULL JOIN (SELECT * FROM intercept_ip_counts WHERE rows > 0) b USING (attempt_ip)
        WHERE a.rows IS DISTINCT FROM b.rows`,
    );
    expect(perIp[0]!.n).toBe(0);
    const audit: { action: string; target: string; actor: string }[] = await ds.query(
      `SELECT action, target, actor FROM audit_logs ORDER BY id`,
    );
    expect(audit).toEqual(
      r!.dropped.map((d) => ({
        action: 'intercepts.partition_drop',
        target: `partition:${d.name}`,
        actor: 'system',
      })),
    );
    await sealAll();
    expect((await verified()).ok).toBe(true);

    // Idempotent: a second run finds nothing to do.
    const again = await service(200).run(NOW);
    expect(again).toMatchObject({
      created: [],
      dropped: [],
      rowsDeleted: 0,
      checkpointSeq: r!.checkpointSeq,
    });
    expect(await partitionNames()).toEqual(left);
  });

  it('deletes old rows of the DEFAULT partition by rows once they are in the checkpointed prefix', async () => {
    await ds.query(`TRUNCATE intercept_logs, audit_logs, integrity_checkpoints`);
    await ds.query(`UPDATE integrity_heads SET seq = 0, hash = $1`, [GENESIS_HASH]);
    const old = [event(new Date(Date.UTC(2003, 1, 1))), event(new Date(Date.UTC(2003, 1, 2)))];
    await intercepts.insertBatch(old);
    const recent = [event(new Date(NOW.getTime() - 10_000)), event(new Date(NOW.getTime() - 9000))];
    await intercepts.insertBatch(recent);
    await sealAll();
    const r = await service(30).run(NOW);
    expect(r).toMatchObject({ rowsDeleted: 2, checkpointSeq: 2, waiting: [] });
    const ids: { id: string }[] = await ds.query(`SELECT id FROM intercept_logs ORDER BY seq`);
    expect(ids.map((x) => x.id)).toEqual(recent.map((e) => e.id));
    expect(await verified()).toEqual({ ok: true, checked: 2, checkpoint: 2 });
  });

  it('keeps a month holding a record sealed after newer ones, until the chain allows', async () => {
    await freshLog(4, 20);
    const oldMonth = addMonths(NOW, -3);
    // Stored late (a replayed spool): sealed after every newer record.
    const late = event(new Date(oldMonth.getTime() + 5 * DAY));
    await intercepts.insertBatch([late]);
    await sealAll();
    const r = await service(40).run(NOW); // at least the oldest month is past retention
    expect(r!.waiting).toContain(partitionName(oldMonth));
    expect(r!.dropped.map((d) => d.name)).not.toContain(partitionName(oldMonth));
    expect(await partitionNames()).toContain(partitionName(oldMonth));
    const still: { n: number }[] = await ds.query(
      `SELECT count(*)::int AS n FROM intercept_logs WHERE id = $1`,
      [late.id],
    );
    expect(still[0]!.n).toBe(1);
    expect((await verified()).ok).toBe(true);
  });

  it('is safe with two instances at once: one runs, the chain verifies', async () => {
    await freshLog(6, 30);
    const [a, b] = await Promise.all([service(60).run(NOW), service(60).run(NOW)]);
    const ran = [a, b].filter((x) => x !== null);
    expect(ran.length).toBeGreaterThanOrEqual(1);
    const dropped = ran.flatMap((x) => x.dropped.map((d) => d.name));
    expect(new Set(dropped).size).toBe(dropped.length);
    expect(dropped.length).toBeGreaterThanOrEqual(3);
    expect((await verified()).ok).toBe(true);
    const checkpoints: { n: number }[] = await ds.query(
      `SELECT count(*)::int AS n FROM integrity_checkpoints`,
    );
    expect(checkpoints[0]!.n).toBe(1);
  });

  it('npm run verify agrees (built gateway)', () => {
    const cli = join(ROOT, 'dist/gateway/apps/gateway/src/integrity/verify-cli.js');
    if (!existsSync(cli)) return;
    const run = spawnSync(process.execPath, [cli], {
      env: { ...process.env, DATABASE_URL: stores.databaseUrl },
      encoding: 'utf8',
    });
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout) as { intercepts: { ok: boolean; checkpoint_seq: number | null } };
    expect(report.intercepts.ok).toBe(true);
    expect(report.intercepts.checkpoint_seq).not.toBeNull();
  });
});

function monthStartOf(partition: string): Date {
  const m = /_p(\d{4})_(\d{2})$/.exec(partition)!;
  return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1));
}
