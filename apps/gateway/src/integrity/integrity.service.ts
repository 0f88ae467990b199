import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { ChainState, IntegrityReport } from '@keypin/shared';
import { Client } from 'pg';
import type { Logger } from 'pino';
import { ChainCheck } from './chain-check';
import { sealedRecordOf } from './chain-records';
import {
  CHAIN_NAMES,
  type ChainName,
  type ChainPoint,
  type IntegrityRepository,
  pgSql,
  type Sql,
} from './integrity.repository';

/** Rows read per keyset page while verifying. */
export const VERIFY_PAGE_ROWS = 2000;
/** Rows deleted per statement by retention. */
const DELETE_CHUNK = 10_000;

/** Thrown by retention when the records it would remove do not verify. */
export class ChainBrokenError extends Error {
  constructor(
    readonly chain: ChainName,
    readonly state: ChainState,
  ) {
    super(
      `the ${chain} chain fails at seq ${state.first_bad_seq}: nothing removed (the records are evidence; investigate first)`,
    );
  }
}

/**
 * Verifies a chain from its latest checkpoint: reads its sealed records in
 * seq order, one keyset page at a time, and checks each against the one
 * before (see {@link ChainCheck}). Memory stays flat whatever the length.
 * `untilSeq`: stop there (retention checks only what it removes).
 */
export async function verifyChain(
  repo: IntegrityRepository,
  sql: Sql,
  chain: ChainName,
  untilSeq: number | null = null,
): Promise<{ state: ChainState; last: ChainPoint | null }> {
  const checkpoint = await repo.latestCheckpoint(sql, chain);
  const head = await repo.head(sql, chain);
  const check = new ChainCheck(checkpoint, untilSeq === null ? head : { seq: untilSeq, hash: null });
  let after = checkpoint?.seq ?? 0;
  let last: ChainPoint | null = checkpoint;
  for (;;) {
    const rows = await repo.sealedPage(sql, chain, after, untilSeq, VERIFY_PAGE_ROWS);
    for (const row of rows) {
      // (A row with seq but no hash cannot exist, by a check constraint; it would fail here.)
      const rec = sealedRecordOf(chain, row) ?? {
        seq: Number(row.seq),
        prevHash: '',
        hash: '',
        canonical: '',
      };
      if (!check.add(rec)) break;
      last = { seq: rec.seq, hash: rec.hash };
    }
    if (!check.going || rows.length < VERIFY_PAGE_ROWS) break;
    after = Number(rows[rows.length - 1]!.seq);
    // Hashing a page is CPU work: on an event loop that serves requests too (retention), let them through.
    await yieldToLoop();
  }
  const result = check.finish();
  const state: ChainState = {
    ok: result.ok,
    checked: result.checked,
    head_seq: head.seq,
    head_hash: head.hash,
    first_bad_seq: result.first_bad_seq,
    checkpoint_seq: checkpoint?.seq ?? null,
    unsealed: untilSeq === null ? await repo.unsealedCount(sql, chain) : 0,
  };
  return { state, last };
}

/**
 * `GET /integrity` and `npm run verify`: both chains recomputed in one
 * snapshot (a REPEATABLE READ, read-only transaction on a connection of its
 * own, so sealing and retention going on meanwhile do not disturb it), and
 * the checkpoint-aware removal any retention must go through.
 */
export class IntegrityService {
  private inFlight: Promise<IntegrityReport> | null = null;

  constructor(
    private readonly repo: IntegrityRepository,
    private readonly databaseUrl: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Verifies both chains; callers arriving while one verification runs share
   * it. In the built gateway it runs in a worker thread (`verify-thread.js`),
   * so that hashing a long chain does not hold up the event loop that serves
   * the proxy; where that file is not built (tests run from the sources) it
   * runs here.
   */
  verify(): Promise<IntegrityReport> {
    this.inFlight ??= (
      existsSync(VERIFY_THREAD) ? verifyInThread(this.databaseUrl) : verifyAll(this.repo, this.databaseUrl)
    )
      .catch((err: Error) => {
        this.logger.warn({ err: err.message }, 'could not verify the hash chains');
        throw err;
      })
      .finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  /**
   * Removes the oldest records of a chain, those before `cutoff`, keeping it
   * verifiable: checks the records to remove first (a broken chain is
   * evidence and is not removed: {@link ChainBrokenError}), then, holding
   * the chain's lock, writes a checkpoint (seq and hash of the last one
   * removed) and deletes them. Only a prefix of the chain in seq order is
   * removed, and only sealed records. Every retention (an intercept
   * retention, an audit retention, dropping a partition) goes through here.
   */
  async removeBefore(
    chain: ChainName,
    cutoff: Date,
    why: string,
  ): Promise<{ removed: number; checkpoint: ChainPoint | null }> {
    const sql = this.repo.pool;
    const previous = await this.repo.latestCheckpoint(sql, chain);
    const from = previous?.seq ?? 0;
    const through = await this.repo.retentionBoundary(sql, chain, from, cutoff);
    let removed = 0;
    if (through <= from) {
      // Nothing new; finish a removal that stopped half-way, if any.
      removed = await this.deleteThrough(chain, from);
      return { removed, checkpoint: previous };
    }
    const { state, last } = await verifyChain(this.repo, sql, chain, through);
    if (!state.ok || last?.seq !== through) throw new ChainBrokenError(chain, state);
    const written = await this.repo.inChainLock(chain, 'wait', async (tx) => {
      const now = await this.repo.latestCheckpoint(tx, chain);
      if ((now?.seq ?? 0) !== from) return false; // another removal went first: try again later
      await this.repo.insertCheckpoint(tx, chain, last, why);
      removed += await this.repo.deleteThrough(tx, chain, through, DELETE_CHUNK);
      return true;
    });
    if (written !== true) return { removed: 0, checkpoint: await this.repo.latestCheckpoint(sql, chain) };
    removed += await this.deleteThrough(chain, through);
    this.logger.info({ chain, through, removed, why }, 'old records removed behind a checkpoint');
    return { removed, checkpoint: last };
  }

  /**
   * The first half of {@link removeBefore}, for a retention that removes
   * the records itself (the intercept log drops whole monthly partitions,
   * `retention/`): finds the prefix of the chain older than `cutoff`,
   * verifies it ({@link ChainBrokenError} when it does not) and, holding
   * the chain's lock, writes its checkpoint; it removes nothing. Returns
   * `through`, the seq of the latest checkpoint (0 when none): every record
   * with a seq up to it may now be removed, in any order and by any means,
   * and what remains still verifies.
   */
  async checkpointBefore(
    chain: ChainName,
    cutoff: Date,
    why: string,
  ): Promise<{ through: number; checkpoint: ChainPoint | null }> {
    const sql = this.repo.pool;
    const previous = await this.repo.latestCheckpoint(sql, chain);
    const from = previous?.seq ?? 0;
    const through = await this.repo.retentionBoundary(sql, chain, from, cutoff);
    if (through <= from) return { through: from, checkpoint: previous };
    const { state, last } = await verifyChain(this.repo, sql, chain, through);
    if (!state.ok || last?.seq !== through) throw new ChainBrokenError(chain, state);
    const written = await this.repo.inChainLock(chain, 'wait', async (tx) => {
      const now = await this.repo.latestCheckpoint(tx, chain);
      if ((now?.seq ?? 0) !== from) return false; // another retention went first
      await this.repo.insertCheckpoint(tx, chain, last, why);
      return true;
    });
    if (written !== true) {
      const now = await this.repo.latestCheckpoint(sql, chain);
      return { through: now?.seq ?? 0, checkpoint: now };
    }
    this.logger.info({ chain, through, why }, 'checkpoint written for a retention');
    return { through, checkpoint: last };
  }

  /** Deletes, by rows and in chunks, the records still present up to the latest checkpoint; returns how many. */
  async removeThroughCheckpoint(chain: ChainName): Promise<number> {
    const checkpoint = await this.repo.latestCheckpoint(this.repo.pool, chain);
    return checkpoint === null ? 0 : this.deleteThrough(chain, checkpoint.seq);
  }

  private async deleteThrough(chain: ChainName, through: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.repo.deleteThrough(this.repo.pool, chain, through, DELETE_CHUNK);
      total += n;
      if (n < DELETE_CHUNK) return total;
    }
  }
}

/** The compiled verification thread (absent when running from the TypeScript sources). */
const VERIFY_THREAD = join(__dirname, 'verify-thread.js');

/** {@link verifyAll} in a worker thread of its own. */
function verifyInThread(databaseUrl: string): Promise<IntegrityReport> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(VERIFY_THREAD, { workerData: { databaseUrl } });
    let settled = false;
    worker.once('message', (m: { report?: IntegrityReport; error?: string }) => {
      settled = true;
      if (m.report) resolve(m.report);
      else reject(new Error(m.error ?? 'verification failed'));
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`the verification thread stopped (exit ${code})`));
    });
  });
}

/** Both chains, one snapshot, a connection of its own (closed whatever happens). */
export async function verifyAll(repo: IntegrityRepository, databaseUrl: string): Promise<IntegrityReport> {
  const client = new Client({ connectionString: databaseUrl, application_name: 'keypin-verify' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const sql = pgSql(client);
    await sql.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const states = {} as Record<ChainName, ChainState>;
    for (const chain of CHAIN_NAMES) states[chain] = (await verifyChain(repo, sql, chain)).state;
    await sql.query('COMMIT');
    return { intercepts: states.intercepts, audit: states.audit, checked_at: new Date().toISOString() };
  } finally {
    await client.end().catch(() => undefined);
  }
}
