import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Intercept records per attempted address (`intercept_ip_counts`,
 * docs/data.md): `GET /logs?ip=…` alone (an address, or a network: `<<=`
 * becomes a range on the btree) sums the matching addresses instead of
 * counting the rows of a hammered network one by one. Kept by
 * statement-level triggers on the partitioned log like the hourly and
 * per-key counts (INSERT adds, DELETE subtracts, TRUNCATE empties);
 * retention subtracts the addresses of a month it drops.
 */
export class InterceptIpCounts1769000400000 implements MigrationInterface {
  name = 'InterceptIpCounts1769000400000';

  async up(q: QueryRunner): Promise<void> {
    // The backfill reads the whole log: longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`
      CREATE TABLE intercept_ip_counts (
        attempt_ip inet PRIMARY KEY,
        rows       bigint NOT NULL
      )`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_ip_counts_add() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        INSERT INTO intercept_ip_counts AS t (attempt_ip, rows)
        SELECT attempt_ip, count(*) FROM added GROUP BY 1 ORDER BY 1
        ON CONFLICT (attempt_ip) DO UPDATE SET rows = t.rows + EXCLUDED.rows;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_ip_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        UPDATE intercept_ip_counts t SET rows = t.rows - r.n
          FROM (SELECT attempt_ip, count(*) AS n FROM removed GROUP BY 1) r
         WHERE t.attempt_ip = r.attempt_ip;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_ip_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        DELETE FROM intercept_ip_counts;
        RETURN NULL;
      END $fn$`);
    await q.query(`LOCK TABLE intercept_logs IN SHARE MODE`);
    await q.query(`
      CREATE TRIGGER intercept_ip_counts_insert AFTER INSERT ON intercept_logs
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_ip_counts_add()`);
    await q.query(`
      CREATE TRIGGER intercept_ip_counts_delete AFTER DELETE ON intercept_logs
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_ip_counts_remove()`);
    await q.query(`
      CREATE TRIGGER intercept_ip_counts_truncate AFTER TRUNCATE ON intercept_logs
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_ip_counts_clear()`);
    await q.query(`
      INSERT INTO intercept_ip_counts (attempt_ip, rows)
      SELECT attempt_ip, count(*) FROM intercept_logs GROUP BY 1`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER intercept_ip_counts_truncate ON intercept_logs`);
    await q.query(`DROP TRIGGER intercept_ip_counts_delete ON intercept_logs`);
    await q.query(`DROP TRIGGER intercept_ip_counts_insert ON intercept_logs`);
    await q.query(`DROP FUNCTION keypin_intercept_ip_counts_clear()`);
    await q.query(`DROP FUNCTION keypin_intercept_ip_counts_remove()`);
    await q.query(`DROP FUNCTION keypin_intercept_ip_counts_add()`);
    await q.query(`DROP TABLE intercept_ip_counts`);
  }
}
