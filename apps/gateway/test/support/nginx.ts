/**
 * The project's own nginx/keypin.conf, run with Debian's nginx on loopback
 * for the tests (nginx-chain.int-spec.ts, hostile.int-spec.ts). Only the
 * deployment-specific values documented at the top of that file are
 * rewritten; everything else is tested as shipped.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './paths';
import { freePort, portAnswers } from './throwaway';

const NGINX = '/usr/sbin/nginx';
export const NGINX_CONF = resolve(REPO_ROOT, 'nginx/keypin.conf');
export const CONSOLE_DIR = resolve(REPO_ROOT, 'apps/admin-ui/dist');

interface Rendering {
  listenPort: number;
  gatewayPorts: number[];
  consoleDir: string;
  prefix: string;
}

/**
 * nginx/keypin.conf with its deployment-specific values rewritten for
 * loopback: the listen address, the gateway addresses in `upstream
 * keypin_gateways`, the console directory, and the pid, temp and access-log
 * paths. Comment lines are left alone. Every rewrite must apply, so a change
 * to the file that breaks the rendering is reported here rather than tested
 * by accident against something else.
 */
export function renderNginxConf(src: string, r: Rendering): string {
  const counts = { listen: 0, upstream: 0, console: 0, pid: 0, temp: 0, log: 0 };
  const swap = (line: string, from: string, to: string, what: keyof typeof counts): string => {
    if (!line.includes(from)) return line;
    counts[what]++;
    return line.split(from).join(to);
  };
  const out = src.split('\n').map((line) => {
    if (/^\s*#/.test(line)) return line;
    const server = /^(\s*)server gateway:8080((?:\s[^;]*)?);\s*$/.exec(line);
    if (server) {
      counts.upstream++;
      return r.gatewayPorts.map((p) => `${server[1]}server 127.0.0.1:${p}${server[2] ?? ''};`).join('\n');
    }
    let l = line;
    if (/^\s*listen 80;\s*$/.test(l)) {
      counts.listen++;
      l = l.replace('listen 80;', `listen 127.0.0.1:${r.listenPort};`);
    }
    l = swap(l, '/usr/share/keypin/admin-ui/', `${r.consoleDir}/`, 'console');
    l = swap(l, '/var/run/nginx.pid', join(r.prefix, 'nginx.pid'), 'pid');
    l = swap(l, '/var/cache/nginx/', `${join(r.prefix, 'cache')}/`, 'temp');
    l = swap(l, '/dev/stdout', join(r.prefix, 'access.log'), 'log');
    return l;
  });
  for (const [what, n] of Object.entries(counts)) {
    if (n === 0)
      throw new Error(`nginx/keypin.conf: the "${what}" placeholder was not found (see its header)`);
  }
  if (counts.listen !== 1 || counts.upstream !== 1) {
    throw new Error('nginx/keypin.conf: expected exactly one `listen 80;` and one `server gateway:8080 …;`');
  }
  return out.join('\n');
}

export interface RunningNginx {
  url: string;
  port: number;
  prefix: string;
  /** The access log so far. */
  accessLog(): string;
  /**
   * The access-log entries of one client address, once there are at least
   * `atLeast` of them (nginx writes a line after the response has gone out,
   * so a client can be faster than the log).
   */
  accessLogOf(client: string, atLeast: number): Promise<Record<string, unknown>[]>;
  /** nginx's stdout and stderr so far (its error log). */
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Renders nginx/keypin.conf in front of `gatewayPorts` and starts nginx in the foreground. */
export async function startNginx(gatewayPorts: number[]): Promise<RunningNginx> {
  if (!existsSync(NGINX)) {
    throw new Error(
      `${NGINX} is missing: the tests run the project's nginx configuration with Debian's nginx ` +
        '(apt-get install -y nginx-light; .ci/run installs it)',
    );
  }
  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), 'keypin-nginx-'));
  // nginx workers drop to an unprivileged user when started as root.
  chmodSync(prefix, 0o755);
  mkdirSync(join(prefix, 'cache'));
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    renderNginxConf(readFileSync(NGINX_CONF, 'utf8'), {
      listenPort: port,
      gatewayPorts,
      consoleDir: CONSOLE_DIR,
      prefix,
    }),
  );
  const base = ['-p', `${prefix}/`, '-e', 'stderr', '-c', conf];
  try {
    execFileSync(NGINX, [...base, '-t', '-q'], { stdio: 'pipe', timeout: 10_000 });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`nginx -t refused the rendered nginx/keypin.conf:\n${e.stderr?.toString() ?? e.message}`);
  }
  const child = spawn(NGINX, [...base, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let text = '';
  child.stdout.on('data', (b: Buffer) => (text += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (text += b.toString('utf8')));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const started = Date.now();
  while (!(await portAnswers(port, 200))) {
    if (child.exitCode !== null) throw new Error(`nginx exited during start:\n${text}`);
    if (Date.now() - started > 10_000) throw new Error(`nginx did not listen within 10 s:\n${text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const accessLog = () => {
    const f = join(prefix, 'access.log');
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  };
  const entriesOf = (client: string) =>
    accessLog()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['client'] === client);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    prefix,
    accessLog,
    async accessLogOf(client, atLeast) {
      const deadline = Date.now() + 5000;
      let entries = entriesOf(client);
      while (entries.length < atLeast && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        entries = entriesOf(client);
      }
      return entries;
    },
    output: () => text,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      running.delete(child);
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
