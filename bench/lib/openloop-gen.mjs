// One process of the bench's open-loop load generator (bench/lib/openloop.mjs
// forks one or more of these and merges what they measure). Not run by hand.
//
// It receives a job over IPC, opens `connections` keep-alive TCP connections
// (one request in flight on each, the request bytes prepared once), and sends
// request i at its due time `t0 + offset + i·interval`, whatever happened to
// the ones before it: an open loop. Responses are parsed just enough to know
// where they end (Content-Length or chunked) and what their status was.
//
// Latency is counted from the due time, corrected for coordinated omission
// without charging the server for this process's own timer jitter: each
// connection keeps a virtual clock of when it would have been free had every
// request left exactly when due. A request goes out on the idle connection
// that is free earliest (virtually); its virtual start is max(due, that
// connection's virtual free time), its virtual end that plus the service time
// actually measured (write to last byte), its latency virtual end − due. A
// slow response is thus charged to every request queued behind it, as wrk2
// does, while a late wake-up of this process's timers is not (it is reported
// as `lag`). Latencies go into a log histogram with 1% wide buckets.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Bucket of a latency in µs (bucket b holds values up to GROWTH^b µs). */
const bucketOf = (us) => (us <= 1 ? 0 : Math.ceil(Math.log(us) / LOG_GROWTH));
const TIMEOUT_BUCKET = bucketOf(60e6); // a request that never completed

class Histogram {
  constructor() {
    this.counts = new Map();
    this.n = 0;
  }
  add(us) {
    const b = bucketOf(us);
    this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
    this.n++;
  }
  addBucket(b, k = 1) {
    this.counts.set(b, (this.counts.get(b) ?? 0) + k);
    this.n += k;
  }
  toJSON() {
    return [...this.counts.entries()];
  }
}

const CRLF2 = Buffer.from('\r\n\r\n');
const LAST_CHUNK = Buffer.from('\r\n0\r\n\r\n');

function parseHead(head) {
  const text = head.toString('latin1');
  const status = Number(text.slice(9, 12));
  const lower = text.toLowerCase();
  const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
  const chunked = /\r\ntransfer-encoding:[^\r]*chunked/.test(lower);
  const close = /\r\nconnection:\s*close/.test(lower);
  return { status, length: cl ? Number(cl[1]) : null, chunked, close };
}

function runJob(job) {
  return new Promise((resolve) => {
    const {
      host,
      port,
      localAddress,
      request,
      connections,
      intervalMs,
      offsetMs,
      count,
      measureFrom,
      startAtEpochMs,
      drainMs,
    } = job;
    const reqBytes = Buffer.from(request, 'latin1');
    const t0 = performance.now() + (startAtEpochMs - Date.now()) + offsetMs;
    const due = (i) => t0 + i * intervalMs;
    const hist = new Histogram();
    const lag = new Histogram();
    const statuses = {};
    let errors = 0;
    let firstError = null;
    let heldUp = 0;
    let next = 0;
    let done = 0;
    let measuredFirstSend = null;
    let measuredLastSend = null;
    let measuredSent = 0;
    let timer = null;
    let finished = false;
    const cpu0 = process.cpuUsage();
    const conns = [];
    const idle = [];

    const finish = () => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      // Requests of the measured window that never completed: timeouts.
      let timeouts = 0;
      for (const c of conns) {
        if (c.busy && c.index >= measureFrom) timeouts++;
        c.socket?.destroy();
      }
      const unsent = Math.max(0, count - Math.max(next, measureFrom));
      timeouts += unsent;
      if (timeouts) hist.addBucket(TIMEOUT_BUCKET, timeouts);
      const cpu = process.cpuUsage(cpu0);
      resolve({
        hist: hist.toJSON(),
        lag: lag.toJSON(),
        statuses,
        errors,
        firstError,
        timeouts,
        heldUp,
        measured: count - measureFrom,
        measuredSent,
        sendSpanMs: measuredSent > 1 ? measuredLastSend - measuredFirstSend : null,
        cpuS: (cpu.user + cpu.system) / 1e6,
      });
    };

    const complete = (c, status, err) => {
      const end = performance.now();
      const i = c.index;
      const service = end - c.sent;
      c.vfree = c.vstart + service;
      c.busy = false;
      if (i >= measureFrom) {
        if (err) {
          errors++;
          firstError ??= String(err.message ?? err);
          hist.addBucket(TIMEOUT_BUCKET);
        } else {
          statuses[status] = (statuses[status] ?? 0) + 1;
          hist.add((c.vfree - c.due) * 1000);
        }
      }
      done++;
      if (done === count) return finish();
      if (c.socket && !c.socket.destroyed && !c.closing) idle.push(c);
      pump();
    };

    const onData = (c, chunk) => {
      if (!c.busy) return; // unsolicited bytes: ignore
      c.buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
      if (!c.head) {
        const h = c.buf.indexOf(CRLF2);
        if (h === -1) return;
        c.head = parseHead(c.buf.subarray(0, h));
        c.bodyStart = h + 4;
      }
      const body = c.buf.length - c.bodyStart;
      let complete_ = false;
      if (c.head.length !== null) complete_ = body >= c.head.length;
      else if (c.head.chunked) {
        complete_ = c.buf.indexOf(LAST_CHUNK, c.bodyStart - 2) !== -1;
      } else complete_ = c.head.status === 204 || c.head.status === 304;
      if (!complete_) return;
      const status = c.head.status;
      if (c.head.close) {
        c.closing = true;
        c.socket.destroy();
        reconnect(c);
      }
      c.buf = null;
      c.head = null;
      complete(c, status);
    };

    const connect = (c) =>
      new Promise((res) => {
        const s = net.connect({ host, port, localAddress });
        s.setNoDelay(true);
        c.socket = s;
        c.closing = false;
        s.on('connect', () => res(true));
        s.on('data', (d) => onData(c, d));
        s.on('error', (err) => {
          firstError ??= String(err.message);
          res(false);
        });
        s.on('close', () => {
          if (c.socket !== s) return;
          c.socket = null;
          const k = idle.indexOf(c);
          if (k !== -1) idle.splice(k, 1);
          if (c.busy) {
            c.buf = null;
            c.head = null;
            complete(c, 0, new Error('connection closed mid-response'));
          }
          if (!finished) reconnect(c);
        });
      });

    const reconnect = (c) => {
      if (finished || c.reconnecting) return;
      c.reconnecting = true;
      setTimeout(async () => {
        c.reconnecting = false;
        if (finished) return;
        if (await connect(c)) {
          if (!c.busy && !idle.includes(c)) idle.push(c);
          pump();
        }
      }, 5);
    };

    const pump = () => {
      if (finished) return;
      const now = performance.now();
      while (next < count && idle.length > 0) {
        const d = due(next);
        if (d > now) break;
        let k = 0;
        for (let j = 1; j < idle.length; j++) if (idle[j].vfree < idle[k].vfree) k = j;
        const c = idle[k];
        idle[k] = idle[idle.length - 1];
        idle.pop();
        const i = next++;
        if (c.freeAt > d) heldUp++;
        else if (i >= measureFrom) lag.add((now - d) * 1000);
        c.busy = true;
        c.index = i;
        c.due = d;
        c.vstart = Math.max(d, c.vfree);
        c.sent = performance.now();
        if (i >= measureFrom) {
          measuredFirstSend ??= c.sent;
          measuredLastSend = c.sent;
          measuredSent++;
        }
        c.socket.write(reqBytes);
      }
      if (next < count && idle.length > 0 && timer === null) {
        timer = setTimeout(
          () => {
            timer = null;
            pump();
          },
          Math.max(0, due(next) - performance.now()),
        );
      }
    };

    (async () => {
      for (let k = 0; k < connections; k++) {
        const c = { socket: null, busy: false, vfree: -Infinity, freeAt: -Infinity, buf: null, head: null };
        conns.push(c);
        if (await connect(c)) idle.push(c);
      }
      // Keep freeAt current for the heldUp count.
      const origPush = idle.push.bind(idle);
      idle.push = (c) => {
        c.freeAt = performance.now();
        return origPush(c);
      };
      const wait = due(0) - performance.now();
      setTimeout(pump, Math.max(0, wait));
      // The schedule's end plus the drain allowance, then whatever is left is a timeout.
      setTimeout(finish, Math.max(0, due(count - 1) - performance.now()) + drainMs);
    })();
  });
}

process.on('message', async (job) => {
  if (job?.type === 'exit') process.exit(0);
  const result = await runJob(job);
  process.send(result);
});
process.on('disconnect', () => process.exit(0));
