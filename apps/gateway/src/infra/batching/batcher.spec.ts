import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Batcher, type BatcherOptions, type FailurePolicy } from './batcher';

interface Sum {
  key: string;
  n: number;
  /** When the value was opened (ms): `due` tests use it. */
  at?: number;
}

/** A write the test settles by hand. */
class ManualWrite {
  readonly calls: Sum[][] = [];
  private settle: { resolve: () => void; reject: (e: Error) => void }[] = [];

  readonly write = (batch: Sum[]): Promise<void> => {
    // A copy: what was handed on at that moment.
    this.calls.push(batch.map((v) => ({ ...v })));
    return new Promise<void>((resolve, reject) => this.settle.push({ resolve, reject }));
  };

  get open(): number {
    return this.settle.length;
  }

  resolve(): void {
    this.settle.shift()!.resolve();
  }

  reject(): void {
    this.settle.shift()!.reject(new Error('down'));
  }
}

function batcher(
  write: (batch: Sum[]) => Promise<unknown>,
  extra: Partial<BatcherOptions<string, Sum>> = {},
) {
  return new Batcher<string, Sum>({
    keyOf: (v) => v.key,
    merge: (into, from) => {
      into.n += from.n;
    },
    write,
    intervalMs: 100,
    ...extra,
  });
}

const flushMicrotasks = () => new Promise<void>((r) => setImmediate(r));

describe('Batcher', () => {
  describe('accumulating', () => {
    it('adds new keys and merges into existing ones', async () => {
      const written: Sum[][] = [];
      const sut = batcher((b) => Promise.resolve(void written.push(b)));
      sut.add({ key: 'a', n: 1 });
      sut.add({ key: 'a', n: 2 });
      sut.add({ key: 'b', n: 5 });
      expect(sut.size).toBe(2);
      await sut.flush();
      expect(written).toEqual([
        [
          { key: 'a', n: 3 },
          { key: 'b', n: 5 },
        ],
      ]);
      expect(sut.size).toBe(0);
    });

    it('lets the hot path update a value in place through get/set', async () => {
      const written: Sum[][] = [];
      const sut = batcher((b) => Promise.resolve(void written.push(b)));
      for (let i = 0; i < 3; i++) {
        const v = sut.get('a');
        if (v === undefined) sut.set('a', { key: 'a', n: 1 });
        else v.n++;
      }
      await sut.flush();
      expect(written).toEqual([[{ key: 'a', n: 3 }]]);
    });

    it('never calls write with an empty batch', async () => {
      const write = vi.fn(() => Promise.resolve());
      const sut = batcher(write);
      await sut.flush();
      await sut.flushDue();
      await sut.stop();
      expect(write).not.toHaveBeenCalled();
      expect(sut.counters.flushes).toBe(0);
    });

    it('flushes everything once maxSize keys are waiting', async () => {
      const w = new ManualWrite();
      const sut = batcher(w.write, { maxSize: 3 });
      sut.add({ key: 'a', n: 1 });
      sut.add({ key: 'b', n: 1 });
      sut.add({ key: 'b', n: 1 }); // a merge: no new key
      expect(w.calls).toHaveLength(0);
      sut.add({ key: 'c', n: 1 });
      expect(w.calls.map((b) => b.map((v) => v.key))).toEqual([['a', 'b', 'c']]);
      w.resolve();
      await flushMicrotasks();
      expect(sut.counters).toMatchObject({ flushes: 1, written: 3 });
    });
  });

  describe('timer flush', () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it('keeps its timer unref’d, so it never holds the process open', async () => {
      vi.useRealTimers();
      const sut = batcher(() => Promise.resolve());
      sut.start();
      expect((sut as unknown as { timer: NodeJS.Timeout }).timer.hasRef()).toBe(false);
      await sut.stop();
    });

    it('hands on every intervalMs until stopped', async () => {
      const written: Sum[][] = [];
      const sut = batcher((b) => Promise.resolve(void written.push(b)));
      sut.start();
      sut.add({ key: 'a', n: 1 });
      await vi.advanceTimersByTimeAsync(99);
      expect(written).toHaveLength(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(written).toEqual([[{ key: 'a', n: 1 }]]);
      sut.add({ key: 'a', n: 2 });
      await vi.advanceTimersByTimeAsync(100);
      expect(written).toEqual([[{ key: 'a', n: 1 }], [{ key: 'a', n: 2 }]]);
      await sut.stop();
      sut.add({ key: 'b', n: 1 });
      await vi.advanceTimersByTimeAsync(1000);
      expect(written).toHaveLength(2); // the timer is gone
    });

    it('hands on only the values that are due; the rest wait for a later tick', async () => {
      const written: Sum[][] = [];
      const sut = batcher((b) => Promise.resolve(void written.push(b)), {
        due: (v, now) => now - v.at! >= 1000,
      });
      vi.setSystemTime(10_000);
      sut.start();
      sut.add({ key: 'old', n: 1, at: 8_000 });
      sut.add({ key: 'new', n: 1, at: 10_000 });
      await vi.advanceTimersByTimeAsync(100);
      expect(written).toEqual([[{ key: 'old', n: 1, at: 8_000 }]]);
      expect(sut.size).toBe(1);
      await vi.advanceTimersByTimeAsync(900);
      expect(written[1]).toEqual([{ key: 'new', n: 1, at: 10_000 }]);
      await sut.stop();
    });
  });

  describe('one flush in flight at a time', () => {
    it('a timer flush during a flight does nothing; flush() waits for the flight, then hands on the rest', async () => {
      const w = new ManualWrite();
      const sut = batcher(w.write);
      sut.add({ key: 'a', n: 1 });
      const first = sut.flushDue();
      sut.add({ key: 'b', n: 1 });
      void sut.flushDue();
      expect(sut.counters.busyTicks).toBe(1);
      const second = sut.flush();
      const third = sut.flush();
      expect(w.open).toBe(1);
      expect(sut.inFlight).toBe(1);
      sut.add({ key: 'c', n: 1 });
      w.resolve();
      await first;
      await flushMicrotasks();
      // Callers waiting meanwhile share one flush of everything accumulated.
      expect(w.calls.map((b) => b.map((v) => v.key))).toEqual([['a'], ['b', 'c']]);
      expect(w.open).toBe(1);
      w.resolve();
      await Promise.all([second, third]);
      expect(sut.counters).toMatchObject({ flushes: 2, written: 3, failures: 0 });
      expect(sut.inFlight).toBe(0);
    });

    it('a write that throws synchronously counts as a failed flush', async () => {
      const sut = batcher(() => {
        throw new Error('sync');
      });
      sut.add({ key: 'a', n: 1 });
      await sut.flush();
      expect(sut.counters).toMatchObject({ flushes: 1, failures: 1, returned: 1 });
      expect(sut.size).toBe(1);
    });
  });

  describe('failed batches', () => {
    it('merge policy: merges a failed batch into what accumulated since, exactly', async () => {
      const w = new ManualWrite();
      const errors: unknown[] = [];
      const sut = batcher(w.write, { onFailure: 'merge', onError: (e) => errors.push(e) });
      sut.add({ key: 'a', n: 2 });
      sut.add({ key: 'b', n: 1 });
      const flight = sut.flush();
      sut.add({ key: 'a', n: 5 });
      w.reject();
      await flight;
      expect(errors).toHaveLength(1);
      expect(sut.size).toBe(2);
      const next = sut.flush();
      w.resolve();
      await next;
      expect(w.calls[1]!.sort((x, y) => x.key.localeCompare(y.key))).toEqual([
        { key: 'a', n: 7 },
        { key: 'b', n: 1 },
      ]);
      expect(sut.counters).toMatchObject({ flushes: 2, failures: 1, returned: 2, written: 2 });
    });

    it('hold policy: puts a failed batch back unchanged, never merged into, and hands it on first', async () => {
      const w = new ManualWrite();
      const sut = batcher(w.write, { onFailure: 'hold' });
      const failed = { key: 'a', n: 2 };
      sut.add(failed);
      const flight = sut.flush();
      w.reject();
      await flight;
      sut.add({ key: 'a', n: 3 }); // same key: a new value, not merged into the held one
      sut.add({ key: 'a', n: 4 });
      expect(failed.n).toBe(2);
      expect(sut.size).toBe(2);
      const next = sut.flush();
      w.resolve();
      await next;
      expect(w.calls[1]).toEqual([
        { key: 'a', n: 2 },
        { key: 'a', n: 7 },
      ]);
    });

    it('hold policy: held values are due on every timer flush', async () => {
      const written: Sum[][] = [];
      let fail = true;
      const sut = batcher(
        (b) => {
          if (fail) return Promise.reject(new Error('down'));
          written.push(b);
          return Promise.resolve();
        },
        { onFailure: 'hold', due: () => false },
      );
      sut.add({ key: 'a', n: 1 });
      await sut.flush();
      fail = false;
      sut.add({ key: 'b', n: 1 });
      await sut.flushDue();
      expect(written).toEqual([[{ key: 'a', n: 1 }]]);
      expect(sut.size).toBe(1);
    });

    it.each<FailurePolicy>(['merge', 'hold'])('putBack follows the %s policy', (policy) => {
      const sut = batcher(() => Promise.resolve(), { onFailure: policy });
      sut.add({ key: 'a', n: 1 });
      sut.putBack([{ key: 'a', n: 10 }]);
      expect(sut.size).toBe(policy === 'merge' ? 1 : 2);
      expect(sut.drain().reduce((s, v) => s + v.n, 0)).toBe(11);
      expect(sut.size).toBe(0);
    });
  });

  describe('stop', () => {
    it('waits for the flush in flight, then flushes everything (due or not)', async () => {
      const w = new ManualWrite();
      const sut = batcher(w.write, { due: () => false, onFailure: 'hold' });
      sut.add({ key: 'a', n: 1 });
      const flight = sut.flush();
      sut.add({ key: 'b', n: 1 });
      let stopped = false;
      const stopping = sut.stop().then(() => {
        stopped = true;
      });
      await flushMicrotasks();
      expect(stopped).toBe(false);
      expect(w.calls).toHaveLength(1);
      w.resolve();
      await flight;
      await flushMicrotasks();
      expect(w.calls.map((b) => b.map((v) => v.key))).toEqual([['a'], ['b']]);
      expect(stopped).toBe(false);
      w.resolve();
      await stopping;
      expect(sut.size).toBe(0);
      expect(sut.counters).toMatchObject({ flushes: 2, written: 2 });
    });

    it('leaves what a failed last write sent back for the caller', async () => {
      const sut = batcher(() => Promise.reject(new Error('down')));
      sut.add({ key: 'a', n: 1 });
      await sut.stop();
      expect(sut.size).toBe(1);
      expect(sut.drain()).toEqual([{ key: 'a', n: 1 }]);
    });
  });
});
