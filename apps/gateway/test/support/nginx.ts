/**
 * The project's own nginx/keypin.conf, run with Debian's nginx on loopback
 * for the tests (nginx-chain.int-spec.ts, hostile.int-spec.ts,
 * relay-parity.int-spec.ts). Only the deployment-specific values documented
 * at the top of that file are rewritten; everything else is tested as
 * shipped.
 *
 * Every instance listens twice, like the shipped file: plain HTTP (`url`,
 * `port`) and TLS with a throwaway CA's certificate (`tlsUrl`, `tlsPort`,
 * `caPem`). Plain HTTP either redirects to https, as shipped
 * (`plainHttp: 'redirect'`), or answers like TLS (`'serve'`, the file's
 * documented mode for TLS ended in front of nginx): the default, so tests
 * that speak raw HTTP/1.1 to nginx can.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from './paths';
import { freePort, portAnswers } from './throwaway';
import { testPki, writeServerPair } from './tls';

const NGINX = '/usr/sbin/nginx';
export const NGINX_CONF = resolve(REPO_ROOT, 'nginx/keypin.conf');
export const CONSOLE_DIR = resolve(REPO_ROOT, 'apps/admin-ui/dist');

/** What plain HTTP (port 80 in the shipped file) gets: see `map $scheme $keypin_plain_http` there. */
export type PlainHttp = 'redirect' | 'serve';

interface Rendering {
  listenPort: number;
  tlsPort: number;
  gatewayPorts: number[];
  consoleDir: string;
  prefix: string;
  /** Holds fullchain.pem and privkey.pem. */
  tlsDir: string;
  acmeDir: string;
  plainHttp: PlainHttp;
}

/**
 * nginx/keypin.conf with its deployment-specific values rewritten for
 * loopback: the two listen addresses, the certificate directory, what plain
 * HTTP gets, the ACME webroot, the gateway addresses in `upstream
 * keypin_gateways`, the console directory, and the pid, temp and access-log
 * paths. Comment lines are left alone. Every rewrite must apply, so a change
 * to the file that breaks the rendering is reported here rather than tested
 * by accident against something else.
 */
export function renderNginxConf(src: string, r: Rendering): string {
  const counts = {
    listen: 0,
    listenTls: 0,
    tls: 0,
    plainHttp: 0,
    acme: 0,
    upstream: 0,
    console: 0,
    pid: 0,
    temp: 0,
    log: 0,
  };
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
    if (/^\s*listen 443 ssl\b[^;]*;\s*$/.test(l)) {
      counts.listenTls++;
      l = l.replace('listen 443 ', `listen 127.0.0.1:${r.tlsPort} `);
    }
    if (/^\s*default\s+redirect;\s*$/.test(l)) {
      counts.plainHttp++;
      l = l.replace('redirect;', `${r.plainHttp};`);
    }
    l = swap(l, '/etc/nginx/tls/', `${r.tlsDir}/`, 'tls');
    l = swap(l, '/var/lib/keypin/acme', r.acmeDir, 'acme');
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
  if (counts.listen !== 1 || counts.listenTls !== 1 || counts.upstream !== 1 || counts.plainHttp !== 1) {
    throw new Error(
      'nginx/keypin.conf: expected exactly one `listen 80;`, one `listen 443 ssl …;`, ' +
        'one `default redirect;` and one `server gateway:8080 …;`',
    );
  }
  return out.join('\n');
}

export interface RunningNginx {
  /** Plain HTTP: http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** TLS: https://127.0.0.1:<tlsPort>, certificate for keypin.test, localhost and 127.0.0.1. */
  tlsUrl: string;
  tlsPort: number;
  /** The CA that signed nginx's certificate (PEM): trust this and nothing else. */
  caPem: string;
  /** What plain HTTP gets in this instance. */
  plainHttp: PlainHttp;
  /** The ACME webroot nginx serves /.well-known/acme-challenge/ from. */
  acmeDir: string;
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

export interface NginxOptions {
  /** Default `serve`; `redirect` is the file as shipped. */
  plainHttp?: PlainHttp;
}

/** Renders nginx/keypin.conf in front of `gatewayPorts` and starts nginx in the foreground. */
export async function startNginx(gatewayPorts: number[], opts: NginxOptions = {}): Promise<RunningNginx> {
  if (!existsSync(NGINX)) {
    throw new Error(
      `${NGINX} is missing: the tests run the project's nginx configuration with Debian's nginx ` +
        '(apt-get install -y nginx-light; .ci/run installs it)',
    );
  }
  const plainHttp = opts.plainHttp ?? 'serve';
  const pki = testPki();
  const port = await freePort();
  let tlsPort = await freePort();
  while (tlsPort === port) tlsPort = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), 'keypin-nginx-'));
  // nginx workers drop to an unprivileged user when started as root (the
  // master reads the key before that).
  chmodSync(prefix, 0o755);
  mkdirSync(join(prefix, 'cache'));
  const tlsDir = join(prefix, 'tls');
  mkdirSync(tlsDir);
  writeServerPair(tlsDir, pki);
  const acmeDir = join(prefix, 'acme');
  mkdirSync(join(acmeDir, '.well-known', 'acme-challenge'), { recursive: true, mode: 0o755 });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    renderNginxConf(readFileSync(NGINX_CONF, 'utf8'), {
      listenPort: port,
      tlsPort,
      gatewayPorts,
      consoleDir: CONSOLE_DIR,
      prefix,
      tlsDir,
      acmeDir,
      plainHttp,
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
  while (!(await portAnswers(port, 200)) || !(await portAnswers(tlsPort, 200))) {
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
    tlsUrl: `https://127.0.0.1:${tlsPort}`,
    tlsPort,
    caPem: pki.caPem,
    plainHttp,
    acmeDir,
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
