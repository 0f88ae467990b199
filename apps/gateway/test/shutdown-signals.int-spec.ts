import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_ENV } from './support/admin-client';
import { FakeDownstream, slowStreamRoute } from './support/downstream';
import { collectJsonLines, startGateway, waitFor } from './support/gateway';
import { bearer, send } from './support/http-client';
import { GATEWAY_MAIN, REPO_ROOT } from './support/paths';
import { dropStores, freshStores, sql } from './support/stores';

/**
 * Shutdown runs exactly once, however many SIGTERM/SIGINT arrive, to the
 * process or to its whole process group (a terminal's Ctrl-C reaches every
 * process of the foreground group: `npm start`'s scripts/start.mjs and,
 * unless it has a group of its own, the gateway under it).
 *
 * Under load (slow allowed streams in flight, refusals arriving): every
 * stream in flight completes, every refusal answered is recorded, exit 0.
 */

const START_SCRIPT = resolve(REPO_ROOT, 'scripts/start.mjs');
const CHUNK = 'keypin-drain-'.repeat(640); // 8320 bytes
const CHUNKS = 10;
const CHUNK_MS = 150;
const STREAMS = 24;
const REFUSERS = 6;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('shutdown: one drain, however many signals arrive', () => {
  const stores = freshStores('sigs');
  const downstream = new FakeDownstream();
  const spoolDir = mkdtempSync(join(tmpdir(), 'keypin-sigs-spool-'));
  const leftovers: number[] = [];
  let n = 0;

  const env = () => ({
    DATABASE_URL: stores.databaseUrl,
    REDIS_PREFIX: stores.redisPrefix,
    DOWNSTREAM_URL: downstream.url,
    SHUTDOWN_GRACE_MS: '20000',
    ...ADMIN_ENV,
  });

  beforeAll(async () => {
    await downstream.start();
    // `/v1/slow` streams CHUNKS chunks, one every CHUNK_MS; anything else answers at once.
    downstream.route = slowStreamRoute(CHUNK, CHUNKS, CHUNK_MS);
  });

  afterAll(async () => {
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone, as it should be.
      }
    }
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
    rmSync(spoolDir, { recursive: true, force: true });
  });

  /** Refused requests (rows in the intercept log): `count` when a row may stand for several. */
  const recordedRefusals = async (bindingId: string): Promise<number> => {
    const hasCount = await sql(
      stores.databaseUrl,
      `SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'intercept_logs' AND column_name = 'count'`,
    );
    const [row] = await sql<{ n: string }>(
      stores.databaseUrl,
      hasCount.length > 0
        ? 'SELECT coalesce(sum(count), 0) AS n FROM intercept_logs WHERE binding_id = $1'
        : 'SELECT count(*) AS n FROM intercept_logs WHERE binding_id = $1',
      [bindingId],
    );
    return Number(row!.n);
  };

  /**
   * Streams in flight and refusals arriving at `url`, then `signal()`;
   * checks that every stream completes, every answered refusal is recorded,
   * and the process (`exited`) leaves with 0.
   */
  async function drainUnderLoad(url: string, signal: () => Promise<void>, exited: Promise<number | null>) {
    const tag = `${Date.now().toString(36)}${++n}`;
    const allowed = `sk-drain${tag}`;
    const blocked = `sk-refuse${tag}`;
    expect((await send(`${url}/v1/models`, { from: '127.0.0.2', headers: bearer(allowed) })).status).toBe(
      200,
    );
    expect((await send(`${url}/v1/models`, { from: '127.0.0.3', headers: bearer(blocked) })).status).toBe(
      200,
    );
    const [binding] = await sql<{ id: string }>(
      stores.databaseUrl,
      `SELECT id FROM bindings WHERE host(first_ip) = '127.0.0.3' ORDER BY id DESC LIMIT 1`,
    );

    const slowBefore = downstream.seen.filter((s) => s.url.startsWith('/v1/slow')).length;
    const streams = Array.from({ length: STREAMS }, () =>
      send(`${url}/v1/slow`, { from: '127.0.0.2', headers: bearer(allowed) }).then(
        (r) => ({ status: r.status, bytes: r.body.length, whole: r.body === CHUNK.repeat(CHUNKS) }),
        (err: Error) => ({ status: 0, bytes: 0, whole: false, error: err.message }),
      ),
    );

    // Refusals from several addresses until the gateway stops accepting connections.
    let refused = 0;
    let signalled = false;
    const odd: (number | string)[] = [];
    const refusers = Array.from({ length: REFUSERS }, async (_, i) => {
      for (;;) {
        try {
          const r = await send(`${url}/v1/chat/completions`, {
            method: 'POST',
            from: `127.0.1.${i + 1}`,
            headers: { ...bearer(blocked), 'content-type': 'application/json' },
            body: '{"model":"m"}',
          });
          if (r.status === 403) refused++;
          else odd.push(r.status);
        } catch (err) {
          // Once the drain has begun, new connections are refused (or an
          // idle one is closed under the request): that ends this client.
          if (!signalled) odd.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
          return;
        }
      }
    });

    await waitFor(
      () => downstream.seen.filter((s) => s.url.startsWith('/v1/slow')).length - slowBefore >= STREAMS,
      10_000,
    );
    await sleep(2 * CHUNK_MS);
    const refusedBeforeSignal = refused;
    signalled = true;
    await signal();

    const results = await Promise.all(streams);
    await Promise.all(refusers);
    const code = await exited;
    expect(results.filter((r) => !(r.status === 200 && r.whole))).toEqual([]);
    expect(odd).toEqual([]);
    expect(refusedBeforeSignal).toBeGreaterThan(0);
    expect(code).toBe(0);
    expect(await recordedRefusals(binding!.id)).toBe(refused);
    return { refused, streams: results.length };
  }

  it('SIGTERM twice to the gateway: the second is logged and ignored, the drain completes', async () => {
    const gw = await startGateway(env());
    leftovers.push(gw.pid);
    const r = await drainUnderLoad(
      gw.url,
      async () => {
        process.kill(gw.pid, 'SIGTERM');
        await sleep(100);
        process.kill(gw.pid, 'SIGTERM');
      },
      gw.exited,
    );
    expect(r.streams).toBe(STREAMS);
    const logs = gw.logs.map((l) => l['msg']);
    expect(logs.filter((m) => m === 'shutting down')).toHaveLength(1);
    expect(logs).toContain('already shutting down: signal ignored');
    expect(logs).toContain('stopped');
  });

  /** `node scripts/start.mjs` as `npm start` runs it, leading a process group of its own. */
  async function startScript() {
    for (const f of [GATEWAY_MAIN, resolve(REPO_ROOT, 'apps/admin-ui/dist/index.html')]) {
      if (!existsSync(f)) throw new Error(`${f} is missing: build first (npm test does)`);
    }
    const child: ChildProcess = spawn(process.execPath, [START_SCRIPT], {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: process.env['HOME'] ?? '/root',
        NODE_ENV: 'test',
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'info',
        HMAC_SECRET: 'integration-test-hmac-secret-0123456789abcdef',
        // As startGateway does: tests bind more keys a minute from one /24 than the default allows.
        FIRST_USE_LIMIT: '0',
        SPOOL_DIR: spoolDir,
        ...env(),
      },
    });
    leftovers.push(child.pid!);
    const { logs: lines, output } = collectJsonLines(child);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await waitFor(() => lines.some((l) => l['msg'] === 'listening') || child.exitCode !== null, 30_000, 25);
    const listening = lines.find((l) => l['msg'] === 'listening');
    if (!listening) throw new Error(`start.mjs did not start the gateway:\n${output()}`);
    const gatewayPid = Number(listening['pid']);
    expect(gatewayPid).not.toBe(child.pid);
    leftovers.push(gatewayPid);
    return { group: child.pid!, gatewayPid, url: String(listening['url']), exited, lines, text: output };
  }

  /** A process's group id, from /proc (Linux). */
  const groupOf = (pid: number): number => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state, ppid, pgrp, …
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  };

  it.each([
    ['SIGTERM', 1],
    // Sent again while draining (a supervisor's retry, Ctrl-C pressed twice).
    ['SIGTERM', 2],
    ['SIGINT', 1],
    ['SIGINT', 2],
  ] as [NodeJS.Signals, number][])(
    'npm start (scripts/start.mjs): %s ×%i to the whole process group drains once and exits 0',
    async (sig, times) => {
      const s = await startScript();
      // A signal to start.mjs's group cannot reach the gateway directly, only
      // passed on by start.mjs: one delivery, however quickly they follow.
      if (existsSync('/proc/self/stat')) {
        expect(groupOf(s.group)).toBe(s.group);
        expect(groupOf(s.gatewayPid)).not.toBe(s.group);
      }
      await drainUnderLoad(
        s.url,
        async () => {
          for (let i = 0; i < times; i++) {
            if (i > 0) await sleep(100);
            process.kill(-s.group, sig);
          }
        },
        s.exited,
      );
      // The gateway heard one signal (passed on once by start.mjs), never a second.
      const msgs = s.lines.map((l) => l['msg']);
      expect(s.lines.filter((l) => l['msg'] === 'shutting down')).toEqual([
        expect.objectContaining({ signal: sig }),
      ]);
      expect(msgs).not.toContain('already shutting down: signal ignored');
      expect(msgs).toContain('stopped');
      // start.mjs waited for it: nothing is left running.
      expect(() => process.kill(s.gatewayPid, 0)).toThrow();
    },
  );

  it('npm start: when start.mjs itself is killed (SIGKILL), the gateway notices and stops by itself', async () => {
    const s = await startScript();
    const gone = waitFor(
      () => {
        try {
          process.kill(s.gatewayPid, 0);
          return false;
        } catch {
          return true;
        }
      },
      30_000,
      50,
    );
    process.kill(s.group, 'SIGKILL');
    await gone;
    const msgs = s.lines.map((l) => l['msg']);
    expect(s.lines.filter((l) => l['msg'] === 'shutting down')).toEqual([
      expect.objectContaining({ signal: 'disconnect' }),
    ]);
    expect(msgs).toContain('stopped');
  });
});
