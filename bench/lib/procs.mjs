// Child processes of the bench: start, wait for readiness, and make sure none
// outlives the runner, whatever way it ends.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** @type {Set<import('node:child_process').ChildProcess>} */
const children = new Set();

/** Signals every child still running; synchronous, so it is safe in an 'exit' handler. */
export function killAll(signal = 'SIGTERM') {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  // nginx's master takes its workers down on SIGTERM; the gateway drains and exits.
  process.on('exit', () => killAll('SIGTERM'));
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping children\n`);
      killAll('SIGTERM');
      process.exit(130);
    });
  }
}

/**
 * Spawns a child that the runner owns. Its output goes to `logFile` (when
 * given) so a failure can show the tail; with `ipc`, it shares the runner's
 * stdout and stderr and gets an IPC channel (child.send / 'message').
 */
export function startChild(name, command, args, { env, cwd, logFile, stdin = 'ignore', ipc = false } = {}) {
  hookExit();
  const logFd = logFile ? openSync(logFile, 'a') : 'ignore';
  const stdio = ipc
    ? [stdin, 'inherit', 'inherit', 'ipc']
    : [stdin, logFd === 'ignore' ? 'pipe' : logFd, logFd === 'ignore' ? 'pipe' : logFd];
  const child = spawn(command, args, { cwd, env: env ?? process.env, stdio });
  if (typeof logFd === 'number') closeSync(logFd);
  child.benchName = name;
  child.logFile = logFile;
  children.add(child);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
    child.once('error', (err) => {
      children.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
  });
  return child;
}

/** Stops one child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child, graceMs = 10_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = sleep(graceMs).then(() => 'timeout');
  if ((await Promise.race([child.exited, t])) === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
  }
}

export function logTail(child, lines = 30) {
  if (!child?.logFile) return '';
  try {
    return readFileSync(child.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check()` until it returns true; fails when the child exits or time runs out. */
export async function waitFor(what, check, { child, timeoutMs = 60_000, everyMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(
        `${child.benchName} exited (code ${child.exitCode}, signal ${child.signalCode}) before ${what}\n${logTail(child)}`,
      );
    }
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}\n${logTail(child)}`);
    }
    await sleep(everyMs);
  }
}

/** Resident set size of a process in bytes, from /proc (null when unreadable). */
export function rssBytes(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Samples a process's RSS (or `read(pid)`) every `everyMs` until stopped; returns {max, mean, last, samples}. */
export function sampleRss(pid, everyMs = 250, read = rssBytes) {
  const values = [];
  const take = () => {
    const v = read(pid);
    if (v !== null) values.push(v);
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      if (values.length === 0) return null;
      return {
        maxBytes: Math.max(...values),
        meanBytes: Math.round(values.reduce((a, b) => a + b, 0) / values.length),
        lastBytes: values[values.length - 1],
        samples: values.length,
      };
    },
  };
}

/** First line of a command's version output, or null. */
export function versionOf(command, args) {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.error) return null;
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return text.split('\n')[0] ?? null;
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

/** Busy and total jiffies of all CPUs together, from /proc/stat. */
function machineTimes() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // guest time is already in user
  return { idle, total };
}

/** CPU time (user + system, in ticks of 1/100 s) a process has used so far, or 0 when gone. */
export function processTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // fields 14 and 15: utime, stime
  } catch {
    return 0;
  }
}

/** Pids of running processes whose command name is one of `names`. */
export function pidsNamed(names) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (names.includes(readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/**
 * Waits until the processes behind the targets are idle (together below
 * `maxCores` of CPU over two consecutive `windowMs` windows), so that one
 * run's aftermath (the gateway writing intercepts to PostgreSQL, a garbage
 * collection) is not billed to the next run. `pids()` is asked again each
 * window (PostgreSQL starts a backend per connection). Also reports how busy
 * the whole machine was in the last window: other work on it is noise the
 * bench cannot remove, only show.
 */
export async function waitQuiet(pids, { maxCores = 0.1, windowMs = 300, timeoutMs = 20_000 } = {}) {
  const t0 = Date.now();
  let quietWindows = 0;
  let cores = 0;
  let machineBusy = 0;
  const ticks = (list) => new Map(list.map((pid) => [pid, processTicks(pid)]));
  let lastTicks = ticks(pids());
  let lastMachine = machineTimes();
  for (;;) {
    await sleep(windowMs);
    const list = pids();
    const nowTicks = ticks(list);
    let used = 0;
    for (const [pid, t] of nowTicks) used += Math.max(0, t - (lastTicks.get(pid) ?? t));
    cores = used / CLOCK_TICKS_PER_S / (windowMs / 1000);
    const m = machineTimes();
    const total = m.total - lastMachine.total;
    machineBusy = total > 0 ? 1 - (m.idle - lastMachine.idle) / total : 0;
    lastTicks = nowTicks;
    lastMachine = m;
    quietWindows = cores < maxCores ? quietWindows + 1 : 0;
    const waitedS = (Date.now() - t0) / 1000;
    if (quietWindows >= 2) return { waitedS, settled: true, cores, machineBusy };
    if (Date.now() - t0 >= timeoutMs) return { waitedS, settled: false, cores, machineBusy };
  }
}

// ---------------------------------------------------------------- process trees

/** [pid, ppid, utime+stime+cutime+cstime] of every process, from /proc/<pid>/stat. */
function allStats() {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields 4 (ppid), 14–17 (utime, stime, cutime, cstime) of proc(5)
      out.push([Number(entry), Number(f[1]), Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])]);
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * The pids of `roots` and of all their descendants (nginx's master and its
 * workers; the gateway, its cluster workers and any background process it
 * forks), found through the ppid field of /proc/<pid>/stat.
 */
export function treePids(roots, stats = allStats()) {
  const kids = new Map();
  for (const [pid, ppid] of stats) {
    if (!kids.has(ppid)) kids.set(ppid, []);
    kids.get(ppid).push(pid);
  }
  const seen = new Set();
  const todo = roots.filter((p) => p);
  while (todo.length) {
    const p = todo.pop();
    if (seen.has(p)) continue;
    seen.add(p);
    for (const k of kids.get(p) ?? []) todo.push(k);
  }
  return [...seen];
}

/**
 * CPU ticks (1/100 s) used so far by each group of process trees, in one
 * pass over /proc: `{ name: [rootPid, …] }` → `{ name: ticks }`. Counts the
 * children's time that a process in the tree has already reaped (cutime,
 * cstime), so a worker that exits between two readings is not lost.
 */
export function groupTicks(groups) {
  const stats = allStats();
  const ticks = new Map(stats.map(([pid, , t]) => [pid, t]));
  const out = {};
  for (const [name, roots] of Object.entries(groups)) {
    out[name] = treePids(roots, stats).reduce((a, pid) => a + (ticks.get(pid) ?? 0), 0);
  }
  return out;
}

/**
 * Starts a CPU meter over process-tree groups; `stop(requests)` returns,
 * per group, the CPU seconds used since the start and µs of CPU per request.
 */
export function cpuMeter(groups) {
  const t0 = groupTicks(groups);
  return {
    stop(requests) {
      const t1 = groupTicks(groups);
      const out = {};
      for (const name of Object.keys(groups)) {
        const s = Math.max(0, t1[name] - t0[name]) / CLOCK_TICKS_PER_S;
        out[name] = { cpuS: s, usPerRequest: requests > 0 ? (s * 1e6) / requests : null };
      }
      return out;
    },
  };
}

/** Resident set size of a process and all its descendants, in bytes (null when none readable). */
export function treeRssBytes(pid) {
  let sum = null;
  for (const p of treePids([pid])) {
    const v = rssBytes(p);
    if (v !== null) sum = (sum ?? 0) + v;
  }
  return sum;
}
