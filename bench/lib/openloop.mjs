// The bench's open-loop load generator: `processes` Node processes
// (bench/lib/openloop-gen.mjs), each with its own keep-alive connections and
// its share of a fixed schedule of send times, interleaved so that together
// they send one request every 1/rate s. Their latency histograms are merged.
// See openloop-gen.mjs for how latency is counted.
import { join } from 'node:path';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChild, stopChild } from './procs.mjs';

const GEN = join(dirname(fileURLToPath(import.meta.url)), 'openloop-gen.mjs');
const GROWTH = 1.01;

/** The raw HTTP/1.1 request for a spec ({method, path, headers, body}). */
export function rawRequest(url, { method = 'GET', path, headers = {}, body }) {
  const u = new URL(url);
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${u.host}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`;
}

/** Percentile (ms) from merged [bucket, count] pairs: the upper edge of the bucket holding it. */
function histPercentile(sorted, n, p) {
  if (n === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * n));
  let seen = 0;
  for (const [b, k] of sorted) {
    seen += k;
    if (seen >= rank) return GROWTH ** b / 1000;
  }
  return null;
}

function merge(hists) {
  const m = new Map();
  for (const h of hists) for (const [b, k] of h) m.set(b, (m.get(b) ?? 0) + k);
  const sorted = [...m.entries()].sort((a, b) => a[0] - b[0]);
  const n = sorted.reduce((a, [, k]) => a + k, 0);
  return {
    n,
    p50Ms: histPercentile(sorted, n, 50),
    p90Ms: histPercentile(sorted, n, 90),
    p99Ms: histPercentile(sorted, n, 99),
    p999Ms: histPercentile(sorted, n, 99.9),
    maxMs: sorted.length ? GROWTH ** sorted[sorted.length - 1][0] / 1000 : null,
  };
}

/**
 * Forks the generator processes; `run(url, spec, {ratePerS, warmupS,
 * durationS})` sends one step of load and resolves with the merged figures.
 */
export async function startOpenLoop({ processes = 2, connectionsPerProcess = 32, localAddress } = {}) {
  const gens = [];
  for (let k = 0; k < processes; k++) {
    gens.push(startChild(`openloop-${k}`, process.execPath, [GEN], { ipc: true }));
  }
  const ask = (g, job) =>
    new Promise((resolve, reject) => {
      const onExit = () => reject(new Error(`${g.benchName} exited`));
      g.once('exit', onExit);
      g.once('message', (m) => {
        g.off('exit', onExit);
        resolve(m);
      });
      g.send(job);
    });
  return {
    processes,
    connections: processes * connectionsPerProcess,
    pids: () => gens.map((g) => g.pid),
    async run(url, spec, { ratePerS, warmupS, durationS, drainS = 5 }) {
      const u = new URL(url);
      const intervalMs = (1000 * processes) / ratePerS;
      const count = Math.max(2, Math.round((ratePerS * (warmupS + durationS)) / processes));
      const measureFrom = Math.round((ratePerS * warmupS) / processes);
      const startAtEpochMs = Date.now() + 300;
      const request = rawRequest(url, spec);
      const parts = await Promise.all(
        gens.map((g, k) =>
          ask(g, {
            host: u.hostname,
            port: Number(u.port),
            localAddress,
            request,
            connections: connectionsPerProcess,
            intervalMs,
            offsetMs: (k * 1000) / ratePerS,
            count,
            measureFrom,
            startAtEpochMs,
            drainMs: drainS * 1000,
          }),
        ),
      );
      const statuses = {};
      for (const p of parts)
        for (const [s, k] of Object.entries(p.statuses)) statuses[s] = (statuses[s] ?? 0) + k;
      const measured = parts.reduce((a, p) => a + p.measured, 0);
      const completed = Object.values(statuses).reduce((a, b) => a + b, 0);
      const achieved = parts.reduce(
        (a, p) => a + (p.sendSpanMs ? ((p.measuredSent - 1) * 1000) / p.sendSpanMs : 0),
        0,
      );
      const lat = merge(parts.map((p) => p.hist));
      const lag = merge(parts.map((p) => p.lag));
      return {
        ratePerS,
        achievedRatePerS: achieved,
        measured,
        completed,
        statuses,
        errors: parts.reduce((a, p) => a + p.errors, 0),
        timeouts: parts.reduce((a, p) => a + p.timeouts, 0),
        firstError: parts.find((p) => p.firstError)?.firstError ?? null,
        heldUp: parts.reduce((a, p) => a + p.heldUp, 0),
        p50Ms: lat.p50Ms,
        p90Ms: lat.p90Ms,
        p99Ms: lat.p99Ms,
        p999Ms: lat.p999Ms,
        maxMs: lat.maxMs,
        clientLagP99Ms: lag.p99Ms,
        // CPU seconds of the generator processes per second of load: near
        // 1.0 per process means the generator itself was saturated.
        generatorCpuS: parts.reduce((a, p) => a + p.cpuS, 0),
        generatorCoresMax: Math.max(...parts.map((p) => p.cpuS)) / (warmupS + durationS),
      };
    },
    async close() {
      for (const g of gens) {
        try {
          g.send({ type: 'exit' });
        } catch {
          // gone
        }
      }
      await Promise.all(gens.map((g) => stopChild(g, 2000)));
    },
  };
}
