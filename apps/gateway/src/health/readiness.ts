import type { RedisClient } from '../infra/redis/redis.factory';
import { describeTopology, type RedisTopology } from '../infra/redis/redis-topology';
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
    private readonly redis: RedisClient,
    /** What runs in a degraded mode right now (e.g. policy counters per instance), as sentences. */
    readonly degraded: () => string[] = () => [],
    private readonly redisTopology: RedisTopology | null = null,
  ) {}

  /** The Redis topology as /ready names it (docs/redis.md): `standalone`, `sentinel <name> (…)`, `cluster (…)`. */
  get topology(): string {
    return this.redisTopology ? describeTopology(this.redisTopology) : 'standalone';
  }

  /**
   * Redis answers: PING on the primary (standalone, or the one the Sentinels
   * name: the client only ever talks to a primary); on a cluster, a node
   * reports `cluster_state:ok` (every slot served).
   */
  private async redisAnswers(): Promise<void> {
    if (this.redisTopology?.kind !== 'cluster') {
      await this.redis.ping();
      return;
    }
    const info = await this.redis.cluster('INFO');
    if (!/^cluster_state:ok\b/m.test(info)) throw new Error('cluster state is not ok');
  }

  async check(): Promise<{ postgres: CheckState; redis: CheckState }> {
    const [pg, rd] = await Promise.allSettled([
      withTimeout(this.ds.query('SELECT 1'), 2000),
      withTimeout(this.redisAnswers(), 2000),
    ]);
    return {
      postgres: pg.status === 'fulfilled' ? 'ok' : 'down',
      redis: rd.status === 'fulfilled' ? 'ok' : 'down',
    };
  }
}
