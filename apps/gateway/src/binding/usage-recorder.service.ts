import type { Logger } from 'pino';
import type { BindingRepository, UsageUpdate } from './binding.repository';

/**
 * Per-binding request count, last IP and last-used time, summed in memory
 * and written in one statement every `intervalMs` (and on shutdown). When
 * PostgreSQL is away the sums are kept and merged into the next write.
 */
export class UsageRecorder {
  private pending = new Map<number, UsageUpdate>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly repo: BindingRepository,
    private readonly logger: Logger,
    private readonly intervalMs = 2000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.intervalMs);
    this.timer.unref();
  }

  /** Hot path: one map update, no I/O. */
  record(bindingId: number, ip: string, at: number): void {
    const u = this.pending.get(bindingId);
    if (u === undefined) {
      this.pending.set(bindingId, { id: bindingId, count: 1, lastIp: ip, lastAt: new Date(at) });
    } else {
      u.count++;
      u.lastIp = ip;
      if (u.lastAt.getTime() !== at) u.lastAt = new Date(at);
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.repo
      .applyUsage([...batch.values()])
      .catch((err: Error) => {
        this.logger.warn({ err: err.message, bindings: batch.size }, 'usage write failed; will retry');
        for (const u of batch.values()) this.merge(u);
      })
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
    if (this.pending.size > 0) await this.flush();
  }

  private merge(old: UsageUpdate): void {
    const cur = this.pending.get(old.id);
    if (cur === undefined) {
      this.pending.set(old.id, old);
      return;
    }
    cur.count += old.count;
    if (old.lastAt > cur.lastAt) {
      cur.lastAt = old.lastAt;
      cur.lastIp = old.lastIp;
    }
  }
}
