import type { Logger } from 'pino';
import { RateLimitedLog } from '../infra/rate-limited-log';
import { canonicalOf, keyOf } from './chain-records';
import {
  CHAIN_NAMES,
  type ChainName,
  type ChainRow,
  type IntegrityRepository,
  type Seal,
} from './integrity.repository';
import { chainHash } from './record-hash';

export interface SealerOptions {
  /** How often the sealer runs (default 1 s). */
  intervalMs?: number;
  /**
   * How long after its second an intercept is sealed (default 2 s): by
   * then every recorder has handed on the records of that second. Audit
   * entries are sealed as soon as they are committed.
   */
  marginMs?: number;
  /** Rows sealed per transaction (default 1000: a backlog is sealed in small steps, with flat memory). */
  batch?: number;
  /** How long the last pass on shutdown may take (default 5 s); what is left waits for the next sealer. */
  shutdownBudgetMs?: number;
}

/** Rows sealed per chain by one run. */
export type SealCounts = Record<ChainName, number>;

/**
 * Gives records their place in the hash chains (docs/integrity.md): `seq`
 * (the head's + 1, gapless), `prev_hash` (the head's hash) and `hash`, in
 * one transaction per batch that holds the chain's advisory lock and moves
 * the head. Runs in every process with background jobs (ROLE all or
 * worker), every second; a process that finds the lock taken skips the
 * round, so there is one writer at a time and no owner to elect or hand
 * over. Order within a chain is the sealing order: intercepts by time then
 * id, a record stored late (replayed from the spool) after those sealed
 * before it; audit entries by id.
 */
export class ChainSealer {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = false;
  private readonly failed: RateLimitedLog;
  private readonly forged: RateLimitedLog;
  private readonly intervalMs: number;
  private readonly marginMs: number;
  private readonly batch: number;
  private readonly shutdownBudgetMs: number;

  constructor(
    private readonly repo: IntegrityRepository,
    private readonly logger: Logger,
    opts: SealerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.marginMs = opts.marginMs ?? 2000;
    this.batch = opts.batch ?? 1000;
    this.shutdownBudgetMs = opts.shutdownBudgetMs ?? 5000;
    this.failed = new RateLimitedLog(logger, 'could not seal the hash chains yet; retrying', 30_000);
    this.forged = new RateLimitedLog(logger, 'a sealed record past the chain head was found', 60_000);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private tick(): void {
    if (this.running !== null || this.stopped) return;
    this.running = this.sealAll('try', this.marginMs)
      .catch((err: Error) => this.failed.warn({ err: err.message }))
      .finally(() => (this.running = null));
  }

  /**
   * Seals what is due in both chains, batch after batch until none is left.
   * `try`: gives a chain up for this round when another process holds its
   * lock (that one seals it); `wait`: waits for the lock. `marginMs` null:
   * every stored intercept, however recent. `until`: a time (ms since the
   * epoch) after which no further batch is started. A scheduled run also
   * stops between batches once the sealer is stopping, so a large backlog
   * never holds up a shutdown.
   */
  async sealAll(mode: 'try' | 'wait', marginMs: number | null, until = Infinity): Promise<SealCounts> {
    const counts: SealCounts = { intercepts: 0, audit: 0 };
    const scheduled = !this.stopped;
    // A batch of each chain in turn: a long intercept backlog does not keep audit entries waiting.
    const pending = new Set<ChainName>(CHAIN_NAMES);
    // The first batch always runs: a pass with no time left still makes progress.
    let first = true;
    while (pending.size > 0) {
      for (const chain of [...pending]) {
        if (!first && (Date.now() > until || (scheduled && this.stopped))) return this.done(counts);
        first = false;
        const n = await this.sealBatch(chain, mode, marginMs);
        if (n !== null) counts[chain] += n;
        if (n === null || n < this.batch) pending.delete(chain);
      }
    }
    return this.done(counts);
  }

  private done(counts: SealCounts): SealCounts {
    if (counts.intercepts + counts.audit > 0) this.logger.debug(counts, 'records sealed');
    return counts;
  }

  /** One batch of one chain; null when the lock was taken (mode `try`). */
  async sealBatch(chain: ChainName, mode: 'try' | 'wait', marginMs: number | null): Promise<number | null> {
    return this.repo.inChainLock(chain, mode, async (tx) => {
      const rows: ChainRow<ChainName>[] =
        chain === 'intercepts'
          ? await this.repo.unsealedIntercepts(tx, marginMs, this.batch)
          : await this.repo.unsealedAudit(tx, this.batch);
      if (rows.length === 0) return 0;
      const head = await this.repo.head(tx, chain);
      const stored = await this.repo.maxSeq(tx, chain);
      if (stored > head.seq) {
        // Only a row written behind KeyPin's back carries a seq past the head:
        // go on after it (verification reports it), never reuse a seq.
        this.forged.warn({ chain, head: head.seq, stored });
      }
      let seq = Math.max(head.seq, stored);
      let prev = head.hash;
      const seals: Seal[] = rows.map((row) => {
        seq++;
        const hash = chainHash(prev, canonicalOf(chain, row));
        const seal = { key: keyOf(chain, row), seq, prevHash: prev, hash };
        prev = hash;
        return seal;
      });
      await this.repo.seal(tx, chain, seals);
      return rows.length;
    });
  }

  /**
   * Stops the schedule and seals once more everything stored (the recorders
   * have flushed by now), for at most `shutdownBudgetMs`.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    try {
      const counts = await this.sealAll('wait', null, Date.now() + this.shutdownBudgetMs);
      this.logger.info(counts, 'hash chains sealed on shutdown');
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message },
        'could not seal the hash chains on shutdown; the next sealer will',
      );
    }
  }
}
