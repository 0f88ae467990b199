import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AdminClient } from '../../../gateway/test/support/admin-client';
import { FakeDownstream } from '../../../gateway/test/support/downstream';
import { type GatewayProcess, startGateway } from '../../../gateway/test/support/gateway';
import { bearer, type Reply, send } from '../../../gateway/test/support/http-client';
import { REPO_ROOT } from '../../../gateway/test/support/paths';
import { dropStores, freshStores } from '../../../gateway/test/support/stores';

export const UI_ROOT = resolve(REPO_ROOT, 'apps/admin-ui');
const UI_DIST_INDEX = join(UI_ROOT, 'dist/index.html');

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path)) {
    if (name === 'node_modules') continue;
    newest = Math.max(newest, newestMtime(join(path, name)));
  }
  return newest;
}

/**
 * Builds the console when `dist/` is missing or older than its sources (the
 * gateway serves whatever is there). `npm test` builds everything first, so
 * this only runs when a developer runs the e2e project on its own.
 */
export function ensureConsoleBuilt(): void {
  const sources = [
    join(UI_ROOT, 'src'),
    join(UI_ROOT, 'index.html'),
    join(UI_ROOT, 'vite.config.ts'),
    resolve(REPO_ROOT, 'libs/shared/src'),
  ];
  const built = existsSync(UI_DIST_INDEX) ? statSync(UI_DIST_INDEX).mtimeMs : 0;
  if (built >= Math.max(...sources.map(newestMtime))) return;
  execFileSync(
    process.execPath,
    [resolve(REPO_ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'],
    {
      cwd: UI_ROOT,
      stdio: 'inherit',
    },
  );
}

export const ADMIN_USERNAME = 'admin';
export const ADMIN_PASSWORD = 'e2e-admin-password-0001';

export interface ConsoleEnv {
  gw: GatewayProcess;
  downstream: FakeDownstream;
  /** The console's address: http://127.0.0.1:<port>/admin/ui/ */
  consoleUrl: string;
  /** The gateway's database (for changing rows behind its back). */
  databaseUrl: string;
  /** The admin API, logged in as the bootstrap admin (for seeding and checking). */
  api: AdminClient;
  /** One proxied request with `key` from the client address `from` (127.0.0.N). */
  proxy(key: string, from: string, opts?: { path?: string; userAgent?: string }): Promise<Reply>;
  stop(): Promise<void>;
}

/** A real gateway (fresh database and Redis prefix) in front of a fake downstream, serving the built console. */
export async function startConsoleEnv(
  label: string,
  extraEnv: Record<string, string> = {},
): Promise<ConsoleEnv> {
  ensureConsoleBuilt();
  const stores = freshStores(label);
  const downstream = await new FakeDownstream().start();
  let gw: GatewayProcess;
  try {
    gw = await startGateway({
      DATABASE_URL: stores.databaseUrl,
      REDIS_PREFIX: stores.redisPrefix,
      DOWNSTREAM_URL: downstream.url,
      ADMIN_USERNAME,
      ADMIN_PASSWORD,
      ADMIN_JWT_SECRET: 'e2e-jwt-secret-0123456789abcdef0123456789',
      ...extraEnv,
    });
  } catch (err) {
    await downstream.stop();
    await dropStores(stores.dbName, stores.redisPrefix);
    throw err;
  }
  const api = await AdminClient.login(gw.url, ADMIN_USERNAME, ADMIN_PASSWORD);
  return {
    gw,
    downstream,
    consoleUrl: `${gw.url}/admin/ui/`,
    databaseUrl: stores.databaseUrl,
    api,
    proxy: (key, from, opts = {}) =>
      send(`${gw.url}${opts.path ?? '/v1/models'}`, {
        from,
        headers: { ...bearer(key), 'user-agent': opts.userAgent ?? 'keypin-e2e' },
      }),
    async stop() {
      await gw.stop();
      await downstream.stop();
      await dropStores(stores.dbName, stores.redisPrefix);
    },
  };
}

/** Polls until `fn` holds (the gateway applies admin changes and writes intercepts asynchronously). */
export async function eventually<T>(
  fn: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 5000,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() - start > timeoutMs) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}
