import type { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';

export type CheckState = 'ok' | 'down';

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Answers /ready: can PostgreSQL and Redis answer right now? */
export class ReadinessProbe {
  constructor(
    private readonly ds: DataSource,
    private readonly redis: Redis,
    /** What runs in a degraded mode right now (e.g. policy counters per instance), as sentences. */
    readonly degraded: () => string[] = () => [],
  ) {}

  async check(): Promise<{ postgres: CheckState; redis: CheckState }> {
    const [pg, rd] = await Promise.allSettled([
      withTimeout(this.ds.query('SELECT 1'), 2000),
      withTimeout(this.redis.ping(), 2000),
    ]);
    return {
      postgres: pg.status === 'fulfilled' ? 'ok' : 'down',
      redis: rd.status === 'fulfilled' ? 'ok' : 'down',
    };
  }
}
