#!/usr/bin/env node
// `npm run bench`: the same workload sent directly to a fast upstream (nginx
// with canned answers), through nginx proxy_pass with an IP allowlist, and
// through the KeyPin gateway, in one run on one machine; both proxies behind
// the same front nginx that sets X-Real-IP (the production shape) unless
// --no-front. See bench/README.md for what is measured and how.
//
//   node bench/run.mjs [--quick] [--targets direct,front,nginx,keypin] [--workers N] [--no-front]
//                      [--no-steps] [--no-memory] [--no-policy] [--no-routes] [--rounds N] [--generators N]
//   (--rounds: back-to-back pairs in the policy and routes phases, 3 by default)
//
// Exits non-zero when any run saw a status it should not have (a non-2xx on
// allowed traffic, anything but 403 on KeyPin's blocked traffic), or when a
// target could not be started.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { closedLoop, makeClient, openLoop, runWrk, sseFirstEvent } from './lib/load.mjs';
import { startOpenLoop } from './lib/openloop.mjs';
import {
  cpuMeter,
  treePids,
  treeRssBytes,
  freePort,
  killAll,
  logTail,
  sampleRss,
  startChild,
  stopChild,
  versionOf,
  waitFor,
  pidsNamed,
  waitQuiet,
} from './lib/procs.mjs';
import { int, mib, ms, prettyJson, ratio, signedMs, table } from './lib/report.mjs';
import { GATEWAY_MAIN, ROOT, startGateway, startUpstream } from './lib/targets.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const NGINX = '/usr/sbin/nginx';

// ------------------------------------------------------------------ options

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const option = (name, def) => {
  const hit = argv.find((a) => a.startsWith(`--${name}=`));
  if (hit) return hit.slice(name.length + 3);
  const i = argv.indexOf(`--${name}`);
  return i !== -1 && argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[i + 1] : def;
};
if (flag('help')) {
  console.log(
    'usage: node bench/run.mjs [--quick] [--targets direct,front,nginx,keypin] [--workers N] [--no-front]\n' +
      '                          [--no-steps] [--no-memory] [--no-policy] [--no-routes] [--rounds N] [--generators N]',
  );
  process.exit(0);
}
const QUICK = flag('quick');
const ALL_TARGETS = ['direct', 'front', 'nginx', 'keypin'];
const TARGETS = option('targets', 'direct,nginx,keypin')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .sort((a, b) => ALL_TARGETS.indexOf(a) - ALL_TARGETS.indexOf(b));
for (const t of TARGETS) {
  if (!ALL_TARGETS.includes(t)) {
    console.error(`unknown target "${t}" (${ALL_TARGETS.join(', ')})`);
    process.exit(2);
  }
}
/** Clients reach nginx and KeyPin through a front nginx that sets X-Real-IP (the production shape). */
const FRONT = !flag('no-front');
if (!FRONT && TARGETS.includes('front')) {
  console.error('the "front" target needs the front nginx: drop --no-front');
  process.exit(2);
}
/** nginx worker_processes for every nginx of the run, and the gateway's WORKERS. */
const WORKERS = Number(option('workers', '1'));
if (!Number.isInteger(WORKERS) || WORKERS < 1 || WORKERS > 64) {
  console.error('--workers takes a count from 1 to 64');
  process.exit(2);
}
const MEMORY_PHASE = !flag('no-memory') && TARGETS.includes('keypin');
const STEPS_PHASE = !flag('no-steps');
/** Keep stepping `direct` after every target broke its bounds, up to the generator's ceiling (on unless --quick). */
const STEPS_TO_CEILING = !QUICK;

const P = {
  wrkConnections: 32,
  wrkDurationS: QUICK ? 3 : 10,
  wrkWarmupS: QUICK ? 1 : 2,
  c1Warmup: 300,
  c1Count: QUICK ? 1000 : 3000,
  c32Concurrency: 32,
  c32LoadShare: 0.5,
  c32WarmupS: 1,
  c32DurationS: QUICK ? 2 : 5,
  sseCount: QUICK ? 100 : 300,
  // Streams before the measured ones: the streaming path has to be as warm
  // (JIT-compiled) as the GET path is after its wrk warm-up.
  sseWarmup: QUICK ? 20 : 300,
  memKeys: QUICK ? 10_000 : 100_000,
  memConcurrency: 64,
  memCapS: 120,
  // Open-loop stepped rates (tail-bound throughput): start, factor, time per step.
  stepStartRate: QUICK ? 1000 : 500,
  stepFactor: QUICK ? 1.5 : 1.25,
  stepWarmupS: QUICK ? 0.5 : 1,
  stepS: QUICK ? 1.5 : 3,
  stepMaxRate: 400_000,
  stepBoundsMs: [1, 5],
  generators: Number(option('generators', '2')),
  generatorConnections: 32,
};

// Keys are fresh per run (the bench database is kept between runs), and have
// no '-' so that TOKEN_NORMALIZE=newapi keeps them whole.
const RUN_TAG = randomBytes(4).toString('hex');
const ALLOWED_KEY = `sk-benchallowed${RUN_TAG}`;
const BLOCKED_KEY = `sk-benchblocked${RUN_TAG}`;
/** A key with a rate and a daily quota far above the load (docs/policies.md): what a policy costs. */
const LIMITED_KEY = `sk-benchlimited${RUN_TAG}`;
const LIMITED_POLICY = { rate_per_second: 1_000_000, burst: 1_000_000, requests_per_day: 1_000_000_000 };
// Fixed: the bench database is kept between runs, and the bootstrap admin is
// made only in a database without one. Local to this machine's bench.
const BENCH_ADMIN = { user: 'bench', password: 'keypin-bench-admin-password' };
const OTHER_IP = '127.0.0.2';
/** The routes phase's own database, dropped at the start of each run. */
const ROUTES_DATABASE_URL =
  process.env.BENCH_ROUTES_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/keypin_bench_routes';

const SPEC = {
  allowed: { method: 'GET', path: '/v1/models', headers: { authorization: `Bearer ${ALLOWED_KEY}` } },
  blocked: { method: 'GET', path: '/v1/models', headers: { authorization: `Bearer ${BLOCKED_KEY}` } },
  limited: { method: 'GET', path: '/v1/models', headers: { authorization: `Bearer ${LIMITED_KEY}` } },
};
const SSE_SPEC = {
  path: '/v1/chat/completions',
  // Accept: the nginx upstream passes streaming requests to the paced Node upstream.
  headers: {
    authorization: `Bearer ${ALLOWED_KEY}`,
    'content-type': 'application/json',
    accept: 'text/event-stream',
  },
  body: JSON.stringify({
    model: 'bench-model-a',
    stream: true,
    messages: [{ role: 'user', content: 'ping' }],
  }),
};
const WORKLOADS = ['allowed', 'blocked'];

/** What a run must see: 2xx everywhere, except 403 for KeyPin's blocked traffic. */
const expectation = (workload, target) =>
  workload === 'blocked' && target === 'keypin'
    ? { kind: '403', ok: (s) => Number(s) === 403 }
    : { kind: '2xx', ok: (s) => s >= 200 && s < 300 };

// ------------------------------------------------------------------ bookkeeping

const startedAt = performance.now();
const failures = [];
const notes = [];
function fail(msg) {
  failures.push(msg);
  console.error(`  ✗ FAIL: ${msg}`);
}
function note(msg) {
  notes.push(msg);
  console.log(`  ! ${msg}`);
}
function step(msg) {
  const t = ((performance.now() - startedAt) / 1000).toFixed(0).padStart(4);
  console.log(`[${t}s] ${msg}`);
}
/** Checks a map of status → count against the expectation; returns the count of wrong ones. */
function checkStatuses(what, statuses, workload, target, errors = 0) {
  const exp = expectation(workload, target);
  const wrong = Object.entries(statuses)
    .filter(([s]) => !exp.ok(Number(s)))
    .reduce((a, [, n]) => a + n, 0);
  if (wrong > 0 || errors > 0) {
    fail(
      `${what}: expected every response ${exp.kind}, got statuses ${JSON.stringify(statuses)}` +
        (errors ? ` and ${errors} transport errors` : ''),
    );
  }
  return wrong;
}

async function metricsText(base) {
  try {
    const res = await fetch(`${base}/metrics`);
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}
/** Sums every sample whose series line matches `re` (histogram buckets excluded). */
function sumMetric(text, re) {
  if (!text) return null;
  let sum = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || /_bucket[{ ]/.test(line) || !re.test(line)) continue;
    const v = Number(line.trim().split(/\s+/).pop());
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

// ------------------------------------------------------------------ targets

/**
 * The upstream: nginx with canned answers (bench/nginx.upstream.conf.template),
 * which passes streaming requests to the paced Node upstream (bench/upstream.mjs).
 * It is the `direct` target.
 */
async function startDirect(tmp) {
  const sse = await startUpstream();
  const port = await freePort();
  const n = await startNginxFrom('upstream', tmp, 'nginx.upstream.conf.template', {
    LISTEN_PORT: port,
    SSE_PORT: sse.port,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'the nginx upstream to answer',
    async () => (await fetch(`${url}/v1/models`, { headers: SPEC.allowed.headers })).status === 200,
    { child: n.child, timeoutMs: 10_000, everyMs: 100 },
  );
  return { name: 'direct', url, port, child: n.child, pid: n.child.pid, sse, confPath: n.confPath };
}

/** Installs a Debian package the bench needs when its program is missing (and says so). */
function ensureDebianTool(present, pkg, what) {
  if (present()) return;
  note(`${what} is missing: running apt-get install -y ${pkg}`);
  let r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'inherit' });
  if (r.status !== 0) {
    // A fresh machine may have no package lists yet.
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    r = spawnSync('apt-get', ['install', '-y', pkg], { stdio: 'inherit' });
  }
  if (r.status !== 0 || !present()) throw new Error(`could not install ${pkg}: install it and run again`);
}

function ensureNginx() {
  ensureDebianTool(() => existsSync(NGINX), 'nginx-light', NGINX);
}

function ensureWrk() {
  ensureDebianTool(() => spawnSync('wrk', ['-v']).error === undefined, 'wrk', 'wrk');
}

/** Renders an nginx template into `<tmp>/<name>/nginx.conf` (worker_processes = --workers) and starts it. */
async function startNginxFrom(name, tmp, template, vars) {
  ensureNginx();
  const prefix = join(tmp, name);
  mkdirSync(prefix, { recursive: true });
  let conf = readFileSync(join(BENCH_DIR, template), 'utf8')
    .replaceAll('{{PREFIX}}', prefix)
    .replaceAll('{{WORKERS}}', String(WORKERS));
  for (const [k, v] of Object.entries(vars)) conf = conf.replaceAll(`{{${k}}}`, String(v));
  const left = /\{\{\w+\}\}/.exec(conf);
  if (left) throw new Error(`${template}: ${left[0]} was not filled in`);
  const confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, conf);
  const args = ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', confPath, '-g', 'daemon off;'];
  const child = startChild(`nginx ${name}`, NGINX, args, { logFile: join(tmp, `${name}.out.log`) });
  return { child, confPath };
}

/** The `nginx` target: proxy_pass with the allowlist; behind the front it believes the front's X-Real-IP. */
async function startNginx(tmp, upstreamPort, port) {
  const n = await startNginxFrom('nginx', tmp, 'nginx.bench.conf.template', {
    LISTEN_PORT: port,
    UPSTREAM_PORT: upstreamPort,
    REAL_IP: FRONT ? 'set_real_ip_from 127.0.0.1/32; real_ip_header X-Real-IP;' : '',
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'nginx to answer',
    async () => (await fetch(`${url}/v1/models`, { headers: SPEC.allowed.headers })).status === 200,
    { child: n.child, timeoutMs: 10_000, everyMs: 100 },
  );
  return { name: 'nginx', url, port, child: n.child, pid: n.child.pid, confPath: n.confPath };
}

/** The front nginx: one server per backend, each setting X-Real-IP (bench/nginx.front.conf.template). */
async function startFront(tmp, ports) {
  const n = await startNginxFrom('front', tmp, 'nginx.front.conf.template', ports);
  const url = (p) => `http://127.0.0.1:${p}`;
  await waitFor(
    'the front nginx to answer',
    async () =>
      (await fetch(`${url(ports.FRONT_ALONE_PORT)}/v1/models`, { headers: SPEC.allowed.headers })).status ===
      200,
    { child: n.child, timeoutMs: 10_000, everyMs: 100 },
  );
  return {
    child: n.child,
    pid: n.child.pid,
    confPath: n.confPath,
    urls: {
      nginx: url(ports.FRONT_NGINX_PORT),
      keypin: url(ports.FRONT_KEYPIN_PORT),
      routes: url(ports.FRONT_ROUTES_PORT),
      front: url(ports.FRONT_ALONE_PORT),
    },
  };
}

function ensureGatewayBuild() {
  if (existsSync(GATEWAY_MAIN)) return;
  step(`${GATEWAY_MAIN} is missing: building (npx nx run-many -t build)`);
  const r = spawnSync('npx', ['nx', 'run-many', '-t', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0 || !existsSync(GATEWAY_MAIN)) throw new Error('the build did not produce the gateway');
}

async function startKeypin(tmp, upstreamPort, port, extraEnv = {}) {
  ensureGatewayBuild();
  const g = await startGateway({
    upstreamPort,
    tmp,
    port,
    env: {
      // Behind the front nginx, 127.0.0.1 is the trusted proxy and X-Real-IP
      // the client's address; without it, the clients are the peers.
      TRUSTED_PROXIES: FRONT ? '127.0.0.1/32,::1/128' : '::1/128',
      REAL_IP_HEADER: 'x-real-ip',
      WORKERS: String(WORKERS),
      // How the gateway's supervisor spreads connections (docs/workers.md), when the caller sets it.
      ...(process.env.CLUSTER_SCHEDULE ? { CLUSTER_SCHEDULE: process.env.CLUSTER_SCHEDULE } : {}),
      DATABASE_URL: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/keypin_bench',
      REDIS_URL: process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
      REDIS_PREFIX: `keypin-bench-${RUN_TAG}:`,
      BIND_IPV4_PREFIX: '32',
      // Keep the 100k bindings of the memory phase in the in-process cache
      // for the whole phase; a quick stop at the end.
      CACHE_TTL_SECONDS: '900',
      SHUTDOWN_GRACE_MS: '3000',
      // The bootstrap admin the bench logs in as to give LIMITED_KEY its policy.
      ADMIN_USERNAME: BENCH_ADMIN.user,
      ADMIN_PASSWORD: BENCH_ADMIN.password,
      ...extraEnv,
    },
  });
  const shownEnv = Object.fromEntries(
    [
      'PORT',
      'HOST',
      'DOWNSTREAM_URL',
      'DATABASE_URL',
      'REDIS_PREFIX',
      'LOG_LEVEL',
      'NODE_ENV',
      'ROLE',
      'TRUSTED_PROXIES',
      'REAL_IP_HEADER',
      'WORKERS',
      'CLUSTER_SCHEDULE',
      'CACHE_TTL_SECONDS',
    ].map((k) => [k, g.env[k]]),
  );
  return {
    name: 'keypin',
    url: g.url,
    origin: g.url,
    port: g.port,
    child: g.child,
    pid: g.pid,
    readyS: g.readyS,
    env: shownEnv,
    log: g.log,
  };
}

// ------------------------------------------------------------------ phases

async function prepare(targets) {
  for (const t of targets) {
    const c = makeClient(t.url);
    try {
      const a = await c.send(SPEC.allowed);
      if (a.status !== 200)
        throw new Error(`${t.name}: allowed warm-up request got ${a.status}: ${a.body.slice(0, 300)}`);
      if (t.name !== 'keypin') {
        const b = await c.send(SPEC.blocked);
        if (b.status !== 200) throw new Error(`${t.name}: blocked-key request got ${b.status}`);
        continue;
      }
      // Pin the blocked key to another address, then check it is refused here.
      const other = makeClient(t.url, { localAddress: OTHER_IP });
      try {
        const pin = await other.send(SPEC.blocked);
        if (pin.status !== 200) {
          throw new Error(
            `keypin: first use of the blocked key from ${OTHER_IP} got ${pin.status}: ${pin.body.slice(0, 300)}`,
          );
        }
      } finally {
        other.close();
      }
      const b = await c.send(SPEC.blocked);
      if (b.status !== 403 || !b.body.includes('ip_not_allowed')) {
        throw new Error(
          `keypin: the key pinned to ${OTHER_IP} got ${b.status} from 127.0.0.1: ${b.body.slice(0, 300)}`,
        );
      }
      const again = await c.send(SPEC.allowed);
      if (again.status !== 200)
        throw new Error(`keypin: the allowed key got ${again.status} on its second use`);
    } finally {
      c.close();
    }
  }
}

/**
 * Binds LIMITED_KEY and gives it LIMITED_POLICY through the admin API (a
 * rate and a quota far above any load: every request is admitted, and
 * every request costs the policy check's Redis round trip).
 */
async function setUpLimitedKey(keypin) {
  const first = await fetch(`${keypin.url}${SPEC.limited.path}`, { headers: SPEC.limited.headers });
  if (first.status !== 200) throw new Error(`keypin: first use of the limited key got ${first.status}`);
  const login = await fetch(`${keypin.url}/admin/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: BENCH_ADMIN.user, password: BENCH_ADMIN.password }),
  });
  if (login.status !== 200)
    throw new Error(`keypin: admin login got ${login.status} (an existing bench admin?)`);
  const auth = { authorization: `Bearer ${(await login.json()).access_token}` };
  const found = await fetch(`${keypin.url}/admin/api/bindings?search=${encodeURIComponent(LIMITED_KEY)}`, {
    headers: auth,
  });
  const id = (await found.json()).items?.[0]?.id;
  if (typeof id !== 'number') throw new Error('keypin: the limited key has no binding');
  const set = await fetch(`${keypin.url}/admin/api/bindings/policy`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ id, policy: LIMITED_POLICY }),
  });
  if (set.status !== 200)
    throw new Error(`keypin: setting the policy got ${set.status}: ${await set.text()}`);
  await new Promise((r) => setTimeout(r, 1200)); // enforced within 1 s
  const check = await fetch(`${keypin.url}${SPEC.limited.path}`, { headers: SPEC.limited.headers });
  if (check.headers.get('x-ratelimit-limit-requests') === null) {
    throw new Error(
      'keypin: the limited key answers without x-ratelimit-* headers: its policy is not in force',
    );
  }
}

/**
 * Two variants measured alternately, back to back (this machine's speed
 * drifts): each round runs `a` then `b` for the same time, with the serving
 * process tree's CPU time per request from /proc (not the front nginx's). The ratio of each pair is what
 * `b` costs under the same machine load; the result is the median of the
 * pairs' ratios, not the ratio of the two medians.
 */
async function alternated(label, a, b) {
  const rounds = Number(option('rounds', QUICK ? '1' : '3'));
  const runs = { [a.name]: [], [b.name]: [] };
  for (let round = 0; round < rounds; round++) {
    for (const v of [a, b]) {
      const what = `wrk ${v.name} (${label}, round ${round + 1}/${rounds})`;
      await settle(what);
      step(`${what} (-t1 -c${P.wrkConnections} -d${P.wrkDurationS}s)`);
      const meter = cpuMeter({ target: [v.pid] });
      const r = await runWrk(`${v.url}${v.spec.path}`, v.spec, {
        connections: P.wrkConnections,
        durationS: P.wrkDurationS,
        tmpDir: v.tmp,
        name: `${label.replace(/\W+/g, '-')}-${v.name}-${round}`,
      });
      const cpuUsPerRequest = meter.stop(r.requests).target.usPerRequest;
      checkStatuses(what, r.statuses, 'allowed', 'keypin');
      if (r.non2xx3xx !== 0) fail(`${what}: wrk reports ${r.non2xx3xx} non-2xx/3xx responses`);
      console.log(`        ${int(r.rps)} req/s, ${cpuUsPerRequest?.toFixed(0) ?? '—'} µs CPU per request`);
      runs[v.name].push({ rps: r.rps, requests: r.requests, cpuUsPerRequest });
    }
  }
  const median = (xs) => {
    const s = xs.filter((x) => x !== null).sort((x, y) => x - y);
    return s.length === 0 ? null : s[Math.floor(s.length / 2)];
  };
  const summary = (name) => ({
    rps: median(runs[name].map((r) => r.rps)),
    cpuUsPerRequest: median(runs[name].map((r) => r.cpuUsPerRequest)),
  });
  const pairs = runs[a.name].map((x, i) => ({ x, y: runs[b.name][i] }));
  return {
    rounds,
    runs,
    [a.name]: summary(a.name),
    [b.name]: summary(b.name),
    ratioRps: median(pairs.map(({ x, y }) => (x.rps && y?.rps ? y.rps / x.rps : null))),
    cpuAddedUsPerRequest: median(
      pairs.map(({ x, y }) =>
        x.cpuUsPerRequest !== null && y?.cpuUsPerRequest != null
          ? y.cpuUsPerRequest - x.cpuUsPerRequest
          : null,
      ),
    ),
  };
}

/** What a key policy costs: a key without a policy and a key with a rate and a quota, on one KeyPin. */
async function policyPhase(keypin, tmp) {
  const on = (name, spec) => ({ name, url: keypin.url, pid: keypin.pid, spec, tmp });
  const r = await alternated('policy phase', on('allowed', SPEC.allowed), on('limited', SPEC.limited));
  return {
    policy: LIMITED_POLICY,
    rounds: r.rounds,
    runs: r.runs,
    allowed: r.allowed,
    limited: r.limited,
    limitedOverAllowedRps: r.ratioRps,
    cpuAddedUsPerRequest: r.cpuAddedUsPerRequest,
  };
}

/**
 * What routes cost (docs/routes.md): the allowed workload on the KeyPin with
 * one upstream (DOWNSTREAM_URL) and on a second KeyPin, with its own
 * database, whose ROUTES send three prefixes to the upstream (the workload's
 * `/v1/` among them: the longest-prefix lookup does its real work).
 */
async function routesPhase(keypin, upstreamPort, tmp, port, url) {
  const routes = [
    { prefix: '/anthropic/', upstream: `http://127.0.0.1:${upstreamPort}`, strip_prefix: true },
    { prefix: '/elevenlabs/', upstream: `http://127.0.0.1:${upstreamPort}`, strip_prefix: true },
    { prefix: '/v1/', upstream: `http://127.0.0.1:${upstreamPort}` },
  ];
  const dir = join(tmp, 'routes');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  // A fresh database: ROUTES seeds an empty routes table, and the upstream's port changes every run.
  await resetDatabase(ROUTES_DATABASE_URL);
  const routed = await startKeypin(dir, upstreamPort, port, {
    DATABASE_URL: ROUTES_DATABASE_URL,
    REDIS_PREFIX: `keypin-bench-routes-${RUN_TAG}:`,
    ROUTES: JSON.stringify(routes),
  });
  if (url) routed.url = url; // through the front
  try {
    const c = makeClient(routed.url);
    try {
      for (let i = 0; i < 2; i++) {
        const a = await c.send(SPEC.allowed);
        if (a.status !== 200)
          throw new Error(`keypin with routes: allowed request got ${a.status}: ${a.body}`);
      }
    } finally {
      c.close();
    }
    const single = { name: 'single', url: keypin.url, pid: keypin.pid, spec: SPEC.allowed, tmp };
    const three = { name: 'routes', url: routed.url, pid: routed.pid, spec: SPEC.allowed, tmp: dir };
    // Warm the second process up as the first one is (JIT).
    await runWrk(`${routed.url}${SPEC.allowed.path}`, SPEC.allowed, {
      connections: P.wrkConnections,
      durationS: P.wrkWarmupS * 2,
      tmpDir: dir,
      name: 'routes-warmup',
    });
    const r = await alternated('routes phase', single, three);
    return {
      routes,
      rounds: r.rounds,
      runs: r.runs,
      single: r.single,
      routed: r.routes,
      routedOverSingleRps: r.ratioRps,
      cpuAddedUsPerRequest: r.cpuAddedUsPerRequest,
    };
  } finally {
    await stopChild(routed.child, 8000);
  }
}

/** Drops and recreates a scratch database (the gateway creates it when missing). */
async function resetDatabase(url) {
  const u = new URL(url);
  const name = u.pathname.slice(1);
  u.pathname = '/postgres';
  const { Client } = await import('pg');
  const c = new Client({ connectionString: u.href });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS "${name.replace(/"/g, '')}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

/**
 * Before each measured run: waits until the bench's own processes (the
 * targets, the upstream, PostgreSQL and Redis) are idle, and records how long
 * that took and how busy the rest of the machine was.
 */
const settles = [];
let settleBudgetS = 120;
let benchPids = () => [];
async function settle(before) {
  const r = await waitQuiet(benchPids, { timeoutMs: Math.max(3, Math.min(20, settleBudgetS)) * 1000 });
  settleBudgetS -= r.waitedS;
  const busyPct = Math.round(r.machineBusy * 100);
  settles.push({
    before,
    waitedS: Math.round(r.waitedS * 10) / 10,
    settled: r.settled,
    machineBusyPct: busyPct,
  });
  if (r.waitedS > 2)
    console.log(`        (waited ${r.waitedS.toFixed(1)}s for the bench's processes to go idle)`);
  if (!r.settled) note(`before ${before}, the bench's processes still used ${r.cores.toFixed(2)} cores`);
  if (busyPct >= 25)
    note(`before ${before}, the machine was ${busyPct}% busy with other work: figures may be noisy`);
  return r;
}

async function wrkWarmup(targets, tmp) {
  for (const t of targets) {
    step(`wrk warm-up ${P.wrkWarmupS}s → ${t.name}`);
    await runWrk(`${t.url}${SPEC.allowed.path}`, SPEC.allowed, {
      connections: P.wrkConnections,
      durationS: P.wrkWarmupS,
      tmpDir: tmp,
      name: `${t.name}-warmup`,
    });
  }
}

/** wrk against every target; for KeyPin's allowed run, its RSS is sampled meanwhile. */
async function throughput(targets, workload, tmp, rss) {
  const out = {};
  for (const t of targets) {
    const what = `wrk ${workload} → ${t.name}`;
    await settle(what);
    step(`${what} (-t1 -c${P.wrkConnections} -d${P.wrkDurationS}s)`);
    const keypinBlocked = t.name === 'keypin' && workload === 'blocked';
    const before = t.name === 'keypin' ? await metricsText(t.url) : null;
    const sampler =
      t.name === 'keypin' && workload === 'allowed' ? sampleRss(t.pid, 250, treeRssBytes) : null;
    const meter = cpuMeter(cpuGroups(t));
    const r = await runWrk(
      `${t.url}${SPEC[workload].path}`,
      { ...SPEC[workload], marker: keypinBlocked ? 'ip_not_allowed' : undefined },
      {
        connections: P.wrkConnections,
        durationS: P.wrkDurationS,
        tmpDir: tmp,
        name: `${t.name}-${workload}`,
      },
    );
    r.cpu = meter.stop(r.requests);
    if (sampler) rss.duringAllowedLoad = sampler.stop();
    const sockErrors = Object.values(r.socketErrors).reduce((a, b) => a + b, 0);
    const counted = Object.values(r.statuses).reduce((a, b) => a + b, 0);
    checkStatuses(what, r.statuses, workload, t.name, sockErrors);
    if (counted !== r.requests)
      fail(`${what}: the Lua counter saw ${counted} responses, wrk reports ${r.requests}`);
    if (keypinBlocked) {
      if (r.non2xx3xx !== r.requests)
        fail(`${what}: wrk saw ${r.non2xx3xx} non-2xx of ${r.requests}, expected all`);
      if (r.marked !== r.requests) fail(`${what}: ${r.marked} of ${r.requests} bodies said ip_not_allowed`);
      const after = await metricsText(t.url);
      const re = /decision="intercepted"/;
      const b0 = sumMetric(before, re);
      const b1 = sumMetric(after, re);
      r.metricsInterceptedDelta = b0 !== null && b1 !== null ? b1 - b0 : null;
      if (r.metricsInterceptedDelta === null)
        note('KeyPin /metrics has no decision="intercepted" series to cross-check');
      else if (r.metricsInterceptedDelta < r.requests) {
        note(`KeyPin /metrics counted ${r.metricsInterceptedDelta} intercepted requests, wrk ${r.requests}`);
      }
    } else if (r.non2xx3xx !== 0) {
      fail(`${what}: wrk reports ${r.non2xx3xx} non-2xx/3xx responses`);
    }
    console.log(`        ${int(r.rps)} req/s, statuses ${JSON.stringify(r.statuses)}; ${cpuLine(r.cpu)}`);
    out[t.name] = r;
  }
  return out;
}

// ------------------------------------------------------------------ CPU per request

/** The upstream (nginx and the paced Node SSE source) and the front nginx, once started. */
const TOPO = { upstream: null, front: null };

/**
 * The process trees whose CPU a run of target `t` is charged to, kept
 * apart: the target itself (nginx master and workers; the gateway and every
 * process it forks), the front nginx, the upstream, and PostgreSQL + Redis
 * (every such process on the machine: others' use of them shows too).
 */
function cpuGroups(t) {
  const g = { target: [t.pid] };
  if (t.via === 'front') g.front = [TOPO.front.pid];
  if (t.name !== 'direct') g.upstream = [TOPO.upstream.pid, TOPO.upstream.sse.child.pid];
  g.stores = storePids();
  return g;
}

/**
 * Redis (every redis-server: it is one process) and the PostgreSQL backends
 * serving the bench's own databases (their command line names the database),
 * not the backends of other work on the machine nor PostgreSQL's shared
 * background processes.
 */
function storePids() {
  const names = new Set(
    [
      process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/keypin_bench',
      ROUTES_DATABASE_URL,
    ].map((u) => new URL(u).pathname.slice(1)),
  );
  return [
    ...pidsNamed(['redis-server']),
    ...pidsNamed(['postgres']).filter((pid) => {
      try {
        const words = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\s\0]+/);
        return words.some((w) => names.has(w));
      } catch {
        return false;
      }
    }),
  ];
}
const usCpu = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(0)} µs`);
function cpuLine(cpu) {
  return `CPU/request ${Object.entries(cpu)
    .map(([k, v]) => `${k} ${usCpu(v.usPerRequest)}`)
    .join(', ')}`;
}

// ------------------------------------------------------------------ open loop, stepped rates

/**
 * Tail-bound throughput: the allowed workload from the open-loop generator
 * (P.generators processes) at rates rising by P.stepFactor, each step sent
 * to the direct upstream first and then to every other target still in the
 * race, so that each target's p99 is compared with the upstream's p99 at the
 * same rate and minutes apart at most. A step holds a bound when the target
 * sustained the rate (sent ≥ 95% of the schedule, every response 2xx, none
 * lost) and its p99 minus the direct p99 at that rate is within the bound. A
 * step that breaks a bound is run once more; the bound breaks when the
 * repeat breaks it too. A target leaves the race when its largest bound
 * breaks; `direct` runs on until it fails to sustain two rates in a row
 * with p99 ≤ 5 ms (each tried twice): the last rate it held is the
 * generator's (and upstream's) ceiling, reported beside the figures. A rate
 * `direct` failed gives no floor, so the targets skip it.
 */
async function stepsPhase(targets) {
  const gen = await startOpenLoop({
    processes: P.generators,
    connectionsPerProcess: P.generatorConnections,
  });
  const bounds = P.stepBoundsMs;
  const maxBound = Math.max(...bounds);
  const direct = TOPO.upstream;
  const racers = targets.filter((t) => t.name !== 'direct');
  const out = {
    workload: 'allowed',
    generator: { processes: gen.processes, connections: gen.connections },
    startRate: P.stepStartRate,
    factor: P.stepFactor,
    warmupS: P.stepWarmupS,
    stepS: P.stepS,
    boundsMs: bounds,
    steps: [],
    held: Object.fromEntries(racers.map((t) => [t.name, Object.fromEntries(bounds.map((b) => [b, null]))])),
    broken: Object.fromEntries(
      racers.map((t) => [t.name, Object.fromEntries(bounds.map((b) => [b, false]))]),
    ),
    generatorCeiling: null,
    directStoppedAt: null,
  };
  const sustained = (r) =>
    r.errors === 0 &&
    r.timeouts === 0 &&
    r.completed === r.measured &&
    r.achievedRatePerS >= 0.95 * r.ratePerS &&
    Object.keys(r.statuses).every((s) => Number(s) >= 200 && Number(s) < 300);
  const one = async (t, rate) => {
    const q = await waitQuiet(benchPids, { timeoutMs: 2000 });
    const meter = cpuMeter(cpuGroups(t));
    const r = await gen.run(t.url, SPEC.allowed, {
      ratePerS: rate,
      warmupS: P.stepWarmupS,
      durationS: P.stepS,
    });
    r.cpu = meter.stop(Math.round(rate * (P.stepWarmupS + P.stepS)));
    r.sustained = sustained(r);
    r.machineBusyPct = Math.round(q.machineBusy * 100);
    return r;
  };
  const short = (r) =>
    `p99 ${ms(r.p99Ms)}${r.sustained ? '' : ` NOT SUSTAINED (sent ${int(r.achievedRatePerS)}/s, ${r.errors + r.timeouts} lost, ${JSON.stringify(r.statuses)})`}`;
  let directAlive = true;
  let directFailures = 0;
  try {
    for (let rate = P.stepStartRate; rate <= P.stepMaxRate; rate = Math.round(rate * P.stepFactor)) {
      const alive = racers.filter((t) => !out.broken[t.name][maxBound]);
      const row = { rate };
      out.steps.push(row);
      let d = await one(direct, rate);
      if (!d.sustained || d.p99Ms > maxBound) d = { ...(await one(direct, rate)), repeated: true };
      d.generatorUsPerRequest = (d.generatorCpuS * 1e6) / Math.round(rate * (P.stepWarmupS + P.stepS));
      row.direct = d;
      const parts = [
        `direct ${short(d)} (generator ${usCpu(d.generatorUsPerRequest)}/request, ` +
          `${d.generatorCoresMax.toFixed(2)} cores per process)${d.repeated ? ' (repeated)' : ''}`,
      ];
      // A rate the direct upstream could not hold (twice) gives no floor: the
      // targets skip it. Two such rates in a row: the generator's ceiling.
      const floorOk = d.sustained && d.p99Ms <= maxBound;
      if (floorOk) {
        directFailures = 0;
        out.generatorCeiling = rate;
      } else if (++directFailures >= 2) {
        directAlive = false;
        out.directStoppedAt = rate;
      }
      for (const t of floorOk ? alive : []) {
        const judge = (r) => {
          r.addedP99Ms = r.p99Ms - d.p99Ms;
          return Object.fromEntries(bounds.map((b) => [b, r.sustained && r.addedP99Ms <= b]));
        };
        let r = await one(t, rate);
        let ok = judge(r);
        if (bounds.some((b) => !out.broken[t.name][b] && !ok[b])) {
          r = { ...(await one(t, rate)), repeated: true };
          ok = judge(r);
        }
        r.held = ok;
        row[t.name] = r;
        for (const b of bounds) {
          if (out.broken[t.name][b]) continue;
          if (ok[b]) out.held[t.name][b] = rate;
          else out.broken[t.name][b] = true;
        }
        parts.push(
          `${t.name} ${short(r)} (${signedMs(r.addedP99Ms)})${bounds.map((b) => (ok[b] ? '' : ` ✗${b}ms`)).join('')}${r.repeated ? ' (repeated)' : ''}`,
        );
      }
      step(`steps ${int(rate)}/s: ${parts.join(' | ')}`);
      if (!directAlive) break; // beyond the generator's ceiling: no floor to compare with
      if (alive.length === 0 && racers.length > 0 && out.generatorCeiling !== null && !STEPS_TO_CEILING)
        break;
    }
  } finally {
    await gen.close();
  }
  if (directAlive) out.generatorCeiling = null; // never reached within stepMaxRate
  for (const t of racers) {
    for (const b of bounds) {
      const h = out.held[t.name][b];
      if (h !== null && out.generatorCeiling !== null && h >= 0.5 * out.generatorCeiling) {
        note(
          `steps: ${t.name} held ${b} ms up to ${int(h)}/s, half or more of the generator's ceiling ` +
            `(${int(out.generatorCeiling)}/s against the direct upstream): the generator may be part of the limit`,
        );
      }
      if (!out.broken[t.name][b] && directAlive === false) {
        note(
          `steps: ${t.name} still held ${b} ms when the direct upstream stopped keeping up (the generator's ceiling)`,
        );
      }
    }
  }
  return out;
}

/** An open-loop run means little if this process could not send at the scheduled rate. */
function clientKeptUp(what, r) {
  if (r.achievedRatePerS !== null && r.achievedRatePerS < 0.9 * r.targetRatePerS) {
    note(
      `${what}: the client sent ${int(r.achievedRatePerS)}/s of the ${int(r.targetRatePerS)}/s scheduled ` +
        '(the target fell behind, or this client did)',
    );
  }
}

/** Sequential warm-up of every target; returns the c=1 interval the schedule should use. */
async function c1Warmup(targets, workload) {
  const warm = {};
  for (const t of targets) {
    const c = makeClient(t.url);
    try {
      warm[t.name] = await closedLoop(c, SPEC[workload], P.c1Warmup);
      checkStatuses(`c=1 warm-up ${workload} → ${t.name}`, warm[t.name].statuses, workload, t.name);
    } finally {
      c.close();
    }
  }
  // One schedule for every target, light enough that c=1 measures a request
  // rather than a queue: twice the slowest warm-up p90, at least 2 ms.
  const slowest = Math.max(...targets.map((t) => warm[t.name].p90Ms));
  return Math.min(10, Math.max(2, Math.ceil(slowest * 2 * 10) / 10));
}

async function latencyC1(targets, workload, intervalMs) {
  const out = {};
  for (const t of targets) {
    const what = `latency c=1 ${workload} → ${t.name}`;
    await settle(what);
    step(`${what}: ${P.c1Count} requests, one every ${intervalMs} ms`);
    const c = makeClient(t.url);
    try {
      const r = await openLoop(c, SPEC[workload], { count: P.c1Count, intervalMs, concurrency: 1 });
      checkStatuses(what, r.statuses, workload, t.name, r.errors);
      out[t.name] = r;
      console.log(
        `        p50 ${ms(r.p50Ms)}  p90 ${ms(r.p90Ms)}  p99 ${ms(r.p99Ms)} ms (service time p50 ${ms(r.serviceMs.p50Ms)}), ` +
          `${r.heldUp} held up by a slow predecessor`,
      );
      clientKeptUp(what, r);
    } finally {
      c.close();
    }
  }
  return out;
}

async function latencyC32(targets, workload, rate) {
  const out = { ratePerS: rate };
  const intervalMs = 1000 / rate;
  for (const t of targets) {
    const what = `latency c=${P.c32Concurrency} ${workload} → ${t.name}`;
    await settle(what);
    step(`${what}: open loop at ${rate} req/s for ${P.c32DurationS}s`);
    const c = makeClient(t.url, { concurrency: P.c32Concurrency });
    try {
      const shape = { intervalMs, concurrency: P.c32Concurrency };
      await openLoop(c, SPEC[workload], { ...shape, count: Math.round(rate * P.c32WarmupS) });
      const r = await openLoop(c, SPEC[workload], { ...shape, count: Math.round(rate * P.c32DurationS) });
      checkStatuses(what, r.statuses, workload, t.name, r.errors);
      out[t.name] = r;
      console.log(
        `        p50 ${ms(r.p50Ms)}  p90 ${ms(r.p90Ms)}  p99 ${ms(r.p99Ms)} ms; sent ${int(r.achievedRatePerS)}/s, ` +
          `${r.heldUp} held up by busy slots, client lag p99 ${ms(r.clientLagMs.p99Ms)} ms`,
      );
      clientKeptUp(what, r);
    } finally {
      c.close();
    }
  }
  return out;
}

async function sse(targets) {
  const out = { count: P.sseCount, warmup: P.sseWarmup };
  for (const t of targets) {
    const what = `SSE time to first event → ${t.name}`;
    await settle(what);
    step(`${what}: ${P.sseCount} sequential streams`);
    const r = await sseFirstEvent(t.url, { ...SSE_SPEC, n: P.sseCount, warmup: P.sseWarmup });
    if (r.bad > 0) {
      fail(
        `SSE → ${t.name}: ${r.bad} streams were not 200 text/event-stream ending in [DONE] (${JSON.stringify(r.statuses)})`,
      );
    }
    out[t.name] = r;
    console.log(`        first event p50 ${ms(r.firstEvent.p50Ms)}  p99 ${ms(r.firstEvent.p99Ms)} ms`);
  }
  return out;
}

/** Optional gauges from the gateway's /metrics (names are not part of the contract). */
async function gatewayGauges(keypin) {
  const text = await metricsText(keypin.url);
  return {
    cachedBindings: sumMetric(text, /^\w*cached_bindings\b/),
    heapUsedBytes: sumMetric(text, /^\w*nodejs_heap_size_used_bytes\b/),
  };
}

async function memoryPhase(keypin) {
  const gaugesBefore = await gatewayGauges(keypin);
  const before = treeRssBytes(keypin.pid);
  step(`memory: binding ${int(P.memKeys)} new keys (${P.memConcurrency} concurrent keep-alive requests)`);
  const c = makeClient(keypin.url, { concurrency: P.memConcurrency });
  const statuses = {};
  let errors = 0;
  let firstError;
  let next = 0;
  let done = 0;
  const t0 = performance.now();
  const deadline = t0 + P.memCapS * 1000;
  const progress = setInterval(() => {
    console.log(`        ${int(done)} keys bound, RSS ${mib(treeRssBytes(keypin.pid))}`);
  }, 10_000);
  const worker = async () => {
    while (next < P.memKeys && performance.now() < deadline) {
      const i = next++;
      try {
        const r = await c.send({
          method: 'GET',
          path: '/v1/models',
          headers: { authorization: `Bearer sk-bench${RUN_TAG}k${i}` },
        });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      } catch (err) {
        errors++;
        firstError ??= err.message;
      }
      done++;
    }
  };
  try {
    await Promise.all(Array.from({ length: P.memConcurrency }, worker));
  } finally {
    clearInterval(progress);
    c.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = treeRssBytes(keypin.pid);
  await sleep(3000);
  const settled = treeRssBytes(keypin.pid);
  const bound = statuses[200] ?? 0;
  checkStatuses('memory phase (first use of new keys)', statuses, 'allowed', 'keypin', errors);
  if (done < P.memKeys) {
    note(`memory phase stopped at the ${P.memCapS}s cap after ${int(done)} of ${int(P.memKeys)} keys`);
  }
  const metrics = await metricsText(keypin.url);
  const firstBinds = sumMetric(metrics, /decision="first_bind"/);
  const gaugesAfter = await gatewayGauges(keypin);
  return {
    keysRequested: P.memKeys,
    keysSent: done,
    keysBound: bound,
    statuses,
    errors,
    firstError,
    seconds,
    keysPerS: done / seconds,
    rssBeforeBytes: before,
    rssAfterBytes: after,
    rssAfter3sBytes: settled,
    rssGrowthPerKeyBytes:
      before !== null && settled !== null && bound > 0 ? (settled - before) / bound : null,
    metricsFirstBindTotal: firstBinds,
    metricsBefore: gaugesBefore,
    metricsAfter: gaugesAfter,
  };
}

// ------------------------------------------------------------------ report

function added(results, workload, target, field) {
  const x = results[workload]?.[target]?.[field];
  const d = results[workload]?.direct?.[field];
  return x === undefined || d === undefined || x === null || d === null ? null : x - d;
}

function computeRatios(r) {
  const w = r.throughput?.wrk;
  const get = (workload, t) => w?.[workload]?.[t]?.rps ?? null;
  const div = (a, b) => (a === null || b === null || b === 0 ? null : a / b);
  const sseAdd = (t, f) => {
    const x = r.sse?.[t]?.firstEvent?.[f];
    const d = r.sse?.direct?.firstEvent?.[f];
    return x == null || d == null ? null : x - d;
  };
  const cpu = (workload, t) => w?.[workload]?.[t]?.cpu?.target?.usPerRequest ?? null;
  const held = (t, b) => r.steps?.held?.[t]?.[b] ?? null;
  return {
    keypinOverNginxRps: {
      allowed: div(get('allowed', 'keypin'), get('allowed', 'nginx')),
      blocked: div(get('blocked', 'keypin'), get('blocked', 'nginx')),
    },
    keypinOverFrontRps: { allowed: div(get('allowed', 'keypin'), get('allowed', 'front')) },
    cpuUsPerRequest: Object.fromEntries(
      WORKLOADS.map((wl) => [wl, Object.fromEntries((r.targets ?? []).map((t) => [t, cpu(wl, t)]))]),
    ),
    keypinOverNginxCpu: {
      allowed: div(cpu('allowed', 'keypin'), cpu('allowed', 'nginx')),
      blocked: div(cpu('blocked', 'keypin'), cpu('blocked', 'nginx')),
    },
    keypinOverNginxTailBound: Object.fromEntries(
      (r.steps?.boundsMs ?? []).map((b) => [b, div(held('keypin', b), held('nginx', b))]),
    ),
    keypinOverDirectRps: { allowed: div(get('allowed', 'keypin'), get('allowed', 'direct')) },
    nginxOverDirectRps: { allowed: div(get('allowed', 'nginx'), get('allowed', 'direct')) },
    keypinBlockedOverAllowedRps: div(get('blocked', 'keypin'), get('allowed', 'keypin')),
    addedMs: Object.fromEntries(
      ['c1', 'c32'].map((c) => [
        c,
        Object.fromEntries(
          WORKLOADS.map((wl) => [
            wl,
            Object.fromEntries(
              ['nginx', 'keypin'].map((t) => [
                t,
                {
                  p50: added(r.latency?.[c] ?? {}, wl, t, 'p50Ms'),
                  p99: added(r.latency?.[c] ?? {}, wl, t, 'p99Ms'),
                },
              ]),
            ),
          ]),
        ),
      ]),
    ),
    sseFirstEventAddedMs: Object.fromEntries(
      ['nginx', 'keypin'].map((t) => [t, { p50: sseAdd(t, 'p50Ms'), p99: sseAdd(t, 'p99Ms') }]),
    ),
  };
}

function printReport(r) {
  const names = r.targets;
  const head = (first) => [first, ...names];
  const w = r.throughput?.wrk;
  const parts = [];
  parts.push(
    `\nKeyPin bench — ${r.date}\n${r.machine.cpuModel} × ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ` +
      `node ${r.machine.node}, ${r.machine.nginx ?? 'nginx ?'}, ${r.machine.wrk ?? 'wrk ?'}` +
      `\n--workers ${WORKERS}; ${Object.entries(r.topology?.targets ?? {})
        .map(([t, path]) => `${t}: ${path}`)
        .join('; ')}` +
      (QUICK ? '\n(--quick: shorter runs, figures are rough)' : ''),
  );
  if (w) {
    parts.push(
      table(
        `Throughput, requests/s (wrk -t1 -c${P.wrkConnections} -d${P.wrkDurationS}s, GET /v1/models)`,
        head(''),
        [
          ['allowed key', ...names.map((t) => int(w.allowed?.[t]?.rps))],
          ['blocked key (KeyPin: all 403)', ...names.map((t) => int(w.blocked?.[t]?.rps))],
        ],
      ),
    );
    const cpuRows = [];
    for (const wl of WORKLOADS) {
      for (const [g, label] of [
        ['target', 'the target itself'],
        ['front', 'front nginx'],
        ['upstream', 'upstream'],
        ['stores', 'PostgreSQL (bench DBs) + Redis'],
      ]) {
        if (!names.some((t) => w[wl]?.[t]?.cpu?.[g])) continue;
        cpuRows.push([`${wl}: ${label}`, ...names.map((t) => usCpu(w[wl]?.[t]?.cpu?.[g]?.usPerRequest))]);
      }
    }
    parts.push(
      table(
        'CPU per request, µs (utime + stime from /proc of every process in each tree, over the wrk run)',
        head(''),
        cpuRows,
      ),
    );
  }
  for (const c of ['c1', 'c32']) {
    const L = r.latency?.[c];
    if (!L) continue;
    const title =
      c === 'c1'
        ? `Latency at concurrency 1, ms (open loop, one request every ${L.intervalMs} ms, ${L.count} requests)`
        : `Latency at concurrency ${L.concurrency}, ms (open loop at ${Math.round(L.loadShare * 100)}% of ${L.rateFrom}'s wrk rate: ` +
          `allowed ${L.allowed?.ratePerS ?? '—'}/s, blocked ${L.blocked?.ratePerS ?? '—'}/s)`;
    const rows = [];
    for (const wl of WORKLOADS) {
      for (const f of ['p50Ms', 'p90Ms', 'p99Ms'])
        rows.push([`${wl} ${f.slice(0, 3)}`, ...names.map((t) => ms(L[wl]?.[t]?.[f]))]);
    }
    parts.push(table(title, head(''), rows));
  }
  if (r.sse) {
    parts.push(
      table(
        `SSE time to first event, ms (${r.sse.count} sequential POST /v1/chat/completions stream:true)`,
        head(''),
        [
          ['first event p50', ...names.map((t) => ms(r.sse[t]?.firstEvent.p50Ms))],
          ['first event p99', ...names.map((t) => ms(r.sse[t]?.firstEvent.p99Ms))],
          ['whole stream p50', ...names.map((t) => ms(r.sse[t]?.wholeStream.p50Ms))],
        ],
      ),
    );
  }
  const S = r.steps;
  if (S) {
    const racers = Object.keys(S.held);
    const rows = S.boundsMs.map((b) => [
      `added p99 ≤ ${b} ms`,
      ...racers.map((t) => {
        const h = S.held[t][b];
        return h === null ? `< ${int(S.startRate)}` : `${int(h)}${S.broken[t][b] ? '' : '+'}`;
      }),
    ]);
    rows.push([
      'generator ceiling (direct sustained, p99 ≤ 5 ms)',
      ...racers.map(() =>
        S.generatorCeiling === null ? `> ${int(S.steps.at(-1)?.rate)}` : int(S.generatorCeiling),
      ),
    ]);
    parts.push(
      table(
        `Tail-bound throughput, req/s (open loop, ${S.generator.processes} generator processes × ` +
          `${S.generator.connections / S.generator.processes} connections, steps ×${S.factor} from ${int(S.startRate)}/s, ` +
          `${S.stepS}s each; added p99 = target p99 − direct p99 at the same rate; "+": never broke)`,
        ['', ...racers],
        rows,
      ),
    );
    const top = S.steps.filter((x) => x.direct?.sustained).at(-1)?.direct;
    if (top) {
      parts.push(
        `(generator at ${int(top.ratePerS)}/s: ${usCpu(top.generatorUsPerRequest)} of its own CPU per request, ` +
          `${top.generatorCoresMax.toFixed(2)} cores per process; ` +
          (S.generatorCeiling === null
            ? `the direct upstream held every rate up to ${int(S.steps.at(-1)?.rate)}/s)`
            : `the direct upstream stopped keeping up at ${int(S.directStoppedAt)}/s)`),
      );
    }
  }
  const R = r.ratios;
  const addRows = [];
  for (const c of ['c1', 'c32']) {
    for (const wl of WORKLOADS) {
      const a = R.addedMs[c][wl];
      addRows.push([
        `${c === 'c1' ? 'c=1' : 'c=32'} ${wl}`,
        signedMs(a.nginx.p50),
        signedMs(a.nginx.p99),
        signedMs(a.keypin.p50),
        signedMs(a.keypin.p99),
      ]);
    }
  }
  addRows.push([
    'SSE first event',
    signedMs(R.sseFirstEventAddedMs.nginx.p50),
    signedMs(R.sseFirstEventAddedMs.nginx.p99),
    signedMs(R.sseFirstEventAddedMs.keypin.p50),
    signedMs(R.sseFirstEventAddedMs.keypin.p99),
  ]);
  parts.push(
    table(
      'Added latency over direct, ms',
      ['', 'nginx p50', 'nginx p99', 'KeyPin p50', 'KeyPin p99'],
      addRows,
    ),
  );
  parts.push(
    table(
      'Ratios',
      ['', 'value'],
      [
        ['KeyPin / nginx req/s, allowed', ratio(R.keypinOverNginxRps.allowed)],
        ['KeyPin / nginx req/s, blocked', ratio(R.keypinOverNginxRps.blocked)],
        ['KeyPin / nginx CPU per request, allowed', ratio(R.keypinOverNginxCpu.allowed)],
        ['KeyPin / nginx CPU per request, blocked', ratio(R.keypinOverNginxCpu.blocked)],
        ...Object.entries(R.keypinOverNginxTailBound).map(([b, v]) => [
          `KeyPin / nginx req/s held at added p99 ≤ ${b} ms`,
          ratio(v),
        ]),
        ...(R.keypinOverFrontRps.allowed !== null
          ? [['KeyPin (behind the front) / front alone req/s, allowed', ratio(R.keypinOverFrontRps.allowed)]]
          : []),
        ['KeyPin / direct req/s, allowed', ratio(R.keypinOverDirectRps.allowed)],
        ['nginx / direct req/s, allowed', ratio(R.nginxOverDirectRps.allowed)],
        ['KeyPin blocked / allowed req/s', ratio(R.keypinBlockedOverAllowedRps)],
        [
          'KeyPin added p50 / p99 at c=1, allowed (ms)',
          `${signedMs(R.addedMs.c1.allowed.keypin.p50)} / ${signedMs(R.addedMs.c1.allowed.keypin.p99)}`,
        ],
        [
          'nginx added p50 / p99 at c=1, allowed (ms)',
          `${signedMs(R.addedMs.c1.allowed.nginx.p50)} / ${signedMs(R.addedMs.c1.allowed.nginx.p99)}`,
        ],
        ['KeyPin added SSE first event p50 (ms)', signedMs(R.sseFirstEventAddedMs.keypin.p50)],
      ],
    ),
  );
  const pol = r.policy;
  if (pol) {
    const cpu = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(0)} µs`);
    parts.push(
      table(
        `KeyPin: what a key policy costs (${JSON.stringify(pol.policy)}; medians of ${pol.rounds} alternated wrk runs)`,
        ['', 'req/s', 'CPU per request'],
        [
          ['key without a policy (median)', int(pol.allowed.rps), cpu(pol.allowed.cpuUsPerRequest)],
          ['key with a rate and a quota (median)', int(pol.limited.rps), cpu(pol.limited.cpuUsPerRequest)],
          [
            'with / without (median of the back-to-back pairs)',
            ratio(pol.limitedOverAllowedRps),
            pol.cpuAddedUsPerRequest === null ? '—' : `+${pol.cpuAddedUsPerRequest.toFixed(0)} µs`,
          ],
        ],
      ),
    );
  }
  const rp = r.routes;
  if (rp) {
    const cpu = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(0)} µs`);
    parts.push(
      table(
        `KeyPin: what routes cost (${rp.routes.length} routes; medians of ${rp.rounds} alternated wrk runs)`,
        ['', 'req/s', 'CPU per request'],
        [
          ['one upstream, DOWNSTREAM_URL (median)', int(rp.single.rps), cpu(rp.single.cpuUsPerRequest)],
          [`${rp.routes.length} routes (median)`, int(rp.routed.rps), cpu(rp.routed.cpuUsPerRequest)],
          [
            'routes / one upstream (median of the back-to-back pairs)',
            ratio(rp.routedOverSingleRps),
            rp.cpuAddedUsPerRequest === null
              ? '—'
              : `${rp.cpuAddedUsPerRequest >= 0 ? '+' : ''}${rp.cpuAddedUsPerRequest.toFixed(0)} µs`,
          ],
        ],
      ),
    );
  }
  const m = r.memory;
  if (m) {
    const rows = [
      ['after start (idle)', mib(m.rssIdleBytes)],
      [
        'during allowed wrk load, mean / max',
        `${mib(m.duringAllowedLoad?.meanBytes)} / ${mib(m.duringAllowedLoad?.maxBytes)}`,
      ],
    ];
    if (m.bindings) {
      const b = m.bindings;
      rows.push(
        [
          `${m.freshProcess ? 'fresh gateway process, ' : ''}before binding ${int(b.keysRequested)} keys`,
          mib(b.rssBeforeBytes),
        ],
        [
          `after ${int(b.keysBound)} keys bound (${b.seconds.toFixed(1)} s, ${int(b.keysPerS)} keys/s)`,
          mib(b.rssAfterBytes),
        ],
        ['3 s later', mib(b.rssAfter3sBytes)],
        [
          'RSS growth per bound key (rough: GC decides)',
          b.rssGrowthPerKeyBytes === null || b.rssGrowthPerKeyBytes < 0
            ? '—'
            : `${int(b.rssGrowthPerKeyBytes)} B`,
        ],
      );
      if (b.metricsAfter.cachedBindings !== null) {
        rows.push([
          'bindings in the in-process cache (/metrics), before → after',
          `${int(b.metricsBefore.cachedBindings)} → ${int(b.metricsAfter.cachedBindings)}`,
        ]);
      }
      if (b.metricsAfter.heapUsedBytes !== null) {
        rows.push([
          'JS heap used (/metrics), before → after',
          `${mib(b.metricsBefore.heapUsedBytes)} → ${mib(b.metricsAfter.heapUsedBytes)}`,
        ]);
      }
    }
    parts.push(
      table('KeyPin gateway memory (RSS of the process tree, VmRSS from /proc/<pid>/status)', ['', ''], rows),
    );
  }
  if (r.loadAverage)
    parts.push(
      `\nLoad average (1, 5, 15 min) at the start ${r.loadAverage.start.join(', ')}, at the end ${r.loadAverage.end.join(', ')} ` +
        `(${r.machine.cores} cores; the bench itself keeps about 2 busy)`,
    );
  if (r.notes.length) parts.push(`\nNotes\n${r.notes.map((n) => `  - ${n}`).join('\n')}`);
  console.log(parts.join('\n'));
}

// ------------------------------------------------------------------ main

/** The commit the checkout is at, whether it has local changes, and when the measured build was made. */
function codeVersion() {
  const git = (args) => {
    const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  let builtAt = null;
  try {
    builtAt = statSync(GATEWAY_MAIN).mtime.toISOString();
  } catch {
    // not built yet
  }
  const dirty = git(['status', '--porcelain', '--', 'apps', 'libs']);
  return {
    commit: git(['rev-parse', '--short', 'HEAD']),
    appsOrLibsChanged: dirty === null ? null : dirty !== '',
    builtAt,
  };
}

async function main() {
  ensureWrk(); // before anything starts: the results record its version
  const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const tmp = mkdtempSync(join(os.tmpdir(), 'keypin-bench-'));
  chmodSync(tmp, 0o755); // nginx workers drop to an unprivileged user
  const results = {
    date: new Date().toISOString(),
    machine: {
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
      nginx: versionOf(existsSync(NGINX) ? NGINX : 'nginx', ['-v']),
      wrk: versionOf('wrk', ['-v'])?.replace(/\s+Copyright.*$/, '') ?? null,
    },
    code: codeVersion(),
    quick: QUICK,
    parameters: P,
    options: { front: FRONT, workers: WORKERS, targets: TARGETS, steps: STEPS_PHASE, memory: MEMORY_PHASE },
    targets: [],
    keys: { allowed: ALLOWED_KEY, blocked: `${BLOCKED_KEY} (pinned to ${OTHER_IP})` },
  };
  const targets = [];
  const started = [];
  let keypin = null;
  try {
    step(
      `starting targets: ${TARGETS.join(', ')}; ${FRONT ? 'nginx and KeyPin behind the front nginx' : 'no front nginx'}, ` +
        `--workers ${WORKERS} (scratch dir ${tmp})`,
    );
    const upstream = await startDirect(tmp);
    TOPO.upstream = upstream;
    started.push(upstream, { child: upstream.sse.child });
    const ports = {
      UPSTREAM_PORT: upstream.port,
      NGINX_PORT: await freePort(),
      KEYPIN_PORT: await freePort(),
      ROUTES_PORT: await freePort(),
    };
    let front = null;
    if (FRONT && TARGETS.some((t) => t !== 'direct')) {
      for (const k of ['FRONT_NGINX_PORT', 'FRONT_KEYPIN_PORT', 'FRONT_ROUTES_PORT', 'FRONT_ALONE_PORT'])
        ports[k] = await freePort();
      front = await startFront(tmp, ports);
      TOPO.front = front;
      started.push({ name: 'front', child: front.child });
    }
    /** Behind the front, clients talk to the front's server for that backend. */
    const viaFront = (t, url) => (front ? Object.assign(t, { url, via: 'front' }) : t);
    if (TARGETS.includes('direct')) targets.push(upstream);
    if (TARGETS.includes('front')) {
      targets.push({
        name: 'front',
        url: front.urls.front,
        port: ports.FRONT_ALONE_PORT,
        child: front.child,
        pid: front.pid,
      });
    }
    if (TARGETS.includes('nginx')) {
      const nginx = await startNginx(tmp, upstream.port, ports.NGINX_PORT);
      started.push(nginx);
      targets.push(viaFront(nginx, front?.urls.nginx));
    }
    if (TARGETS.includes('keypin')) {
      try {
        keypin = viaFront(await startKeypin(tmp, upstream.port, ports.KEYPIN_PORT), front?.urls.keypin);
        started.push(keypin);
        targets.push(keypin);
        step(`KeyPin ready in ${keypin.readyS.toFixed(1)}s (pid ${keypin.pid}, log ${keypin.log})`);
        results.keypin = {
          env: keypin.env,
          readyS: keypin.readyS,
          processes: treePids([keypin.pid]).length,
          rssIdleBytes: treeRssBytes(keypin.pid),
        };
      } catch (err) {
        fail(`KeyPin could not be started: ${err.message}`);
      }
    }
    if (targets.length === 0) throw new Error('no target to measure');
    benchPids = () => [...treePids(started.map((t) => t.child.pid)), ...storePids()];
    results.targets = targets.map((t) => t.name);
    results.topology = {
      front: FRONT,
      workers: WORKERS,
      upstream:
        'nginx, canned answers (bench/nginx.upstream.conf.template); SSE from bench/upstream.mjs behind it',
      targets: Object.fromEntries(
        targets.map((t) => [
          t.name,
          t.name === 'direct'
            ? 'client → upstream'
            : t.name === 'front'
              ? 'client → front nginx (allowlist) → upstream'
              : `client → ${t.via === 'front' ? 'front nginx (X-Real-IP) → ' : ''}${t.name} → upstream`,
        ]),
      ),
    };

    step('pinning keys and checking every target answers');
    await prepare(targets);
    if (keypin) await setUpLimitedKey(keypin);

    await settle('the first run');
    await wrkWarmup(targets, tmp);
    const rss = {};
    results.throughput = { wrk: {} };
    results.latency = {
      c1: { count: P.c1Count, warmup: P.c1Warmup },
      c32: { concurrency: P.c32Concurrency, loadShare: P.c32LoadShare, durationS: P.c32DurationS },
    };
    // Allowed traffic first, then blocked: a blocked run leaves the gateway
    // writing intercepts for a while, which must not land on allowed figures.
    for (const workload of WORKLOADS) {
      console.log(`\n== ${workload} traffic`);
      const wrk = await throughput(targets, workload, tmp, rss);
      results.throughput.wrk[workload] = wrk;
      if (workload === 'allowed') results.latency.c1.intervalMs = await c1Warmup(targets, 'allowed');
      else await c1Warmup(targets, workload);
      results.latency.c1[workload] = await latencyC1(targets, workload, results.latency.c1.intervalMs);
      const base = wrk.keypin ? 'keypin' : targets.at(-1).name;
      results.latency.c32.rateFrom = base;
      const rate = Math.max(100, Math.round(wrk[base].rps * P.c32LoadShare));
      results.latency.c32[workload] = await latencyC32(targets, workload, rate);
      if (workload === 'allowed') results.sse = await sse(targets);
    }
    if (STEPS_PHASE) {
      console.log(
        `\n== open loop, stepped rates (${P.generators} generator processes × ${P.generatorConnections} connections, ` +
          `from ${int(P.stepStartRate)}/s ×${P.stepFactor}, ${P.stepWarmupS}+${P.stepS}s per step)`,
      );
      results.steps = await stepsPhase(targets);
    }
    if (keypin && !flag('no-policy')) {
      console.log('\n== key policy cost');
      results.policy = await policyPhase(keypin, tmp);
    }
    if (keypin && !flag('no-routes')) {
      console.log('\n== routes cost');
      try {
        results.routes = await routesPhase(keypin, upstream.port, tmp, ports.ROUTES_PORT, front?.urls.routes);
      } catch (err) {
        fail(`routes phase: ${err.stack ?? err}`);
      }
    }
    if (keypin) {
      results.memory = {
        rssIdleBytes: results.keypin.rssIdleBytes,
        duringAllowedLoad: rss.duringAllowedLoad ?? null,
      };
      if (MEMORY_PHASE) {
        console.log('\n== memory');
        // The figure wanted is what 100,000 cached bindings cost, not how far
        // the heap grew during the load phases: measure on a fresh process.
        await stopChild(keypin.child, 8000);
        started.splice(started.indexOf(keypin), 1);
        keypin = viaFront(await startKeypin(tmp, upstream.port, ports.KEYPIN_PORT), front?.urls.keypin);
        started.push(keypin);
        results.memory.freshProcess = true;
        results.memory.rssFreshIdleBytes = treeRssBytes(keypin.pid);
        await settle('the memory phase');
        results.memory.bindings = await memoryPhase(keypin);
      }
    }
  } catch (err) {
    fail(err.stack ?? String(err));
  } finally {
    results.settleWaits = settles;
    results.loadAverage = { start: loadAtStart, end: os.loadavg().map((x) => Math.round(x * 100) / 100) };
    results.ratios = computeRatios(results);
    results.failures = failures;
    results.notes = notes;
    results.elapsedS = Math.round((performance.now() - startedAt) / 100) / 10;
    if (results.throughput) {
      try {
        printReport(results);
      } catch (err) {
        fail(`could not print the report: ${err.stack}`);
      }
    }
    const dir = join(BENCH_DIR, 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'latest.json'), prettyJson(results));
    console.log(`\nresults written to bench/results/latest.json (${results.elapsedS} s in all)`);
    step('stopping children');
    if (keypin && failures.length)
      console.error(`\nlast lines of the KeyPin log:\n${logTail(keypin.child, 20)}`);
    await Promise.all(started.map((t) => stopChild(t.child, 8000)));
    killAll('SIGKILL');
    if (failures.length === 0) rmSync(tmp, { recursive: true, force: true });
    else console.error(`scratch files kept in ${tmp}`);
  }
  if (failures.length) {
    console.error(
      `\nFAILED (${failures.length}):\n${failures.map((f) => `  - ${f.split('\n')[0]}`).join('\n')}`,
    );
    process.exit(1);
  }
}

await main();
