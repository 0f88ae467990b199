import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The intercept log, partitioned by month (docs/contract.md 12, docs/data.md).
 *
 * `intercept_logs` becomes a table partitioned by RANGE on `intercepted_at`,
 * one partition per UTC month (`intercept_logs_pYYYY_MM`), plus a DEFAULT
 * partition (`intercept_logs_default`) so that an insert never fails for
 * want of a partition (a spool replayed from long ago, a clock far off).
 * Retention then drops whole months (`apps/gateway/src/retention/`) instead
 * of deleting millions of rows.
 *
 * In place: the table keeps its name, its columns (same order), every row
 * with its id, `seq`, `prev_hash` and `hash`, its checks and its defaults.
 * PostgreSQL cannot turn a table into a partitioned one, so the rows are
 * copied once into the new table (one transaction, the old table locked
 * meanwhile), the old table dropped, and the indexes built after the copy.
 * Nothing references intercepts by a foreign key (`alerts` is referenced
 * by `intercept_logs.alert_id`, not the other way round; the hash chains'
 * heads and checkpoints hold seqs and hashes, not row references).
 *
 * Keys on a partitioned table must include the partition key:
 * - the primary key becomes (id, intercepted_at). An intercept's id is a
 *   random UUID fixed with its time when the record is made, and a replay
 *   (queue retry, spool) carries both unchanged, so `ON CONFLICT (id,
 *   intercepted_at) DO NOTHING` still stores each record exactly once;
 * - `seq` can no longer be declared unique across the table. It never
 *   needed the index to be unique: seqs are assigned only by the sealer,
 *   head + 1, under the chain's advisory lock (docs/integrity.md), and a
 *   duplicate written behind KeyPin's back is reported by verification
 *   (the chain expects seq = previous + 1). What verification and
 *   retention need is an index that returns rows in seq order: a plain
 *   index on `seq` in each partition, merged in order (Merge Append).
 *
 * `keypin_intercept_partition(month)` creates a month's partition if it is
 * missing (under an advisory lock, so concurrent callers are safe), moving
 * any rows of that month out of the DEFAULT partition first. The migration
 * creates every month from the oldest row's to two months ahead; the
 * background maintenance creates upcoming months.
 */
export class InterceptPartitions1769000100000 implements MigrationInterface {
  name = 'InterceptPartitions1769000100000';

  async up(q: QueryRunner): Promise<void> {
    // Copies, backfills and index builds over a large log take longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`LOCK TABLE intercept_logs IN ACCESS EXCLUSIVE MODE`);
    await q.query(`ALTER TABLE intercept_logs RENAME TO intercept_logs_unpartitioned`);
    await q.query(`
      CREATE TABLE intercept_logs
        (LIKE intercept_logs_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
        PARTITION BY RANGE (intercepted_at)`);
    await q.query(`CREATE TABLE intercept_logs_default PARTITION OF intercept_logs DEFAULT`);
    await q.query(CREATE_PARTITION_FUNCTION);
    await q.query(
      `SELECT keypin_intercept_partition(m::date)
         FROM generate_series(
                date_trunc('month', coalesce((SELECT min(intercepted_at) FROM intercept_logs_unpartitioned), now()) AT TIME ZONE 'UTC'),
                greatest(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months',
                         date_trunc('month', coalesce((SELECT max(intercepted_at) FROM intercept_logs_unpartitioned), now()) AT TIME ZONE 'UTC')),
                interval '1 month') AS m`,
    );
    await q.query(`INSERT INTO intercept_logs SELECT * FROM intercept_logs_unpartitioned`);
    await q.query(`DROP TABLE intercept_logs_unpartitioned`);
    await createIndexes(q);
  }

  async down(q: QueryRunner): Promise<void> {
    // Copies, backfills and index builds over a large log take longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`LOCK TABLE intercept_logs IN ACCESS EXCLUSIVE MODE`);
    await q.query(`ALTER TABLE intercept_logs RENAME TO intercept_logs_partitioned`);
    await q.query(`
      CREATE TABLE intercept_logs
        (LIKE intercept_logs_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
    await q.query(`INSERT INTO intercept_logs SELECT * FROM intercept_logs_partitioned`);
    await q.query(`DROP TABLE intercept_logs_partitioned`); // drops its partitions with it
    await q.query(`DROP FUNCTION keypin_intercept_partition(date)`);
    // The indexes as the earlier migrations left them.
    await q.query(`ALTER TABLE intercept_logs ADD CONSTRAINT intercept_logs_pkey PRIMARY KEY (id)`);
    await q.query(`CREATE UNIQUE INDEX intercept_logs_seq_key ON intercept_logs (seq)`);
    await q.query(`CREATE INDEX intercept_logs_at_idx ON intercept_logs (intercepted_at DESC, id DESC)`);
    await q.query(
      `CREATE INDEX intercept_logs_binding_at_idx ON intercept_logs (binding_id, intercepted_at DESC)`,
    );
    await q.query(`CREATE INDEX intercept_logs_attempt_ip_idx ON intercept_logs (attempt_ip)`);
    await q.query(
      `CREATE INDEX intercept_logs_unalerted_idx ON intercept_logs (binding_id, intercepted_at) WHERE NOT alerted`,
    );
    await q.query(
      `CREATE INDEX intercept_logs_unsealed_idx ON intercept_logs (intercepted_at, id) WHERE seq IS NULL`,
    );
  }
}

/**
 * Creates the partition of the UTC month that `m` falls in, unless it
 * exists; returns its name. Rows of that month already in the DEFAULT
 * partition are moved into it (attaching the month would fail otherwise).
 * Serialised by a transaction-scoped advisory lock (728461534, 1), so two
 * processes creating the same month do not collide; the partition's
 * indexes are created by ATTACH from the parent's.
 */
const CREATE_PARTITION_FUNCTION = `
  CREATE FUNCTION keypin_intercept_partition(m date) RETURNS text LANGUAGE plpgsql AS $fn$
  DECLARE
    lo timestamptz := date_trunc('month', m::timestamp) AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', m::timestamp) + interval '1 month') AT TIME ZONE 'UTC';
    part text := 'intercept_logs_p' || to_char(m, 'YYYY_MM');
  BEGIN
    IF to_regclass(part) IS NOT NULL THEN RETURN part; END IF;
    PERFORM pg_advisory_xact_lock(728461534, 1);
    -- Read the catalogue afresh (not through the cache): another caller may have just created it.
    IF EXISTS (SELECT 1 FROM pg_class WHERE relname = part AND relnamespace = current_schema()::regnamespace) THEN
      RETURN part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE intercept_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
      'WITH moved AS (DELETE FROM intercept_logs_default WHERE intercepted_at >= $1 AND intercepted_at < $2 RETURNING *)
       INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE intercept_logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    RETURN part;
  END
  $fn$`;

/**
 * The intercept log's indexes, on the parent (so every partition, present
 * and future, has them). Each serves a query of the API, the sealer, the
 * alert windows or retention (docs/data.md lists which):
 */
async function createIndexes(q: QueryRunner): Promise<void> {
  await q.query(
    `ALTER TABLE intercept_logs ADD CONSTRAINT intercept_logs_pkey PRIMARY KEY (id, intercepted_at)`,
  );
  // Verification's keyset pages and retention's boundary, in seq order.
  await q.query(`CREATE INDEX intercept_logs_seq_idx ON intercept_logs (seq)`);
  // /logs without a filter and with from/to, newest first; the dashboard's recent intercepts.
  await q.query(`CREATE INDEX intercept_logs_at_idx ON intercept_logs (intercepted_at DESC, id DESC)`);
  // /logs?binding_id, newest first, without a sort.
  await q.query(
    `CREATE INDEX intercept_logs_binding_at_idx ON intercept_logs (binding_id, intercepted_at DESC, id DESC)`,
  );
  // /logs?ip (an address or a network: `<<=` becomes a range on the leading column).
  await q.query(
    `CREATE INDEX intercept_logs_attempt_ip_idx ON intercept_logs (attempt_ip, intercepted_at DESC, id DESC)`,
  );
  // /logs?reason, newest first.
  await q.query(
    `CREATE INDEX intercept_logs_reason_at_idx ON intercept_logs (reason, intercepted_at DESC, id DESC)`,
  );
  // /logs?search: a substring of the masked key (ILIKE '%…%') through trigrams.
  await q.query(`CREATE EXTENSION IF NOT EXISTS pg_trgm`);
  await q.query(
    `CREATE INDEX intercept_logs_token_trgm_idx ON intercept_logs USING gin (token_display gin_trgm_ops)`,
  );
  // The alert windows: a key's intercepts not yet part of an alert.
  await q.query(
    `CREATE INDEX intercept_logs_unalerted_idx ON intercept_logs (binding_id, intercepted_at) WHERE NOT alerted`,
  );
  // The sealer's backlog.
  await q.query(
    `CREATE INDEX intercept_logs_unsealed_idx ON intercept_logs (intercepted_at, id) WHERE seq IS NULL`,
  );
}
