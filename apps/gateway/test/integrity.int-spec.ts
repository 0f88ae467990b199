import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEntry, ChainState, Intercept, IntegrityReport, Page } from '@keypin/shared';
import { parse } from 'csv-parse/sync';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataSource } from '../src/infra/database/data-source';
import { IntegrityRepository } from '../src/integrity/integrity.repository';
import { IntegrityService } from '../src/integrity/integrity.service';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send } from './support/http-client';
import { REPO_ROOT } from './support/paths';
import { dropStores, freshStores, sql } from './support/stores';

/**
 * The hash chains of the intercept log and the audit trail (docs/integrity.md)
 * with real gateway processes: valid through merged bursts, two processes
 * writing at once, SIGTERM under load and a restart; tampering through SQL
 * reported at the right seq by the API and by `npm run verify`; removal of
 * old records behind a checkpoint; an export verified offline by the
 * documented Python recipe.
 */
describe('hash chains', () => {
  const stores = freshStores('chains');
  const downstream = new FakeDownstream();
  const gateways: GatewayProcess[] = [];
  let gw: GatewayProcess;
  let admin: AdminClient;
  /** 403s answered so far: every one must be in the log, exactly once. */
  let refused = 0;
  let n = 0;

  const env = () => ({
    DATABASE_URL: stores.databaseUrl,
    REDIS_PREFIX: stores.redisPrefix,
    DOWNSTREAM_URL: downstream.url,
    ALERT_THRESHOLD_COUNT: '3',
    ALERT_THRESHOLD_SECONDS: '60',
    ...ADMIN_ENV,
  });
  const start = async (extra: Record<string, string> = {}) => {
    const g = await startGateway({ ...env(), ...extra });
    gateways.push(g);
    return g;
  };

  beforeAll(async () => {
    await downstream.start();
    gw = await start();
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  const integrity = async (client = admin): Promise<IntegrityReport> => {
    const r = await client.get('/admin/api/integrity');
    expect(r.status, r.body).toBe(200);
    return r.json<IntegrityReport>();
  };

  const bindFrom = async (g: GatewayProcess, home: string) => {
    const key = `sk-chain${Date.now().toString(36)}x${++n}`;
    expect((await send(`${g.url}/v1/models`, { from: home, headers: bearer(key) })).status).toBe(200);
    return key;
  };

  /** Sends `total` requests of `key` from the addresses in turn, `concurrency` at a time; counts the 403s. */
  const hammer = async (
    url: string,
    key: string,
    froms: string[],
    total: number,
    concurrency = 16,
    headers: Record<string, string> = {},
  ) => {
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    let next = 0;
    let got = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          const i = next++;
          try {
            const r = await send(`${url}/v1/chat/completions`, {
              from: froms[i % froms.length],
              headers: { ...bearer(key), ...headers },
              agent,
            });
            if (r.status === 403) got++;
          } catch {
            // The gateway went away (SIGTERM under load): not refused, not counted.
          }
        }
      }),
    );
    agent.destroy();
    refused += got;
    return got;
  };

  const stored = async () =>
    Number(
      (
        await sql<{ n: string }>(
          stores.databaseUrl,
          'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs',
        )
      )[0]!.n,
    );

  /** Waits until every refusal is stored and sealed; returns the report. */
  const settled = async (): Promise<IntegrityReport> => {
    await waitFor(async () => (await stored()) === refused, 30_000, 200);
    let report: IntegrityReport | undefined;
    await waitFor(
      async () => {
        report = await integrity();
        return report.intercepts.unsealed === 0 && report.audit.unsealed === 0;
      },
      30_000,
      250,
    );
    return report!;
  };

  /** Every row sealed, seq 1..N without a gap. */
  const gapless = async (table: string) => {
    const [r] = await sql<{ rows: string; max: string | null; unsealed: string }>(
      stores.databaseUrl,
      `SELECT count(*) AS rows, max(seq) AS max, count(*) FILTER (WHERE seq IS NULL) AS unsealed FROM ${table}`,
    );
    expect({ rows: Number(r!.rows), max: Number(r!.max ?? 0), unsealed: Number(r!.unsealed) }).toEqual({
      rows: Number(r!.rows),
      max: Number(r!.rows),
      unsealed: 0,
    });
    return Number(r!.rows);
  };

  const okChain = (rows: number): Partial<ChainState> => ({
    ok: true,
    checked: rows,
    head_seq: rows,
    first_bad_seq: null,
    unsealed: 0,
  });

  it('a burst of merged intercepts and admin changes: both chains gapless and valid, seq and hash shown', async () => {
    const key = await bindFrom(gw, '127.0.8.1');
    expect(await hammer(gw.url, key, ['127.0.8.2', '127.0.8.3'], 1500)).toBe(1500);
    // Admin changes for the audit trail.
    const [b] = await sql<{ id: string }>(
      stores.databaseUrl,
      'SELECT id FROM bindings ORDER BY id DESC LIMIT 1',
    );
    for (const path of ['/admin/api/bindings/ban', '/admin/api/bindings/unban']) {
      expect((await admin.post(path, { id: Number(b!.id) })).status).toBe(200);
    }
    const report = await settled();
    const rows = await gapless('intercept_logs');
    const audits = await gapless('audit_logs');
    expect(rows).toBeLessThan(100); // merged: about one record per second and address
    expect(report.intercepts).toMatchObject(okChain(rows));
    expect(report.audit).toMatchObject(okChain(audits));
    expect(audits).toBeGreaterThanOrEqual(2);

    const [head] = await sql<{ hash: string }>(
      stores.databaseUrl,
      'SELECT hash FROM intercept_logs WHERE seq = $1',
      [rows],
    );
    expect(report.intercepts.head_hash).toBe(head!.hash);

    const page = (await admin.get('/admin/api/logs?page_size=200')).json<Page<Intercept>>();
    expect(page.items).toHaveLength(rows);
    const dbSeals = await sql<{ id: string; seq: string; hash: string; prev_hash: string }>(
      stores.databaseUrl,
      'SELECT id, seq, hash, prev_hash FROM intercept_logs',
    );
    const byId = new Map(dbSeals.map((r) => [r.id, r]));
    for (const item of page.items) {
      const r = byId.get(item.id)!;
      expect({ seq: item.seq, hash: item.hash, prev_hash: item.prev_hash, enforced: item.enforced }).toEqual({
        seq: Number(r.seq),
        hash: r.hash,
        prev_hash: r.prev_hash,
        enforced: true,
      });
    }
    const auditPage = (await admin.get('/admin/api/audit?page_size=200')).json<Page<AuditEntry>>();
    expect(auditPage.items.map((a) => a.seq).sort((x, y) => x! - y!)).toEqual(
      Array.from({ length: audits }, (_, i) => i + 1),
    );
    expect(auditPage.items.every((a) => typeof a.hash === 'string' && /^[0-9a-f]{64}$/.test(a.hash))).toBe(
      true,
    );
  });

  it('an auditor reads /integrity; nobody without a token does', async () => {
    expect(
      (
        await admin.post('/admin/api/users', {
          username: 'chain-auditor',
          password: 'auditor-password-1',
          role: 'auditor',
        })
      ).status,
    ).toBe(201);
    const auditor = await AdminClient.login(gw.url, 'chain-auditor', 'auditor-password-1');
    const report = await integrity(auditor);
    expect(report.intercepts.ok).toBe(true);
    expect(report.audit.ok).toBe(true);
    expect((await new AdminClient(gw.url).get('/admin/api/integrity')).status).toBe(401);
  });

  it('an export verifies offline with the Python recipe of docs/integrity.md (whole or filtered; a changed cell fails)', async () => {
    const key = await bindFrom(gw, '127.0.8.10');
    // Cells an export must quote or prefix, and bytes beyond ASCII (sent as Latin-1 by Node's client).
    const agents = ['=HYPERLINK("http://x","y"), @z', "'quoted' \u00e9t\u00e9", '-1+2', '\tlead', ''];
    // One address each: requests of one key, address and second share a record (the first one's user agent).
    for (const [i, ua] of agents.entries()) {
      await hammer(gw.url, key, [`127.0.8.${20 + i}`], 2, 1, { 'user-agent': ua });
    }
    // Monitor mode: recorded with enforced = false (part of the hash).
    expect((await admin.put('/admin/api/settings', { enforce_mode: 'monitor' })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1200));
    const monitored = await send(`${gw.url}/v1/chat/completions`, {
      from: '127.0.8.12',
      headers: bearer(key),
    });
    expect(monitored.status).toBe(200);
    expect((await admin.put('/admin/api/settings', { enforce_mode: 'enforce' })).status).toBe(200);
    refused += 1; // stored though forwarded
    const report = await settled();

    const recipe = /<!-- recipe:start -->\s*```python\n([\s\S]*?)```\s*<!-- recipe:end -->/.exec(
      readFileSync(join(REPO_ROOT, 'docs/integrity.md'), 'utf8'),
    )?.[1];
    expect(recipe).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'keypin-chain-'));
    try {
      writeFileSync(join(dir, 'verify_export.py'), recipe!);
      const check = (csv: string) => {
        writeFileSync(join(dir, 'export.csv'), csv);
        const r = spawnSync('python3', [join(dir, 'verify_export.py'), join(dir, 'export.csv')], {
          encoding: 'utf8',
        });
        return { code: r.status, out: r.stdout + r.stderr };
      };

      const whole = await admin.get('/admin/api/logs/export');
      expect(whole.status).toBe(200);
      const [header, ...lines]: string[][] = parse(whole.body);
      expect(header!.slice(-5)).toEqual(['count', 'seq', 'hash', 'prev_hash', 'enforced']);
      expect(lines.some((l) => l.at(-1) === 'false')).toBe(true);
      expect(lines.some((l) => l.join(',').includes('\u00e9t\u00e9'))).toBe(true);
      const all = check(whole.body);
      expect(all.out).toContain(`${report.intercepts.head_seq} sealed records checked, 0 bad`);
      expect(all.out).toContain(
        `last: seq ${report.intercepts.head_seq} hash ${report.intercepts.head_hash}`,
      );
      expect(all.code).toBe(0);

      const [b] = await sql<{ id: string }>(
        stores.databaseUrl,
        'SELECT id FROM bindings WHERE host(first_ip) = $1',
        ['127.0.8.10'],
      );
      const filtered = await admin.get(`/admin/api/logs/export?binding_id=${b!.id}`);
      const part = check(filtered.body);
      expect(part.code, part.out).toBe(0);
      expect(part.out).toMatch(/^(\d+) sealed records checked, 0 bad/);

      // One count changed in the file: that row fails.
      const rows: string[][] = parse(whole.body);
      const victim = rows.findIndex((l, i) => i > 0 && l[11] !== '1');
      const target = victim > 0 ? victim : 1;
      rows[target]![11] = String(Number(rows[target]![11]) + 1);
      const tampered = rows
        .map((l) => l.map((c) => (/[",\r\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(','))
        .join('\r\n');
      const bad = check(tampered + '\r\n');
      expect(bad.code).toBe(1);
      expect(bad.out).toContain(`first bad seq ${rows[target]![12]}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two gateway processes writing at once, one stopped with SIGTERM under load and restarted: one valid chain, every refusal in it', async () => {
    const other = await start();
    const keyA = await bindFrom(gw, '127.0.9.1');
    const keyB = await bindFrom(other, '127.0.9.2');
    const froms = Array.from({ length: 12 }, (_, i) => `127.0.9.${10 + i}`);
    const loadA = hammer(gw.url, keyA, froms, 2500, 12);
    const loadB = hammer(other.url, keyB, froms, 5000, 12);
    // Also admin changes from both processes at once (audit rows).
    const adminB = await AdminClient.login(other.url);
    const changes = Promise.all(
      [admin, adminB].map(async (c, i) => {
        for (let k = 0; k < 5; k++) {
          expect(
            (await c.put('/admin/api/settings', { alert_threshold_count: 3 + ((k + i) % 2) })).status,
          ).toBe(200);
        }
      }),
    );
    await changes;
    await new Promise((r) => setTimeout(r, 300));
    expect(await other.stop('SIGTERM')).toBe(0);
    const [, gotB] = await Promise.all([loadA, loadB]);
    expect(gotB, 'the SIGTERM came while its load was running').toBeGreaterThan(0);
    expect(gotB).toBeLessThan(5000);
    // Restarted on the same stores: its sealer carries on from the head it finds.
    const again = await start();
    expect(await hammer(again.url, keyB, froms.slice(0, 3), 300, 6)).toBe(300);

    const report = await settled();
    const rows = await gapless('intercept_logs');
    const audits = await gapless('audit_logs');
    expect(report.intercepts).toMatchObject(okChain(rows));
    expect(report.audit).toMatchObject(okChain(audits));
    expect(await stored()).toBe(refused);
    expect(gw.logs.some((l) => l['msg'] === 'a sealed record past the chain head was found')).toBe(false);
    expect(other.logs.some((l) => l['msg'] === 'hash chains sealed on shutdown')).toBe(true);
    await again.stop();
  });

  it('tampering through SQL is reported at the right seq, and npm run verify exits non-zero', async () => {
    await settled(); // nothing being written or sealed meanwhile
    const verify = () => {
      const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/verify.mjs')], {
        cwd: REPO_ROOT,
        env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: stores.databaseUrl },
        encoding: 'utf8',
      });
      return { code: r.status, report: JSON.parse(r.stdout) as IntegrityReport, err: r.stderr };
    };
    const clean = verify();
    expect(clean.code, clean.err).toBe(0);
    const head = clean.report.intercepts.head_seq;
    expect(head).toBeGreaterThan(20);
    expect(clean.report.intercepts).toMatchObject({ ok: true, checked: head });
    expect(clean.err).toContain(`intercepts: ok, ${head} records verified`);

    const k = 7;
    const both = async (expected: Partial<ChainState>, chain: 'intercepts' | 'audit' = 'intercepts') => {
      const cli = verify();
      expect(cli.code).toBe(1);
      expect(cli.report[chain]).toMatchObject({ ok: false, ...expected });
      expect(cli.err).toContain(`${chain}: BROKEN at seq ${expected.first_bad_seq}`);
      expect((await integrity())[chain]).toMatchObject({ ok: false, ...expected });
    };

    // A changed field.
    await sql(stores.databaseUrl, 'UPDATE intercept_logs SET count = count + 1 WHERE seq = $1', [k]);
    await both({ first_bad_seq: k, checked: k - 1 });
    await sql(stores.databaseUrl, 'UPDATE intercept_logs SET count = count - 1 WHERE seq = $1', [k]);
    expect(verify().code).toBe(0);

    // A deleted row (kept aside and put back).
    await sql(stores.databaseUrl, 'CREATE TABLE kept AS SELECT * FROM intercept_logs WHERE seq = $1', [
      k + 1,
    ]);
    await sql(stores.databaseUrl, 'DELETE FROM intercept_logs WHERE seq = $1', [k + 1]);
    await both({ first_bad_seq: k + 1, checked: k });
    await sql(stores.databaseUrl, 'INSERT INTO intercept_logs SELECT * FROM kept');
    await sql(stores.databaseUrl, 'DROP TABLE kept');
    expect(verify().code).toBe(0);

    // An inserted row, claiming the next seq with the head's hash as its prev_hash.
    await sql(
      stores.databaseUrl,
      `INSERT INTO intercept_logs (id, binding_id, token_display, attempt_ip, allowed_ips, reason, method, path,
                                   intercepted_at, count, seq, prev_hash, hash)
       SELECT gen_random_uuid(), binding_id, token_display, '192.0.2.1', allowed_ips, reason, method, path,
              intercepted_at, 1, seq + 1, hash, repeat('c', 64)
         FROM intercept_logs WHERE seq = $1`,
      [head],
    );
    await both({ first_bad_seq: head + 1, checked: head, head_seq: head });
    await sql(stores.databaseUrl, 'DELETE FROM intercept_logs WHERE seq = $1', [head + 1]);
    expect(verify().code).toBe(0);

    // An audit entry changed.
    await sql(stores.databaseUrl, `UPDATE audit_logs SET actor = 'someone-else' WHERE seq = 2`);
    await both({ first_bad_seq: 2, checked: 1 }, 'audit');
    await sql(stores.databaseUrl, `UPDATE audit_logs SET actor = 'admin' WHERE seq = 2`);
    expect(verify().code).toBe(0);

    // Cannot reach the database: 2.
    const down = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/verify.mjs')], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' },
      encoding: 'utf8',
    });
    expect(down.status).toBe(2);
  });

  it('old records removed through the checkpoint helper: the rest still verifies', async () => {
    const before = await settled();
    const ds = createDataSource(stores.databaseUrl, 2);
    await ds.initialize();
    try {
      const service = new IntegrityService(
        new IntegrityRepository(ds),
        stores.databaseUrl,
        pino({ level: 'silent' }),
      );
      // Everything older than the newest 5 records.
      const [cut] = await sql<{ at: Date }>(
        stores.databaseUrl,
        'SELECT intercepted_at AS at FROM intercept_logs ORDER BY seq DESC OFFSET 4 LIMIT 1',
      );
      const total = await stored();
      const out = await service.removeBefore('intercepts', new Date(cut!.at), 'retention (test)');
      expect(out.removed).toBeGreaterThan(0);
      refused -= total - (await stored()); // the removed records' requests are gone on purpose
      const after = await integrity();
      expect(after.intercepts).toMatchObject({
        ok: true,
        head_seq: before.intercepts.head_seq,
        checkpoint_seq: out.checkpoint!.seq,
        checked: before.intercepts.head_seq - out.checkpoint!.seq,
      });
      // New records keep extending the chain after the checkpoint.
      const key = await bindFrom(gw, '127.0.8.40');
      await hammer(gw.url, key, ['127.0.8.41'], 3, 1);
      const later = await settled();
      expect(later.intercepts).toMatchObject({ ok: true, checkpoint_seq: out.checkpoint!.seq });
      expect(later.intercepts.head_seq).toBeGreaterThan(before.intercepts.head_seq);
    } finally {
      await ds.destroy();
    }
  });
});
