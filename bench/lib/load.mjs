// Load generators: wrk for throughput, an in-process open-loop client for
// latency, a sequential SSE client for time to first event.
import { Agent, request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startChild } from './procs.mjs';

// ---------------------------------------------------------------- statistics

/** Nearest-rank percentile of an ascending-sorted array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function summarize(values) {
  const sorted = Float64Array.from(values).sort();
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    n: sorted.length,
    meanMs: sorted.length ? sum / sorted.length : null,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length ? sorted[sorted.length - 1] : null,
  };
}

// ---------------------------------------------------------------- one request

/**
 * A keep-alive client for one target. `localAddress` binds the client socket
 * (127.0.0.2 looks like another machine to the gateway).
 */
export function makeClient(baseUrl, { concurrency = 1, localAddress } = {}) {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  /** Sends one request and resolves when the whole response has arrived. */
  const send = ({ method = 'GET', path, headers = {}, body }) =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method,
          path,
          headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
          localAddress,
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { send, agent, close: () => agent.destroy() };
}

function countStatus(map, status) {
  map[status] = (map[status] ?? 0) + 1;
}

/** `n` requests one after the other, as fast as they complete (warm-up, service time). */
export async function closedLoop(client, spec, n) {
  const statuses = {};
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await client.send(spec);
    times.push(performance.now() - t0);
    countStatus(statuses, r.status);
  }
  return { statuses, ...summarize(times) };
}

/**
 * Open-loop load: request i is due at start + i·intervalMs, whatever happened
 * to the ones before it, with at most `concurrency` in flight.
 *
 * Latency is corrected for coordinated omission without charging the server
 * for this client's own timer jitter: each of the `concurrency` slots keeps a
 * virtual clock of when it would have been free had every request left
 * exactly when due. Request i goes out on the slot free earliest; its virtual
 * start is max(due, slot free), its virtual end that plus the service time
 * actually measured, and its latency virtual end − due. A slow response thus
 * delays, and is charged to, every request queued behind it (as wrk2 does),
 * while a late timer wake-up in this process is not.
 *
 * `clientLagMs` tells whether the client kept up with the schedule: how late
 * requests left that had an idle slot waiting for them.
 */
export function openLoop(client, spec, { count, intervalMs, concurrency }) {
  return new Promise((resolve) => {
    const latencies = new Float64Array(count);
    const service = new Float64Array(count);
    const lags = [];
    const statuses = {};
    let errors = 0;
    let firstError;
    // Idle slots, each with its virtual free time and the real time it went idle.
    const idle = [];
    for (let s = 0; s < concurrency; s++) idle.push({ vfree: -Infinity, freeAt: -Infinity });
    let next = 0;
    let done = 0;
    let heldUp = 0; // requests that found every slot busy when due
    let timer = null;
    let firstSend = null;
    let lastSend = null;
    const t0 = performance.now() + 2;

    const finish = (i, slot, due, vstart, sent, status, err) => {
      const end = performance.now();
      service[i] = end - sent;
      slot.vfree = vstart + service[i];
      slot.freeAt = end;
      latencies[i] = slot.vfree - due;
      if (err) {
        errors++;
        firstError ??= err;
      } else countStatus(statuses, status);
      idle.push(slot);
      if (++done === count) {
        if (timer) clearTimeout(timer);
        const sendSpanS = (lastSend - firstSend) / 1000;
        resolve({
          statuses,
          errors,
          firstError: firstError?.message,
          heldUp,
          targetRatePerS: 1000 / intervalMs,
          achievedRatePerS: sendSpanS > 0 ? (count - 1) / sendSpanS : null,
          clientLagMs: summarize(lags),
          serviceMs: summarize(service),
          ...summarize(latencies),
        });
      } else pump();
    };

    const pump = () => {
      const now = performance.now();
      while (next < count && idle.length > 0) {
        const due = t0 + next * intervalMs;
        if (due > now) break;
        let k = 0;
        for (let j = 1; j < idle.length; j++) if (idle[j].vfree < idle[k].vfree) k = j;
        const slot = idle[k];
        idle[k] = idle[idle.length - 1];
        idle.pop();
        if (slot.freeAt > due) heldUp++;
        else lags.push(now - due);
        const vstart = Math.max(due, slot.vfree);
        const i = next++;
        const sent = performance.now();
        firstSend ??= sent;
        lastSend = sent;
        client.send(spec).then(
          (r) => finish(i, slot, due, vstart, sent, r.status),
          (err) => finish(i, slot, due, vstart, sent, 0, err),
        );
      }
      if (next < count && idle.length > 0 && timer === null) {
        const wait = t0 + next * intervalMs - performance.now();
        timer = setTimeout(
          () => {
            timer = null;
            pump();
          },
          Math.max(0, wait),
        );
      }
    };
    pump();
  });
}

/**
 * Time to first SSE event: `n` sequential streaming requests; for each, the
 * time from just before the request is written until the first `data:` line
 * has arrived, and until the stream ends.
 */
export async function sseFirstEvent(baseUrl, { path, headers, body, n, warmup }) {
  const url = new URL(baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const one = () =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      let first = null;
      let text = '';
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path,
          headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.setEncoding('utf8');
          res.on('data', (d) => {
            if (first === null) {
              text += d;
              if (/(^|\n)data:/.test(text)) first = performance.now() - t0;
            } else if (text.length < 4096) text += d;
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode,
              contentType: res.headers['content-type'] ?? '',
              firstMs: first,
              totalMs: performance.now() - t0,
              done: text.includes('data: [DONE]'),
            }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  try {
    for (let i = 0; i < warmup; i++) await one();
    const firsts = [];
    const totals = [];
    const statuses = {};
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const r = await one();
      countStatus(statuses, r.status);
      if (
        r.status !== 200 ||
        r.firstMs === null ||
        !r.done ||
        !r.contentType.startsWith('text/event-stream')
      ) {
        bad++;
        continue;
      }
      firsts.push(r.firstMs);
      totals.push(r.totalMs);
    }
    return { statuses, bad, firstEvent: summarize(firsts), wholeStream: summarize(totals) };
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------- wrk

/**
 * A wrk script that sets the request and counts every response status in a
 * `response` callback (and, optionally, bodies containing `marker`), printed
 * from `done` as `BENCH …` lines.
 */
function wrkScript({ method, headers, body, marker }) {
  const lua = (s) => JSON.stringify(s); // a JSON string literal is a valid Lua string literal here
  const lines = [`wrk.method = ${lua(method)}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`wrk.headers[${lua(k)}] = ${lua(v)}`);
  if (body !== undefined) lines.push(`wrk.body = ${lua(body)}`);
  lines.push(`
local marker = ${marker ? lua(marker) : 'nil'}
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
  marked = 0
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if marker ~= nil and body ~= nil and string.find(body, marker, 1, true) then
    marked = marked + 1
  end
end
function done(summary, latency, requests)
  local total = {}
  local m = 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      total[code] = (total[code] or 0) + n
    end
    m = m + t:get("marked")
  end
  for code, n in pairs(total) do
    io.write(string.format("BENCH status %d %d\\n", code, n))
  end
  io.write(string.format("BENCH marked %d\\n", m))
  io.write(string.format("BENCH requests %d\\n", summary.requests))
  io.write(string.format("BENCH duration_us %d\\n", summary.duration))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("BENCH latency_p%d_us %d\\n", p, latency:percentile(p)))
  end
end
`);
  return lines.join('\n');
}

const num = (s) => Number(String(s).replace(/,/g, ''));

/** Parses wrk's own text output and the script's `BENCH` lines. */
export function parseWrk(out) {
  const r = {
    requests: null,
    durationS: null,
    rps: null,
    non2xx3xx: 0,
    socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 },
    statuses: {},
    marked: null,
    latencyMs: {},
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (rps) r.rps = num(rps[1]);
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (total) {
    r.requests = num(total[1]);
    const unit = { us: 1e-6, ms: 1e-3, s: 1, m: 60 }[total[3]];
    r.durationS = num(total[2]) * unit;
  }
  const non = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  if (non) r.non2xx3xx = num(non[1]);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (sock)
    r.socketErrors = {
      connect: num(sock[1]),
      read: num(sock[2]),
      write: num(sock[3]),
      timeout: num(sock[4]),
    };
  for (const m of out.matchAll(/^BENCH (\S+) (\S+)(?: (\S+))?$/gm)) {
    if (m[1] === 'status') r.statuses[m[2]] = num(m[3]);
    else if (m[1] === 'marked') r.marked = num(m[2]);
    else if (m[1] === 'requests') r.requests = num(m[2]);
    else if (m[1] === 'duration_us') r.durationS = num(m[2]) / 1e6;
    else if (m[1].startsWith('latency_p')) r.latencyMs[m[1].slice(8, -3)] = num(m[2]) / 1000;
  }
  return r;
}

/** Runs wrk against `url` with the request described by `spec`. */
export function runWrk(url, spec, { threads = 1, connections = 32, durationS = 10, tmpDir, name }) {
  const scriptPath = join(tmpDir, `wrk-${name}.lua`);
  writeFileSync(scriptPath, wrkScript(spec));
  const args = [
    `-t${threads}`,
    `-c${connections}`,
    `-d${durationS}s`,
    '--timeout',
    '5s',
    '-s',
    scriptPath,
    url,
  ];
  return new Promise((resolve, reject) => {
    const child = startChild('wrk', 'wrk', args);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited with ${code}: ${err || out}`));
      const parsed = parseWrk(out);
      if (parsed.rps === null) return reject(new Error(`could not parse wrk output:\n${out}\n${err}`));
      resolve({ ...parsed, command: `wrk ${args.join(' ')}` });
    });
  });
}
