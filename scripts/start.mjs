#!/usr/bin/env node
// `npm start`: builds what is missing, then runs the gateway (which creates
// the database if needed and applies migrations before it listens).
// `npm run migrate` passes --migrate-only: migrations, then exit.
import { spawnSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const main = resolve(root, 'dist/gateway/apps/gateway/src/main.js');
const outputs = [
  main,
  resolve(root, 'libs/shared/dist/index.js'),
  resolve(root, 'apps/admin-ui/dist/index.html'),
];

if (outputs.some((f) => !existsSync(f))) {
  console.error('[keypin] building (first start)…');
  const built = spawnSync('npx', ['nx', 'run-many', '-t', 'build'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
  });
  if (built.status !== 0) process.exit(built.status ?? 1);
}

const child = spawn(process.execPath, [main, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
