import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../infra/redis/redis.factory';
import type { Logger } from 'pino';
import type { RedisKeys } from '../infra/redis/redis-keys';
import { RateLimitedLog } from '../infra/rate-limited-log';
import { DAY_MS } from '../infra/utc-day';
import type { CompiledPolicy } from './compiled-policy';
import {
  type Bucket,
  formatResetDuration,
  msUntilFull,
  nextUtcDay,
  nextUtcMonth,
  retryAfterSeconds,
  takeToken,
  tokensAt,
  utcDay,
  utcMonth,
} from './policy-math';

/**
 * One atomic step for everything a policy counts (docs/contract.md 9), for
 * `n` requests of one key at once: the requests of a key that arrive in
 * the same turn of the event loop share one round trip (under load, many
 * do). Each request is judged in turn, exactly as if it had come alone:
 * the quotas, the requests in flight and the token bucket are checked
 * first, and only a request that all of them admit charges any of them.
 * All four keys carry the binding id as a hash tag (one Redis Cluster slot).
 *
 * KEYS: 1 bucket (hash t, at), 2 day counter, 3 month counter, 4 leases (zset by expiry)
 * ARGV: 1 "now rate burst perDay dayTtl perMonth monthTtl maxConcurrent leaseMs n
 *       seedDay seedMonth" (one string: every argument costs the client a
 *       conversion and a length prefix), 2… lease members; without
 *       `max_concurrent`, ARGV[2] may instead mark the requests admitted
 *       already (`1` at their place: charged whatever the counters say,
 *       see AHEAD_FLOOR). A day or month
 *       counter Redis does not have starts from its seed (the count
 *       PostgreSQL recorded), so a quota counts the whole calendar period.
 * Returns, per request, {verdict, wait ms, day count, month count, tokens × 1000}
 * (flat); verdict 0 admitted, 1 rate, 2 day quota, 3 month quota, 4 concurrency.
 *
 * The caller's clock is used (not Redis's TIME): the day and month are part
 * of the key names, which a cluster needs to know before the script runs.
 * A clock that goes backwards refills nothing and never moves `at` back.
 */
const ADMIT = `
local a = {}
for v in string.gmatch(ARGV[1], '%S+') do a[#a + 1] = tonumber(v) end
local now = a[1]
local rate = a[2]
local burst = a[3]
local perDay = a[4]
local dayTtl = a[5]
local perMonth = a[6]
local monthTtl = a[7]
local maxc = a[8]
local leaseMs = a[9]
local n = a[10]
local day = 0
local month = 0
local newDay = false
local newMonth = false
if perDay > 0 then
  local v = redis.call('GET', KEYS[2])
  if v then day = tonumber(v) else day = a[11]; newDay = true end
end
if perMonth > 0 then
  local v = redis.call('GET', KEYS[3])
  if v then month = tonumber(v) else month = a[12]; newMonth = true end
end
local inflight = 0
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  inflight = redis.call('ZCARD', KEYS[4])
end
local tokens = 0
local at = now
if rate > 0 then
  local b = redis.call('HMGET', KEYS[1], 't', 'at')
  tokens = tonumber(b[1]) or burst
  at = tonumber(b[2]) or now
  if now > at then
    tokens = tokens + (now - at) * rate / 1000
    at = now
  end
  if tokens > burst then tokens = burst end
end
local out = {}
local admitted = 0
local forced = ''
if maxc == 0 and ARGV[2] then forced = ARGV[2] end
for i = 1, n do
  local verdict = 0
  local wait = 0
  if string.byte(forced, i) == 49 then
    admitted = admitted + 1
    if rate > 0 then tokens = tokens - 1 end
    if perDay > 0 then day = day + 1 end
    if perMonth > 0 then month = month + 1 end
  elseif perDay > 0 and day >= perDay then verdict = 2
  elseif perMonth > 0 and month >= perMonth then verdict = 3
  elseif maxc > 0 and inflight >= maxc then
    verdict = 4
    wait = 1000
  elseif rate > 0 and tokens < 1 then
    verdict = 1
    wait = math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  else
    admitted = admitted + 1
    if rate > 0 then tokens = tokens - 1 end
    if perDay > 0 then day = day + 1 end
    if perMonth > 0 then month = month + 1 end
    if maxc > 0 then
      inflight = inflight + 1
      redis.call('ZADD', KEYS[4], now + leaseMs, ARGV[1 + i])
    end
  end
  out[#out + 1] = verdict
  out[#out + 1] = wait
  out[#out + 1] = day
  out[#out + 1] = month
  out[#out + 1] = math.floor(tokens * 1000)
end
if perDay > 0 then
  if newDay then redis.call('SET', KEYS[2], day, 'PX', dayTtl)
  elseif admitted > 0 then redis.call('INCRBY', KEYS[2], admitted) end
end
if perMonth > 0 then
  if newMonth then redis.call('SET', KEYS[3], month, 'PX', monthTtl)
  elseif admitted > 0 then redis.call('INCRBY', KEYS[3], admitted) end
end
if admitted > 0 then
  if rate > 0 then
    redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(at))
    redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
  end
  if maxc > 0 then redis.call('PEXPIRE', KEYS[4], leaseMs * 2) end
end
return out`;

/** Five numbers per request of the batch. */
type ScriptReply = number[];

/**
 * After an outage: adds what an instance admitted alone to a counter Redis
 * kept. A counter Redis lost stays absent: the next request's script starts
 * it from the stored counts, which include those requests already.
 */
const INCR_IF_EXISTS = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return false`;

interface PipelineCommands {
  keypinIncrIfExists(key: string, by: number): PipelineCommands;
  exec(): Promise<unknown>;
}

interface PolicyCommands {
  keypinPolicyAdmit(...args: string[]): Promise<ScriptReply>;
}

/** A request's place among the key's requests in flight; give it back with `release`. */
export interface Lease {
  readonly bindingId: number;
  /** The member in Redis's lease set, or null when counted in this process's memory. */
  readonly member: string | null;
  readonly key: string | null;
}

export type Admission =
  | { ok: true; lease: Lease | null; headers: string[] | null }
  | {
      ok: false;
      code: 'rate_limited' | 'quota_exceeded';
      message: string;
      retryAfter: number;
      headers: string[];
    };

/** Requests of a key already forwarded today and this month (what PostgreSQL recorded). */
export interface QuotaSeed {
  today: number;
  month: number;
}

export interface PolicyLimiterOptions {
  now?: () => number;
  /** How long a lease lives in Redis unless renewed. */
  leaseMs?: number;
  /**
   * Where a key's quota counters start when Redis has none for the day or
   * month yet (so a quota counts the calendar day, requests made before
   * the quota was set included). Absent: they start from 0.
   */
  seed?: (bindingId: number) => Promise<QuotaSeed>;
}

/** How long a policy check waits for a key's stored counts before counting from 0. */
const SEED_WAIT_MS = 500;

/** The requests of one key waiting for one script call; `resolve` null: admitted ahead already, only charged. */
interface Batch {
  bindingId: number;
  p: CompiledPolicy;
  waiters: { resolve: ((a: Admission) => void) | null; member: string }[];
  /** How many waiters were admitted ahead. */
  ahead: number;
}

/** At most this many requests of one key in one script call. */
const MAX_BATCH = 256;

/** A counter of one UTC day or month, as this process last knew it. */
interface PeriodCount {
  period: string;
  n: number;
  /** Counted here while Redis could not be reached: added to Redis when it is back. */
  unsynced: number;
}

/** What this process knows of one key's counters: Redis's last answer, or its own while Redis is away. */
interface LocalState {
  bucket: Bucket | null;
  day: PeriodCount | null;
  month: PeriodCount | null;
  inFlight: number;
  /** Redis's last answer for the key, for admitting ahead of Redis; null until one came. */
  view: SharedView | null;
}

/**
 * The counters as Redis last reported them after a script call, plus what
 * this instance admitted ahead since (not yet in a reply).
 */
interface SharedView {
  p: CompiledPolicy;
  /** The UTC day and month the counts are for. */
  day: string;
  month: string;
  /** The caller's clock the script ran with (for `tokens`). */
  at: number;
  tokens: number;
  dayCount: number;
  monthCount: number;
  /** Admitted ahead by this instance and not yet counted in a reply. */
  unreflected: number;
  /** Requests other instances took between the last two replies (the margin grows with it). */
  others: number;
}

/**
 * Ahead of Redis (docs/policies.md): far from every limit a request need
 * not wait for the script. It is admitted at once from the key's last
 * shared view and charged, unconditionally, in the next script call. Only
 * when at least this many requests plus a margin are left under every
 * limit, and the view is fresh; near a limit every request waits.
 */
const AHEAD_FLOOR = 1000;
/** Limits (a quota, a bucket's burst) below this are never admitted ahead: every request waits for Redis. */
const AHEAD_MIN_LIMIT = 10_000;
/**
 * At most this many requests admitted ahead since the last reply: then the
 * next one waits for Redis, so no instance runs on an old view for long
 * (what all instances may take between two of their replies stays far
 * below AHEAD_FLOOR).
 */
const AHEAD_MAX_UNREFLECTED = 200;
/** A view older than this is not trusted for admitting ahead. */
const AHEAD_FRESH_MS = 1000;

const NO_SEED: QuotaSeed = Object.freeze({ today: 0, month: 0 });
const NO_SEED_PROMISE = Promise.resolve(NO_SEED);

/** A lease lives this long in Redis unless renewed (an instance that dies frees its slots after it). */
export const LEASE_MS = 60_000;

/**
 * Enforces a policy's counters: the token bucket, the daily and monthly
 * quotas and `max_concurrent`, shared by every instance through one Redis
 * script per request. While Redis cannot answer, each instance enforces
 * alone from memory, continuing from the counts Redis last reported (so a
 * quota is not reset by an outage), and adds what it counted meanwhile to
 * Redis when Redis is back.
 */
export class PolicyLimiter {
  private readonly local = new Map<number, LocalState>();
  private readonly live = new Map<string, Lease>();
  private readonly instanceTag = randomBytes(6).toString('hex');
  private seq = 0;
  private renewTimer: NodeJS.Timeout | null = null;
  /** The last shared call failed (or Redis was not ready): policies are enforced per instance. */
  private degradedSince: number | null = null;
  private readonly failureLog: RateLimitedLog;
  /** Requests waiting for this turn's script calls, by binding id. */
  private readonly pending = new Map<number, Batch>();
  private flushScheduled = false;
  /** Requests admitted ahead of Redis since start (tests, metrics). */
  admittedAhead = 0;
  private lastResetKey = -1;
  private lastResetText = '';
  private day = '';
  private month = '';
  private dayEnds = 0;
  private monthEnds = 0;

  private readonly now: () => number;
  private readonly leaseMs: number;
  private readonly seedSource: ((bindingId: number) => Promise<QuotaSeed>) | null;
  /** The stored counts a key's quota counters start from, per key, for the current day. */
  private readonly seeds = new Map<
    number,
    { day: string; value: QuotaSeed | null; loading: Promise<QuotaSeed> }
  >();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    logger: Logger,
    options: PolicyLimiterOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.leaseMs = options.leaseMs ?? LEASE_MS;
    this.seedSource = options.seed ?? null;
    this.failureLog = new RateLimitedLog(
      logger,
      'policy counters unavailable in Redis; enforcing per instance',
    );
    redis.defineCommand('keypinPolicyAdmit', { numberOfKeys: 4, lua: ADMIT });
    redis.defineCommand('keypinIncrIfExists', { numberOfKeys: 1, lua: INCR_IF_EXISTS });
    redis.on('ready', () => {
      // Redis may come back without its counters: they start again from
      // fresh stored counts, which include what was admitted meanwhile.
      this.seeds.clear();
      void this.syncUnsynced();
    });
  }

  /** Whether policies are currently enforced by this instance alone (for `/ready`). */
  get degraded(): boolean {
    return this.degradedSince !== null;
  }

  start(): void {
    this.renewTimer = setInterval(() => void this.renewLeases(), Math.max(1000, this.leaseMs / 3));
    this.renewTimer.unref();
  }

  stop(): void {
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
  }

  /**
   * Admits one request of `bindingId` under `p` (which counts something),
   * or says why not. The requests of one key that arrive in the same turn
   * of the event loop go to Redis together, in one script call.
   */
  admit(bindingId: number, p: CompiledPolicy): Promise<Admission> {
    return new Promise<Admission>((resolve) => this.admitThen(bindingId, p, resolve));
  }

  /** The same, answering through a callback (the hot path: no promise per request). */
  admitThen(bindingId: number, p: CompiledPolicy, done: (a: Admission) => void): void {
    if (this.redis.status !== 'ready') {
      done(this.admitAlone(bindingId, p, this.now()));
      return;
    }
    let b = this.pending.get(bindingId);
    if (b !== undefined && b.p !== p) {
      // The key's policy changed within this turn: the earlier requests go as they are.
      this.pending.delete(bindingId);
      void this.send(b);
      b = undefined;
    }
    if (b === undefined) {
      b = { bindingId, p, waiters: [], ahead: 0 };
      this.pending.set(bindingId, b);
    }
    const headers = p.maxConcurrent === 0 ? this.admitAhead(bindingId, p) : undefined;
    if (headers !== undefined) {
      b.waiters.push({ resolve: null, member: '' });
      b.ahead++;
      this.admittedAhead++;
      done({ ok: true, lease: null, headers });
    } else {
      b.waiters.push({
        resolve: done,
        member: p.maxConcurrent > 0 ? `${this.instanceTag}:${++this.seq}` : '',
      });
    }
    if (b.waiters.length >= MAX_BATCH) {
      this.pending.delete(bindingId);
      void this.send(b);
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /**
   * Admits a request ahead of Redis when the key's last shared view leaves
   * room under every limit (each at least AHEAD_MIN_LIMIT): AHEAD_FLOOR
   * requests plus a margin of a tenth of the limit, or four times what the
   * other instances took between the last two replies if that is more; and
   * fewer than AHEAD_MAX_UNREFLECTED went ahead since the last reply.
   * Returns the answer's headers (null when the policy announces none), or
   * undefined: wait for the script.
   */
  private admitAhead(bindingId: number, p: CompiledPolicy): string[] | null | undefined {
    const v = this.local.get(bindingId)?.view;
    if (v === undefined || v === null || v.p !== p) return undefined;
    const now = this.now();
    if (now - v.at > AHEAD_FRESH_MS || now < v.at) return undefined;
    this.turnPeriods(now);
    if (v.day !== this.day || v.month !== this.month) return undefined;
    if (v.unreflected >= AHEAD_MAX_UNREFLECTED) return undefined;
    const taken = v.unreflected + 1;
    const others = v.others;
    /** Whether `left` of `limit` leaves room to go ahead. */
    const roomy = (left: number, limit: number) =>
      limit >= AHEAD_MIN_LIMIT && left >= AHEAD_FLOOR + Math.max(limit / 10, 4 * others);
    let tokens = 0;
    if (p.rate > 0) {
      tokens = Math.min(p.burst, v.tokens + ((now - v.at) * p.rate) / 1000) - taken;
      if (!roomy(tokens, p.burst)) return undefined;
    }
    const day = v.dayCount + taken;
    const month = v.monthCount + taken;
    if (p.perDay > 0 && !roomy(p.perDay - day, p.perDay)) return undefined;
    if (p.perMonth > 0 && !roomy(p.perMonth - month, p.perMonth)) return undefined;
    v.unreflected = taken;
    return p.announces ? this.headers(p, now, day, month, tokens) : null;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const b of this.pending.values()) void this.send(b);
    this.pending.clear();
  };

  /** One script call for a batch of one key's requests; each waiter hears its own answer. */
  private async send(b: Batch): Promise<void> {
    const now = this.now();
    this.turnPeriods(now);
    const { bindingId: id, p, waiters } = b;
    const n = waiters.length;
    const seed = p.perDay > 0 || p.perMonth > 0 ? await this.seedOf(id) : NO_SEED;
    const leaseKey = this.keys.policyLeases(id);
    const args: string[] = [
      this.keys.policyBucket(id),
      this.keys.policyDay(id, this.day),
      this.keys.policyMonth(id, this.month),
      leaseKey,
      `${now} ${p.rate} ${p.burst} ${p.perDay} ${this.dayEnds - now + 3_600_000} ${p.perMonth} ` +
        `${this.monthEnds - now + DAY_MS} ${p.maxConcurrent} ${this.leaseMs} ${n} ${seed.today} ${seed.month}`,
    ];
    if (p.maxConcurrent > 0) {
      for (const w of waiters) args.push(w.member);
    } else if (b.ahead > 0) {
      // Which requests were admitted ahead: charged whatever the counters say.
      let marks = '';
      for (const w of waiters) marks += w.resolve === null ? '1' : '0';
      args.push(marks);
    }
    let r: ScriptReply;
    try {
      r = await (this.redis as unknown as PolicyCommands).keypinPolicyAdmit(...args);
    } catch (err) {
      this.failureLog.warn({ err: (err as Error).message });
      for (const w of waiters) {
        if (w.resolve !== null) w.resolve(this.admitAlone(id, p, now));
        else this.chargeAlone(id, p, now);
      }
      this.forgetView(id);
      return;
    }
    this.degradedSince = null;
    for (let i = 0; i < n; i++) {
      const w = waiters[i]!;
      if (w.resolve === null) continue; // admitted ahead: only charged
      const o = i * 5;
      const verdict = Number(r[o]);
      const day = Number(r[o + 2]);
      const month = Number(r[o + 3]);
      const tokens = Number(r[o + 4]) / 1000;
      if (verdict !== 0) {
        w.resolve(this.refusal(verdict, Number(r[o + 1]), p, now, day, month, tokens));
        continue;
      }
      let lease: Lease | null = null;
      if (w.member !== '') {
        lease = { bindingId: id, member: w.member, key: leaseKey };
        this.live.set(w.member, lease);
      }
      w.resolve({ ok: true, lease, headers: p.announces ? this.headers(p, now, day, month, tokens) : null });
    }
    const last = (n - 1) * 5;
    const dayCount = Number(r[last + 2]);
    const monthCount = Number(r[last + 3]);
    this.remember(id, p, dayCount, monthCount);
    this.see(id, b, now, Number(r[last + 4]) / 1000, dayCount, monthCount);
  }

  /**
   * Keeps Redis's answer as the key's shared view (for admitting ahead),
   * with an estimate of what the other instances took since the previous
   * answer.
   */
  private see(id: number, b: Batch, now: number, tokens: number, dayCount: number, monthCount: number): void {
    if (b.p.maxConcurrent > 0) return;
    const s = this.stateOf(id);
    const prev = s.view;
    const same = prev !== null && prev.p === b.p && prev.day === this.day && prev.month === this.month;
    const charged = b.waiters.length; // at most: a refused request charged nothing
    let others = 0;
    if (same) {
      if (b.p.perDay > 0) others = dayCount - prev.dayCount - charged;
      else if (b.p.perMonth > 0) others = monthCount - prev.monthCount - charged;
      else others = Math.min(b.p.burst, prev.tokens + ((now - prev.at) * b.p.rate) / 1000) - charged - tokens;
    }
    s.view = {
      p: b.p,
      day: this.day,
      month: this.month,
      at: now,
      tokens,
      dayCount,
      monthCount,
      unreflected: same ? Math.max(0, prev.unreflected - b.ahead) : 0,
      others: Math.max(0, Math.ceil(others)),
    };
  }

  private forgetView(id: number): void {
    const s = this.local.get(id);
    if (s !== undefined) s.view = null;
  }

  /** A request admitted ahead whose charge could not reach Redis: counted here, added to Redis later. */
  private chargeAlone(bindingId: number, p: CompiledPolicy, now: number): void {
    this.degradedSince ??= now;
    this.turnPeriods(now);
    const s = this.stateOf(bindingId);
    if (p.perDay > 0) {
      const d = period(s, 'day', this.day);
      d.n++;
      d.unsynced++;
    }
    if (p.perMonth > 0) {
      const m = period(s, 'month', this.month);
      m.n++;
      m.unsynced++;
    }
    if (p.rate > 0) {
      s.bucket ??= { tokens: p.burst, at: now };
      takeToken(s.bucket, now, p.rate, p.burst);
    }
  }

  /**
   * The stored counts a key's quota counters start from: read once per key
   * and day (and only used when Redis has no counter yet). A read that
   * fails or takes longer than SEED_WAIT_MS counts from 0 this time.
   */
  private seedOf(id: number): QuotaSeed | Promise<QuotaSeed> {
    if (this.seedSource === null) return NO_SEED;
    const cached = this.seeds.get(id);
    if (cached !== undefined && cached.day === this.day) return cached.value ?? cached.loading;
    const entry = { day: this.day, value: null as QuotaSeed | null, loading: NO_SEED_PROMISE };
    let timer: NodeJS.Timeout | undefined;
    entry.loading = Promise.race([
      this.seedSource(id).then(
        (v) => (entry.value = v),
        () => {
          this.seeds.delete(id); // try again on a later request
          return NO_SEED;
        },
      ),
      new Promise<QuotaSeed>((resolve) => {
        timer = setTimeout(() => resolve(NO_SEED), SEED_WAIT_MS);
        timer.unref();
      }),
    ]).finally(() => clearTimeout(timer));
    this.seeds.set(id, entry);
    return entry.loading;
  }

  /** Redis cannot answer: this instance judges alone (and says so on `/ready`). */
  private admitAlone(bindingId: number, p: CompiledPolicy, now: number): Admission {
    this.degradedSince ??= now;
    this.turnPeriods(now);
    return this.admitLocally(bindingId, p, now, this.day, this.month);
  }

  /** The current UTC day and month names, recomputed only when a day ends. */
  private turnPeriods(now: number): void {
    if (now < this.dayEnds && now >= this.dayEnds - DAY_MS) return;
    this.day = utcDay(now);
    this.month = utcMonth(now);
    this.dayEnds = nextUtcDay(now);
    this.monthEnds = nextUtcMonth(now);
  }

  /** Gives a request's slot back (every end of a request calls this exactly once). */
  release(lease: Lease): void {
    if (lease.member === null) {
      const s = this.local.get(lease.bindingId);
      if (s !== undefined && s.inFlight > 0) s.inFlight--;
      return;
    }
    this.live.delete(lease.member);
    // Best effort: a removal that fails ends with the lease's expiry.
    if (this.redis.status === 'ready') this.redis.zrem(lease.key!, lease.member).catch(() => undefined);
  }

  /** Today's and this month's counts in Redis (quotas count only while a quota applies); null if Redis cannot answer. */
  async liveCounts(bindingId: number): Promise<{ day: number; month: number } | null> {
    if (this.redis.status !== 'ready') return null;
    const now = this.now();
    const [day, month] = await this.redis.mget(
      this.keys.policyDay(bindingId, utcDay(now)),
      this.keys.policyMonth(bindingId, utcMonth(now)),
    );
    return { day: Number(day ?? 0), month: Number(month ?? 0) };
  }

  /** Requests this instance holds a slot for (tests, metrics). */
  get leasesHeld(): number {
    let n = this.live.size;
    for (const s of this.local.values()) n += s.inFlight;
    return n;
  }

  private admitLocally(
    bindingId: number,
    p: CompiledPolicy,
    now: number,
    day: string,
    month: string,
  ): Admission {
    const s = this.stateOf(bindingId);
    const d = p.perDay > 0 ? period(s, 'day', day) : null;
    const m = p.perMonth > 0 ? period(s, 'month', month) : null;
    const dn = d?.n ?? 0;
    const mn = m?.n ?? 0;
    if (d !== null && dn >= p.perDay) return this.refusal(2, 0, p, now, dn, mn, 0);
    if (m !== null && mn >= p.perMonth) return this.refusal(3, 0, p, now, dn, mn, 0);
    if (p.maxConcurrent > 0 && s.inFlight >= p.maxConcurrent) return this.refusal(4, 1000, p, now, dn, mn, 0);
    let tokens = 0;
    if (p.rate > 0) {
      s.bucket ??= { tokens: p.burst, at: now };
      const wait = takeToken(s.bucket, now, p.rate, p.burst);
      if (wait > 0) return this.refusal(1, wait, p, now, dn, mn, tokensAt(s.bucket, now, p.rate, p.burst));
      tokens = s.bucket.tokens;
    }
    if (d !== null) {
      d.n++;
      d.unsynced++;
    }
    if (m !== null) {
      m.n++;
      m.unsynced++;
    }
    let lease: Lease | null = null;
    if (p.maxConcurrent > 0) {
      s.inFlight++;
      lease = { bindingId, member: null, key: null };
    }
    return {
      ok: true,
      lease,
      headers: p.announces ? this.headers(p, now, d?.n ?? 0, m?.n ?? 0, tokens) : null,
    };
  }

  private stateOf(bindingId: number): LocalState {
    let s = this.local.get(bindingId);
    if (s === undefined) {
      s = { bucket: null, day: null, month: null, inFlight: 0, view: null };
      this.local.set(bindingId, s);
    }
    return s;
  }

  /** Keeps Redis's counts as the starting point should Redis become unreachable. */
  private remember(bindingId: number, p: CompiledPolicy, dayCount: number, monthCount: number): void {
    if (p.perDay === 0 && p.perMonth === 0) return;
    const s = this.stateOf(bindingId);
    if (p.perDay > 0) {
      const d = period(s, 'day', this.day);
      d.n = Math.max(dayCount, d.unsynced);
    }
    if (p.perMonth > 0) {
      const m = period(s, 'month', this.month);
      m.n = Math.max(monthCount, m.unsynced);
    }
    s.bucket = null; // Redis holds the bucket; a local one starts full only when needed
  }

  private refusal(
    verdict: number,
    waitMs: number,
    p: CompiledPolicy,
    now: number,
    day: number,
    month: number,
    tokens: number,
  ): Admission {
    const headers = this.headers(p, now, day, month, tokens);
    if (verdict === 2 || verdict === 3) {
      const daily = verdict === 2;
      const resetMs = (daily ? nextUtcDay(now) : nextUtcMonth(now)) - now;
      const limit = daily ? p.perDay : p.perMonth;
      return {
        ok: false,
        code: 'quota_exceeded',
        message:
          `This API key has used its ${daily ? 'daily' : 'monthly'} quota of ${limit} requests; ` +
          `it resets at the start of the next UTC ${daily ? 'day' : 'month'} (in ${retryAfterSeconds(resetMs)} s).`,
        retryAfter: retryAfterSeconds(resetMs),
        headers,
      };
    }
    if (verdict === 4) {
      return {
        ok: false,
        code: 'rate_limited',
        message:
          `Rate limit reached: this API key may have at most ${p.maxConcurrent} requests in progress at once; ` +
          'wait for one to finish.',
        retryAfter: retryAfterSeconds(waitMs),
        headers,
      };
    }
    return {
      ok: false,
      code: 'rate_limited',
      message:
        `Rate limit reached: this API key may make ${p.rate} requests per second (bursts of ${p.burst}); ` +
        `try again in ${retryAfterSeconds(waitMs)} s.`,
      retryAfter: retryAfterSeconds(waitMs),
      headers,
    };
  }

  /**
   * `x-ratelimit-*-requests` as OpenAI sends them. With a quota, the quota
   * closest to running out (limit, what is left, when it resets); with only
   * a rate, the token bucket (its size, whole tokens left, time to refill).
   */
  private headers(p: CompiledPolicy, now: number, day: number, month: number, tokens: number): string[] {
    let limit: number;
    let remaining: number;
    let resetMs: number;
    const dayLeft = p.perDay > 0 ? p.perDay - day : Infinity;
    const monthLeft = p.perMonth > 0 ? p.perMonth - month : Infinity;
    if (dayLeft !== Infinity || monthLeft !== Infinity) {
      const daily = dayLeft <= monthLeft;
      limit = daily ? p.perDay : p.perMonth;
      remaining = daily ? dayLeft : monthLeft;
      resetMs = (daily ? nextUtcDay(now) : nextUtcMonth(now)) - now;
    } else {
      limit = Math.floor(p.burst);
      remaining = Math.floor(tokens);
      resetMs = msUntilFull(tokens, p.rate, p.burst);
    }
    return [
      'x-ratelimit-limit-requests',
      String(limit),
      'x-ratelimit-remaining-requests',
      String(Math.max(0, remaining)),
      'x-ratelimit-reset-requests',
      this.resetText(resetMs),
    ];
  }

  /** `formatResetDuration`, remembered for the last tenth of a second asked (one batch shares it). */
  private resetText(ms: number): string {
    const key = Math.ceil(ms / 100);
    if (key !== this.lastResetKey) {
      this.lastResetKey = key;
      this.lastResetText = formatResetDuration(ms);
    }
    return this.lastResetText;
  }

  /** Keeps this instance's live leases from expiring (long streams, tunnels). */
  private async renewLeases(): Promise<void> {
    if (this.live.size === 0 || this.redis.status !== 'ready') return;
    const until = this.now() + this.leaseMs;
    if (this.redis.isCluster) {
      // The leases of different keys live in different slots (and nodes):
      // one command each; a cluster pipeline must stay on one node.
      await Promise.all(
        [...this.live.values()].map((lease) =>
          this.redis.zadd(lease.key!, 'XX', until, lease.member!).catch(() => 0),
        ),
      );
      return;
    }
    const pipeline = this.redis.pipeline();
    for (const lease of this.live.values()) pipeline.zadd(lease.key!, 'XX', until, lease.member!);
    await pipeline.exec().catch(() => undefined);
  }

  /** Redis is back: adds what this instance counted alone, so the shared quotas include it. */
  private async syncUnsynced(): Promise<void> {
    // A cluster pipeline must stay on one node: there, one pipeline per key
    // (a key's day and month counters share its hash tag, so its slot).
    const shared = this.redis.isCluster ? null : (this.redis.pipeline() as unknown as PipelineCommands);
    const pipelines: PipelineCommands[] = shared ? [shared] : [];
    const synced: PeriodCount[] = [];
    for (const [id, s] of this.local) {
      const dayDue = s.day !== null && s.day.unsynced > 0;
      const monthDue = s.month !== null && s.month.unsynced > 0;
      if (!dayDue && !monthDue) continue;
      let pipeline = shared;
      if (pipeline === null) {
        pipeline = this.redis.pipeline() as unknown as PipelineCommands;
        pipelines.push(pipeline);
      }
      if (dayDue) {
        pipeline.keypinIncrIfExists(this.keys.policyDay(id, s.day!.period), s.day!.unsynced);
        synced.push(s.day!);
      }
      if (monthDue) {
        pipeline.keypinIncrIfExists(this.keys.policyMonth(id, s.month!.period), s.month!.unsynced);
        synced.push(s.month!);
      }
    }
    if (synced.length === 0) return;
    try {
      await Promise.all(pipelines.map((p) => p.exec()));
      for (const c of synced) c.unsynced = 0;
    } catch {
      // Still away; the next 'ready' tries again.
    }
  }
}

/** The state's counter for `name`, reset when the period has changed. */
function period(s: LocalState, name: 'day' | 'month', current: string): PeriodCount {
  let c = s[name];
  if (c === null || c.period !== current) {
    c = { period: current, n: 0, unsynced: 0 };
    s[name] = c;
  }
  return c;
}
