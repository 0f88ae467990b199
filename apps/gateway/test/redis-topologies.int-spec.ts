import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream } from './support/downstream';
import { startGateway, waitFor, type GatewayProcess } from './support/gateway';
import { bearer, send, type Reply } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';
import { freePort } from './support/throwaway';
import { testPki } from './support/tls';
import { WebhookReceiver } from './support/webhook-receiver';

/**
 * docs/contract.md 12, docs/redis.md: KeyPin on a Sentinel-managed primary
 * and on a Redis Cluster, each a set of real `redis-server` processes on
 * spare loopback ports in a temporary directory (never the shared Redis).
 *
 * (a) Sentinel: a primary, a replica, three Sentinels; a steady load of
 *     first uses, allowed and refused requests while the primary is failed
 *     over, then killed; every refusal ends in PostgreSQL, answers keep
 *     coming, and a ban made afterwards is enforced (through the new primary).
 * (b) Sentinel over TLS: a TLS-only primary and Sentinel, the gateway with
 *     REDIS_SENTINEL_TLS and `rediss:`.
 * (c) Cluster: three primaries with a replica each; two gateways; bindings,
 *     a key policy's shared counters, the intercept and webhook queues
 *     (BullMQ under a hash-tagged prefix), pub/sub invalidation between the
 *     gateways, a manual failover of one primary under load, then that
 *     slot's primary killed under load.
 */

const HMAC_SECRET = 'integration-test-hmac-secret-0123456789abcdef';
const REDIS_SERVER = '/usr/bin/redis-server';
const REDIS_CLI = '/usr/bin/redis-cli';
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let keyN = 0;
const newKey = (tag: string) => `sk-${tag}${Date.now().toString(36)}x${++keyN}`;
const hashOf = (key: string) => createHmac('sha256', HMAC_SECRET).update(key.slice(3), 'utf8').digest('hex');

const figures: Record<string, unknown> = {};
afterAll(() => {
  console.log(`redis-topologies.int-spec figures: ${JSON.stringify(figures, null, 1)}`);
});

// ------------------------------------------------------------ redis processes

/** redis-server children of this file, stopped by PID in afterAll (and at exit). */
const children = new Map<number, ChildProcess>();
const tempDirs: string[] = [];
process.once('exit', () => {
  for (const c of children.values()) c.kill('SIGKILL');
});

afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `keypin-${label}-`));
  tempDirs.push(d);
  return d;
}

/** TLS to a node: the test CA's certificate (PEM text and file). */
interface TlsTo {
  caPem: string;
  caFile: string;
}

async function pongs(port: number, tls?: TlsTo): Promise<boolean> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    tls: tls ? { ca: tls.caPem } : undefined,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** Starts `redis-server` with `args` (a config file first, when any) and waits for PONG (over TLS with `tls`). */
async function startRedis(port: number, args: string[], tls?: TlsTo): Promise<ChildProcess> {
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  children.set(child.pid!, child);
  child.once('exit', () => children.delete(child.pid!));
  await waitFor(() => pongs(port, tls), 10_000, 50).catch(() => {
    throw new Error(`redis-server on ${port} did not start: ${err}`);
  });
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
}

/** A data node: no persistence, loopback only. */
const dataArgs = (port: number, dir: string) => [
  '--port',
  String(port),
  '--bind',
  '127.0.0.1',
  '--dir',
  dir,
  '--save',
  '',
  '--appendonly',
  'no',
  '--protected-mode',
  'no',
  '--maxmemory-policy',
  'noeviction',
  // A replica's full sync starts at once (Redis 7 waits 5 s for more replicas by default).
  '--repl-diskless-sync-delay',
  '0',
];

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], {
    timeout: 20_000,
  });
  return stdout.trim();
}

/** `cli` over TLS, trusting the test CA. */
async function tlsCli(tls: TlsTo, port: number, ...args: string[]): Promise<string> {
  return cli(port, '--tls', '--cacert', tls.caFile, ...args);
}

// ------------------------------------------------------------ load generator

interface Tally {
  total: number;
  byStatus: Map<string, number>;
  /** Refusals the clients were told of (403): each must be an intercept. */
  refused: number;
  /** Non-5xx answers (decisions made). */
  decided: number;
  serverErrors: number;
}

const newTally = (): Tally => ({ total: 0, byStatus: new Map(), refused: 0, decided: 0, serverErrors: 0 });

interface LoadPlan {
  gateways: GatewayProcess[];
  /** Keys bound from `from`: used from there (200) and from `refusedFrom` (403). */
  bound: { key: string; from: string }[];
  refusedFrom: string;
  /** First uses (a new key each time) come from here. */
  firstUseFrom: string;
}

/**
 * Clients that keep sending until `stop()`: allowed requests, refused ones
 * and first uses, spread over the gateways, counted per phase.
 */
function startLoad(plan: LoadPlan): {
  phases: Record<string, Tally>;
  setPhase(name: string): void;
  stop(): Promise<void>;
} {
  const phases: Record<string, Tally> = { before: newTally() };
  let phase = 'before';
  let running = true;
  const record = (r: Reply | Error) => {
    const t = phases[phase]!;
    t.total++;
    const s = r instanceof Error ? 'ERR' : String(r.status);
    t.byStatus.set(s, (t.byStatus.get(s) ?? 0) + 1);
    if (r instanceof Error || r.status >= 500) t.serverErrors++;
    else t.decided++;
    if (!(r instanceof Error) && r.status === 403) t.refused++;
  };
  let n = 0;
  const gwOf = () => plan.gateways[n++ % plan.gateways.length]!;
  const loop = async (pauseMs: number, pick: () => { from: string; key: string }) => {
    while (running) {
      const { from, key } = pick();
      try {
        record(await use(gwOf(), key, from));
      } catch (err) {
        record(err as Error);
      }
      await sleep(pauseMs);
    }
  };
  const loops = [
    ...plan.bound.map((b, i) => loop(5 + i, () => ({ from: b.from, key: b.key }))),
    ...plan.bound.map((b, i) => loop(5 + i, () => ({ from: plan.refusedFrom, key: b.key }))),
    loop(10, () => ({ from: plan.firstUseFrom, key: newKey('fu') })),
  ];
  return {
    phases,
    setPhase(name) {
      phase = name;
      phases[name] ??= newTally();
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

const totalOf = (phases: Record<string, Tally>, field: 'refused' | 'decided' | 'serverErrors' | 'total') =>
  Object.values(phases).reduce((sum, t) => sum + t[field], 0);

const summary = (phases: Record<string, Tally>) =>
  Object.fromEntries(
    Object.entries(phases).map(([k, t]) => [k, { total: t.total, ...Object.fromEntries(t.byStatus) }]),
  );

/**
 * Ends a failover test's load (1.5 s of an "after" phase) and checks what
 * each promises: decisions kept coming during `during` and after, no 5xx,
 * and every refusal a client saw is a recorded intercept, nothing lost with
 * the old primary.
 */
async function expectNothingLost(
  load: ReturnType<typeof startLoad>,
  label: string,
  during: string,
  databaseUrl: string,
  refusedFrom: string,
): Promise<void> {
  load.setPhase('after');
  await sleep(1500);
  await load.stop();
  figures[`${label}: answers by phase`] = summary(load.phases);
  expect(load.phases[during]!.decided).toBeGreaterThan(0);
  expect(load.phases['after']!.decided).toBeGreaterThan(0);
  expect(totalOf(load.phases, 'serverErrors')).toBe(0);
  const refused = totalOf(load.phases, 'refused');
  expect(refused).toBeGreaterThan(0);
  const recordedFrom = Date.now();
  figures[`${label}: refusals`] = await expectEveryRefusalRecorded(databaseUrl, refusedFrom, refused);
  figures[`${label}: waited for the refusals in PostgreSQL (ms)`] = Date.now() - recordedFrom;
}

/** Every refusal a client at `attemptIp` saw is one request counted in `intercept_logs` (rows may stand for several). */
async function expectEveryRefusalRecorded(
  databaseUrl: string,
  attemptIp: string,
  refused: number,
): Promise<number> {
  let stored = -1;
  try {
    await waitFor(
      async () => {
        const rows = await sql<{ n: string }>(
          databaseUrl,
          'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE attempt_ip = $1',
          [attemptIp],
        );
        stored = Number(rows[0]!.n);
        return stored >= refused;
      },
      30_000,
      200,
    );
  } catch {
    // reported below
  }
  expect(stored).toBe(refused);
  return stored;
}

async function bindingIdOf(databaseUrl: string, key: string): Promise<number> {
  const rows = await sql<{ id: string }>(
    databaseUrl,
    `SELECT id FROM bindings WHERE key_hash = decode($1, 'hex')`,
    [hashOf(key)],
  );
  if (!rows[0]) throw new Error('key not bound');
  return Number(rows[0].id);
}

const use = (gw: GatewayProcess, key: string, from: string) =>
  send(`${gw.url}/v1/models`, { from, headers: bearer(key) });

async function bindFrom(
  gw: GatewayProcess,
  databaseUrl: string,
  from: string,
): Promise<{ key: string; id: number }> {
  const key = newKey('b');
  const r = await use(gw, key, from);
  expect(r.status, r.body).toBe(200);
  return { key, id: await bindingIdOf(databaseUrl, key) };
}

/**
 * Binds three keys from 127.0.<net>.10–12 through the first gateway, then
 * starts the steady load on them (refusals from 127.0.<net+1>.1, first uses
 * from 127.0.<net+2>.1) and resolves after a second of it.
 */
async function loadOnBoundKeys(
  gateways: GatewayProcess[],
  databaseUrl: string,
  net: number,
): Promise<{ load: ReturnType<typeof startLoad>; refusedFrom: string }> {
  const bound: { key: string; from: string }[] = [];
  for (let i = 0; i < 3; i++) {
    const from = `127.0.${net}.${10 + i}`;
    bound.push({ key: (await bindFrom(gateways[0]!, databaseUrl, from)).key, from });
  }
  const refusedFrom = `127.0.${net + 1}.1`;
  const load = startLoad({ gateways, bound, refusedFrom, firstUseFrom: `127.0.${net + 2}.1` });
  await sleep(1000);
  return { load, refusedFrom };
}

// ================================================================== Sentinel

describe('Redis Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_NAME)', () => {
  const stores = freshStores('sentinel');
  const downstream = new FakeDownstream();
  const MASTER = 'keypin-primary';
  let primaryPort = 0;
  let replicaPort = 0;
  const sentinelPorts: number[] = [];
  /** The two data nodes by port. */
  const dataNodes = new Map<number, ChildProcess>();
  let gw: GatewayProcess | null = null;
  let admin: AdminClient;

  beforeAll(async () => {
    const dir = tempDir('sentinel');
    primaryPort = await freePort();
    replicaPort = await freePort();
    dataNodes.set(primaryPort, await startRedis(primaryPort, dataArgs(primaryPort, dir)));
    const replica = await startRedis(replicaPort, [
      ...dataArgs(replicaPort, dir),
      '--replicaof',
      '127.0.0.1',
      String(primaryPort),
    ]);
    dataNodes.set(replicaPort, replica);
    await waitFor(
      async () => (await cli(replicaPort, 'INFO', 'replication')).includes('master_link_status:up'),
      10_000,
      50,
    );
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      sentinelPorts.push(port);
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${MASTER} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${MASTER} 1000`,
          `sentinel failover-timeout ${MASTER} 5000`,
          `sentinel parallel-syncs ${MASTER} 1`,
          '',
        ].join('\n'),
      );
      await startRedis(port, [conf, '--sentinel']);
    }
    // Every Sentinel knows the replica and the other Sentinels.
    await waitFor(
      async () => {
        for (const p of sentinelPorts) {
          const replicas = await cli(p, 'SENTINEL', 'REPLICAS', MASTER);
          const quorum = await cli(p, 'SENTINEL', 'CKQUORUM', MASTER).catch(() => '');
          if (!replicas.includes(String(replicaPort)) || !quorum.startsWith('OK 3')) return false;
        }
        return true;
      },
      20_000,
      100,
    );

    await downstream.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      REDIS_SENTINEL_NAME: MASTER,
      // REDIS_URL's host is not used with Sentinels: point it nowhere.
      REDIS_URL: 'redis://127.0.0.1:1/0',
      DOWNSTREAM_URL: downstream.url,
      // A batch lost with the old primary (asynchronous replication) is
      // written directly after this long (docs/intercepts.md).
      INTERCEPT_RESCUE_MS: '2000',
      ...ADMIN_ENV,
    });
    admin = await AdminClient.login(gw.url);
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    for (const c of [...children.values()]) await stopChild(c);
    await dropStores(stores.dbName, stores.redisPrefix).catch(() => undefined);
  });

  it('is ready on the primary the Sentinels name', async () => {
    const r = await send(`${gw!.url}/ready`, { from: '127.0.0.250' });
    expect(r.status, r.body).toBe(200);
    expect(r.json()).toMatchObject({
      checks: { redis: 'ok' },
      redis_topology: `sentinel ${MASTER} (3 sentinels)`,
    });
    // The gateway's data is on the primary.
    const { key } = await bindFrom(gw!, stores.databaseUrl, '127.0.1.1');
    await waitFor(
      async () => (await cli(primaryPort, 'EXISTS', `${stores.redisPrefix}binding:${hashOf(key)}`)) === '1',
    );
  });

  it('fails the primary over under load: no refusal lost, decisions keep coming, a later ban is enforced', async () => {
    const { load, refusedFrom } = await loadOnBoundKeys([gw!], stores.databaseUrl, 2);

    load.setPhase('failover');
    const startedAt = Date.now();
    expect(await cli(sentinelPorts[0]!, 'SENTINEL', 'FAILOVER', MASTER)).toBe('OK');
    await waitFor(
      async () =>
        (await cli(sentinelPorts[1]!, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)).endsWith(
          String(replicaPort),
        ),
      15_000,
      50,
    );
    // The gateway's command client is on the new primary once it writes there.
    await waitFor(
      async () => {
        const probe = await bindFrom(gw!, stores.databaseUrl, '127.0.5.1');
        await sleep(50);
        return (
          (await cli(replicaPort, 'EXISTS', `${stores.redisPrefix}binding:${hashOf(probe.key)}`)) === '1'
        );
      },
      15_000,
      100,
    );
    figures['sentinel: failover until the gateway writes to the new primary (ms)'] = Date.now() - startedAt;

    await expectNothingLost(load, 'sentinel', 'failover', stores.databaseUrl, refusedFrom);

    // A ban made after the failover is enforced.
    const victim = await bindFrom(gw!, stores.databaseUrl, '127.0.6.1');
    expect((await admin.post('/admin/api/bindings/ban', { id: victim.id })).status).toBe(200);
    const ms = await waitFor(async () => (await use(gw!, victim.key, '127.0.6.1')).status === 403, 1000, 5);
    expect((await use(gw!, victim.key, '127.0.6.1')).json().error.code).toBe('key_banned');
    figures['sentinel: ban enforced after failover (ms)'] = ms;
    const ready = await send(`${gw!.url}/ready`, { from: '127.0.0.250' });
    expect(ready.status, ready.body).toBe(200);
    expect(ready.json().degraded).toEqual([]);
  });

  it('survives the primary being killed under load: the Sentinels promote the other node, nothing lost', async () => {
    // Whichever node is the primary now; the other replicates from it.
    const current = Number(
      (await cli(sentinelPorts[0]!, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)).split('\n')[1],
    );
    const survivor = current === primaryPort ? replicaPort : primaryPort;
    // A primary demoted by an earlier failover is reconfigured by the
    // Sentinels only after a while (about 10 s): do what they will do.
    if (!(await cli(survivor, 'INFO', 'replication')).includes(`master_port:${current}`)) {
      await cli(survivor, 'REPLICAOF', '127.0.0.1', String(current));
    }
    figures['sentinel (kill): waited for the other node to replicate (ms)'] = await waitFor(
      async () => (await cli(survivor, 'INFO', 'replication')).includes('master_link_status:up'),
      15_000,
      50,
    );
    const { load, refusedFrom } = await loadOnBoundKeys([gw!], stores.databaseUrl, 7);
    load.setPhase('killed');
    const killedAt = Date.now();
    await stopChild(dataNodes.get(current)!);
    await waitFor(
      async () =>
        (await cli(sentinelPorts[2]!, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)).endsWith(
          String(survivor),
        ),
      20_000,
      100,
    );
    figures['sentinel: kill until the Sentinels name a new primary (ms)'] = Date.now() - killedAt;
    await expectNothingLost(load, 'sentinel (kill)', 'killed', stores.databaseUrl, refusedFrom);
    // Back on the surviving node: a new binding is cached there.
    figures['sentinel (kill): then waited for a write on the survivor (ms)'] = await waitFor(
      async () => {
        const probe = await bindFrom(gw!, stores.databaseUrl, '127.0.5.2');
        await sleep(50);
        return (await cli(survivor, 'EXISTS', `${stores.redisPrefix}binding:${hashOf(probe.key)}`)) === '1';
      },
      15_000,
      100,
    );
  });
});

// =================================================================== Cluster

// ========================================================= Sentinel over TLS

describe('Redis Sentinel over TLS (REDIS_SENTINEL_TLS, rediss: in REDIS_URL)', () => {
  const stores = freshStores('sentineltls');
  const downstream = new FakeDownstream();
  const MASTER = 'keypin-tls';
  let primaryPort = 0;
  let sentinelPort = 0;
  let tls: TlsTo;
  let gw: GatewayProcess | null = null;

  beforeAll(async () => {
    const dir = tempDir('sentinel-tls');
    const pki = testPki();
    tls = { caPem: pki.caPem, caFile: join(dir, 'ca.pem') };
    writeFileSync(tls.caFile, pki.caPem);
    writeFileSync(join(dir, 'cert.pem'), pki.certPem);
    writeFileSync(join(dir, 'key.pem'), pki.keyPem);
    // TLS only: no plain port. Clients are not asked for certificates.
    const tlsConf = [
      `tls-cert-file ${join(dir, 'cert.pem')}`,
      `tls-key-file ${join(dir, 'key.pem')}`,
      `tls-ca-cert-file ${tls.caFile}`,
      'tls-auth-clients no',
      // The Sentinel reaches the primary over TLS too.
      'tls-replication yes',
    ];
    primaryPort = await freePort();
    const primaryConf = join(dir, 'primary.conf');
    writeFileSync(primaryConf, [...tlsConf, ''].join('\n'));
    await startRedis(primaryPort, [primaryConf, ...dataArgs(0, dir), '--tls-port', String(primaryPort)], tls);
    sentinelPort = await freePort();
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        'port 0',
        `tls-port ${sentinelPort}`,
        ...tlsConf,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${MASTER} 127.0.0.1 ${primaryPort} 1`,
        '',
      ].join('\n'),
    );
    await startRedis(sentinelPort, [conf, '--sentinel'], tls);
    await waitFor(
      async () => (await tlsCli(tls, sentinelPort, 'SENTINEL', 'MASTER', MASTER)).includes('master'),
      10_000,
      100,
    );

    await downstream.start();
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
      REDIS_SENTINEL_NAME: MASTER,
      REDIS_SENTINEL_TLS: 'true',
      // rediss: TLS to the data nodes; the host is not used with Sentinels.
      REDIS_URL: 'rediss://127.0.0.1:1/0',
      NODE_EXTRA_CA_CERTS: tls.caFile,
      DOWNSTREAM_URL: downstream.url,
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await downstream.stop();
    for (const c of [...children.values()]) await stopChild(c);
    await dropStores(stores.dbName, stores.redisPrefix).catch(() => undefined);
  });

  it('speaks TLS only: a plain client gets no answer from either node', async () => {
    expect(await pongs(sentinelPort, tls)).toBe(true);
    expect(await pongs(sentinelPort)).toBe(false);
    expect(await pongs(primaryPort)).toBe(false);
  });

  it('is ready through the Sentinel, binds with the binding cached on the primary, records a refusal', async () => {
    const ready = await send(`${gw!.url}/ready`, { from: '127.0.0.250' });
    expect(ready.status, ready.body).toBe(200);
    expect(ready.json()).toMatchObject({ redis_topology: `sentinel ${MASTER} (1 sentinel)`, degraded: [] });
    const { key } = await bindFrom(gw!, stores.databaseUrl, '127.0.20.1');
    await waitFor(
      async () =>
        (await tlsCli(tls, primaryPort, 'EXISTS', `${stores.redisPrefix}binding:${hashOf(key)}`)) === '1',
      5000,
      50,
    );
    const refused = await use(gw!, key, '127.0.20.2');
    expect(refused.status).toBe(403);
    await expectEveryRefusalRecorded(stores.databaseUrl, '127.0.20.2', 1);
  });
});

/**
 * The primary serving `slot` and its replica, from `CLUSTER NODES` on a live
 * node: "<id> <ip:port@cport> <flags> <primary id|-> … <slot ranges>".
 */
async function clusterPairOf(
  livePort: number,
  slot: number,
): Promise<{ primaryPort: number; replicaPort: number }> {
  const lines = (await cli(livePort, 'CLUSTER', 'NODES'))
    .split('\n')
    .map((l) => l.trim().split(' '))
    .filter((f) => f.length >= 8);
  const portOf = (f: string[]) => Number(f[1]!.split('@')[0]!.split(':')[1]);
  const serves = (f: string[]) =>
    f.slice(8).some((range) => {
      const [lo, hi = lo] = range.split('-').map(Number);
      return slot >= lo! && slot <= hi!;
    });
  const primary = lines.find((f) => f[2]!.includes('master') && !f[2]!.includes('fail') && serves(f));
  const replica = primary && lines.find((f) => f[2]!.includes('slave') && f[3] === primary[0]);
  if (!primary || !replica) throw new Error(`no primary with a replica serves slot ${slot}`);
  return { primaryPort: portOf(primary), replicaPort: portOf(replica) };
}

describe('Redis Cluster (REDIS_CLUSTER_NODES)', () => {
  const stores = freshStores('cluster');
  const downstream = new FakeDownstream();
  const receiver = new WebhookReceiver();
  const ports: number[] = [];
  /** The data nodes by port, to kill one. */
  const nodes = new Map<number, ChildProcess>();
  let gwA: GatewayProcess | null = null;
  let gwB: GatewayProcess | null = null;
  let admin: AdminClient;
  let probe: Cluster;
  const bullTag = `{${stores.redisPrefix}bull}`;

  beforeAll(async () => {
    const dir = tempDir('cluster');
    for (let i = 0; i < 6; i++) ports.push(await freePort());
    await Promise.all(
      ports.map(async (port) =>
        nodes.set(
          port,
          await startRedis(port, [
            ...dataArgs(port, dir),
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--cluster-node-timeout',
            '1500',
          ]),
        ),
      ),
    );
    await cli(
      ports[0]!,
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '1',
      '--cluster-yes',
    );
    await waitFor(
      async () => {
        for (const p of ports)
          if (!(await cli(p, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
        return true;
      },
      20_000,
      100,
    );
    probe = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));

    await downstream.start();
    await receiver.start();
    const env = {
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      // Two seed nodes are enough: the client discovers the rest.
      REDIS_CLUSTER_NODES: `127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`,
      REDIS_URL: 'redis://127.0.0.1:1/0',
      DOWNSTREAM_URL: downstream.url,
      ALERT_WEBHOOK_URL: receiver.url,
      ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
      ALERT_THRESHOLD_COUNT: '3',
      ALERT_THRESHOLD_SECONDS: '60',
      INTERCEPT_RESCUE_MS: '2000',
      ...ADMIN_ENV,
    };
    [gwA, gwB] = await Promise.all([startGateway(env), startGateway({ ...env, ROLE: 'gateway' })]);
    admin = await AdminClient.login(gwA.url);
  });

  afterAll(async () => {
    await Promise.all([gwA?.stop(), gwB?.stop()]);
    probe?.disconnect();
    await downstream.stop();
    await receiver.stop();
    for (const c of [...children.values()]) await stopChild(c);
    await dropStores(stores.dbName, stores.redisPrefix).catch(() => undefined);
  });

  it('is ready with every slot served', async () => {
    for (const gw of [gwA!, gwB!]) {
      const r = await send(`${gw.url}/ready`, { from: '127.0.0.250' });
      expect(r.status, r.body).toBe(200);
      expect(r.json()).toMatchObject({
        checks: { redis: 'ok' },
        redis_topology: 'cluster (2 seed nodes)',
        degraded: [],
      });
    }
  });

  it('binds, refuses, and caches bindings under hash-tagged keys', async () => {
    const { key } = await bindFrom(gwA!, stores.databaseUrl, '127.0.10.1');
    expect((await use(gwB!, key, '127.0.10.1')).status).toBe(200);
    const refused = await use(gwB!, key, '127.0.10.2');
    expect(refused.status).toBe(403);
    expect(refused.json().error.code).toBe('ip_not_allowed');
    await waitFor(
      async () => (await probe.exists(`${stores.redisPrefix}binding:{${hashOf(key)}}`)) === 1,
      2000,
    );
  });

  it('shares a key policy’s rate limit between the gateways (counters in one slot per key)', async () => {
    const { key, id } = await bindFrom(gwA!, stores.databaseUrl, '127.0.11.1');
    const r = await admin.put('/admin/api/bindings/policy', {
      id,
      policy: { rate_per_second: 0.2, burst: 3 },
    });
    expect(r.status, r.body).toBe(200);
    await sleep(1100); // enforced everywhere within 1 s
    const statuses: number[] = [];
    for (const gw of [gwA!, gwB!, gwA!, gwB!, gwA!]) statuses.push((await use(gw, key, '127.0.11.1')).status);
    // Three of five pass between the two gateways, as one would admit.
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(2);
    expect(await probe.exists(`${stores.redisPrefix}policy:{${id}}:bucket`)).toBe(1);
    for (const gw of [gwA!, gwB!]) {
      expect((await send(`${gw.url}/ready`, { from: '127.0.0.250' })).json().degraded).toEqual([]);
    }
  });

  it('carries intercepts and alert webhooks through BullMQ under a hash-tagged prefix', async () => {
    const { key, id } = await bindFrom(gwA!, stores.databaseUrl, '127.0.12.1');
    for (let i = 0; i < 4; i++) expect((await use(i % 2 ? gwB! : gwA!, key, '127.0.12.2')).status).toBe(403);
    await waitFor(
      async () => {
        const rows = await sql<{ n: string }>(
          stores.databaseUrl,
          'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE binding_id = $1',
          [id],
        );
        return Number(rows[0]!.n) === 4;
      },
      15_000,
      100,
    );
    await waitFor(() => receiver.deliveries.length > 0, 15_000, 100);
    // The queues' keys are in the cluster, all in the slot of the tag.
    expect(await probe.exists(`${bullTag}:intercepts:id`)).toBe(1);
    expect(await probe.exists(`${bullTag}:webhooks:id`)).toBe(1);
    const slot = await probe.cluster('KEYSLOT', `${bullTag}:intercepts:id`);
    expect(await probe.cluster('KEYSLOT', `${bullTag}:webhooks:wait`)).toBe(slot);
  });

  it('invalidates through pub/sub: a ban on one gateway is enforced by the other within 1 s', async () => {
    const { key, id } = await bindFrom(gwB!, stores.databaseUrl, '127.0.13.1');
    for (let i = 0; i < 3; i++) expect((await use(gwB!, key, '127.0.13.1')).status).toBe(200);
    // Both gateways listen on the cluster's binding channel.
    const channel = `${stores.redisPrefix}events:binding`;
    let listeners = 0;
    for (const node of probe.nodes('all')) {
      const [, n] = (await node.pubsub('NUMSUB', channel)) as [string, number];
      listeners += Number(n);
    }
    expect(listeners).toBe(2);
    const sub = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })));
    const heard: string[] = [];
    sub.on('message', (_c: string, m: string) => heard.push(m));
    await sub.subscribe(channel);
    try {
      expect((await admin.post('/admin/api/bindings/ban', { id })).status).toBe(200);
      const ms = await waitFor(async () => (await use(gwB!, key, '127.0.13.1')).status === 403, 1000, 5);
      figures['cluster: ban on A enforced by B (ms)'] = ms;
      await waitFor(() => heard.includes(hashOf(key)), 2000);
    } finally {
      sub.disconnect();
    }
  });

  it('fails a primary over under load: no refusal lost, decisions keep coming', async () => {
    const { load, refusedFrom } = await loadOnBoundKeys([gwA!, gwB!], stores.databaseUrl, 14);

    // Fail over the primary that holds the queues' slot: its replica takes over.
    load.setPhase('failover');
    const slot = Number(await probe.cluster('KEYSLOT', `${bullTag}:intercepts:id`));
    const primaryPort = Number(probe.slots[slot]![0]!.split(':')[1]);
    const primaryId = await cli(primaryPort, 'CLUSTER', 'MYID');
    // CLUSTER NODES: "<id> <ip:port@cport> <flags> <primary id> …"
    const replicaLine = (await cli(primaryPort, 'CLUSTER', 'NODES'))
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[2]?.includes('slave') && f[3] === primaryId);
    const replicaPort = Number(replicaLine![1]!.split('@')[0]!.split(':')[1]);
    const startedAt = Date.now();
    expect(await cli(replicaPort, 'CLUSTER', 'FAILOVER')).toBe('OK');
    await waitFor(async () => (await cli(replicaPort, 'ROLE')).startsWith('master'), 15_000, 50);
    figures['cluster: failover took (ms)'] = Date.now() - startedAt;
    await sleep(1000);
    await expectNothingLost(load, 'cluster', 'failover', stores.databaseUrl, refusedFrom);
  });

  it('survives a primary being killed under load: the cluster promotes its replica, nothing lost', async () => {
    // The primary that holds the queues' slot now, and the replica that follows it.
    const slot = Number(await probe.cluster('KEYSLOT', `${bullTag}:intercepts:id`));
    const { primaryPort, replicaPort } = await clusterPairOf(ports[0]!, slot);
    figures['cluster (kill): waited for the replica to be in sync (ms)'] = await waitFor(
      async () => (await cli(replicaPort, 'INFO', 'replication')).includes('master_link_status:up'),
      15_000,
      50,
    );
    const { load, refusedFrom } = await loadOnBoundKeys([gwA!, gwB!], stores.databaseUrl, 17);
    load.setPhase('killed');
    const killedAt = Date.now();
    await stopChild(nodes.get(primaryPort)!);
    await waitFor(async () => (await cli(replicaPort, 'ROLE')).startsWith('master'), 20_000, 50);
    figures['cluster: kill until the replica is primary (ms)'] = Date.now() - killedAt;
    await expectNothingLost(load, 'cluster (kill)', 'killed', stores.databaseUrl, refusedFrom);
  });

  it('logged no cross-slot error (every multi-key script and transaction stays in one slot)', () => {
    const warnings = new Map<string, number>();
    for (const line of [...gwA!.logs, ...gwB!.logs]) {
      if (Number(line['level'] ?? 0) < 40) continue;
      const text = `${String(line['msg'])} ${JSON.stringify(line['err'] ?? '')}`;
      warnings.set(text, (warnings.get(text) ?? 0) + 1);
    }
    figures['cluster: gateway warnings'] = Object.fromEntries(warnings);
    expect(gwA!.output() + gwB!.output()).not.toMatch(/CROSSSLOT|same slot/);
  });
});
