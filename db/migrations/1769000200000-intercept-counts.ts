import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * How many intercept records per UTC hour and reason (docs/data.md), so
 * that `GET /logs` can answer its exact `total` without counting millions
 * of rows: without a filter, or with `reason` and/or `from`/`to`, the total
 * is the sum of the whole hours inside the range plus an exact count of the
 * (at most two) partial hours at its ends. Other filters (key, IP, binding)
 * select few enough rows to count them through their indexes.
 *
 * Kept by statement-level triggers on the partitioned log (one small
 * aggregate per inserted batch, from the transition table): INSERT adds,
 * DELETE subtracts, TRUNCATE of the log empties it. Retention, which drops
 * a whole month's partition (no trigger fires), removes that month's hours
 * in the same transaction. An intercept's time and reason never change once
 * stored (they are part of its hashed record), so UPDATEs are not followed.
 * Rows moved from the DEFAULT partition into a new month's partition go
 * partition to partition, not through the parent: no trigger, no change.
 */
export class InterceptCounts1769000200000 implements MigrationInterface {
  name = 'InterceptCounts1769000200000';

  async up(q: QueryRunner): Promise<void> {
    // Copies, backfills and index builds over a large log take longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`
      CREATE TABLE intercept_log_counts (
        hour   timestamptz NOT NULL,
        reason intercept_reason NOT NULL,
        rows   bigint NOT NULL,
        PRIMARY KEY (hour, reason)
      )`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_counts_add() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        INSERT INTO intercept_log_counts AS c (hour, reason, rows)
        SELECT date_trunc('hour', intercepted_at, 'UTC'), reason, count(*) FROM added GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (hour, reason) DO UPDATE SET rows = c.rows + EXCLUDED.rows;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        UPDATE intercept_log_counts c SET rows = c.rows - r.n
          FROM (SELECT date_trunc('hour', intercepted_at, 'UTC') AS hour, reason, count(*) AS n
                  FROM removed GROUP BY 1, 2) r
         WHERE c.hour = r.hour AND c.reason = r.reason;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        DELETE FROM intercept_log_counts;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE TRIGGER intercept_counts_insert AFTER INSERT ON intercept_logs
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_counts_add()`);
    await q.query(`
      CREATE TRIGGER intercept_counts_delete AFTER DELETE ON intercept_logs
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_counts_remove()`);
    await q.query(`
      CREATE TRIGGER intercept_counts_truncate AFTER TRUNCATE ON intercept_logs
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_counts_clear()`);
    // Under the same lock as the triggers' creation: no insert slips between the backfill and them.
    await q.query(`LOCK TABLE intercept_logs IN SHARE MODE`);
    await q.query(`
      INSERT INTO intercept_log_counts (hour, reason, rows)
      SELECT date_trunc('hour', intercepted_at, 'UTC'), reason, count(*) FROM intercept_logs GROUP BY 1, 2`);
  }

  async down(q: QueryRunner): Promise<void> {
    // Copies, backfills and index builds over a large log take longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`DROP TRIGGER intercept_counts_truncate ON intercept_logs`);
    await q.query(`DROP TRIGGER intercept_counts_delete ON intercept_logs`);
    await q.query(`DROP TRIGGER intercept_counts_insert ON intercept_logs`);
    await q.query(`DROP FUNCTION keypin_intercept_counts_clear()`);
    await q.query(`DROP FUNCTION keypin_intercept_counts_remove()`);
    await q.query(`DROP FUNCTION keypin_intercept_counts_add()`);
    await q.query(`DROP TABLE intercept_log_counts`);
  }
}
