import type { Logger } from 'pino';
import { BatchedRecorder } from '../infra/batching/batched-recorder';
import { Batcher } from '../infra/batching/batcher';
import { UtcDayClock } from '../infra/utc-day';
import type { BindingRepository, UsageUpdate } from './binding.repository';

/** Folds one binding's usage into another's: counts add up, the later use wins. */
function mergeUsage(into: UsageUpdate, from: UsageUpdate): void {
  into.count += from.count;
  for (const d of from.days) {
    const same = into.days.find((x) => x.day === d.day);
    if (same !== undefined) same.count += d.count;
    else into.days.push({ day: d.day, count: d.count });
  }
  if (from.lastAt > into.lastAt) {
    into.lastAt = from.lastAt;
    into.lastIp = from.lastIp;
  }
}

/**
 * Per-binding request count, last IP and last-used time, summed in memory
 * and written in one statement every `intervalMs` (and on shutdown). When
 * PostgreSQL is away the sums are kept and merged into the next write.
 */
export class UsageRecorder extends BatchedRecorder<number, UsageUpdate> {
  constructor(repo: BindingRepository, logger: Logger, intervalMs = 2000) {
    super(
      new Batcher<number, UsageUpdate>({
        keyOf: (u) => u.id,
        merge: mergeUsage,
        write: (updates) => repo.applyUsage(updates),
        intervalMs,
        onFailure: 'merge',
        onError: (err, updates) =>
          logger.warn(
            { err: (err as Error).message, bindings: updates.length },
            'usage write failed; will retry',
          ),
      }),
    );
  }

  private readonly days = new UtcDayClock();

  /** Hot path: one map update, no I/O. */
  record(bindingId: number, ip: string, at: number): void {
    const day = this.days.dayOf(at);
    const u = this.batch.get(bindingId);
    if (u === undefined) {
      this.batch.set(bindingId, {
        id: bindingId,
        count: 1,
        lastIp: ip,
        lastAt: new Date(at),
        days: [{ day, count: 1 }],
      });
      return;
    }
    u.count++;
    u.lastIp = ip;
    if (u.lastAt.getTime() !== at) u.lastAt = new Date(at);
    const last = u.days[u.days.length - 1]!;
    if (last.day === day) last.count++;
    else u.days.push({ day, count: 1 });
  }

  /** Stops the timer and writes everything, with one more try if that write fails. */
  override async stop(): Promise<void> {
    await this.batch.stop();
    if (this.batch.size > 0) await this.batch.flush();
  }
}
