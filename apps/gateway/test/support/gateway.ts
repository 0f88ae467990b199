import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GATEWAY_MAIN, REPO_ROOT } from './paths';

export interface GatewayProcess {
  url: string;
  port: number;
  pid: number;
  /** Every log line so far (JSON objects; non-JSON lines as { raw }). */
  logs: Record<string, unknown>[];
  /** stdout+stderr text so far. */
  output(): string;
  /** Sends a signal and waits for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

/** Base environment for a gateway under test: its own database and Redis prefix. */
export interface TestEnv {
  DATABASE_URL: string;
  REDIS_PREFIX: string;
  [name: string]: string;
}

/**
 * Starts the built gateway (`dist/…/main.js`) as a real process and waits
 * for its "listening" log line.
 */
/**
 * Collects a child's stdout and stderr: every line parsed as JSON (pino's
 * lines; anything else as `{ raw }`), and the whole text.
 */
export function collectJsonLines(child: ChildProcess): {
  logs: Record<string, unknown>[];
  output: () => string;
} {
  const logs: Record<string, unknown>[] = [];
  let text = '';
  let partial = '';
  const onChunk = (chunk: Buffer) => {
    const s = chunk.toString('utf8');
    text += s;
    partial += s;
    let nl: number;
    while ((nl = partial.indexOf('\n')) !== -1) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
    }
  };
  child.stdout!.on('data', onChunk);
  child.stderr!.on('data', onChunk);
  return { logs, output: () => text };
}

export async function startGateway(env: TestEnv, timeoutMs = 30_000): Promise<GatewayProcess> {
  if (!existsSync(GATEWAY_MAIN)) {
    throw new Error(`${GATEWAY_MAIN} is missing: run "npx nx run-many -t build" first (npm test does)`);
  }
  const child: ChildProcess = spawn(process.execPath, [GATEWAY_MAIN], {
    cwd: REPO_ROOT,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '/root',
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      HMAC_SECRET: 'integration-test-hmac-secret-0123456789abcdef',
      // Tests bind far more than FIRST_USE_LIMIT keys a minute, all from
      // 127.0.0.N (one /24): unlimited unless a test sets it.
      FIRST_USE_LIMIT: '0',
      // Outside the checkout, one per database and Redis prefix: the same
      // for a gateway restarted on them (it replays what its predecessor
      // spooled), never shared with another test.
      SPOOL_DIR: join(
        tmpdir(),
        'keypin-test-spool',
        createHash('sha256').update(`${env.DATABASE_URL} ${env.REDIS_PREFIX}`).digest('hex').slice(0, 16),
      ),
      // TEST_DOWNSTREAM_CLIENT=undici runs a suite against undici's client
      // instead of KeyPin's own (docs/upstream-client.md); a test's own setting wins.
      ...(process.env['TEST_DOWNSTREAM_CLIENT']
        ? { DOWNSTREAM_CLIENT: process.env['TEST_DOWNSTREAM_CLIENT'] }
        : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const { logs, output } = collectJsonLines(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const started = Date.now();
  let url: string | undefined;
  while (url === undefined) {
    const line = logs.find((l) => l['msg'] === 'listening');
    if (line) url = String(line['url']);
    else {
      if (child.exitCode !== null) throw new Error(`gateway exited during start:\n${output()}`);
      if (Date.now() - started > timeoutMs) {
        child.kill('SIGKILL');
        throw new Error(`gateway did not start within ${timeoutMs} ms:\n${output()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  const port = Number(new URL(url).port);
  return {
    url,
    port,
    pid: child.pid!,
    logs,
    output,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeout = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), timeout);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Polls `fn` until it returns true or the time runs out; returns elapsed ms. */
export async function waitFor(
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  stepMs = 10,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
