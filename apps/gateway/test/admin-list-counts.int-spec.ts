import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertAdminRepository } from '../src/alert/alert-admin.repository';
import { AuditRepository } from '../src/audit/audit.repository';
import { BindingAdminRepository, type BindingFilter } from '../src/binding/binding-admin.repository';
import type { BindingSearch } from '../src/binding/binding-search';
import { createDataSource, runMigrations } from '../src/infra/database/data-source';
import { ensureDatabase } from '../src/infra/database/ensure-database';
import { dropStores, freshStores } from './support/stores';

/**
 * The admin lists' totals and pages (docs/data.md, migration
 * 1769000600000): the counters kept by triggers stay exact across inserts,
 * deletes, status and rule changes and truncation, and every list answers
 * what counting and filtering the table directly answers.
 */

const stores = freshStores('list_counts');
let ds: DataSource;
let bindings: BindingAdminRepository;
let alerts: AlertAdminRepository;
let audit: AuditRepository;

beforeAll(async () => {
  await ensureDatabase(stores.databaseUrl);
  ds = createDataSource(stores.databaseUrl, 4);
  await ds.initialize();
  await runMigrations(ds);
  bindings = new BindingAdminRepository(ds);
  alerts = new AlertAdminRepository(ds);
  audit = new AuditRepository(ds);
});

afterAll(async () => {
  await ds?.destroy();
  await dropStores(stores.dbName, stores.redisPrefix);
});

const STATUSES = [null, 'active', 'banned'] as const;
const RULES = [null, 'single', 'multiple', 'all'] as const;
const SEARCHES: (BindingSearch | null)[] = [
  null,
  { kind: 'ip', ip: '10.0.3.7' },
  { kind: 'ip', ip: '192.0.2.9' },
  { kind: 'ip', ip: '2001:db8::5' },
  { kind: 'network', cidr: '10.0.0.0/16' },
  { kind: 'network', cidr: '10.0.3.0/30' },
  { kind: 'network', cidr: '192.0.2.0/24' },
  { kind: 'network', cidr: '0.0.0.0/0' },
  { kind: 'key', like: '%k…1%', hashHex: null },
];

/** The list as a plain scan of the table answers it (the pre-1769000600000 SQL). */
async function expected(
  f: BindingFilter,
  limit: number,
  offset: number,
): Promise<{ ids: number[]; total: number }> {
  const conds: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (f.status !== null) conds.push(`status = ${p(f.status)}::binding_status`);
  if (f.ruleType !== null) conds.push(`rule_type = ${p(f.ruleType)}::binding_rule`);
  const s = f.search;
  if (s?.kind === 'ip') {
    const ip = p(s.ip);
    conds.push(
      `(EXISTS (SELECT 1 FROM unnest(allowed_ips) AS n WHERE n >>= ${ip}::inet) OR last_ip = ${ip}::inet OR first_ip = ${ip}::inet)`,
    );
  } else if (s?.kind === 'network') {
    const net = p(s.cidr);
    conds.push(
      `(EXISTS (SELECT 1 FROM unnest(allowed_ips) AS n WHERE n && ${net}::cidr) OR last_ip <<= ${net}::cidr OR first_ip <<= ${net}::cidr)`,
    );
  } else if (s?.kind === 'key') {
    conds.push(`lower(token_display) LIKE ${p(s.like)} ESCAPE '\\'`);
  }
  const where = conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '';
  const all: { id: string }[] = await ds.query(`SELECT id FROM bindings ${where} ORDER BY id DESC`, params);
  return { ids: all.slice(offset, offset + limit).map((r) => Number(r.id)), total: all.length };
}

async function checkBindings(): Promise<void> {
  const kept: { status: string; rule_type: string; n: string }[] = await ds.query(
    `SELECT status::text, rule_type::text, n::text FROM binding_counts WHERE n <> 0 ORDER BY 1, 2`,
  );
  const real: { status: string; rule_type: string; n: string }[] = await ds.query(
    `SELECT status::text, rule_type::text, count(*)::text AS n FROM bindings GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  expect(kept).toEqual(real);
  const nets: { d: string }[] = await ds.query(
    `SELECT count(*)::text AS d FROM (
       (SELECT binding_id, network FROM binding_networks EXCEPT ALL SELECT id, unnest(allowed_ips) FROM bindings)
       UNION ALL
       (SELECT id, unnest(allowed_ips) FROM bindings EXCEPT ALL SELECT binding_id, network FROM binding_networks)) x`,
  );
  expect(nets[0]!.d).toBe('0');
  for (const status of STATUSES)
    for (const ruleType of RULES)
      for (const search of SEARCHES)
        for (const [limit, offset] of [
          [5, 0],
          [7, 14],
          [200, 0],
          [20, 10_000],
        ] as const) {
          const f: BindingFilter = { status, ruleType, search };
          const got = await bindings.list(f, limit, offset);
          expect({ f, limit, offset, ids: got.items.map((b) => b.id), total: got.total }).toEqual({
            f,
            limit,
            offset,
            ...(await expected(f, limit, offset)),
          });
        }
}

describe('binding lists', () => {
  it('stay exact across inserts, deletes, status, rule and network changes, and truncation', async () => {
    await ds.query(
      `INSERT INTO bindings (key_hash, token_display, rule_type, allowed_ips, status, first_ip, last_ip)
       SELECT sha256(convert_to('k' || i, 'UTF8')), 'k…' || i,
              (CASE i % 3 WHEN 0 THEN 'single' WHEN 1 THEN 'multiple' ELSE 'all' END)::binding_rule,
              (CASE i % 3 WHEN 0 THEN ARRAY[('10.0.' || i % 7 || '.0/24')::cidr]
                          WHEN 1 THEN ARRAY['10.0.3.4/30'::cidr, '2001:db8::/64'::cidr, ('172.16.' || i || '.0/24')::cidr]
                          ELSE '{}'::cidr[] END),
              (CASE WHEN i % 4 = 0 THEN 'banned' ELSE 'active' END)::binding_status,
              ('192.0.2.' || i % 13)::inet, CASE WHEN i % 5 = 0 THEN NULL ELSE ('10.1.0.' || i)::inet END
         FROM generate_series(1, 60) AS i`,
    );
    await checkBindings();

    await ds.query(`UPDATE bindings SET status = 'banned' WHERE id % 3 = 0`);
    await ds.query(`UPDATE bindings SET status = 'banned' WHERE id % 6 = 0`); // no change
    await ds.query(
      `UPDATE bindings SET rule_type = 'single', allowed_ips = '{192.0.2.9/32}' WHERE id % 7 = 0 AND rule_type <> 'single'`,
    );
    await ds.query(
      `UPDATE bindings SET rule_type = 'all', allowed_ips = '{}', status = 'active' WHERE id % 11 = 0`,
    );
    await ds.query(
      `UPDATE bindings SET allowed_ips = '{10.0.3.0/24}' WHERE id % 13 = 0 AND rule_type = 'single'`,
    );
    await ds.query(`UPDATE bindings SET note = 'x', request_count = request_count + 1 WHERE id % 2 = 0`);
    await ds.query(`DELETE FROM bindings WHERE id % 5 = 0`);
    await checkBindings();

    // The repository's own writers: ban, rule edit, removal into the archive.
    const tx = ds.createQueryRunner();
    await tx.connect();
    await tx.startTransaction();
    try {
      const [a, b, c] = (await bindings.list({ status: null, ruleType: null, search: null }, 3, 0)).items;
      await bindings.setStatus(tx, a!.id, a!.status === 'active' ? 'banned' : 'active');
      await bindings.setNetworks(tx, b!.id, 'multiple', ['10.0.3.0/24', '198.51.100.0/24']);
      await bindings.remove(tx, c!.id, 'test');
      await bindings.create(tx, {
        hashHex: 'ab'.repeat(32),
        tokenDisplay: 'new…key',
        ruleType: 'single',
        networks: ['10.0.3.7/32'],
        note: null,
      });
      await tx.commitTransaction();
    } finally {
      await tx.release();
    }
    await checkBindings();

    await ds.query(`TRUNCATE bindings CASCADE`);
    await checkBindings();
    expect(await ds.query(`SELECT count(*)::int AS n FROM binding_networks`)).toEqual([{ n: 0 }]);
  }, 120_000);
});

describe('alert and audit lists', () => {
  it('alert totals follow inserts, actions, deletes and truncation', async () => {
    const insert = (i: number) =>
      ds.query(
        `INSERT INTO alerts (id, binding_id, token_display, allowed_ips, attempt_ips, count, window_seconds,
                             first_at, last_at, window_end, occurred_at)
         VALUES ($1, $2, 'k…x', '{10.0.0.0/24}', '{198.51.100.1}', 5, 300,
                 now() - make_interval(secs => $3), now(), now(), now() - make_interval(secs => $3))`,
        [randomUUID(), 1 + (i % 4), i],
      );
    for (let i = 0; i < 30; i++) await insert(i);
    const check = async () => {
      for (const bindingId of [null, 1, 2, 9])
        for (const status of [null, 'open', 'allowed', 'banned', 'dismissed'] as const) {
          const conds = [
            ...(bindingId === null ? [] : [`binding_id = ${bindingId}`]),
            ...(status === null ? [] : [`status = '${status}'`]),
          ];
          const where = conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '';
          const real: { id: string }[] = await ds.query(
            `SELECT id FROM alerts ${where} ORDER BY occurred_at DESC, id DESC`,
          );
          for (const [pageSize, offset] of [
            [4, 0],
            [4, 8],
            [20, 400],
          ] as const) {
            const got = await alerts.list(
              { bindingId, status },
              { page: 1 + offset / pageSize, pageSize, offset },
            );
            expect({ bindingId, status, offset, ids: got.items.map((a) => a.id), total: got.total }).toEqual({
              bindingId,
              status,
              offset,
              ids: real.slice(offset, offset + pageSize).map((r) => r.id),
              total: real.length,
            });
          }
        }
    };
    await check();
    await ds.query(`UPDATE alerts SET status = 'dismissed' WHERE binding_id = 1`);
    await ds.query(`UPDATE alerts SET status = 'banned' WHERE binding_id = 2`);
    await ds.query(`UPDATE alerts SET status = 'banned' WHERE binding_id = 2`); // no change
    await ds.query(`UPDATE alerts SET attempts = attempts + 1, delivery_status = 'delivered'`);
    await ds.query(`DELETE FROM alerts WHERE binding_id = 3`);
    await check();
    await ds.query(`TRUNCATE alerts`);
    await check();
    await insert(1);
    await check();
  }, 60_000);

  it('the audit total follows inserts, deletes and truncation; a page past the end keeps it', async () => {
    const caller = { userId: 1, username: 'admin', role: 'admin' as const, ip: '127.0.0.1' };
    const check = async () => {
      const real: { id: string }[] = await ds.query(`SELECT id FROM audit_logs ORDER BY at DESC, id DESC`);
      for (const [pageSize, offset] of [
        [5, 0],
        [5, 10],
        [20, 1000],
      ] as const) {
        const got = await audit.list({ page: 1 + offset / pageSize, pageSize, offset });
        expect({ offset, ids: got.items.map((e) => e.id), total: got.total }).toEqual({
          offset,
          ids: real.slice(offset, offset + pageSize).map((r) => Number(r.id)),
          total: real.length,
        });
      }
    };
    for (let i = 0; i < 25; i++) await audit.record(caller, 'test.action', `t:${i}`, { i }, undefined);
    await ds.query(
      `INSERT INTO audit_logs (actor, action) SELECT 'bulk', 'test.bulk' FROM generate_series(1, 17)`,
    );
    await check();
    const [first] = (await audit.list({ page: 1, pageSize: 1, offset: 0 })).items;
    expect(first).toMatchObject({ actor: 'bulk', action: 'test.bulk', ip: null });
    expect(typeof first!.at).toBe('string');
    await ds.query(`DELETE FROM audit_logs WHERE id % 3 = 0`);
    await check();
    await ds.query(`TRUNCATE audit_logs`);
    await check();
    await audit.record(caller, 'test.action', null, null, null);
    await check();
  }, 60_000);
});
