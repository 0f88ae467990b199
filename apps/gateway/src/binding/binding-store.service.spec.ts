import type { Redis } from 'ioredis';
import pino from 'pino';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MetricsService } from '../infra/metrics/metrics.service';
import { RedisKeys } from '../infra/redis/redis-keys';
import type { BindingRepository } from './binding.repository';
import { BindingStoreService, type FirstUseGate } from './binding-store.service';
import type { BindingRuleData, FirstUse } from './binding.types';

/** An in-memory bindings table standing in for PostgreSQL. */
class FakeRepo {
  rows = new Map<string, BindingRuleData>();
  reads = 0;
  inserts = 0;
  down = false;
  gate: Promise<void> = Promise.resolve();
  private nextId = 1;

  async findRuleByHash(hash: string) {
    await this.gate;
    if (this.down) throw new Error('connection refused');
    this.reads++;
    return this.rows.get(hash) ?? null;
  }
  async bindFirstUse(hash: string, first: FirstUse) {
    await Promise.resolve();
    if (this.down) throw new Error('connection refused');
    this.inserts++;
    const existing = this.rows.get(hash);
    if (existing) return { data: existing, created: false };
    const data: BindingRuleData = {
      id: this.nextId++,
      status: 'active',
      rule_type: 'single',
      allowed_ips: [first.network],
      token_display: first.tokenDisplay,
    };
    this.rows.set(hash, data);
    return { data, created: true };
  }
  async deleteUntouchedFirstUse(id: number) {
    await Promise.resolve();
    for (const [hash, row] of this.rows) {
      if (row.id === id && row.status === 'active' && row.rule_type === 'single') {
        this.rows.delete(hash);
        return hash;
      }
    }
    return null;
  }
}

const offlineRedis = {
  status: 'end',
  on: () => undefined,
  multi: () => ({ del: chain, set: chain, exec: () => Promise.reject(new Error('offline')) }),
} as unknown as Redis;
function chain(this: unknown) {
  return this;
}
const first: FirstUse = {
  tokenDisplay: 'ab\u2026cd',
  network: '10.0.0.1/32',
  ip: '10.0.0.1',
  at: new Date(),
};

function setup(
  ttlMs = 60_000,
  failsafe: { mode: 'open' | 'closed' } = { mode: 'open' },
  firstUses: FirstUseGate | null = null,
) {
  const repo = new FakeRepo();
  const sut = new BindingStoreService(
    repo as unknown as BindingRepository,
    offlineRedis,
    new RedisKeys('t:'),
    new MetricsService(),
    pino({ level: 'silent' }),
    { maxEntries: 3, ttlMs, serveUnconfirmed: () => failsafe.mode === 'open', firstUses },
  );
  return { repo, sut };
}

/** A FIRST_USE_LIMIT gate that admits `room` first uses and records who asked. */
function gate(room: number) {
  const asked: string[] = [];
  return {
    asked,
    reserve: (ip: string) => {
      asked.push(ip);
      return Promise.resolve(asked.length <= room ? 0 : 42);
    },
  };
}

describe('BindingStoreService', () => {
  it('coalesces concurrent misses for one key into one load; only the first caller created it', async () => {
    const { repo, sut } = setup();
    let open!: () => void;
    repo.gate = new Promise((r) => (open = r));
    const calls = Array.from({ length: 20 }, () => sut.load('h1', first));
    open();
    const results = await Promise.all(calls);
    expect(repo.reads).toBe(1);
    expect(repo.inserts).toBe(1);
    expect(results.filter((r) => r.kind === 'found' && r.created)).toHaveLength(1);
    expect(sut.peek('h1')?.allowedIps).toEqual(['10.0.0.1/32']);
  });

  it('answers from the in-process cache after a load', async () => {
    const { repo, sut } = setup();
    await sut.load('h1', first);
    const reads = repo.reads;
    expect(sut.peek('h1')).toBeDefined();
    expect(repo.reads).toBe(reads);
  });

  it('reports unavailable when nothing can answer for an unknown key', async () => {
    const { repo, sut } = setup();
    repo.down = true;
    expect(await sut.load('h1', first)).toEqual({ kind: 'unavailable' });
    expect(sut.peek('h1')).toBeUndefined();
  });

  it('fail-open: keeps serving a stale entry no store can confirm', async () => {
    const { repo, sut } = setup(1);
    await sut.load('h1', first);
    repo.down = true;
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.peek('h1')?.status).toBe('active');
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.peek('h1')?.status).toBe('active');
    expect(await sut.load('h1', first)).toMatchObject({ kind: 'found', created: false });
  });

  it('fail-closed: a stale entry no store can confirm stops answering until a store does', async () => {
    const failsafe: { mode: 'open' | 'closed' } = { mode: 'closed' };
    const { repo, sut } = setup(1, failsafe);
    await sut.load('h1', first);
    expect(sut.peek('h1')?.status).toBe('active'); // fresh: answers with the stores down or not
    repo.down = true;
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.peek('h1')?.status).toBe('active'); // stale: answers while the refresh runs…
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.peek('h1')).toBeUndefined(); // …which failed: no answer from memory
    expect(await sut.load('h1', first)).toEqual({ kind: 'unavailable' });
    // The setting is read on each use.
    failsafe.mode = 'open';
    expect(sut.peek('h1')?.status).toBe('active');
    failsafe.mode = 'closed';
    expect(sut.peek('h1')).toBeUndefined();
    // A store answers again: confirmed, and answering from memory once more.
    repo.down = false;
    expect(await sut.load('h1', first)).toMatchObject({ kind: 'found', created: false });
    expect(sut.peek('h1')?.status).toBe('active');
  });

  it('refreshes a stale entry in the background and drops a removed binding', async () => {
    const { repo, sut } = setup(1);
    await sut.load('h1', first);
    repo.rows.get('h1')!.status = 'banned';
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.peek('h1')?.status).toBe('active'); // stale answer, refresh started
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.peek('h1')?.status).toBe('banned');
    repo.rows.delete('h1');
    await new Promise((r) => setTimeout(r, 5));
    sut.peek('h1');
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.peek('h1')).toBeUndefined();
  });

  it('does not cache a load that overlapped an invalidation', async () => {
    const { repo, sut } = setup();
    let open!: () => void;
    repo.gate = new Promise((r) => (open = r));
    const loading = sut.load('h1', first);
    sut.invalidateLocal('h1');
    open();
    await loading;
    expect(sut.peek('h1')).toBeUndefined();
  });

  it('invalidates one key or all of them', async () => {
    const { sut } = setup();
    await sut.load('h1', first);
    await sut.load('h2', first);
    sut.invalidateLocal('h1');
    expect(sut.peek('h1')).toBeUndefined();
    expect(sut.peek('h2')).toBeDefined();
    sut.invalidateLocal('*');
    expect(sut.size).toBe(0);
  });

  it('evicts the oldest entry past the size limit', async () => {
    const { sut } = setup();
    for (const h of ['h1', 'h2', 'h3', 'h4']) await sut.load(h, first);
    expect(sut.size).toBe(3);
    expect(sut.peek('h1')).toBeUndefined();
    expect(sut.peek('h4')).toBeDefined();
  });

  it('evicts the least recently used entry at the cap: a key hit recently survives an older untouched one', async () => {
    const { repo, sut } = setup(); // cap 3
    for (const h of ['h1', 'h2', 'h3']) await sut.load(h, first);
    // h1 is the oldest entry, but busy: a hit makes it the most recently used.
    expect(sut.peek('h1')).toBeDefined();
    await sut.load('h4', first);
    expect(sut.size).toBe(3);
    const reads = repo.reads;
    expect(sut.peek('h1')).toBeDefined(); // survived (and is the most recent again)
    expect(sut.peek('h2')).toBeUndefined(); // the least recently used went
    expect(sut.peek('h3')).toBeDefined();
    expect(sut.peek('h4')).toBeDefined();
    expect(repo.reads).toBe(reads); // every hit above came from memory
    // Order now h1, h3, h4 (h1 oldest): the next new key pushes h1 out.
    await sut.load('h5', first);
    expect(sut.peek('h1')).toBeUndefined();
    expect(sut.peek('h3')).toBeDefined();
  });

  it('a background refresh keeps the entry and its place; a reload of an evicted key evicts the next one', async () => {
    const { repo, sut } = setup(1);
    for (const h of ['h1', 'h2', 'h3']) await sut.load(h, first);
    await new Promise((r) => setTimeout(r, 5));
    repo.rows.get('h2')!.status = 'banned';
    expect(sut.peek('h2')?.status).toBe('active'); // stale: served, refreshed in the background
    await new Promise((r) => setTimeout(r, 5));
    expect(sut.size).toBe(3);
    expect(sut.peek('h2')?.status).toBe('banned'); // updated in place
    // h2 was used last, then h3 and h1 are the oldest: h1 goes first.
    await sut.load('h4', first);
    expect(sut.size).toBe(3);
    expect(sut.peek('h1')).toBeUndefined();
    expect(sut.peek('h2')).toBeDefined();
  });

  it('stays a least-recently-used cache through any mix of hits, loads and invalidations', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            { weight: 4, arbitrary: fc.record({ op: fc.constant('peek' as const), key: fc.nat(4) }) },
            { weight: 4, arbitrary: fc.record({ op: fc.constant('load' as const), key: fc.nat(4) }) },
            {
              weight: 1,
              arbitrary: fc.record({
                op: fc.constant('drop' as const),
                key: fc.integer({ min: -1, max: 4 }),
              }),
            },
          ),
          { minLength: 10, maxLength: 80 },
        ),
        async (ops) => {
          const { sut } = setup();
          // The model: keys in recency order, least recently used first.
          let model: string[] = [];
          const touch = (k: string) => (model = [...model.filter((m) => m !== k), k]);
          for (const { op, key } of ops) {
            const k = `h${key}`;
            if (op === 'peek') {
              expect(sut.peek(k) !== undefined).toBe(model.includes(k));
              if (model.includes(k)) touch(k);
            } else if (op === 'load') {
              if (sut.peek(k) === undefined) await sut.load(k, first);
              touch(k);
              if (model.length > 3) model = model.slice(1);
            } else {
              sut.invalidateLocal(key < 0 ? '*' : k);
              model = key < 0 ? [] : model.filter((m) => m !== k);
            }
            expect(sut.size).toBe(model.length);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('asks the first-use gate only right before binding a new key, and binds nothing past it', async () => {
    const g = gate(1);
    const { repo, sut } = setup(60_000, { mode: 'open' }, g);
    expect(await sut.load('h1', first)).toMatchObject({ kind: 'found', created: true });
    expect(await sut.load('h2', first)).toEqual({ kind: 'limited', retryAfterSeconds: 42 });
    expect(repo.rows.has('h2')).toBe(false);
    expect(sut.peek('h2')).toBeUndefined();
    // A key bound already (in PostgreSQL, not in this cache) never asks.
    sut.invalidateLocal('h1');
    expect(await sut.load('h1', first)).toMatchObject({ kind: 'found', created: false });
    expect(g.asked).toEqual(['10.0.0.1', '10.0.0.1']);
  });

  it('revokes an untouched first use: the row goes and the cached entry with it', async () => {
    const { repo, sut } = setup();
    const o = await sut.load('h1', first);
    expect(o.kind === 'found' && o.created).toBe(true);
    const id = o.kind === 'found' ? o.rule.id : 0;
    expect(await sut.revokeFirstUse(id)).toBe(true);
    expect(repo.rows.has('h1')).toBe(false);
    expect(sut.peek('h1')).toBeUndefined();
    expect(await sut.revokeFirstUse(id)).toBe(false);
    // The key binds afresh on its next use.
    expect(await sut.load('h1', { ...first, network: '10.9.9.9/32' })).toMatchObject({
      kind: 'found',
      created: true,
      rule: { allowedIps: ['10.9.9.9/32'] },
    });
  });

  it('keeps a first use that changed since (here: banned)', async () => {
    const { repo, sut } = setup();
    const o = await sut.load('h1', first);
    repo.rows.get('h1')!.status = 'banned';
    expect(await sut.revokeFirstUse(o.kind === 'found' ? o.rule.id : 0)).toBe(false);
    expect(repo.rows.has('h1')).toBe(true);
  });
});
