#!/usr/bin/env node
// `npm run bench:data` (docs/contract.md 12, docs/data.md): KeyPin's admin
// side at scale. Seeds a database of its own (`keypin_bench_data`, created
// if missing, migrated by the built gateway's --migrate-only) with 10
// million intercepts over ~13 months and 1 million bindings, generated
// server-side (INSERT … SELECT generate_series, indexes dropped during the
// load and rebuilt after), then starts the built gateway on it, logs in as
// admin and measures p50/p95 of the dashboard, every list with and without
// each filter, the searches by key and by IP, and a 1-million-row CSV
// export (time, rows, the gateway's peak RSS). Results go to
// bench/results/data-latest.json and a table on stdout.
//
//   npm run bench:data                         # 10M intercepts, 1M bindings (seeded once, then reused)
//   npm run bench:data -- --rows 200000 --bindings 20000   # a quick run (another seed)
//   --reseed          seed again even if the database holds this size already
//   --samples N       timed requests per endpoint (default 20, after 3 warm-ups)
//   --export-rows N   rows of the export measured (default 1,000,000, at most --rows)
//   --seed-only       seed (if needed) and stop
//   --only TEXT       measure only the endpoints whose path contains TEXT (no export, no results file)
//
// The hash chains: seeded rows carry seq 1..N in time order with placeholder
// hashes, and a checkpoint at N (`integrity_checkpoints`, why "bench:data
// seed") with the head at N: exactly the state a retention leaves behind
// after removing records 1..N, so `npm run verify` and GET /integrity
// accept the database (nothing after the checkpoint to check) and the
// sealer carries on at N + 1. The audit chain is seeded the same way.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = resolve(root, 'dist/gateway/apps/gateway/src/main.js');
const PG_BASE = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} needs a positive integer`);
  return v;
}
const ROWS = arg('rows', 10_000_000);
const BINDINGS = arg('bindings', 1_000_000);
const SAMPLES = arg('samples', 20);
const EXPORT_ROWS = Math.min(arg('export-rows', 1_000_000), ROWS);
const RESEED = process.argv.includes('--reseed');
const DB = process.env.BENCH_DATA_DB ?? 'keypin_bench_data';
const DATABASE_URL = `${PG_BASE}/${DB}`;
const SPAN_DAYS = 395; // ~13 months
const ALERTS = Math.max(1000, Math.round(ROWS / 100));
const AUDIT = Math.max(1000, Math.round(ROWS / 100));

const log = (...a) => console.error('[bench:data]', ...a);

async function withClient(url, fn) {
  const c = new pg.Client({ connectionString: url, application_name: 'keypin-bench-data' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function timed(label, fn) {
  const t = Date.now();
  const r = await fn();
  log(`${label}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  return r;
}

// ------------------------------------------------------------------ setup

function build() {
  if (existsSync(MAIN) && !process.argv.includes('--build')) return;
  log('building the gateway…');
  const r = spawnSync(
    'flock',
    ['/tmp/keypin-build.lock', 'npx', 'nx', 'run-many', '-t', 'build', '--output-style=static'],
    { cwd: root, stdio: 'inherit', env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' } },
  );
  if (r.status !== 0) throw new Error('build failed');
}

async function ensureDatabase() {
  await withClient(`${PG_BASE}/postgres`, async (c) => {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB]);
    if (r.rowCount === 0) {
      log(`creating database ${DB}`);
      await c.query(`CREATE DATABASE "${DB}"`);
    }
  });
  const r = spawnSync(process.execPath, [MAIN, '--migrate-only'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DATABASE_URL, REDIS_URL, LOG_LEVEL: 'warn', NODE_ENV: 'development' },
  });
  if (r.status !== 0) throw new Error('migration failed');
}

// ------------------------------------------------------------------- seed

/** The seed's marker: what this database holds. */
async function seededSize(c) {
  await c.query(
    `CREATE TABLE IF NOT EXISTS bench_seed (rows bigint, bindings bigint, span_days int, at timestamptz)`,
  );
  const r = await c.query('SELECT rows::int, bindings::int, at FROM bench_seed');
  return r.rows[0] ?? null;
}

/** Index and key definitions of a table, to drop them for the load and build them after. */
async function indexDefs(c, table, withKeys = true) {
  const cons = !withKeys
    ? { rows: [] }
    : await c.query(
        `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
      WHERE conrelid = $1::regclass AND contype IN ('p', 'u')`,
        [table],
      );
  const idx = await c.query(
    `SELECT i.indexname, i.indexdef FROM pg_indexes i
      WHERE i.tablename = $1 AND i.schemaname = 'public'
        AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname AND k.conrelid = $1::regclass)`,
    [table],
  );
  return {
    drop: async () => {
      for (const k of cons.rows) await c.query(`ALTER TABLE ${table} DROP CONSTRAINT "${k.conname}"`);
      for (const i of idx.rows) await c.query(`DROP INDEX "${i.indexname}"`);
    },
    create: async () => {
      for (const k of cons.rows) {
        await timed(`  ${table} ${k.conname}`, () =>
          c.query(`ALTER TABLE ${table} ADD CONSTRAINT "${k.conname}" ${k.def}`),
        );
      }
      for (const i of idx.rows) {
        await timed(`  ${i.indexname}`, () => c.query(i.indexdef.replace(' ON ONLY ', ' ON ')));
      }
    },
  };
}

async function seed(c) {
  const started = Date.now();
  await c.query(`SET maintenance_work_mem = '512MB'`);
  await c.query(`SET synchronous_commit = off`);
  await c.query(`SET statement_timeout = 0`);
  await c.query(`SET max_parallel_maintenance_workers = 2`);
  await c.query(
    `TRUNCATE intercept_logs, bindings, binding_archive, alerts, audit_logs, integrity_checkpoints, daily_stats, bench_seed CASCADE`,
  );
  const reasons = (await c.query(`SELECT unnest(enum_range(NULL::intercept_reason))::text AS r`)).rows.map(
    (r) => r.r,
  );
  log(
    `seeding ${ROWS.toLocaleString()} intercepts over ${SPAN_DAYS} days, ${BINDINGS.toLocaleString()} bindings`,
  );

  // The partitions of every seeded month (the migration made the current one and the next two).
  await c.query(
    `SELECT keypin_intercept_partition(m::date) FROM generate_series(
       date_trunc('month', (now() - make_interval(days => $1)) AT TIME ZONE 'UTC'),
       date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') AS m`,
    [SPAN_DAYS],
  );

  // Bindings: masked keys from md5(id); 5 % banned; mostly single, some multiple, a few all.
  const b = await indexDefs(c, 'bindings', false); // its keys stay (other tables reference them)
  await b.drop();
  await timed('bindings', () =>
    c.query(
      `INSERT INTO bindings (id, key_hash, token_display, rule_type, allowed_ips, status, first_ip, first_used_at,
                             last_ip, last_used_at, request_count, created_at, updated_at)
       SELECT i, sha256(convert_to('bench-key-' || i, 'UTF8')),
              substr(md5(i::text), 1, 4) || '…' || substr(md5(i::text), 29, 4),
              r.rule, r.nets, CASE WHEN i % 20 = 0 THEN 'banned' ELSE 'active' END::binding_status,
              r.ip, t.first, r.ip, t.last, (i * 7919) % 100000, t.first, t.last
         FROM generate_series(1, $1::bigint) AS i
         CROSS JOIN LATERAL (SELECT ('10.' || (i >> 16) % 256 || '.' || (i >> 8) % 256 || '.' || i % 256)::inet AS ip) a
         CROSS JOIN LATERAL (
           SELECT CASE WHEN i % 10 = 0 THEN 'multiple' WHEN i % 97 = 0 THEN 'all' ELSE 'single' END::binding_rule AS rule,
                  CASE WHEN i % 97 = 0 AND i % 10 <> 0 THEN '{}'::cidr[]
                       WHEN i % 10 = 0 THEN ARRAY[set_masklen(a.ip, 24)::cidr, ('172.16.' || i % 256 || '.0/24')::cidr]
                       ELSE ARRAY[set_masklen(a.ip, 32)::cidr] END AS nets,
                  a.ip) r
         CROSS JOIN LATERAL (
           SELECT now() - make_interval(secs => ($2::int * 86400) * ((i * 7919) % 1000003) / 1000003.0) AS first,
                  now() - make_interval(secs => 86400 * ((i * 104729) % 30)) AS last) t`,
      [BINDINGS, SPAN_DAYS],
    ),
  );
  await c.query(`SELECT setval(pg_get_serial_sequence('bindings', 'id'), $1)`, [BINDINGS]);
  await b.create();

  // Intercepts, in time order (seq = i). Keys: a few very hot, a long tail (binding = B * u^3);
  // 3 % before any binding (NULL). IPs: a skewed set of ~130k IPv4 and some IPv6. Every reason.
  const l = await indexDefs(c, 'intercept_logs');
  await l.drop();
  const CHUNK = 1_000_000;
  for (let from = 1; from <= ROWS; from += CHUNK) {
    const to = Math.min(ROWS, from + CHUNK - 1);
    await timed(`intercepts ${from.toLocaleString()}–${to.toLocaleString()}`, () =>
      c.query(
        `INSERT INTO intercept_logs (id, binding_id, token_display, attempt_ip, allowed_ips, reason, method, path,
                                     user_agent, enforced, alerted, intercepted_at, count, seq, prev_hash, hash)
         SELECT gen_random_uuid(), CASE WHEN u.x < 0.03 THEN NULL ELSE k.b END,
                substr(md5(k.b::text), 1, 4) || '…' || substr(md5(k.b::text), 29, 4),
                CASE WHEN i % 17 = 0 THEN ('2001:db8:' || to_hex((i >> 4) % 4096) || '::' || to_hex(i % 65536))::inet
                     ELSE '198.18.0.0'::inet + floor(131072 * u.y * u.y)::bigint END,
                ARRAY[('10.' || (k.b >> 16) % 256 || '.' || (k.b >> 8) % 256 || '.' || k.b % 256 || '/32')::cidr],
                ($5::text[])[1 + floor(u.z * u.z * array_length($5::text[], 1))::int]::intercept_reason,
                (ARRAY['POST','GET','POST','POST','PUT','DELETE'])[1 + i % 6],
                (ARRAY['/v1/chat/completions','/v1/embeddings','/v1/models','/v1/responses','/v1/images/generations'])[1 + (i / 7) % 5],
                (ARRAY['python-requests/2.31','curl/8.5.0','OpenAI/Python 1.30.1',NULL,'node-fetch'])[1 + (i / 3) % 5],
                i % 50 <> 0, i % 9 = 0,
                now() - make_interval(secs => $3::int * 86400.0 * ($4::bigint - i) / $4::bigint) - interval '1 minute',
                1 + floor(power(u.w, 12) * 40)::int,
                i, lpad(to_hex(i - 1), 64, '0'), lpad(to_hex(i), 64, '0')
           FROM generate_series($1::bigint, $2::bigint) AS i
           CROSS JOIN LATERAL (SELECT random() + 0 * i AS x, random() AS y, random() AS z, random() AS w, random() AS v) u
           CROSS JOIN LATERAL (SELECT 1 + floor($6::int * u.v * u.v * u.v)::bigint AS b) k`,
        [from, to, SPAN_DAYS, ROWS, reasons, BINDINGS],
      ),
    );
  }
  await l.create();

  await timed('bindings.intercept_count', () =>
    c.query(
      `UPDATE bindings b SET intercept_count = s.n
         FROM (SELECT binding_id, sum(count) AS n FROM intercept_logs WHERE binding_id IS NOT NULL GROUP BY 1) s
        WHERE b.id = s.binding_id`,
    ),
  );
  await timed('daily_stats', () =>
    c.query(
      `INSERT INTO daily_stats (day, allowed, intercepted, first_binds)
       SELECT (intercepted_at AT TIME ZONE 'UTC')::date, 0, sum(count), 0 FROM intercept_logs GROUP BY 1
       ON CONFLICT (day) DO UPDATE SET intercepted = EXCLUDED.intercepted`,
    ),
  );
  await timed('alerts', () =>
    c.query(
      `INSERT INTO alerts (id, binding_id, token_display, allowed_ips, attempt_ips, attempt_networks, count,
                           window_seconds, first_at, last_at, window_end, occurred_at, delivery_status, attempts)
       SELECT gen_random_uuid(), b, substr(md5(b::text), 1, 4) || '…' || substr(md5(b::text), 29, 4),
              '{}', ARRAY['198.18.0.1'::inet], ARRAY['198.18.0.1/32'::cidr], 5, 300, t, t + interval '1 minute',
              t + interval '5 minutes', t + interval '1 minute',
              (ARRAY['delivered','failed','pending'])[1 + i % 3]::alert_delivery_status, 1 + i % 5
         FROM generate_series(1, $1::bigint) AS i
         CROSS JOIN LATERAL (SELECT 1 + (i * 7919) % $2::int AS b,
                                    now() - make_interval(secs => $3::int * 86400.0 * ($1::int - i) / $1::int) AS t) x
       ON CONFLICT DO NOTHING`,
      [ALERTS, BINDINGS, SPAN_DAYS],
    ),
  );
  await timed('audit', () =>
    c.query(
      `INSERT INTO audit_logs (actor, action, target, before, after, ip, at, seq, prev_hash, hash)
       SELECT 'admin', (ARRAY['binding.ban','binding.unban','binding.update_ip','settings.update'])[1 + i % 4],
              'binding:' || i, '{"status":"active"}', '{"status":"banned"}', '203.0.113.5',
              now() - make_interval(secs => $2::int * 86400.0 * ($1::int - i) / $1::int),
              i, lpad(to_hex(i - 1), 64, '0'), lpad(to_hex(i), 64, '0')
         FROM generate_series(1, $1::bigint) AS i`,
      [AUDIT, SPAN_DAYS],
    ),
  );
  await c.query(
    `SELECT setval(pg_get_serial_sequence('audit_logs', 'id'), (SELECT max(id) FROM audit_logs))`,
  );
  // The chains: checkpoint and head at the last seeded seq (see the header).
  for (const [chain, n] of [
    ['intercepts', ROWS],
    ['audit', AUDIT],
  ]) {
    const hash = n.toString(16).padStart(64, '0');
    await c.query(
      `INSERT INTO integrity_checkpoints (chain, seq, hash, why) VALUES ($1, $2, $3, 'bench:data seed')`,
      [chain, n, hash],
    );
    await c.query(`UPDATE integrity_heads SET seq = $2, hash = $3, updated_at = now() WHERE chain = $1`, [
      chain,
      n,
      hash,
    ]);
  }
  await timed('vacuum analyze', async () => {
    for (const t of ['intercept_logs', 'bindings', 'alerts', 'audit_logs', 'daily_stats'])
      await c.query(`VACUUM ANALYZE ${t}`);
  });
  await c.query(`INSERT INTO bench_seed (rows, bindings, span_days, at) VALUES ($1, $2, $3, now())`, [
    ROWS,
    BINDINGS,
    SPAN_DAYS,
  ]);
  return (Date.now() - started) / 1000;
}

// ---------------------------------------------------------------- measure

function rssOf(pid) {
  // The gateway process and its children (WORKERS > 1 forks), in MB.
  let total = 0;
  const visit = (p) => {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) / 1024;
      for (const t of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').split(' ').filter(Boolean))
        visit(t);
    } catch {
      // gone
    }
  };
  visit(pid);
  return total;
}

/** A port nothing listens on now (a random one could be another process's, which would then be measured). */
function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

async function startGateway() {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL,
      REDIS_URL,
      REDIS_PREFIX: `keypin-bench-data-${process.pid}:`,
      ADMIN_USERNAME: 'admin',
      ADMIN_PASSWORD: 'bench-data-admin-password',
      HMAC_SECRET: 'bench-data-hmac-secret-0123456789abcdef',
      LOG_LEVEL: 'warn',
      // The seeded months must stay for the measurement: no retention run.
      INTERCEPT_RETENTION_DAYS: '36500',
      SPOOL_DIR: `/tmp/keypin-bench-data-spool-${process.pid}`,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error('the gateway exited during start');
    try {
      const r = await fetch(`${base}/health`);
      // Only our gateway's answer counts, not something else that took the port meanwhile.
      if (r.ok && (await r.json().catch(() => null))?.status === 'ok' && child.exitCode === null)
        return { child, base };
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the gateway did not start');
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function measure(base, token, path) {
  const get = async () => {
    const t = process.hrtime.bigint();
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const body = await r.text();
    if (!r.ok) throw new Error(`${path}: ${r.status} ${body.slice(0, 200)}`);
    return { ms: Number(process.hrtime.bigint() - t) / 1e6, body };
  };
  let slowest = 0;
  for (let i = 0; i < 3; i++) slowest = Math.max(slowest, (await get()).ms);
  // An endpoint far off the target (seconds per request) is sampled 5 times, not SAMPLES.
  const samples = slowest > 2000 ? Math.min(5, SAMPLES) : SAMPLES;
  const times = [];
  let last = '';
  for (let i = 0; i < samples; i++) {
    const r = await get();
    times.push(r.ms);
    last = r.body;
  }
  times.sort((a, b) => a - b);
  const parsed = JSON.parse(last);
  return {
    path,
    p50_ms: Number(percentile(times, 50).toFixed(1)),
    p95_ms: Number(percentile(times, 95).toFixed(1)),
    max_ms: Number(times[times.length - 1].toFixed(1)),
    samples,
    total: typeof parsed.total === 'number' ? parsed.total : undefined,
  };
}

async function measureExport(base, token, child, from) {
  const baseline = rssOf(child.pid);
  let peak = baseline;
  const samples = [];
  const timer = setInterval(() => {
    const v = rssOf(child.pid);
    samples.push(Math.round(v));
    if (v > peak) peak = v;
  }, 200);
  const t = Date.now();
  const r = await fetch(`${base}/admin/api/logs/export?from=${encodeURIComponent(from)}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (!r.ok) throw new Error(`export: ${r.status}`);
  let lines = 0;
  let bytes = 0;
  for await (const chunk of r.body) {
    bytes += chunk.length;
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++;
  }
  const seconds = (Date.now() - t) / 1000;
  clearInterval(timer);
  return {
    rows: lines - 1,
    bytes,
    seconds: Number(seconds.toFixed(1)),
    rows_per_second: Math.round((lines - 1) / seconds),
    rss_before_mb: Math.round(baseline),
    rss_peak_mb: Math.round(peak),
    rss_samples_mb: samples.filter((_, i) => i % Math.max(1, Math.floor(samples.length / 20)) === 0),
  };
}

async function main() {
  build();
  await ensureDatabase();
  const seededSeconds = await withClient(DATABASE_URL, async (c) => {
    const have = await seededSize(c);
    if (!RESEED && have && have.rows === ROWS && have.bindings === BINDINGS) {
      log(`reusing the seed of ${new Date(have.at).toISOString()} (--reseed to seed again)`);
      return null;
    }
    return seed(c);
  });

  if (process.argv.includes('--seed-only')) return;

  // Filter values that exist in the data: a hot key, one of its IPs, a quiet key, a day.
  const pick = await withClient(DATABASE_URL, async (c) => {
    const hot = (
      await c.query(`SELECT id, token_display FROM bindings ORDER BY intercept_count DESC LIMIT 1`)
    ).rows[0];
    const quiet = (
      await c.query(
        `SELECT id, token_display FROM bindings WHERE intercept_count > 0 ORDER BY id DESC LIMIT 1`,
      )
    ).rows[0];
    const ip = (
      await c.query(`SELECT host(attempt_ip) AS ip FROM intercept_logs ORDER BY intercepted_at DESC LIMIT 1`)
    ).rows[0].ip;
    const banned = (await c.query(`SELECT host(last_ip) AS ip FROM bindings WHERE id = $1`, [quiet.id]))
      .rows[0].ip;
    const bounds = (
      await c.query(
        `SELECT (SELECT intercepted_at FROM intercept_logs ORDER BY intercepted_at DESC, id DESC OFFSET $1 LIMIT 1) AS export_from`,
        [EXPORT_ROWS - 1],
      )
    ).rows[0];
    return { hot, quiet, ip, bindingIp: banned, exportFrom: new Date(bounds.export_from).toISOString() };
  });
  const day = new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10);
  const week = new Date(Date.now() - 60 * 86_400_000).toISOString().slice(0, 10);
  const enc = encodeURIComponent;

  const { child, base } = await startGateway();
  const results = [];
  let exportResult = null;
  try {
    const login = await fetch(`${base}/admin/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'bench-data-admin-password' }),
    });
    if (!login.ok) throw new Error(`login: ${login.status} ${await login.text()}`);
    const { access_token: token } = await login.json();
    const paths = [
      '/admin/api/dashboard',
      '/admin/api/logs',
      '/admin/api/logs?page=50',
      `/admin/api/logs?binding_id=${pick.hot.id}`,
      `/admin/api/logs?binding_id=${pick.quiet.id}`,
      `/admin/api/logs?search=${enc(pick.quiet.token_display)}`,
      `/admin/api/logs?search=${enc(pick.hot.token_display.slice(0, 4))}`,
      `/admin/api/logs?ip=${enc(pick.ip)}`,
      `/admin/api/logs?ip=${enc('198.18.1.0/24')}`,
      '/admin/api/logs?reason=key_banned',
      `/admin/api/logs?from=${day}&to=${day}`,
      `/admin/api/logs?from=${week}`,
      `/admin/api/logs?reason=ip_not_allowed&from=${day}&to=${day}`,
      '/admin/api/bindings',
      '/admin/api/bindings?status=banned',
      '/admin/api/bindings?rule_type=multiple',
      `/admin/api/bindings?search=${enc(pick.quiet.token_display)}`,
      `/admin/api/bindings?search=${enc(pick.bindingIp)}`,
      '/admin/api/alerts',
      '/admin/api/audit',
    ];
    const only = process.argv.indexOf('--only');
    const selected = only === -1 ? paths : paths.filter((p) => p.includes(process.argv[only + 1] ?? ''));
    for (const p of selected) {
      const r = await measure(base, token, p);
      results.push(r);
      log(`${p}: p50 ${r.p50_ms} ms, p95 ${r.p95_ms} ms`);
    }
    if (only === -1) {
      exportResult = await measureExport(base, token, child, pick.exportFrom);
      log(
        `export: ${exportResult.rows} rows in ${exportResult.seconds} s, peak RSS ${exportResult.rss_peak_mb} MB`,
      );
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(`/tmp/keypin-bench-data-spool-${process.pid}`, { recursive: true, force: true });
  }

  const out = {
    at: new Date().toISOString(),
    rows: ROWS,
    bindings: BINDINGS,
    alerts: ALERTS,
    audit: AUDIT,
    span_days: SPAN_DAYS,
    seeded_seconds: seededSeconds,
    samples: SAMPLES,
    target_p95_ms: 200,
    endpoints: results,
    export: exportResult,
  };
  mkdirSync(resolve(root, 'bench/results'), { recursive: true });
  if (!process.argv.includes('--only'))
    writeFileSync(resolve(root, 'bench/results/data-latest.json'), `${JSON.stringify(out, null, 2)}\n`);

  const w = Math.max(...results.map((r) => r.path.length));
  console.log(
    `\n${ROWS.toLocaleString()} intercepts, ${BINDINGS.toLocaleString()} bindings; ${SAMPLES} requests each`,
  );
  console.log(
    `${'endpoint'.padEnd(w)}  ${'p50 ms'.padStart(8)}  ${'p95 ms'.padStart(8)}  ${'total'.padStart(10)}`,
  );
  for (const r of results) {
    const flag = r.p95_ms > 200 ? '  > 200' : '';
    console.log(
      `${r.path.padEnd(w)}  ${String(r.p50_ms).padStart(8)}  ${String(r.p95_ms).padStart(8)}  ${String(r.total ?? '').padStart(10)}${flag}`,
    );
  }
  if (exportResult) {
    console.log(
      `\nexport: ${exportResult.rows.toLocaleString()} rows, ${(exportResult.bytes / 1e6).toFixed(0)} MB in ${exportResult.seconds} s; ` +
        `gateway RSS ${exportResult.rss_before_mb} MB before, peak ${exportResult.rss_peak_mb} MB`,
    );
  }
  if (!process.argv.includes('--only')) console.log('\nwritten to bench/results/data-latest.json');
}

main().catch((err) => {
  console.error('[bench:data]', err.message);
  process.exit(1);
});
