#!/usr/bin/env node
// `npm run verify`: recomputes the hash chains of the intercept log and the
// audit trail in the database at DATABASE_URL (docs/integrity.md), prints
// what GET /admin/api/integrity answers, and exits 1 when a chain is broken
// (2 when it could not verify). Builds the gateway first if it is missing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = resolve(root, 'dist/gateway/apps/gateway/src/integrity/verify-cli.js');

if (!existsSync(cli)) {
  console.error('[keypin] building the gateway first…');
  const built = spawnSync(
    'npx',
    ['nx', 'run-many', '-t', 'build', '--projects=@keypin/gateway,@keypin/shared'],
    {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' },
    },
  );
  if (built.status !== 0) process.exit(built.status ?? 2);
}
const run = spawnSync(process.execPath, [cli], { cwd: root, stdio: 'inherit' });
process.exit(run.status ?? 2);
