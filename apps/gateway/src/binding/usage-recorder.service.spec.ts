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
        { id: 1, count: 2, lastIp: '10.0.0.2', lastAt: new Date(2000) },
        { id: 2, count: 1, lastIp: '10.0.0.3', lastAt: new Date(1500) },
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
    expect(repo.written).toEqual([[{ id: 1, count: 2, lastIp: '10.0.0.9', lastAt: new Date(3000) }]]);
  });
});
