/**
 * The intercept log's partitions (docs/data.md): creating upcoming months,
 * listing them, and dropping a month that retention has checkpointed.
 * Hand-written SQL through TypeORM's DataSource; partition names come from
 * the catalogue or from `partitionName()`, never from input, and are quoted
 * with `format('%I')` / an identifier check before they reach DDL.
 */
import type { DataSource, QueryRunner } from 'typeorm';
import { addMonths, monthDate, monthOfPartition } from './partition-months';

/**
 * The advisory lock namespace of the intercept partitions (two-key form):
 * key 1 serialises creating a partition (inside `keypin_intercept_partition`),
 * key 2 is held by the one retention run at a time.
 */
const PARTITION_LOCK_NAMESPACE = 728_461_534;
const RETENTION_LOCK = 2;

/** What a dropped partition held, for the log and the audit trail. */
export interface DroppedPartition {
  name: string;
  rows: number;
  firstSeq: number | null;
  lastSeq: number | null;
}

export class RetentionRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Runs `fn` holding the retention lock, a session-level advisory lock on a
   * connection of its own (released when `fn` ends, or by PostgreSQL when
   * the process dies). Resolves null at once when another process holds it.
   */
  async exclusively<T>(fn: () => Promise<T>): Promise<T | null> {
    const runner: QueryRunner = this.ds.createQueryRunner();
    await runner.connect();
    try {
      const rows = (await runner.query('SELECT pg_try_advisory_lock($1, $2) AS ok', [
        PARTITION_LOCK_NAMESPACE,
        RETENTION_LOCK,
      ])) as { ok: boolean }[];
      if (rows[0]?.ok !== true) return null;
      try {
        return await fn();
      } finally {
        await runner
          .query('SELECT pg_advisory_unlock($1, $2)', [PARTITION_LOCK_NAMESPACE, RETENTION_LOCK])
          .catch(() => undefined);
      }
    } finally {
      await runner.release();
    }
  }

  /** Creates the month's partition unless it exists (rows of that month in DEFAULT move in); returns its name. */
  async ensurePartition(month: Date): Promise<string> {
    const rows: { name: string }[] = await this.ds.query(
      'SELECT keypin_intercept_partition($1::date) AS name',
      [monthDate(month)],
    );
    return rows[0]!.name;
  }

  /** The monthly partitions of the intercept log (the DEFAULT partition is not one of them). */
  async monthlyPartitions(): Promise<string[]> {
    const rows: { name: string }[] = await this.ds.query(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'intercept_logs'::regclass ORDER BY c.relname`,
    );
    return rows.map((r) => r.name).filter((n) => monthOfPartition(n) !== null);
  }

  /**
   * Detaches and drops one month, in one transaction, if every row in it is
   * sealed with a seq up to `throughSeq` (the checkpoint retention wrote);
   * otherwise (a record sealed late, or not sealed yet) leaves it and
   * resolves null. The check runs after DETACH, which locks the partition,
   * so no row can arrive between the check and the drop. An audit entry
   * (actor `system`) commits with the drop. `lockTimeoutMs`: how long to
   * wait for the lock (inserts queue behind a waiting DETACH); a timeout
   * throws, and the next run tries again.
   */
  async dropPartition(
    name: string,
    throughSeq: number,
    lockTimeoutMs: number,
  ): Promise<DroppedPartition | null> {
    if (monthOfPartition(name) === null) throw new Error(`not an intercept partition: ${name}`);
    return this.ds
      .transaction(async (tx) => {
        await tx.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
        await tx.query(`ALTER TABLE intercept_logs DETACH PARTITION "${name}"`);
        const held: { rows: string; first: string | null; last: string | null; blocked: boolean }[] =
          await tx.query(
            `SELECT count(*)::text AS rows, min(seq)::text AS first, max(seq)::text AS last,
                  bool_or(seq IS NULL OR seq > $1) AS blocked
             FROM "${name}"`,
            [throughSeq],
          );
        const h = held[0]!;
        if (h.blocked === true) {
          // Rolls the DETACH back: the month stays.
          throw new PartitionNotReady(name);
        }
        // The month's keys and addresses leave the per-key and per-address counts (no trigger fires on a DROP).
        await tx.query(
          `UPDATE intercept_token_counts t SET rows = t.rows - p.n
           FROM (SELECT token_display, count(*) AS n FROM "${name}" GROUP BY 1) p
          WHERE t.token_display = p.token_display`,
        );
        await tx.query(`DELETE FROM intercept_token_counts WHERE rows <= 0`);
        await tx.query(
          `UPDATE intercept_ip_counts t SET rows = t.rows - p.n
           FROM (SELECT attempt_ip, count(*) AS n FROM "${name}" GROUP BY 1) p
          WHERE t.attempt_ip = p.attempt_ip`,
        );
        await tx.query(`DELETE FROM intercept_ip_counts WHERE rows <= 0`);
        await tx.query(`DROP TABLE "${name}"`);
        // And its hours leave the hourly counts.
        const month = monthOfPartition(name)!;
        await tx.query(`DELETE FROM intercept_log_counts WHERE hour >= $1 AND hour < $2`, [
          month,
          addMonths(month, 1),
        ]);
        const dropped: DroppedPartition = {
          name,
          rows: Number(h.rows),
          firstSeq: h.first === null ? null : Number(h.first),
          lastSeq: h.last === null ? null : Number(h.last),
        };
        await tx.query(
          `INSERT INTO audit_logs (actor, action, target, before, after, ip)
         VALUES ('system', 'intercepts.partition_drop', $1, $2, $3, NULL)`,
          [
            `partition:${name}`,
            JSON.stringify({ rows: dropped.rows, first_seq: dropped.firstSeq, last_seq: dropped.lastSeq }),
            JSON.stringify({ checkpoint_seq: throughSeq }),
          ],
        );
        return dropped;
      })
      .catch((err: unknown) => {
        if (err instanceof PartitionNotReady) return null;
        throw err;
      });
  }
}

/** A month that still holds records past the checkpoint (internal: rolls the drop back). */
class PartitionNotReady extends Error {
  constructor(readonly partition: string) {
    super(`${partition} still holds records past the checkpoint`);
  }
}
