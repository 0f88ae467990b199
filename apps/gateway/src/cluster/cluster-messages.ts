import cluster from 'node:cluster';
import type { Registry } from 'prom-client';

/** One process's registry as JSON (what `Registry.getMetricsAsJSON` gives). */
export type RegistryJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/**
 * The messages between the supervisor and its processes (WORKERS ≥ 2,
 * docs/workers.md), all for /metrics: whichever process a scrape reaches
 * asks the supervisor, which collects every process's registry and sums.
 */
export const METRICS_REQUEST = 'keypin:metrics-request';
export const METRICS_REPLY = 'keypin:metrics-reply';
/** Supervisor → process: send your registry (as JSON). */
export const COLLECT_REQUEST = 'keypin:collect-request';
/** Process → supervisor: my registry; also sent unasked once, to say "ask me from now on". */
export const COLLECT_REPLY = 'keypin:collect-reply';

export interface MetricsRequest {
  type: typeof METRICS_REQUEST;
  id: number;
}
export interface MetricsReply {
  type: typeof METRICS_REPLY;
  id: number;
  text?: string;
  error?: string;
}
export interface CollectRequest {
  type: typeof COLLECT_REQUEST;
  id: number;
}
export interface CollectReply {
  type: typeof COLLECT_REPLY;
  /** 0 for the unasked one a process sends when it is ready. */
  id: number;
  metrics: RegistryJson | null;
}

function typed<T extends { type: string }>(type: T['type']) {
  return (msg: unknown): msg is T =>
    typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === type;
}
export const isMetricsRequest = typed<MetricsRequest>(METRICS_REQUEST);
export const isMetricsReply = typed<MetricsReply>(METRICS_REPLY);
export const isCollectRequest = typed<CollectRequest>(COLLECT_REQUEST);
export const isCollectReply = typed<CollectReply>(COLLECT_REPLY);

/** True in a process forked by the supervisor (WORKERS ≥ 2). */
export function inCluster(): boolean {
  return cluster.isWorker;
}

/**
 * In a process of a cluster: answers the supervisor's collections with
 * this process's registry, tells it that it can be asked, and returns the
 * renderer /metrics uses, which asks the supervisor for everyone's.
 */
export function clusterMetrics(registry: Registry, timeoutMs = 5000): () => Promise<string> {
  let next = 0;
  const waiting = new Map<number, { resolve: (t: string) => void; reject: (e: Error) => void }>();
  const send = (msg: CollectReply | MetricsRequest) => {
    if (process.connected) process.send!(msg);
  };
  process.on('message', (msg: unknown) => {
    if (isCollectRequest(msg)) {
      registry.getMetricsAsJSON().then(
        (metrics) => send({ type: COLLECT_REPLY, id: msg.id, metrics }),
        () => send({ type: COLLECT_REPLY, id: msg.id, metrics: null }),
      );
      return;
    }
    if (!isMetricsReply(msg)) return;
    const w = waiting.get(msg.id);
    if (w === undefined) return;
    waiting.delete(msg.id);
    if (msg.text !== undefined) w.resolve(msg.text);
    else w.reject(new Error(msg.error ?? 'no metrics'));
  });
  send({ type: COLLECT_REPLY, id: 0, metrics: null });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = ++next;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error('the supervisor did not answer for metrics'));
      }, timeoutMs);
      waiting.set(id, {
        resolve: (t) => (clearTimeout(timer), resolve(t)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      send({ type: METRICS_REQUEST, id });
    });
}
