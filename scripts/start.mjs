#!/usr/bin/env node
// `npm start`: builds what is missing, then runs the gateway (which creates
// the database if needed and applies migrations before it listens).
// `npm run migrate` passes --migrate-only: migrations, then exit.
import { spawnSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
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

// The gateway gets a process group of its own (detached). A signal sent to
// this script's whole group (a terminal's Ctrl-C, `kill -- -PGID`, a
// supervisor that signals the group) then reaches it once, passed on from
// here, instead of twice (directly and again from here). Later signals are
// not passed on: one starts the drain, and the gateway ignores more anyway.
// The IPC channel lets the gateway notice if this script dies without
// passing a signal on (SIGKILL): it then stops by itself.
// V8 sizes the young generation at start (NODE_SEMI_SPACE_MB; docs/workers.md).
const { nodeFlagsFor } = createRequire(import.meta.url)(
  resolve(root, 'dist/gateway/apps/gateway/src/cluster/node-flags.js'),
);
const nodeFlags = nodeFlagsFor(process.env);
const child = spawn(process.execPath, [...nodeFlags, main, ...process.argv.slice(2)], {
  cwd: root,
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  detached: true,
});
let passedOn = null;
const onSignal = (sig) => {
  if (passedOn !== null) {
    console.error(`[keypin] ${sig}: the gateway is already stopping (${passedOn}); waiting for it`);
    return;
  }
  // A closed terminal (SIGHUP) stops the gateway the ordinary way.
  passedOn = sig === 'SIGHUP' ? 'SIGTERM' : sig;
  child.kill(passedOn);
};
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, onSignal);
child.on('error', (err) => {
  console.error(`[keypin] cannot start the gateway: ${err.message}`);
  process.exit(1);
});
// Wait for the gateway's own exit (its drain), then leave with its status.
child.on('exit', (code, signal) =>
  process.exit(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 0)),
);
