import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MetricsService } from '../infra/metrics/metrics.service';
import { InterceptRecorder } from './intercept-recorder.service';
import type { InterceptSpool } from './intercept-spool';
import type { InterceptWriter } from './intercept-writer.service';
import type { InterceptRepository } from './intercept.repository';
import { type InterceptEvent, requestsOf } from './intercept.types';

const T0 = Date.UTC(2025, 0, 1, 10, 0, 0);
let n = 0;

const refused = (attemptIp = '198.51.100.9'): InterceptEvent => ({
  id: `id-${++n}`,
  bindingId: 7,
  tokenDisplay: 'abcd\u2026wxyz',
  attemptIp,
  allowedIps: ['203.0.113.7/32'],
  reason: 'ip_not_allowed',
  method: 'GET',
  path: '/v1/models',
  userAgent: null,
  enforced: true,
  at: new Date(),
});

/** A recorder without Redis (batches are written directly) over in-memory fakes. */
function recorderWith(
  write: (batch: InterceptEvent[]) => Promise<number>,
  spoolWrite: (batch: InterceptEvent[]) => Promise<void> = () => Promise.resolve(),
) {
  const batches: InterceptEvent[][] = [];
  const spooled: InterceptEvent[][] = [];
  const writer = {
    write: async (batch: InterceptEvent[]) => {
      const r = await write(batch);
      // A copy: what reached "PostgreSQL" at that moment.
      batches.push(batch.map((e) => ({ ...e })));
      return r;
    },
  } as unknown as InterceptWriter;
  const spool = {
    write: async (batch: InterceptEvent[]) => {
      await spoolWrite(batch);
      spooled.push(batch.map((e) => ({ ...e })));
    },
    replay: () => Promise.resolve(0),
  } as unknown as InterceptSpool;
  const repo = { existingIds: () => Promise.resolve(new Set<string>()) } as unknown as InterceptRepository;
  const metrics = { queueDepth: { labels: () => ({ set: () => undefined }) } } as unknown as MetricsService;
  const logger = {
    warn: () => undefined,
    error: () => undefined,
    info: () => undefined,
  } as unknown as Logger;
  const sut = new InterceptRecorder(null, writer, repo, spool, metrics, logger, {
    flushMs: 100,
    confirmAfterMs: 3000,
    rescueAfterMs: 15_000,
  });
  return { sut, batches, spooled };
}

const requests = (batches: InterceptEvent[][]) => batches.flat().reduce((s, e) => s + requestsOf(e), 0);

describe('InterceptRecorder (merging)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(T0);
  });
  afterEach(() => vi.useRealTimers());

  it('writes one record per second for a hammered key, counting every request', async () => {
    const { sut, batches } = recorderWith((b) => Promise.resolve(b.length));
    sut.start();
    for (let ms = 0; ms < 3000; ms += 2) {
      sut.record(refused());
      await vi.advanceTimersByTimeAsync(2);
    }
    await sut.stop();
    expect(batches.flat()).toHaveLength(3);
    expect(requests(batches)).toBe(1500);
  });

  it('holds the running second’s records and hands them on once it is over', async () => {
    const { sut, batches } = recorderWith((b) => Promise.resolve(b.length));
    sut.start();
    sut.record(refused());
    sut.record(refused());
    await vi.advanceTimersByTimeAsync(500);
    expect(batches).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(600);
    expect(batches.flat().map(requestsOf)).toEqual([2]);
    await sut.stop();
  });

  it('a failed save is spooled with the counts it was sent with', async () => {
    const { sut, batches, spooled } = recorderWith(() => Promise.reject(new Error('PostgreSQL away')));
    sut.start();
    for (let i = 0; i < 5; i++) sut.record(refused());
    await vi.advanceTimersByTimeAsync(1100);
    expect(batches).toHaveLength(0);
    expect(spooled.flat().map(requestsOf)).toEqual([5]);
    await sut.stop();
  });

  it('on stop, the running second is written too', async () => {
    const { sut, batches } = recorderWith((b) => Promise.resolve(b.length));
    sut.start();
    for (let i = 0; i < 4; i++) sut.record(refused(i % 2 === 0 ? '198.51.100.1' : '198.51.100.2'));
    await sut.stop();
    expect(batches.flat().map(requestsOf)).toEqual([2, 2]);
  });

  it('a batch neither written nor spooled is kept as it is and written whole next time', async () => {
    let dbUp = false;
    let spoolUp = false;
    const { sut, batches, spooled } = recorderWith(
      (b) => (dbUp ? Promise.resolve(b.length) : Promise.reject(new Error('PostgreSQL away'))),
      () => (spoolUp ? Promise.resolve() : Promise.reject(new Error('disk full'))),
    );
    sut.start();
    for (let i = 0; i < 3; i++) sut.record(refused());
    await vi.advanceTimersByTimeAsync(1000); // second 0 over: its record fails everywhere
    expect(sut.pending).toBe(1);
    expect(sut.counters).toMatchObject({ failures: 1, returned: 1 });
    // Same key, IP and reason, still second 1: a new record, the kept one is not merged into.
    for (let i = 0; i < 2; i++) sut.record(refused());
    dbUp = true;
    spoolUp = true;
    await vi.advanceTimersByTimeAsync(1000);
    expect(spooled).toHaveLength(0);
    expect(batches).toHaveLength(2); // the kept record first, alone, then second 1's
    expect(batches.flat().map(requestsOf)).toEqual([3, 2]);
    expect(requests(batches)).toBe(5);
    await sut.stop();
  });

  it('hands one batch on at a time', async () => {
    let inFlight = 0;
    let most = 0;
    const { sut, batches } = recorderWith(async (b) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 700)); // slower than the flush period
      inFlight--;
      return b.length;
    });
    sut.start();
    for (let ms = 0; ms < 4000; ms += 50) {
      sut.record(refused());
      await vi.advanceTimersByTimeAsync(50);
    }
    const stopping = sut.stop();
    await vi.advanceTimersByTimeAsync(3000);
    await stopping;
    expect(most).toBe(1);
    expect(requests(batches)).toBe(80);
  });
});
