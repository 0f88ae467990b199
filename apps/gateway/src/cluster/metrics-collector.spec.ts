import type { Worker } from 'node:cluster';
import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { COLLECT_REPLY, type CollectRequest, type RegistryJson } from './cluster-messages';
import { MetricsCollector } from './metrics-collector';

/** A process's registry: `requests` counted, a ratio gauge averaged. */
async function registryOf(requests: number, ratio: number): Promise<RegistryJson> {
  const r = new Registry();
  new Counter({ name: 't_requests_total', help: 'h', registers: [r] }).inc(requests);
  new Gauge({ name: 't_ratio', help: 'h', registers: [r], aggregator: 'average' }).set(ratio);
  return r.getMetricsAsJSON();
}

/** A stand-in for a cluster worker: answers collections with `metrics`, or stays silent. */
function fakeWorker(id: number, collector: () => MetricsCollector, metrics: RegistryJson | 'silent'): Worker {
  const w = {
    id,
    isConnected: () => true,
    send: (msg: CollectRequest) => {
      if (metrics === 'silent') return true;
      setImmediate(() => collector().onReply(w, { type: COLLECT_REPLY, id: msg.id, metrics }));
      return true;
    },
  } as unknown as Worker;
  return w;
}

describe('MetricsCollector (the supervisor side of /metrics)', () => {
  it('sums the counters of every ready process and averages what asks to be averaged', async () => {
    const c = new MetricsCollector(1000);
    const a = fakeWorker(1, () => c, await registryOf(3, 0.5));
    const b = fakeWorker(2, () => c, await registryOf(4, 1));
    c.onReply(a, { type: COLLECT_REPLY, id: 0, metrics: null });
    c.onReply(b, { type: COLLECT_REPLY, id: 0, metrics: null });
    const text = await c.collect();
    expect(text).toContain('t_requests_total 7');
    expect(text).toContain('t_ratio 0.75');
  });

  it('asks only processes that said they are ready', async () => {
    const c = new MetricsCollector(1000);
    const a = fakeWorker(1, () => c, await registryOf(3, 0));
    c.onReply(a, { type: COLLECT_REPLY, id: 0, metrics: null });
    // A second process exists but has not said it is ready: not waited for.
    fakeWorker(2, () => c, 'silent');
    const started = Date.now();
    expect(await c.collect()).toContain('t_requests_total 3');
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('leaves out a process that does not answer within the deadline, and one that leaves', async () => {
    const c = new MetricsCollector(100);
    const a = fakeWorker(1, () => c, await registryOf(5, 0));
    const silent = fakeWorker(2, () => c, 'silent');
    c.onReply(a, { type: COLLECT_REPLY, id: 0, metrics: null });
    c.onReply(silent, { type: COLLECT_REPLY, id: 0, metrics: null });
    const started = Date.now();
    expect(await c.collect()).toContain('t_requests_total 5');
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    // Once it is gone, a collection does not wait for it at all.
    c.forget(silent);
    const again = Date.now();
    expect(await c.collect()).toContain('t_requests_total 5');
    expect(Date.now() - again).toBeLessThan(90);
  });
});
