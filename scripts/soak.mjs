#!/usr/bin/env node
// `npm run soak`: a long steady run of mixed traffic through the built gateway
// (allowed GETs, blocked attempts with another client's key, SSE streams),
// against the bench's upstream, the local PostgreSQL (a fresh database per
// run) and Redis (a fresh prefix). See docs/reliability.md.
//
//   node scripts/soak.mjs [--minutes N | --seconds N] [--rate R] [--clients C] [--keep-db]
//
// Every ~10 s: throughput, p99, the gateway's RSS and event-loop delay (from
// its /metrics). At the end: RSS drift after warm-up, the worst event-loop
// delay, and lost intercepts (403s counted here vs rows in PostgreSQL).
// Exits 1 when the event-loop delay p99 reached 50 ms in any interval, RSS
// drifted more than 10 %, any intercept was lost, or a response was wrong.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { Agent, request } from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { percentile } from '../bench/lib/load.mjs';
import { logTail, rssBytes, stopChild } from '../bench/lib/procs.mjs';
import { startGateway, startUpstream } from '../bench/lib/targets.mjs';

// ------------------------------------------------------------------ options

const argv = process.argv.slice(2);
const option = (name, def) => {
  const hit = argv.find((a) => a.startsWith(`--${name}=`));
  if (hit) return hit.slice(name.length + 3);
  const i = argv.indexOf(`--${name}`);
  return i !== -1 && argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[i + 1] : def;
};
if (argv.includes('--help')) {
  console.log(
    'usage: node scripts/soak.mjs [--minutes N | --seconds N] [--rate R] [--clients C] [--keep-db]',
  );
  process.exit(0);
}
const seconds =
  option('seconds') !== undefined ? Number(option('seconds')) : Number(option('minutes', '10')) * 60;
const RATE = Number(option('rate', '400')); // requests per second, all clients together
const CLIENTS = Number(option('clients', '8'));
const KEEP_DB = argv.includes('--keep-db');
if (!(seconds > 0) || !(RATE > 0) || !(CLIENTS >= 2)) {
  console.error('--seconds/--minutes and --rate must be > 0, --clients ≥ 2');
  process.exit(2);
}
const DURATION_MS = seconds * 1000;
const INTERVAL_MS = 10_000;
// Warm-up: the first fifth of the run, at least 10 s, at most 2 minutes.
const WARMUP_MS = Math.min(120_000, Math.max(10_000, DURATION_MS / 5));

const LIMITS = { eventLoopP99Ms: 50, rssDriftPct: 10, lostIntercepts: 0 };

const TAG = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
const PG_BASE = process.env.SOAK_PG_URL ?? process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';
const DB_NAME = `keypin_soak_${TAG}`;
const DATABASE_URL = `${PG_BASE}/${DB_NAME}`;
const REDIS_URL = process.env.SOAK_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const REDIS_PREFIX = `keypin-soak-${TAG}:`;

const t0 = performance.now();
const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s]`;
const say = (msg) => console.log(`${stamp()} ${msg}`);

// ------------------------------------------------------------------ processes

async function startKeypin(upstreamPort, tmp) {
  return startGateway({
    upstreamPort,
    tmp,
    env: {
      DATABASE_URL,
      REDIS_URL,
      REDIS_PREFIX,
      HMAC_SECRET: process.env.HMAC_SECRET ?? `soak-hmac-secret-${TAG}-0123456789abcdef`,
      SHUTDOWN_GRACE_MS: '5000',
    },
  });
}

async function query(text, params = [], url = DATABASE_URL) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows;
  } finally {
    await c.end();
  }
}

// ------------------------------------------------------------------ traffic

const SSE_BODY = JSON.stringify({
  model: 'bench-model-a',
  stream: true,
  messages: [{ role: 'user', content: 'ping' }],
});

/** One request; resolves { status, ms, ok } (ok: a complete body, and for SSE the [DONE] event). */
function one(agent, base, localAddress, { method, path, key, body, sse }) {
  return new Promise((done) => {
    const started = performance.now();
    const headers = { authorization: `Bearer ${key}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = request({ agent, host: base.hostname, port: base.port, method, path, headers, localAddress });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        if (sse || text.length < 512) text += d;
      });
      res.on('end', () =>
        done({
          status: res.statusCode,
          ms: performance.now() - started,
          ok: !sse || text.includes('data: [DONE]'),
        }),
      );
      res.on('error', () => done({ status: 'cut', ms: performance.now() - started, ok: false }));
    });
    req.on('error', (err) => done({ status: `error:${err.code ?? err.message}`, ms: 0, ok: false }));
    req.end(body);
  });
}

class Window {
  constructor() {
    this.lat = [];
    this.sse = [];
    this.n = 0;
  }
}

const totals = { allowed: {}, blocked: {}, sse: {}, sseIncomplete: 0 };
let win = new Window();
let allLat = [];
let blocked403 = 0;
let stopping = false;

const bump = (m, s) => (m[s] = (m[s] ?? 0) + 1);

/**
 * Client i: own key bound from 127.0.0.(10+i). Out of every 10 requests,
 * 6 allowed GETs, 3 blocked attempts with client i+1's key, 1 SSE stream.
 */
async function client(i, base, keys, perClientRate) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  const from = `127.0.0.${10 + i}`;
  const gapMs = 1000 / perClientRate;
  let due = performance.now();
  try {
    for (let n = 0; !stopping; n++) {
      const slot = n % 10;
      let kind;
      let spec;
      if (slot === 9) {
        kind = 'sse';
        spec = { method: 'POST', path: '/v1/chat/completions', key: keys[i], body: SSE_BODY, sse: true };
      } else if (slot % 3 === 2) {
        kind = 'blocked';
        spec = { method: 'GET', path: '/v1/models', key: keys[(i + 1) % keys.length] };
      } else {
        kind = 'allowed';
        spec = { method: 'GET', path: '/v1/models', key: keys[i] };
      }
      const r = await one(agent, base, from, spec);
      bump(totals[kind], r.status);
      if (kind === 'blocked' && r.status === 403) blocked403++;
      if (kind === 'sse') {
        if (!r.ok) totals.sseIncomplete++;
        win.sse.push(r.ms);
      } else {
        win.lat.push(r.ms);
        allLat.push(r.ms);
      }
      win.n++;
      // Paced: the next request is due one gap later; no catching up after a stall.
      due = Math.max(due + gapMs, performance.now() - gapMs);
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
  } finally {
    agent.destroy();
  }
}

// ------------------------------------------------------------------ metrics

function metricValue(text, name) {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+|NaN)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

async function eventLoop(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  // prom-client resets its event-loop histogram at each collection, so these cover the last interval.
  return {
    p99Ms: (metricValue(text, 'keypin_process_nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000,
    maxMs: (metricValue(text, 'keypin_process_nodejs_eventloop_lag_max_seconds') ?? NaN) * 1000,
  };
}

const mib = (b) => (b / 2 ** 20).toFixed(1);
const f1 = (x) => (x === null || Number.isNaN(x) ? '—' : x.toFixed(1));
const mean = (a) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);

// ------------------------------------------------------------------ main

async function main() {
  const tmp = mkdtempSync(join(os.tmpdir(), 'keypin-soak-'));
  say(
    `soak: ${seconds} s, ${RATE} req/s from ${CLIENTS} clients (60 % allowed, 30 % blocked, 10 % SSE), ` +
      `warm-up ${WARMUP_MS / 1000} s; database ${DB_NAME}`,
  );
  const upstream = await startUpstream();
  const gw = await startKeypin(upstream.port, tmp);
  say(`gateway ${gw.url} pid ${gw.pid} ready; log ${gw.log}`);
  // Drain the event-loop histogram of the start-up.
  await eventLoop(gw.url);

  const base = new URL(gw.url);
  const keys = Array.from({ length: CLIENTS }, (_, i) => `sk-soak${TAG}c${i}`);
  const agent = new Agent({ keepAlive: false });
  for (let i = 0; i < CLIENTS; i++) {
    const r = await one(agent, base, `127.0.0.${10 + i}`, {
      method: 'GET',
      path: '/v1/models',
      key: keys[i],
    });
    if (r.status !== 200) throw new Error(`binding request for client ${i} got ${r.status}`);
    bump(totals.allowed, 200);
  }

  const loadStart = performance.now();
  const rssSamples = []; // { t, rss }
  const rssTimer = setInterval(() => {
    const v = rssBytes(gw.pid);
    if (v !== null) rssSamples.push({ t: performance.now() - loadStart, rss: v });
  }, 1000);
  const loops = keys.map((_, i) => client(i, base, keys, RATE / CLIENTS));

  const intervals = [];
  say('   t   req/s   p99 ms   SSE p99 ms   RSS MiB   loop p99 ms   loop max ms');
  while (performance.now() - loadStart < DURATION_MS) {
    const left = DURATION_MS - (performance.now() - loadStart);
    const started = performance.now();
    await sleep(Math.min(INTERVAL_MS, left));
    const w = win;
    win = new Window();
    const spanS = (performance.now() - started) / 1000;
    const lat = Float64Array.from(w.lat).sort();
    const sse = Float64Array.from(w.sse).sort();
    const loop = await eventLoop(gw.url).catch(() => ({ p99Ms: NaN, maxMs: NaN }));
    const rss = rssBytes(gw.pid) ?? NaN;
    const at = performance.now() - loadStart;
    const row = {
      atS: Math.round(at / 1000),
      rps: w.n / spanS,
      p99Ms: percentile(lat, 99),
      sseP99Ms: percentile(sse, 99),
      rssBytes: rss,
      loopP99Ms: loop.p99Ms,
      loopMaxMs: loop.maxMs,
      warm: at > WARMUP_MS,
    };
    intervals.push(row);
    say(
      `${String(row.atS).padStart(4)} ${row.rps.toFixed(0).padStart(7)} ${f1(row.p99Ms).padStart(8)} ` +
        `${f1(row.sseP99Ms).padStart(12)} ${mib(rss).padStart(9)} ${f1(row.loopP99Ms).padStart(13)} ` +
        `${f1(row.loopMaxMs).padStart(13)}${row.warm ? '' : '   (warm-up)'}`,
    );
    if (gw.child.exitCode !== null) throw new Error(`gateway exited during the soak\n${logTail(gw.child)}`);
  }
  stopping = true;
  await Promise.all(loops);
  clearInterval(rssTimer);
  const loadS = (performance.now() - loadStart) / 1000;

  // Intercepts: give the buffers a moment, then count.
  let rows = 0;
  const settleUntil = Date.now() + 15_000;
  await sleep(2000);
  for (;;) {
    rows = Number((await query('SELECT coalesce(sum(count), 0) AS n FROM intercept_logs'))[0].n);
    if (rows >= blocked403 || Date.now() > settleUntil) break;
    await sleep(500);
  }
  const lost = blocked403 - rows;

  // RSS drift: mean of the first 30 s after warm-up vs mean of the last 30 s.
  const post = rssSamples.filter((s) => s.t > WARMUP_MS);
  const firstWin = post.filter((s) => s.t <= WARMUP_MS + 30_000).map((s) => s.rss);
  const endT = post.length ? post[post.length - 1].t : 0;
  const lastWin = post.filter((s) => s.t >= endT - 30_000).map((s) => s.rss);
  const rssStart = mean(firstWin);
  const rssEnd = mean(lastWin);
  const driftPct = ((rssEnd - rssStart) / rssStart) * 100;

  const warm = intervals.filter((r) => r.warm);
  const judged = warm.length ? warm : intervals;
  const worstLoopP99 = Math.max(...judged.map((r) => r.loopP99Ms));
  const worstLoopMax = Math.max(...intervals.map((r) => r.loopMaxMs));
  const allSorted = Float64Array.from(allLat).sort();
  const wrong = {
    allowed: Object.entries(totals.allowed).filter(([s]) => s !== '200'),
    blocked: Object.entries(totals.blocked).filter(([s]) => s !== '403'),
    sse: Object.entries(totals.sse).filter(([s]) => s !== '200'),
    sseIncomplete: totals.sseIncomplete,
  };
  const wrongCount =
    [...wrong.allowed, ...wrong.blocked, ...wrong.sse].reduce((a, [, n]) => a + n, 0) + wrong.sseIncomplete;

  const exit = await stopChild(gw.child, 15_000).then(() => gw.child.exitCode);
  await stopChild(upstream.child, 5000);
  const rowsAfterExit = Number((await query('SELECT coalesce(sum(count), 0) AS n FROM intercept_logs'))[0].n);
  const usage = await query('SELECT coalesce(sum(request_count), 0) AS n FROM bindings');
  if (!KEEP_DB) {
    await query(`DROP DATABASE IF EXISTS "${DB_NAME}" WITH (FORCE)`, [], `${PG_BASE}/postgres`).catch(
      () => undefined,
    );
  }

  const summary = {
    date: new Date().toISOString(),
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${mib(os.totalmem())} MiB, Node ${process.version}`,
    durationS: Math.round(loadS),
    targetRate: RATE,
    clients: CLIENTS,
    throughputPerS: +(allLat.length / loadS + (totals.sse[200] ?? 0) / loadS).toFixed(1),
    p50Ms: +percentile(allSorted, 50).toFixed(2),
    p99Ms: +percentile(allSorted, 99).toFixed(2),
    rssAfterWarmupMiB: +mib(rssStart),
    rssEndMiB: +mib(rssEnd),
    rssDriftPct: +driftPct.toFixed(2),
    eventLoopP99MaxMs: +worstLoopP99.toFixed(2),
    eventLoopMaxMs: +worstLoopMax.toFixed(2),
    responses: totals,
    blocked403,
    interceptRows: rows,
    lostIntercepts: lost,
    interceptRowsAfterExit: rowsAfterExit,
    usageCounted: Number(usage[0].n),
    allowedCounted: (totals.allowed[200] ?? 0) + (totals.sse[200] ?? 0),
    gatewayExit: exit,
  };
  console.log('\nsoak summary');
  console.log(JSON.stringify(summary, null, 2));

  const failures = [];
  if (!(worstLoopP99 < LIMITS.eventLoopP99Ms)) {
    failures.push(
      `event-loop delay p99 reached ${f1(worstLoopP99)} ms (limit < ${LIMITS.eventLoopP99Ms} ms)`,
    );
  }
  if (!(driftPct <= LIMITS.rssDriftPct)) {
    failures.push(`RSS drifted ${f1(driftPct)} % after warm-up (limit ${LIMITS.rssDriftPct} %)`);
  }
  if (lost !== LIMITS.lostIntercepts) {
    failures.push(`${lost} intercepts lost: ${blocked403} blocked responses, ${rows} rows in PostgreSQL`);
  }
  if (wrongCount > 0) failures.push(`${wrongCount} wrong responses: ${JSON.stringify(wrong)}`);
  if (exit !== 0) failures.push(`gateway exited with ${exit} on SIGTERM`);
  for (const f of failures) console.error(`✗ FAIL: ${f}`);
  if (failures.length === 0) console.log('✓ soak passed');
  process.exit(failures.length ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
