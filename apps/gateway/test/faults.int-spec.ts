import { createHmac } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, createServer, request as httpRequest, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess, type TestEnv } from './support/gateway';
import { send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import {
  freePort,
  startThrowawayPostgres,
  startThrowawayRedis,
  type ThrowawayPostgres,
  type ThrowawayRedis,
} from './support/throwaway';

/**
 * Store and downstream faults under a steady load.
 *
 * stores.int-spec.ts and intercepts.int-spec.ts check each outage with single
 * requests; here the same outages happen while several 127.0.0.N clients keep
 * sending keep-alive requests (allowed keys and blocked attempts), and every
 * response is counted per phase (before / down / after). At the end the
 * counts are held against PostgreSQL: one intercept row per 403, and
 * `request_count` equal to the 200s each key got.
 */

const HMAC_SECRET = 'faults-int-spec-hmac-secret-0123456789abcdef';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let keyN = 0;
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;
const hashOf = (key: string) => createHmac('sha256', HMAC_SECRET).update(key.slice(3), 'utf8').digest('hex');

/** Figures printed at the end of the file. */
const figures: Record<string, unknown> = {};
afterAll(() => {
  console.log(`faults.int-spec figures: ${JSON.stringify(figures, null, 1)}`);
});

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
  if (errors.length > 0) throw errors[0];
}

// ------------------------------------------------------------ load generator

type Category = 'allowed' | 'blocked';

interface Outcome {
  /** "200", "403", "502", … ; "ERR:<code>" for a transport error; "TRUNC:<status>" for a cut body. */
  status: string;
  body: string;
}

interface Choice {
  category: Category;
  key: string;
  path: string;
}

interface LoadOptions {
  /** Clients, each on its own source address 127.0.0.<firstHost + i>. */
  clients?: number;
  firstHost?: number;
  /** Pause between two requests of one client. */
  pauseMs?: number;
  /** Hard bound on requests per client. */
  maxPerClient?: number;
  /** Path for allowed request n of client i (default /v1/models). */
  allowedPath?: (client: number, n: number) => string;
  /** Stop a client at its first transport error (for SIGTERM). */
  stopOnError?: boolean;
}

interface Sent {
  phase: string;
  category: Category;
  sentAt: number;
  outcome?: Outcome;
}

/**
 * `clients` sequential keep-alive clients. Client i owns key i (bound from
 * its address before the load starts); every fourth request it tries the key
 * of client i+1 instead, which must be refused with 403.
 */
class Load {
  phase = 'before';
  readonly keys: string[] = [];
  readonly ips: string[] = [];
  /** phase → category → status → count */
  readonly tally: Record<string, Record<string, Record<string, number>>> = {};
  /** 200s per key (including the binding request). */
  readonly allowedPerKey = new Map<string, number>();
  readonly log: Sent[] = [];
  /** Unexpected outcomes, first 20, for the failure message. */
  readonly odd: string[] = [];
  /** phase → path → status → count (allowed requests only). */
  readonly byPath: Record<string, Record<string, Record<string, number>>> = {};
  blocked403 = 0;
  /**
   * Whether an outcome is right for a request of `category` sent in `phase`
   * (`body` is absent when only the tally is checked). Default: 200 for
   * allowed requests, 403 for blocked ones.
   */
  accepts: (phase: string, category: Category, status: string, body?: string) => boolean = (
    _phase,
    category,
    status,
  ) => status === (category === 'blocked' ? '403' : '200');
  private stopping = false;
  private loops: Promise<void>[] = [];
  private agents: Agent[] = [];
  private readonly o: Required<Omit<LoadOptions, 'allowedPath'>> & Pick<LoadOptions, 'allowedPath'>;

  constructor(
    private readonly base: () => string,
    opts: LoadOptions = {},
  ) {
    this.o = {
      clients: 6,
      firstHost: 10,
      pauseMs: 5,
      maxPerClient: 4000,
      stopOnError: false,
      ...opts,
    };
    for (let i = 0; i < this.o.clients; i++) {
      this.keys.push(newKey(`load${i}n`));
      this.ips.push(`127.0.0.${this.o.firstHost + i}`);
      this.agents.push(new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 }));
    }
  }

  /** Binds every client's key from its own address. */
  async bind(): Promise<void> {
    for (let i = 0; i < this.o.clients; i++) {
      const r = await this.one(i, { category: 'allowed', key: this.keys[i]!, path: '/v1/models' });
      expect(r.status, `binding request of client ${i}: ${r.body}`).toBe('200');
    }
  }

  start(): void {
    this.stopping = false;
    this.loops = this.keys.map((_, i) => this.loop(i));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  destroyAgents(): void {
    for (const a of this.agents) a.destroy();
  }

  /** Requests sent so far in a phase (any category). */
  count(phase: string, category?: Category): number {
    const p = this.tally[phase] ?? {};
    return Object.entries(p)
      .filter(([c]) => category === undefined || c === category)
      .reduce((a, [, m]) => a + Object.values(m).reduce((x, y) => x + y, 0), 0);
  }

  /** Outcomes of a category that are not right (`ok`, or else `accepts`), per phase. */
  wrong(category: Category, ok?: (status: string) => boolean): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [phase, cats] of Object.entries(this.tally)) {
      for (const [s, n] of Object.entries(cats[category] ?? {})) {
        const right = ok ? ok(s) : this.accepts(phase, category, s);
        if (!right) (out[phase] ??= {})[s] = n;
      }
    }
    return out;
  }

  private pick(i: number, n: number): Choice {
    if (n % 4 === 3) {
      return { category: 'blocked', key: this.keys[(i + 1) % this.keys.length]!, path: '/v1/models' };
    }
    return { category: 'allowed', key: this.keys[i]!, path: this.o.allowedPath?.(i, n) ?? '/v1/models' };
  }

  private async loop(i: number): Promise<void> {
    for (let n = 0; n < this.o.maxPerClient && !this.stopping; n++) {
      const r = await this.one(i, this.pick(i, n));
      if (this.o.stopOnError && r.status.startsWith('ERR:')) return;
      if (this.o.pauseMs > 0) await sleep(this.o.pauseMs);
    }
  }

  private one(i: number, p: Choice): Promise<Outcome> {
    const phase = this.phase;
    const entry: Sent = { phase, category: p.category, sentAt: performance.now() };
    this.log.push(entry);
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const done = (o: Outcome) => {
        if (settled) return;
        settled = true;
        entry.outcome = o;
        const byCat = ((this.tally[phase] ??= {})[p.category] ??= {});
        byCat[o.status] = (byCat[o.status] ?? 0) + 1;
        if (o.status === '403') this.blocked403++;
        if (p.category === 'allowed') {
          const m = ((this.byPath[phase] ??= {})[p.path] ??= {});
          m[o.status] = (m[o.status] ?? 0) + 1;
        }
        if (o.status === '200' && p.category === 'allowed') {
          this.allowedPerKey.set(p.key, (this.allowedPerKey.get(p.key) ?? 0) + 1);
        }
        if (!this.accepts(phase, p.category, o.status, o.body) && this.odd.length < 20) {
          this.odd.push(`${phase}/${p.category} ${p.path}: ${o.status} ${o.body.slice(0, 160)}`);
        }
        resolve(o);
      };
      const u = new URL(this.base());
      const req = httpRequest({
        host: u.hostname,
        port: u.port,
        path: p.path,
        method: 'GET',
        agent: this.agents[i],
        localAddress: this.ips[i],
        // The phase travels with the request, so the downstream's log shows
        // what was forwarded when.
        headers: { authorization: `Bearer ${p.key}`, 'x-load-phase': phase },
      });
      req.setTimeout(15_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          done({ status: String(res.statusCode), body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('close', () => {
          if (!res.complete) {
            done({ status: `TRUNC:${res.statusCode}`, body: Buffer.concat(chunks).toString('utf8') });
          }
        });
        res.on('error', () => undefined);
      });
      req.on('error', (err: NodeJS.ErrnoException) =>
        done({ status: `ERR:${err.code ?? err.message}`, body: '' }),
      );
      req.end();
    });
  }
}

const is403 = (s: string) => s === '403';

/** Every request got the answer `load.accepts` (by default: allowed 200, blocked 403). */
function expectEveryAnswerRight(load: Load): void {
  expect({
    allowed: load.wrong('allowed'),
    blocked: load.wrong('blocked'),
    odd: load.odd,
  }).toEqual({ allowed: {}, blocked: {}, odd: [] });
}

const ready = (gw: GatewayProcess) => send(`${gw.url}/ready`, { from: '127.0.0.2' });

/** Refused requests stored: the sum of the intercept records' counts. */
async function interceptRows(databaseUrl: string): Promise<number> {
  const rows = await sql<{ n: string }>(
    databaseUrl,
    'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs',
  );
  return Number(rows[0]!.n);
}

async function requestCounts(databaseUrl: string, keys: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const key of keys) {
    const rows = await sql<{ request_count: string }>(
      databaseUrl,
      `SELECT request_count FROM bindings WHERE key_hash = decode($1, 'hex')`,
      [hashOf(key)],
    );
    out.set(key, rows[0] ? Number(rows[0].request_count) : -1);
  }
  return out;
}

/** Waits until PostgreSQL counts one intercept per 403 (sum of counts) and each key's request_count equals its 200s. */
async function expectNothingLost(databaseUrl: string, load: Load, timeoutMs = 30_000): Promise<void> {
  const want = Object.fromEntries(load.keys.map((k) => [k, load.allowedPerKey.get(k) ?? 0]));
  let rows = -1;
  let counts: Record<string, number> = {};
  try {
    await waitFor(
      async () => {
        rows = await interceptRows(databaseUrl);
        counts = Object.fromEntries(await requestCounts(databaseUrl, load.keys));
        return rows >= load.blocked403 && load.keys.every((k) => (counts[k] ?? 0) >= want[k]!);
      },
      timeoutMs,
      250,
    );
  } catch {
    // fall through to the exact comparison, which reports the numbers
  }
  // Nothing arrives twice either: settle, then compare exactly.
  await sleep(1000);
  rows = await interceptRows(databaseUrl);
  counts = Object.fromEntries(await requestCounts(databaseUrl, load.keys));
  expect({ interceptRows: rows, requestCounts: counts }).toEqual({
    interceptRows: load.blocked403,
    requestCounts: want,
  });
}

/**
 * Sends a request with a never-seen key every 200 ms for `ms`, from `from`,
 * and reports each answer and how many of them reached the downstream.
 */
async function probeUnknownKeys(
  g: GatewayProcess,
  downstream: FakeDownstream,
  from: string,
  tag: string,
  ms = 4000,
): Promise<{ answers: { status: number; code: string | undefined }[]; forwarded: number }> {
  const answers: { status: number; code: string | undefined }[] = [];
  let forwarded = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const seen = downstream.seen.length;
    const r = await send(`${g.url}/v1/models`, {
      from,
      headers: { authorization: `Bearer ${newKey(tag)}`, 'x-probe': 'unknown' },
    });
    let code: string | undefined;
    try {
      code = r.json().error?.code;
    } catch {
      code = undefined;
    }
    answers.push({ status: r.status, code });
    forwarded += downstream.seen.slice(seen).filter((x) => x.headers['x-probe'] === 'unknown').length;
    await sleep(200);
  }
  return { answers, forwarded };
}

const gatewayEnv = (extra: TestEnv): TestEnv => ({ HMAC_SECRET, ...extra });

// ------------------------------------------------------------------ a. Redis

describe('Redis stopped and started again under load', () => {
  const stores = freshStores('faults_redis');
  const downstream = new FakeDownstream();
  let redis: ThrowawayRedis | undefined;
  let gw: GatewayProcess | undefined;

  beforeAll(async () => {
    await downstream.start();
    redis = await startThrowawayRedis();
    gw = await startGateway(
      gatewayEnv({
        DATABASE_URL: stores.databaseUrl,
        REDIS_URL: redis.url,
        REDIS_PREFIX: stores.redisPrefix,
        DOWNSTREAM_URL: downstream.url,
        INTERCEPT_RESCUE_MS: '2000',
        // Entries go stale quickly, so the outage is felt by the refresh path too.
        CACHE_TTL_SECONDS: '1',
      }),
    );
  });

  afterAll(() =>
    cleanup(
      async () => {
        if (redis && !redis.running) await redis.start();
      },
      () => gw?.stop('SIGTERM', 15_000),
      () => downstream.stop(),
      () => redis?.destroy(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  it('keeps allowing and refusing, loses no intercept or usage, and reconnects by itself', async () => {
    const g = gw!;
    const load = new Load(() => g.url, { firstHost: 10 });
    await load.bind();
    load.start();
    let readyMs = -1;
    try {
      await sleep(1500);
      load.phase = 'down';
      await redis!.stop();
      await sleep(1500);
      const notReady = await ready(g);
      await sleep(2500);
      await redis!.start();
      load.phase = 'after';
      readyMs = await waitFor(async () => (await ready(g)).status === 200, 20_000, 100);
      await sleep(2000);
      expect(notReady.status).toBe(503);
      expect(notReady.json().checks).toEqual({ redis: 'down', postgres: 'ok' });
    } finally {
      await load.stop();
      load.destroyAgents();
    }
    figures['redis: requests per phase'] = {
      before: load.count('before'),
      down: load.count('down'),
      after: load.count('after'),
    };
    figures['redis: /ready 200 again after restart (ms)'] = readyMs;
    figures['redis: blocked responses'] = load.blocked403;

    expect(load.count('down', 'allowed')).toBeGreaterThan(50);
    expect(load.count('down', 'blocked')).toBeGreaterThan(10);
    expect(load.count('after', 'allowed')).toBeGreaterThan(50);
    expectEveryAnswerRight(load);
    await expectNothingLost(stores.databaseUrl, load);
  });
});

// ------------------------------------------------------------- b. PostgreSQL

/**
 * A gateway over its own throwaway PostgreSQL cluster (so the test may stop
 * it), with short cache entries so they go stale during the outage.
 * Registers the suite's beforeAll / afterAll; the getters are valid inside
 * tests.
 */
function withThrowawayPostgres(name: string, failsafe: 'closed' | 'open') {
  const stores = freshStores(name); // Redis prefix only: PostgreSQL is a throwaway
  const downstream = new FakeDownstream();
  let pgServer: ThrowawayPostgres | undefined;
  let gateway: GatewayProcess | undefined;
  const db = () => `${pgServer!.url}/keypin`;

  beforeAll(async () => {
    await downstream.start();
    pgServer = await startThrowawayPostgres();
    gateway = await startGateway(
      gatewayEnv({
        DATABASE_URL: db(),
        REDIS_PREFIX: stores.redisPrefix,
        DOWNSTREAM_URL: downstream.url,
        FAILSAFE_MODE: failsafe,
        INTERCEPT_RESCUE_MS: '2000',
        CACHE_TTL_SECONDS: '1',
      }),
    );
  });

  afterAll(() =>
    cleanup(
      async () => {
        if (pgServer && !pgServer.running) await pgServer.start();
      },
      () => gateway?.stop('SIGTERM', 15_000),
      () => downstream.stop(),
      () => pgServer?.destroy(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  return { downstream, pg: () => pgServer!, gw: () => gateway!, db };
}

describe('PostgreSQL stopped and started again under load (FAILSAFE_MODE=closed)', () => {
  const { downstream, pg, gw, db } = withThrowawayPostgres('faults_pg', 'closed');

  it('cached keys keep their decisions, unknown keys get 503, nothing written meanwhile is lost', async () => {
    const g = gw();
    const load = new Load(() => g.url, { firstHost: 20 });
    await load.bind();
    load.start();
    const unknown: { status: number; code: string | undefined }[] = [];
    let forwardedUnknown = 0;
    let readyMs = -1;
    let notReadyStatus = 0;
    try {
      await sleep(1500);
      load.phase = 'down';
      await pg().stop();
      const probe = await probeUnknownKeys(g, downstream, '127.0.0.40', 'pgunknown');
      unknown.push(...probe.answers);
      forwardedUnknown = probe.forwarded;
      notReadyStatus = (await ready(g)).status;
      await pg().start();
      load.phase = 'after';
      readyMs = await waitFor(async () => (await ready(g)).status === 200, 20_000, 100);
      await sleep(2000);
    } finally {
      await load.stop();
      load.destroyAgents();
    }
    figures['postgres: requests per phase'] = {
      before: load.count('before'),
      down: load.count('down'),
      after: load.count('after'),
    };
    figures['postgres: /ready 200 again after restart (ms)'] = readyMs;
    figures['postgres: unknown-key probes while down'] = unknown.length;
    figures['postgres: blocked responses'] = load.blocked403;

    expect(notReadyStatus).toBe(503);
    expect(unknown.length).toBeGreaterThan(5);
    expect(unknown.filter((u) => u.status !== 503 || u.code !== 'binding_store_unavailable')).toEqual([]);
    expect(forwardedUnknown).toBe(0);
    expect(load.count('down', 'allowed')).toBeGreaterThan(50);
    expect(load.count('down', 'blocked')).toBeGreaterThan(10);
    expectEveryAnswerRight(load);
    await expectNothingLost(db(), load);
  });
});

// ------------------------------------------- b1. PostgreSQL down, fail-open

describe('PostgreSQL stopped under load with FAILSAFE_MODE=open', () => {
  const { downstream, pg, gw, db } = withThrowawayPostgres('faults_pgopen', 'open');

  it('forwards unknown keys (counted failsafe_open) while cached keys keep their decisions, and loses nothing', async () => {
    const g = gw();
    const load = new Load(() => g.url, { firstHost: 90 });
    await load.bind();
    load.start();
    const unknown: number[] = [];
    let forwardedUnknown = 0;
    try {
      await sleep(1500);
      load.phase = 'down';
      await pg().stop();
      const probe = await probeUnknownKeys(g, downstream, '127.0.0.110', 'openunknown');
      unknown.push(...probe.answers.map((a) => a.status));
      forwardedUnknown = probe.forwarded;
      await pg().start();
      load.phase = 'after';
      await waitFor(async () => (await ready(g)).status === 200, 20_000, 100);
      await sleep(2000);
    } finally {
      await load.stop();
      load.destroyAgents();
    }
    figures['postgres down, fail-open: unknown-key probes'] = unknown.length;
    expect(unknown.length).toBeGreaterThan(5);
    expect(unknown.filter((st) => st !== 200)).toEqual([]);
    expect(forwardedUnknown).toBe(unknown.length);
    const metrics = (await send(`${g.url}/metrics`, { from: '127.0.0.2' })).body;
    const failsafeOpen = Number(
      /keypin_requests_total\{decision="failsafe_open"\} (\d+)/.exec(metrics)?.[1] ?? 0,
    );
    expect(failsafeOpen).toBeGreaterThanOrEqual(unknown.length);
    expectEveryAnswerRight(load);
    await expectNothingLost(db(), load);
  });
});

// ---------------------------------------------------- b2. both stores down

describe('PostgreSQL and Redis both stopped under load (FAILSAFE_MODE=closed)', () => {
  const stores = freshStores('faults_both');
  const downstream = new FakeDownstream();
  const spoolDir = mkdtempSync(join(tmpdir(), 'keypin-spool-'));
  let pg: ThrowawayPostgres | undefined;
  let redis: ThrowawayRedis | undefined;
  let gw: GatewayProcess | undefined;
  const db = () => `${pg!.url}/keypin`;

  beforeAll(async () => {
    await downstream.start();
    pg = await startThrowawayPostgres();
    redis = await startThrowawayRedis();
    gw = await startGateway(
      gatewayEnv({
        DATABASE_URL: db(),
        REDIS_URL: redis.url,
        REDIS_PREFIX: stores.redisPrefix,
        DOWNSTREAM_URL: downstream.url,
        FAILSAFE_MODE: 'closed',
        INTERCEPT_RESCUE_MS: '2000',
        CACHE_TTL_SECONDS: '1',
        SPOOL_DIR: spoolDir,
      }),
    );
  });

  afterAll(() =>
    cleanup(
      async () => {
        if (pg && !pg.running) await pg.start();
      },
      async () => {
        if (redis && !redis.running) await redis.start();
      },
      () => gw?.stop('SIGTERM', 15_000),
      () => downstream.stop(),
      () => pg?.destroy(),
      () => redis?.destroy(),
      () => dropStores(stores.dbName, stores.redisPrefix),
      () => Promise.resolve(rmSync(spoolDir, { recursive: true, force: true })),
    ),
  );

  it('answers every request 503 once its cache entry is due, forwards none, and spools what it cannot write', async () => {
    const g = gw!;
    const load = new Load(() => g.url, { firstHost: 60 });
    const unavailable = (status: string, body?: string) =>
      status === '503' && (body === undefined || body.includes('"binding_store_unavailable"'));
    // `stale`: the first 2 s of the outage, while the in-process entries
    // (CACHE_TTL_SECONDS=1) are still fresh or their first refresh is
    // failing: their own decision or 503. `down`: nothing can confirm any
    // key, every request 503. `recovering`: the stores are starting again.
    load.accepts = (phase, category, status, body) => {
      const own = status === (category === 'blocked' ? '403' : '200');
      if (phase === 'down') return unavailable(status, body);
      if (phase === 'stale' || phase === 'recovering') return own || unavailable(status, body);
      return own;
    };
    await load.bind();
    load.start();
    const unknown: { status: number; code: string | undefined }[] = [];
    let forwardedUnknown = 0;
    try {
      await sleep(1500);
      load.phase = 'stale';
      await Promise.all([pg!.stop(), redis!.stop()]);
      await sleep(2000);
      load.phase = 'down';
      const probe = await probeUnknownKeys(g, downstream, '127.0.0.80', 'bothunknown');
      unknown.push(...probe.answers);
      forwardedUnknown = probe.forwarded;
      load.phase = 'recovering';
      await Promise.all([pg!.start(), redis!.start()]);
      await waitFor(async () => (await ready(g)).status === 200, 20_000, 100);
      load.phase = 'after';
      await sleep(2000);
    } finally {
      await load.stop();
      load.destroyAgents();
    }
    figures['both down: requests per phase'] = {
      before: load.count('before'),
      stale: load.count('stale'),
      down: load.count('down'),
      recovering: load.count('recovering'),
      after: load.count('after'),
    };
    figures['both down: answers while stale'] = load.tally['stale'];
    figures['both down: unknown-key probes'] = unknown.length;

    expect(unknown.length).toBeGreaterThan(5);
    expect(unknown.filter((u) => u.status !== 503 || u.code !== 'binding_store_unavailable')).toEqual([]);
    expect(forwardedUnknown).toBe(0);
    // FAILSAFE_MODE=closed: once no store can confirm a key, every request
    // is refused and none is forwarded.
    expect(load.count('down')).toBeGreaterThan(100);
    expect(downstream.seen.filter((r) => r.headers['x-load-phase'] === 'down')).toEqual([]);
    expect(load.count('after', 'allowed')).toBeGreaterThan(50);
    expectEveryAnswerRight(load);
    // Intercepts made while both were down (403s from entries still fresh)
    // went to the disk spool and were replayed: every one is in PostgreSQL,
    // and the spool is empty again.
    if ((load.tally['stale']?.['blocked']?.['403'] ?? 0) > 0) {
      expect(g.logs.some((l) => l['msg'] === 'intercepts spooled to local disk')).toBe(true);
    }
    await expectNothingLost(db(), load);
    await waitFor(
      () =>
        readdirSync(join(spoolDir, 'intercepts'), { recursive: true, encoding: 'utf8' }).filter((f) =>
          f.endsWith('.json'),
        ).length === 0,
      10_000,
    );
  });
});

// ------------------------------------------------------------- c. downstream

/** Open file descriptors of a process (sockets included). */
const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const rssOf = (pid: number) => {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
};

/**
 * A downstream on a fixed port that can be stopped and started again:
 *   /v1/models  JSON at once
 *   /slow       headers after 2 s (past DOWNSTREAM_HEADERS_TIMEOUT_MS)
 *   /cut        head and part of a chunked body, then the socket is destroyed
 *   /stall      head and part of a body, then silence (past DOWNSTREAM_BODY_TIMEOUT_MS)
 */
class FaultyDownstream {
  port = 0;
  private server: Server | null = null;
  private sockets = new Set<Socket>();

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const server = createServer((req, res) => {
      req.resume();
      switch (req.url) {
        case '/slow': {
          const t = setTimeout(() => res.end('{"late":true}'), 2000);
          res.on('close', () => clearTimeout(t));
          return;
        }
        case '/cut':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('partial answer');
          setTimeout(() => res.socket?.destroy(), 30);
          return;
        case '/stall':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: 1\n\n');
          return;
        default:
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"ok":true}');
      }
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((r) => s.close(() => r()));
  }
}

describe('downstream stopped, slow and closing connections under load', () => {
  const stores = freshStores('faults_down');
  const down = new FaultyDownstream();
  let gw: GatewayProcess | undefined;

  beforeAll(async () => {
    await down.start();
    gw = await startGateway(
      gatewayEnv({
        DATABASE_URL: stores.databaseUrl,
        REDIS_PREFIX: stores.redisPrefix,
        DOWNSTREAM_URL: down.url,
        DOWNSTREAM_HEADERS_TIMEOUT_MS: '500',
        DOWNSTREAM_BODY_TIMEOUT_MS: '500',
        DOWNSTREAM_CONNECT_TIMEOUT_MS: '1000',
      }),
    );
  });

  afterAll(() =>
    cleanup(
      () => gw?.stop('SIGTERM', 15_000),
      () => down.stop(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  it('answers clean 502/504, cuts broken bodies, leaks no socket and keeps memory flat', async () => {
    const g = gw!;
    // Warm-up with a healthy downstream, then the baseline.
    const warm = new Load(() => g.url, { firstHost: 50 });
    await warm.bind();
    warm.start();
    await sleep(2000);
    await warm.stop();
    warm.destroyAgents();
    expect(warm.odd).toEqual([]);
    await sleep(500);
    const fdBase = fdCount(g.pid);
    const rssBase = rssOf(g.pid);

    // Faults: every allowed request of a client goes to one faulty path.
    let mode: 'healthy' | 'faulty' = 'faulty';
    const paths = ['/slow', '/cut', '/stall', '/v1/models', '/slow', '/cut'];
    const load = new Load(() => g.url, {
      firstHost: 60,
      allowedPath: (i) => (mode === 'faulty' ? paths[i]! : '/v1/models'),
    });
    await load.bind();
    load.phase = 'faulty';
    load.start();
    try {
      await sleep(4000);
      load.phase = 'stopped';
      await down.stop();
      await sleep(2500);
      await down.start();
      mode = 'healthy';
      load.phase = 'recovered';
      await sleep(2500);
    } finally {
      await load.stop();
      load.destroyAgents();
    }

    const t = load.tally;
    figures['downstream: outcomes per phase'] = t;
    figures['downstream: allowed outcomes per phase and path'] = load.byPath;
    figures['downstream: distinct gateway warnings'] = [
      ...new Set(
        g.logs
          .filter((l) => typeof l['level'] === 'number' && l['level'] >= 40)
          .map((l) => JSON.stringify([l['msg'], l['err'], l['code']])),
      ),
    ].slice(0, 20);
    // Blocked attempts are refused whatever the downstream does.
    expect(load.wrong('blocked', is403)).toEqual({});
    // Every allowed outcome is one of: 200, 200 cut short (the downstream cut it), 502, 504.
    const allowed = load.wrong('allowed', (s) => ['200', 'TRUNC:200', '502', '504'].includes(s));
    expect(allowed).toEqual({});
    expect(t['faulty']?.['allowed']?.['504'] ?? 0).toBeGreaterThan(0);
    expect(t['faulty']?.['allowed']?.['TRUNC:200'] ?? 0).toBeGreaterThan(0);
    expect(t['stopped']?.['allowed']?.['502'] ?? 0).toBeGreaterThan(0);
    expect(t['recovered']?.['allowed']?.['200'] ?? 0).toBeGreaterThan(20);
    expect(Object.keys(t['recovered']?.['allowed'] ?? {})).toEqual(['200']);
    // The error bodies are the contract's shape.
    const errBodies = load.log.filter((e) => e.outcome && ['502', '504'].includes(e.outcome.status));
    for (const e of errBodies.slice(0, 50)) {
      const body = JSON.parse(e.outcome!.body) as { error: Record<string, unknown> };
      expect(body.error).toEqual({
        type: 'keypin_error',
        code: e.outcome!.status === '502' ? 'bad_gateway' : 'gateway_timeout',
        message: expect.any(String),
      });
    }

    // Sockets: back to the baseline once the clients are gone (small slack for pool churn).
    let fdAfter = fdCount(g.pid);
    try {
      await waitFor(() => (fdAfter = fdCount(g.pid)) <= fdBase + 6, 8000, 200);
    } catch {
      // reported below
    }
    const rssAfter = rssOf(g.pid);
    figures['downstream: gateway fds before/after'] = [fdBase, fdAfter];
    figures['downstream: gateway RSS MiB before/after'] = [
      +(rssBase / 2 ** 20).toFixed(1),
      +(rssAfter / 2 ** 20).toFixed(1),
    ];
    expect(fdAfter).toBeLessThanOrEqual(fdBase + 6);
    expect(rssAfter - rssBase).toBeLessThan(40 * 2 ** 20);
  });
});

// ---------------------------------------------------------------- d. SIGTERM

describe('SIGTERM under load', () => {
  const stores = freshStores('faults_term');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess | undefined;
  const GRACE_MS = 5000;

  beforeAll(async () => {
    await downstream.start();
    // Every forwarded request takes 150 ms, so some are always in flight.
    downstream.route = (req, res) => {
      req.resume();
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      }, 150);
    };
    gw = await startGateway(
      gatewayEnv({
        DATABASE_URL: stores.databaseUrl,
        REDIS_PREFIX: stores.redisPrefix,
        DOWNSTREAM_URL: downstream.url,
        SHUTDOWN_GRACE_MS: String(GRACE_MS),
      }),
    );
  });

  afterAll(() =>
    cleanup(
      () => gw?.stop('SIGKILL', 5000),
      () => downstream.stop(),
      () => dropStores(stores.dbName, stores.redisPrefix),
    ),
  );

  it('finishes in-flight requests, flushes every record and exits 0 within SHUTDOWN_GRACE_MS', async () => {
    const g = gw!;
    const load = new Load(() => g.url, { firstHost: 70, pauseMs: 2, stopOnError: true });
    await load.bind();
    load.start();
    await sleep(2000);
    const signalledAt = performance.now();
    load.phase = 'after-signal';
    process.kill(g.pid, 'SIGTERM');
    const code = await g.exited;
    const exitMs = performance.now() - signalledAt;
    await load.stop();
    load.destroyAgents();

    // Requests sent before the signal: every one answered properly.
    const before = load.log.filter((e) => e.sentAt < signalledAt);
    const inFlight = before.filter((e) => e.outcome === undefined || e.sentAt > signalledAt - 200);
    const badBefore = before.filter((e) => e.outcome?.status !== (e.category === 'blocked' ? '403' : '200'));
    // Requests sent after it: refused connections are fine, a 5xx or a cut body is not.
    const after = load.log.filter((e) => e.sentAt >= signalledAt);
    const badAfter = after.filter((e) => {
      const s = e.outcome?.status ?? 'none';
      return !(s === '200' || s === '403' || s.startsWith('ERR:'));
    });
    figures['sigterm: requests before signal / in the last 200 ms before it / after'] = [
      before.length,
      inFlight.length,
      after.length,
    ];
    figures['sigterm: exit code, ms after SIGTERM'] = [code, Math.round(exitMs)];
    figures['sigterm: blocked responses'] = load.blocked403;

    expect(
      badBefore.map((e) => `${e.category}: ${e.outcome?.status} ${e.outcome?.body.slice(0, 120)}`),
    ).toEqual([]);
    expect(badAfter.map((e) => `${e.category}: ${e.outcome?.status}`)).toEqual([]);
    expect(code).toBe(0);
    expect(exitMs).toBeLessThan(GRACE_MS);
    // Flushed by the exit: no second process needed to find the rows.
    await expectNothingLost(stores.databaseUrl, load, 3000);
  });
});
