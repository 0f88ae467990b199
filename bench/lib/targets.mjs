// The processes the bench and the soak run against: the Node upstream
// (bench/upstream.mjs: the soak's upstream, and the bench's paced SSE source
// behind its nginx upstream) and the built KeyPin gateway, both on loopback.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { freePort, startChild, waitFor } from './procs.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const GATEWAY_MAIN = join(ROOT, 'dist/gateway/apps/gateway/src/main.js');
const NODE_FLAGS = join(ROOT, 'dist/gateway/apps/gateway/src/cluster/node-flags.js');

/** Starts bench/upstream.mjs on a free port; resolves once it prints `READY <port>`. */
export async function startUpstream() {
  const child = startChild('upstream', process.execPath, [join(ROOT, 'bench/upstream.mjs'), '--port', '0'], {
    stdin: 'pipe', // closes when the runner dies, and the upstream then exits
  });
  const port = await new Promise((resolvePort, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('upstream did not start in 10 s')), 10_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /READY (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    });
    child.stderr.on('data', (d) => process.stderr.write(`upstream: ${d}`));
    child.once('exit', (code) => reject(new Error(`upstream exited with ${code}`)));
  });
  return { child, port, url: `http://127.0.0.1:${port}` };
}

/**
 * Starts the built gateway (`ROLE=all`, enforcing, fail-closed, `newapi`
 * keys, no auto-ban, no FIRST_USE_LIMIT) in front of the upstream and waits for `/ready`. The
 * clients talk to it directly from 127.0.0.N, not through a proxy, so only
 * ::1 is a trusted proxy (the default would make it insist on X-Real-IP from
 * 127.0.0.1). `env` adds to or overrides these (the bench, behind its front
 * nginx, trusts 127.0.0.1). `port`: listen there instead of a free port
 * (the front nginx is configured with it before the gateway starts).
 */
export async function startGateway({ upstreamPort, tmp, env: extra, port: fixedPort }) {
  if (!existsSync(GATEWAY_MAIN)) {
    throw new Error(`${GATEWAY_MAIN} is missing: run "npx nx run-many -t build" first`);
  }
  const port = fixedPort ?? (await freePort());
  const env = {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    DOWNSTREAM_URL: `http://127.0.0.1:${upstreamPort}`,
    LOG_LEVEL: 'warn',
    NODE_ENV: 'development',
    ROLE: 'all',
    TRUSTED_PROXIES: '::1/128',
    ENFORCE_MODE: 'enforce',
    FAILSAFE_MODE: 'closed',
    TOKEN_NORMALIZE: 'newapi',
    AUTO_BAN: 'false',
    // The memory phase binds 100,000 keys from one address (and the soak
    // binds its clients' keys from one /24): far past FIRST_USE_LIMIT.
    FIRST_USE_LIMIT: '0',
    ...extra,
  };
  const log = join(tmp, 'keypin.log');
  // Started as `npm start` starts it: with the young generation's size (docs/workers.md).
  const { nodeFlagsFor } = createRequire(import.meta.url)(NODE_FLAGS);
  const args = [...nodeFlagsFor(env), GATEWAY_MAIN];
  const child = startChild('keypin', process.execPath, args, { cwd: ROOT, env, logFile: log });
  const url = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  await waitFor('KeyPin GET /ready → 200', async () => (await fetch(`${url}/ready`)).status === 200, {
    child,
    timeoutMs: 60_000,
    everyMs: 250,
  });
  return { child, port, url, pid: child.pid, env, log, readyS: (performance.now() - t0) / 1000 };
}
