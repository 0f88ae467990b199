import type { Batcher, BatcherCounters } from './batcher';

/**
 * The shell every batching recorder shares: start the timer, report what
 * waits, flush, stop. Subclasses add their hot-path `record` and build the
 * batcher with their own merge and write.
 */
export abstract class BatchedRecorder<K, V> {
  protected constructor(protected readonly batch: Batcher<K, V>) {}

  start(): void {
    this.batch.start();
  }

  /** Values waiting to be written. */
  get pendingCount(): number {
    return this.batch.size;
  }

  /** The batcher's totals (flushes, failures, values written and sent back). */
  get counters(): Readonly<BatcherCounters> {
    return this.batch.counters;
  }

  /** Writes what is summed (after the write in flight, if any); never rejects. */
  flush(): Promise<void> {
    return this.batch.flush();
  }

  /** Stops the timer and writes everything. */
  async stop(): Promise<void> {
    await this.batch.stop();
  }
}
