import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { AppConfig } from '../config/config';
import { isCollectReply, isMetricsRequest, METRICS_REPLY, type MetricsReply } from './cluster-messages';
import { MetricsCollector } from './metrics-collector';
import { withNodeFlags } from './node-flags';

/** What a child of the supervisor is: it reads this as its ROLE. */
type ChildRole = 'gateway' | 'worker';

interface Child {
  role: ChildRole;
  slot: number;
  worker: Worker;
  startedAt: number;
}

/** More exits than this within CRASH_WINDOW_MS: the supervisor gives up (and its supervisor restarts it). */
const CRASH_LIMIT = 5;
const CRASH_WINDOW_MS = 60_000;

/**
 * WORKERS ≥ 2 (docs/contract.md 12, docs/workers.md): this process serves
 * nothing itself. It forks WORKERS gateway processes that share one
 * listening port through node:cluster, plus, when ROLE=all, one process for
 * the background work (queues, schedules, the chain sealer) so that none
 * of it runs on a serving event loop.
 *
 * - The first gateway starts alone: it applies migrations and creates the
 *   bootstrap admin; the others start once it listens.
 * - A process that dies is replaced (after a short back-off); more than
 *   CRASH_LIMIT deaths in a minute stop the supervisor with an error.
 * - SIGTERM/SIGINT are passed to every process once; each drains as a
 *   single process would, and the supervisor leaves when all have left.
 * - /metrics, answered by whichever worker the scrape reaches, is the sum
 *   over all processes: the worker asks the supervisor, which collects
 *   every process's registry.
 */
export async function runSupervisor(config: AppConfig, logger: Logger): Promise<void> {
  // Round-robin (the supervisor accepts, then hands each connection over)
  // or none (each worker accepts on the shared socket); docs/workers.md.
  cluster.schedulingPolicy = config.clusterSchedule === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  // The young generation's size is fixed when a process starts: given here
  // (NODE_SEMI_SPACE_MB) to every process forked.
  cluster.setupPrimary({
    silent: false,
    execArgv: withNodeFlags(process.execArgv, process.env['NODE_OPTIONS'], config.semiSpaceMb),
  });
  const metrics = new MetricsCollector();
  // Without ADMIN_JWT_SECRET a process makes up its own key; its processes
  // must share one, or a console session would work on every other request.
  const sharedEnv: Record<string, string> =
    process.env['ADMIN_JWT_SECRET'] === undefined || process.env['ADMIN_JWT_SECRET'] === ''
      ? { ADMIN_JWT_SECRET: config.adminJwtSecret.reveal().toString('base64url') }
      : {};

  const children = new Map<number, Child>();
  const exits: number[] = [];
  let stopping = false;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));

  const fork = (role: ChildRole, slot: number): Child => {
    const worker = cluster.fork({ ROLE: role, KEYPIN_WORKER_SLOT: String(slot), ...sharedEnv });
    const child: Child = { role, slot, worker, startedAt: Date.now() };
    children.set(worker.id, child);
    worker.on('message', (msg: unknown) => {
      if (isCollectReply(msg)) {
        metrics.onReply(worker, msg);
        return;
      }
      if (!isMetricsRequest(msg)) return;
      metrics.collect().then(
        (text) => reply(worker, { type: METRICS_REPLY, id: msg.id, text }),
        (err: Error) => reply(worker, { type: METRICS_REPLY, id: msg.id, error: err.message }),
      );
    });
    return child;
  };

  const listening = (child: Child) =>
    new Promise<void>((resolve, reject) => {
      child.worker.once('listening', () => resolve());
      child.worker.once('exit', (code) =>
        reject(new Error(`gateway process exited with ${code} while starting`)),
      );
    });

  cluster.on('exit', (worker, code, signal) => {
    const child = children.get(worker.id);
    children.delete(worker.id);
    metrics.forget(worker);
    if (child === undefined) return;
    if (stopping) {
      if (children.size === 0) finish(0);
      return;
    }
    logger.error(
      { role: child.role, slot: child.slot, child_pid: worker.process.pid, code, signal },
      'process died',
    );
    const now = Date.now();
    exits.push(now);
    while (exits.length > 0 && exits[0]! < now - CRASH_WINDOW_MS) exits.shift();
    if (exits.length > CRASH_LIMIT) {
      logger.fatal({ exits: exits.length }, 'processes keep dying: stopping');
      stopAll('crash-loop', 1);
      return;
    }
    const delay = Math.min(5000, 250 * exits.length);
    setTimeout(() => {
      if (!stopping) fork(child.role, child.slot);
    }, delay).unref();
  });

  let exitCode = 0;
  const stopAll = (cause: string, code: number) => {
    if (stopping) {
      logger.warn({ signal: cause }, 'already shutting down: signal ignored');
      return;
    }
    stopping = true;
    exitCode = code;
    logger.info({ signal: cause, processes: children.size }, 'shutting down all processes');
    if (children.size === 0) finish(0);
    for (const { worker } of children.values()) {
      // Each process drains (bounded by SHUTDOWN_GRACE_MS) and exits by itself.
      if (!worker.isDead()) worker.process.kill('SIGTERM');
    }
  };
  process.on('SIGTERM', () => stopAll('SIGTERM', 0));
  process.on('SIGINT', () => stopAll('SIGINT', 0));
  if (process.channel) process.once('disconnect', () => stopAll('disconnect', 0));

  const first = fork('gateway', 1);
  try {
    await listening(first);
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'the first gateway process did not start');
    stopping = true;
    process.exit(1);
  }
  if (config.role === 'all') fork('worker', 0);
  for (let slot = 2; slot <= config.workers; slot++) fork('gateway', slot);
  logger.info(
    {
      workers: config.workers,
      background: config.role === 'all',
      schedule: config.clusterSchedule,
      port: config.port,
    },
    'supervisor started',
  );

  await finished;
  logger.info('stopped');
  process.exit(exitCode);
}

function reply(worker: Worker, msg: MetricsReply): void {
  if (worker.isConnected()) worker.send(msg);
}
