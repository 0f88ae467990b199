import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';

/**
 * Disposable PostgreSQL and Redis servers on spare loopback ports, for tests
 * that stop and start a store without disturbing the shared ones.
 *
 * Every server is a direct child of the test process (no daemonising), so
 * `stop()` is a signal and a wait; anything still running when the test
 * process exits is killed by an exit hook.
 */

const REDIS_SERVER = '/usr/bin/redis-server';
const PG_BIN = findPgBin();

/** The newest installed PostgreSQL's binaries (Debian keeps them under /usr/lib/postgresql/<major>/bin). */
function findPgBin(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return join(root, majors[0] ?? '15', 'bin');
}

/** A TCP port nobody listens on right now (on 127.0.0.1). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        const p = typeof a === 'object' && a !== null ? a.port : 0;
        s.close(() => resolve(p));
      });
    });
    // Stay clear of the shared stores' ports and of anything that answers.
    if (port !== 5432 && port !== 6379 && !(await portAnswers(port))) return port;
  }
  throw new Error('no free port found');
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portAnswers(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const done = (v: boolean) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- children

/** Children still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
/** Temporary directories still on disk, removed at exit. */
const dirs = new Set<string>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

interface Child {
  proc: ChildProcess;
  output(): string;
  exited: Promise<void>;
}

function spawnChild(cmd: string, args: string[], opts: SpawnOptions): Child {
  hookExit();
  const proc = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const keep = (b: Buffer) => {
    text += b.toString('utf8');
    if (text.length > 64_000) text = text.slice(-32_000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  live.add(proc);
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      live.delete(proc);
      resolve();
    });
    proc.once('error', (err) => {
      text += `\nspawn error: ${err.message}`;
      live.delete(proc);
      resolve();
    });
  });
  return { proc, output: () => text, exited };
}

/** Signals a child and waits for it to exit; SIGKILL after `timeoutMs`. */
async function stopChild(c: Child | null, signal: NodeJS.Signals, timeoutMs = 10_000): Promise<void> {
  if (c === null) return;
  if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
  c.proc.kill(signal);
  const t = setTimeout(() => c.proc.kill('SIGKILL'), timeoutMs);
  await c.exited;
  clearTimeout(t);
}

/** Polls `ready` until it holds; fails early if the child died. */
async function waitReady(
  c: Child,
  what: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) {
      throw new Error(
        `${what} exited during start (code ${c.proc.exitCode ?? c.proc.signalCode}):\n${c.output()}`,
      );
    }
    if (await ready()) return;
    if (Date.now() - start > timeoutMs) {
      await stopChild(c, 'SIGKILL');
      throw new Error(`${what} did not accept connections within ${timeoutMs} ms:\n${c.output()}`);
    }
    await sleep(50);
  }
}

// ------------------------------------------------------------------- Redis

export interface ThrowawayRedis {
  /** redis://127.0.0.1:<port>/0 */
  url: string;
  port: number;
  /** The server's working directory (where a manual SAVE writes dump.rdb). */
  dir: string;
  readonly running: boolean;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (and directory) and waits until it answers PING. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  destroy(): Promise<void>;
}

/** True when a RESP PING on the port gets +PONG back. */
function redisPongs(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v: boolean) => {
      sock.destroy();
      resolve(v);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      // "-LOADING" while it reads a dump: not ready yet.
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

/**
 * A redis-server child on a spare port: no persistence configured, so a
 * restart comes back empty unless the test ran SAVE first (the dump then
 * lands in `dir` and is loaded on the next start).
 */
export async function startThrowawayRedis(): Promise<ThrowawayRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'keypin-redis-'));
  dirs.add(dir);
  let child: Child | null = null;

  const start = async () => {
    if (child && child.proc.exitCode === null && child.proc.signalCode === null) return;
    const c = spawnChild(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--daemonize',
        'no',
      ],
      { cwd: dir },
    );
    child = c;
    await waitReady(c, `redis-server on port ${port}`, () => redisPongs(port), 10_000);
  };
  const stop = async () => {
    const c = child;
    await stopChild(c, 'SIGTERM');
  };

  await start();
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    dir,
    get running() {
      return child !== null && child.proc.exitCode === null && child.proc.signalCode === null;
    },
    stop,
    start,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}

// -------------------------------------------------------------- PostgreSQL

export interface ThrowawayPostgres {
  /** postgres://postgres@127.0.0.1:<port> (append /<database>). */
  url: string;
  port: number;
  readonly running: boolean;
  /** Immediate shutdown (SIGQUIT: like a crash, clients are cut off), waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory; resolves once it answers queries. */
  start(): Promise<void>;
  /** Stops it and removes the data directory. */
  destroy(): Promise<void>;
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no "postgres" OS user in /etc/passwd');
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

async function pgAnswers(port: number): Promise<boolean> {
  const c = new Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 1000,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * A PostgreSQL 15 cluster of its own (initdb into a fresh temporary
 * directory, trust auth, loopback only, fsync off), run as the `postgres`
 * OS user since PostgreSQL refuses to run as root.
 *
 * fsync=off only risks data on an OS crash; an immediate stop of the server
 * keeps every committed transaction. (synchronous_commit stays on: with it
 * off, an immediate stop loses the last few hundred ms of commits.)
 */
export async function startThrowawayPostgres(): Promise<ThrowawayPostgres> {
  const port = await freePort();
  const root = mkdtempSync(join(tmpdir(), 'keypin-pg-'));
  dirs.add(root);
  const data = join(root, 'data');
  const ids = postgresIds();
  const asPostgres: SpawnOptions = {
    uid: ids.uid,
    gid: ids.gid,
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', HOME: root },
  };
  let child: Child | null = null;

  try {
    chownSync(root, ids.uid, ids.gid);
    chmodSync(root, 0o700);
    execFileSync(
      join(PG_BIN, 'initdb'),
      [
        '-D',
        data,
        '-A',
        'trust',
        '-U',
        'postgres',
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
        '--no-instructions',
      ],
      { uid: ids.uid, gid: ids.gid, cwd: root, env: asPostgres.env, stdio: 'pipe', timeout: 60_000 },
    );
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    dirs.delete(root);
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`initdb failed: ${e.message}\n${e.stderr?.toString() ?? ''}`);
  }

  const start = async () => {
    if (child && child.proc.exitCode === null && child.proc.signalCode === null) return;
    const c = spawnChild(
      join(PG_BIN, 'postgres'),
      [
        '-D',
        data,
        '-p',
        String(port),
        '-k',
        root,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=60',
        '-c',
        'shared_buffers=16MB',
        '-c',
        'log_min_messages=warning',
      ],
      asPostgres,
    );
    child = c;
    await waitReady(c, `postgres on port ${port}`, () => pgAnswers(port), 30_000);
  };
  const stop = async () => {
    // SIGQUIT is PostgreSQL's "immediate" shutdown (what pg_ctl stop -m immediate sends).
    await stopChild(child, 'SIGQUIT');
  };

  try {
    await start();
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    dirs.delete(root);
    throw err;
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}`,
    port,
    get running() {
      return child !== null && child.proc.exitCode === null && child.proc.signalCode === null;
    },
    stop,
    start,
    async destroy() {
      await stop();
      rmSync(root, { recursive: true, force: true });
      dirs.delete(root);
    },
  };
}
