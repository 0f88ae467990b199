import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV, AdminClient } from './support/admin-client';
import { FakeDownstream, slowStreamRoute } from './support/downstream';
import { type GatewayProcess, startGateway, waitFor } from './support/gateway';
import { bearer, send } from './support/http-client';
import { dropStores, freshStores, sql } from './support/stores';

/**
 * WORKERS=2 (docs/contract.md 12, docs/workers.md): a supervisor, two
 * serving processes on one port and one background process. Every request
 * below opens its own connection, so the kernel (or the supervisor) spreads
 * them over both serving processes.
 */

const CHUNK = 'keypin-workers-'.repeat(512);
const CHUNKS = 8;
const CHUNK_MS = 150;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pids of `pid`'s children. */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

/**
 * The pid (among `pids`) whose socket is the server end of the connection
 * from client port `clientPort` to `serverPort`: /proc/net/tcp names the
 * socket's inode, /proc/<pid>/fd who holds it.
 */
function socketOwner(serverPort: number, clientPort: number, pids: number[]): number {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  const line = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[1]?.endsWith(`:${hex(serverPort)}`) && f[2]?.endsWith(`:${hex(clientPort)}`));
  if (line === undefined) throw new Error(`no server socket for client port ${clientPort}`);
  const inode = `socket:[${line[9]}]`;
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === inode) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  throw new Error(`no process holds ${inode}`);
}

/** One kept-alive connection from `from`, for requests that must reach the same process. */
class KeptConnection {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  localPort = 0;
  owner = 0;

  constructor(
    private readonly base: string,
    private readonly from: string,
    private readonly headers: Record<string, string>,
  ) {}

  get(path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const u = new URL(path, this.base);
      const req = request({
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        localAddress: this.from,
        agent: this.agent,
        headers: this.headers,
      });
      req.on('socket', (s) => {
        const note = () => (this.localPort = s.localPort ?? 0);
        if (s.localPort) note();
        else s.once('connect', note);
      });
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function metricValue(text: string, line: string): number {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

describe('WORKERS=2: one port, two serving processes, background work apart', () => {
  const stores = freshStores('workers');
  const downstream = new FakeDownstream();
  let gw: GatewayProcess;
  let admin: AdminClient;
  let n = 0;
  const tag = () => `${Date.now().toString(36)}w${++n}`;

  /** The "listening" lines so far: one per serving process started. */
  const listening = () => gw.logs.filter((l) => l['msg'] === 'listening');

  beforeAll(async () => {
    await downstream.start();
    downstream.route = slowStreamRoute(CHUNK, CHUNKS, CHUNK_MS);
    gw = await startGateway(
      {
        DATABASE_URL: stores.databaseUrl,
        REDIS_PREFIX: stores.redisPrefix,
        DOWNSTREAM_URL: downstream.url,
        WORKERS: '2',
        BIND_IPV4_PREFIX: '32',
        SHUTDOWN_GRACE_MS: '15000',
        ...ADMIN_ENV,
      },
      60_000,
    );
    await waitFor(
      () => gw.logs.some((l) => l['msg'] === 'supervisor started') && listening().length === 2,
      60_000,
      50,
    );
    admin = await AdminClient.login(gw.url);
  }, 90_000);

  afterAll(async () => {
    const kids = gw ? childrenOf(gw.pid) : [];
    await gw?.stop('SIGKILL');
    for (const pid of kids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
  });

  it('runs a supervisor with two serving processes on one port and one background process', () => {
    const serving = listening();
    expect(new Set(serving.map((l) => l['pid'])).size).toBe(2);
    expect(new Set(serving.map((l) => l['url']))).toEqual(new Set([gw.url]));
    expect(serving.every((l) => l['role'] === 'gateway')).toBe(true);
    expect(gw.logs.some((l) => l['msg'] === 'worker started' && l['role'] === 'worker')).toBe(true);
    // DOWNSTREAM_MAX_CONNECTIONS (1024 by default) is the instance's: half each.
    expect(serving.map((l) => l['downstream_max_connections'])).toEqual([512, 512]);
    const kids = childrenOf(gw.pid);
    expect(kids).toHaveLength(3);
    expect(kids).not.toContain(gw.pid);
    // The supervisor itself serves nothing: every serving line is a child's.
    expect(serving.every((l) => kids.includes(Number(l['pid'])))).toBe(true);
    // Every child is started with the young generation's size (NODE_SEMI_SPACE_MB's default).
    for (const pid of kids) {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(argv).toContain('--max-semi-space-size=64');
    }
  });

  it('50 concurrent first uses of one key from 50 addresses make exactly one binding', async () => {
    const key = `sk-race${tag()}`;
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        send(`${gw.url}/v1/models`, { from: `127.0.3.${i + 1}`, headers: bearer(key) }),
      ),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 403)).toHaveLength(49);
    const winner = answers.findIndex((a) => a.status === 200);
    const rows = await sql<{ first_ip: string }>(
      stores.databaseUrl,
      `SELECT host(first_ip) AS first_ip FROM bindings WHERE host(first_ip) LIKE '127.0.3.%'`,
    );
    expect(rows).toEqual([{ first_ip: `127.0.3.${winner + 1}` }]);
    // Every refusal is recorded, whichever process refused it.
    await waitFor(
      async () => {
        const [r] = await sql<{ n: string }>(
          stores.databaseUrl,
          `SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE host(attempt_ip) LIKE '127.0.3.%'`,
        );
        return Number(r!.n) === 49;
      },
      15_000,
      100,
    );
  });

  it('a ban made through one process is enforced by both within 1 s', async () => {
    const key = `sk-ban${tag()}`;
    const serving = listening().map((l) => Number(l['pid']));
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.4.1', headers: bearer(key) })).status).toBe(200);
    // Kept-alive connections until both serving processes hold some: each
    // connection stays with the process that accepted it.
    const conns: KeptConnection[] = [];
    const owners = new Set<number>();
    while (owners.size < 2 && conns.length < 200) {
      const c = new KeptConnection(gw.url, '127.0.4.1', bearer(key));
      expect(await c.get('/v1/models')).toBe(200);
      c.owner = socketOwner(gw.port, c.localPort, serving);
      owners.add(c.owner);
      conns.push(c);
    }
    expect([...owners].sort()).toEqual([...serving].sort());
    const [binding] = await sql<{ id: string }>(
      stores.databaseUrl,
      `SELECT id FROM bindings WHERE host(first_ip) = '127.0.4.1'`,
    );
    const banned = Date.now();
    expect((await admin.post('/admin/api/bindings/ban', { id: Number(binding!.id) })).status).toBe(200);
    // Every connection, so every process, refuses the key within 1 s of the ban.
    const enforcedAfter = await Promise.all(
      conns.map(async (c) => {
        while (Date.now() - banned < 5000) {
          if ((await c.get('/v1/models')) === 403) return Date.now() - banned;
          await sleep(20);
        }
        return Infinity;
      }),
    );
    for (const c of conns) c.close();
    expect(Math.max(...enforcedAfter)).toBeLessThan(1000);
  });

  it('/metrics sums every process, whichever one the scrape reaches', async () => {
    const key = `sk-count${tag()}`;
    const before = metricValue(
      (await send(`${gw.url}/metrics`)).body,
      'keypin_requests_total{decision="allowed"}',
    );
    for (let i = 0; i < 30; i++) {
      expect((await send(`${gw.url}/v1/models`, { from: '127.0.5.1', headers: bearer(key) })).status).toBe(
        200,
      );
    }
    // Scrapes on new connections land on either process: all give the same sum.
    for (let i = 0; i < 6; i++) {
      const text = (await send(`${gw.url}/metrics`)).body;
      // 29 allowed + 1 first bind.
      expect(metricValue(text, 'keypin_requests_total{decision="allowed"}') - before).toBe(29);
    }
  });

  it('a serving process that dies is replaced; the port keeps answering', async () => {
    const serving = listening().map((l) => Number(l['pid']));
    const victim = serving[0]!;
    process.kill(victim, 'SIGKILL');
    await waitFor(() => listening().length === 3, 30_000, 50);
    expect(gw.logs.some((l) => l['msg'] === 'process died' && l['child_pid'] === victim)).toBe(true);
    const key = `sk-after${tag()}`;
    for (let i = 0; i < 10; i++) {
      expect((await send(`${gw.url}/v1/models`, { from: '127.0.6.1', headers: bearer(key) })).status).toBe(
        200,
      );
    }
    expect(childrenOf(gw.pid)).toHaveLength(3);
    expect(childrenOf(gw.pid)).not.toContain(victim);
  }, 40_000);

  it('SIGTERM drains every process: streams in flight finish, refusals are recorded, exit 0', async () => {
    const t = tag();
    const allowed = `sk-drain${t}`;
    const blocked = `sk-refuse${t}`;
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.7.1', headers: bearer(allowed) })).status).toBe(
      200,
    );
    expect((await send(`${gw.url}/v1/models`, { from: '127.0.7.2', headers: bearer(blocked) })).status).toBe(
      200,
    );
    const slowBefore = downstream.seen.filter((s) => s.url.startsWith('/v1/slow')).length;
    const streams = Array.from({ length: 16 }, () =>
      send(`${gw.url}/v1/slow`, { from: '127.0.7.1', headers: bearer(allowed) }).then(
        (r) => r.status === 200 && r.body === CHUNK.repeat(CHUNKS),
        () => false,
      ),
    );
    let refused = 0;
    let signalled = false;
    const odd: unknown[] = [];
    const refusers = Array.from({ length: 4 }, async (_, i) => {
      for (;;) {
        try {
          const r = await send(`${gw.url}/v1/models`, { from: `127.0.8.${i + 1}`, headers: bearer(blocked) });
          if (r.status === 403) refused++;
          else odd.push(r.status);
        } catch (err) {
          if (!signalled) odd.push((err as Error).message);
          return;
        }
      }
    });
    await waitFor(
      () => downstream.seen.filter((s) => s.url.startsWith('/v1/slow')).length - slowBefore >= 16,
      10_000,
    );
    await sleep(2 * CHUNK_MS);
    const kids = childrenOf(gw.pid);
    signalled = true;
    process.kill(gw.pid, 'SIGTERM');
    const whole = await Promise.all(streams);
    await Promise.all(refusers);
    expect(await gw.exited).toBe(0);
    expect(whole.every(Boolean)).toBe(true);
    expect(odd).toEqual([]);
    expect(refused).toBeGreaterThan(0);
    for (const pid of kids) expect(() => process.kill(pid, 0)).toThrow();
    const [r] = await sql<{ n: string }>(
      stores.databaseUrl,
      `SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE host(attempt_ip) LIKE '127.0.8.%'`,
    );
    expect(Number(r!.n)).toBe(refused);
    expect(gw.logs.filter((l) => l['msg'] === 'shutting down all processes')).toHaveLength(1);
  }, 60_000);
});
