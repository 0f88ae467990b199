import type { Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { COLLECT_REQUEST, type CollectReply, type RegistryJson } from './cluster-messages';

interface Collection {
  pending: Set<number>;
  parts: RegistryJson[];
  done: () => void;
}

/**
 * The supervisor's side of /metrics: asks every process that has said it
 * is ready for its registry and sums them (prom-client's aggregators: sum,
 * or what a metric names). A process that does not answer within the
 * deadline (busy starting, dying) is left out of that scrape rather than
 * failing it.
 */
export class MetricsCollector {
  private readonly ready = new Map<number, Worker>();
  private readonly collections = new Map<number, Collection>();
  private next = 0;

  constructor(private readonly deadlineMs = 2000) {}

  /** A process's reply (or its unasked "ready"). */
  onReply(worker: Worker, msg: CollectReply): void {
    this.ready.set(worker.id, worker);
    const c = this.collections.get(msg.id);
    if (c === undefined || !c.pending.delete(worker.id)) return;
    if (msg.metrics !== null) c.parts.push(msg.metrics);
    if (c.pending.size === 0) c.done();
  }

  forget(worker: Worker): void {
    this.ready.delete(worker.id);
    for (const c of this.collections.values())
      if (c.pending.delete(worker.id) && c.pending.size === 0) c.done();
  }

  async collect(): Promise<string> {
    const id = ++this.next;
    const parts: RegistryJson[] = [];
    await new Promise<void>((resolve) => {
      const pending = new Set<number>();
      const timer = setTimeout(() => finish(), this.deadlineMs);
      const finish = () => {
        clearTimeout(timer);
        this.collections.delete(id);
        resolve();
      };
      this.collections.set(id, { pending, parts, done: finish });
      for (const w of this.ready.values()) {
        if (!w.isConnected()) continue;
        pending.add(w.id);
        w.send({ type: COLLECT_REQUEST, id });
      }
      if (pending.size === 0) finish();
    });
    return AggregatorRegistry.aggregate(parts).metrics();
  }
}
