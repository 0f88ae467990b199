#!/usr/bin/env node
// `npm test`: builds every project (Nx caches unchanged ones), then runs the
// whole suite: unit, integration (real PostgreSQL + Redis, real gateway
// processes on loopback) and, when present, browser end-to-end tests.
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' };
const run = (cmd, args) => {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

run('npx', ['nx', 'run-many', '-t', 'build', '--output-style=static']);
run('npx', ['vitest', 'run', ...process.argv.slice(2)]);

// The whole suite forwards through KeyPin's own upstream client (the
// default); the suites that exercise the relay hop hardest run once more
// with undici's, the other DOWNSTREAM_CLIENT (docs/upstream-client.md).
if (process.argv.length === 2) {
  env.TEST_DOWNSTREAM_CLIENT = 'undici';
  run('npx', [
    'vitest',
    'run',
    '--project',
    'integration',
    ...['streaming', 'faults', 'proxy-limits', 'hostile', 'nginx-chain'].map(
      (f) => `apps/gateway/test/${f}.int-spec.ts`,
    ),
  ]);
}
