import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { BindingRepository, UsageUpdate } from './binding.repository';
import { UsageRecorder } from './usage-recorder.service';

class FakeRepo {
  written: UsageUpdate[][] = [];
  fail = false;
  async applyUsage(batch: UsageUpdate[]) {
    await Promise.resolve();
    if (this.fail) throw new Error('down');
    this.written.push(batch.map((u) => ({ ...u })));
  }
}

/** All of a test's requests fall on 1 January 1970 (UTC). */
const day1970 = (count: number) => [{ day: '1970-01-01', count }];

describe('UsageRecorder', () => {
  it('sums requests per binding and keeps the latest IP and time', async () => {
    const repo = new FakeRepo();
    const sut = new UsageRecorder(repo as unknown as BindingRepository, pino({ level: 'silent' }));
    sut.record(1, '10.0.0.1', 1000);
    sut.record(1, '10.0.0.2', 2000);
    sut.record(2, '10.0.0.3', 1500);
    await sut.flush();
    expect(repo.written).toEqual([
      [
        { id: 1, count: 2, lastIp: '10.0.0.2', lastAt: new Date(2000), days: day1970(2) },
        { id: 2, count: 1, lastIp: '10.0.0.3', lastAt: new Date(1500), days: day1970(1) },
      ],
    ]);
    expect(sut.pendingCount).toBe(0);
  });

  it('keeps a failed batch and merges it into the next write', async () => {
    const repo = new FakeRepo();
    const sut = new UsageRecorder(repo as unknown as BindingRepository, pino({ level: 'silent' }));
    sut.record(1, '10.0.0.1', 1000);
    repo.fail = true;
    await sut.flush();
    sut.record(1, '10.0.0.9', 3000);
    repo.fail = false;
    await sut.stop();
    expect(repo.written).toEqual([
      [{ id: 1, count: 2, lastIp: '10.0.0.9', lastAt: new Date(3000), days: day1970(2) }],
    ]);
  });

  it('writes one batch at a time: a flush during a write waits, then writes what came since', async () => {
    let release!: () => void;
    const written: UsageUpdate[][] = [];
    const repo = {
      applyUsage: (batch: UsageUpdate[]) => {
        written.push(batch.map((u) => ({ ...u })));
        return written.length === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
      },
    };
    const sut = new UsageRecorder(repo as unknown as BindingRepository, pino({ level: 'silent' }));
    sut.record(1, '10.0.0.1', 1000);
    const first = sut.flush();
    sut.record(1, '10.0.0.2', 2000);
    const second = sut.flush();
    expect(written).toHaveLength(1);
    release();
    await Promise.all([first, second]);
    expect(written).toEqual([
      [{ id: 1, count: 1, lastIp: '10.0.0.1', lastAt: new Date(1000), days: day1970(1) }],
      [{ id: 1, count: 1, lastIp: '10.0.0.2', lastAt: new Date(2000), days: day1970(1) }],
    ]);
  });

  it('a merged-back batch keeps the later IP when the newer request came first', async () => {
    const repo = new FakeRepo();
    const sut = new UsageRecorder(repo as unknown as BindingRepository, pino({ level: 'silent' }));
    sut.record(1, '10.0.0.5', 5000);
    repo.fail = true;
    const failing = sut.flush();
    sut.record(1, '10.0.0.1', 1000); // arrives during the failed write, with an older time
    await failing;
    repo.fail = false;
    await sut.flush();
    expect(repo.written).toEqual([
      [{ id: 1, count: 2, lastIp: '10.0.0.5', lastAt: new Date(5000), days: day1970(2) }],
    ]);
  });

  it('on stop, tries once more when the last write fails', async () => {
    const repo = new FakeRepo();
    let failures = 1;
    const applyUsage = repo.applyUsage.bind(repo);
    repo.applyUsage = async (batch) => {
      if (failures-- > 0) throw new Error('blip');
      await applyUsage(batch);
    };
    const sut = new UsageRecorder(repo as unknown as BindingRepository, pino({ level: 'silent' }));
    sut.record(3, '10.0.0.3', 1000);
    await sut.stop();
    expect(repo.written).toEqual([
      [{ id: 3, count: 1, lastIp: '10.0.0.3', lastAt: new Date(1000), days: day1970(1) }],
    ]);
    expect(sut.counters).toMatchObject({ flushes: 2, failures: 1, written: 1 });
  });

  it('counts requests per UTC day, a new entry when a day ends inside one batch', async () => {
    const repo = new FakeRepo();
    const sut = new UsageRecorder(repo as unknown as BindingRepository, pino({ level: 'silent' }));
    const midnight = Date.UTC(2026, 11, 4);
    sut.record(1, '10.0.0.1', midnight - 2);
    sut.record(1, '10.0.0.1', midnight - 1);
    sut.record(1, '10.0.0.1', midnight);
    sut.record(2, '10.0.0.2', midnight + 5);
    repo.fail = true;
    await sut.flush();
    sut.record(1, '10.0.0.1', midnight + 10); // merged into the failed batch's day entries
    repo.fail = false;
    await sut.flush();
    expect(repo.written[0]!.map((u) => [u.id, u.count, u.days])).toEqual([
      [
        1,
        4,
        [
          { day: '2026-12-03', count: 2 },
          { day: '2026-12-04', count: 2 },
        ],
      ],
      [2, 1, [{ day: '2026-12-04', count: 1 }]],
    ]);
  });
});
