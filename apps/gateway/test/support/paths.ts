import { resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '../../../..');
export const GATEWAY_MAIN = resolve(REPO_ROOT, 'dist/gateway/apps/gateway/src/main.js');
