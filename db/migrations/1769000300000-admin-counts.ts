import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * More counters, so that the admin API answers at scale (10 million
 * intercepts, 1 million bindings; docs/data.md) without counting rows:
 *
 * - `intercept_token_counts`: intercept records per masked key, with a
 *   trigram index. `GET /logs?search=…` alone sums the keys that match
 *   instead of counting a hot key's rows one by one. Kept by statement-level
 *   triggers on the partitioned log like `intercept_log_counts` (INSERT
 *   adds, DELETE subtracts, TRUNCATE empties); retention subtracts the keys
 *   of a month it drops.
 * - `binding_status_counts`: bindings per status, kept by row triggers on
 *   `bindings` (insert, delete, a status that changes, truncate): the
 *   dashboard's active and banned figures.
 * - `bindings_intercept_count_idx`: the dashboard's most intercepted keys,
 *   read in order from the bindings that have any intercepts. (It makes the
 *   intercept writer's counter updates non-HOT: a few index entries per
 *   written batch and key.)
 */
export class AdminCounts1769000300000 implements MigrationInterface {
  name = 'AdminCounts1769000300000';

  async up(q: QueryRunner): Promise<void> {
    // Copies, backfills and index builds over a large log take longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`
      CREATE TABLE intercept_token_counts (
        token_display text PRIMARY KEY,
        rows          bigint NOT NULL
      )`);
    await q.query(
      `CREATE INDEX intercept_token_counts_trgm_idx ON intercept_token_counts USING gin (token_display gin_trgm_ops)`,
    );
    await q.query(`
      CREATE FUNCTION keypin_intercept_token_counts_add() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        INSERT INTO intercept_token_counts AS t (token_display, rows)
        SELECT token_display, count(*) FROM added GROUP BY 1 ORDER BY 1
        ON CONFLICT (token_display) DO UPDATE SET rows = t.rows + EXCLUDED.rows;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_token_counts_remove() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        UPDATE intercept_token_counts t SET rows = t.rows - r.n
          FROM (SELECT token_display, count(*) AS n FROM removed GROUP BY 1) r
         WHERE t.token_display = r.token_display;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE FUNCTION keypin_intercept_token_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        DELETE FROM intercept_token_counts;
        RETURN NULL;
      END $fn$`);
    await q.query(`LOCK TABLE intercept_logs IN SHARE MODE`);
    await q.query(`
      CREATE TRIGGER intercept_token_counts_insert AFTER INSERT ON intercept_logs
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_token_counts_add()`);
    await q.query(`
      CREATE TRIGGER intercept_token_counts_delete AFTER DELETE ON intercept_logs
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_token_counts_remove()`);
    await q.query(`
      CREATE TRIGGER intercept_token_counts_truncate AFTER TRUNCATE ON intercept_logs
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_intercept_token_counts_clear()`);
    await q.query(`
      INSERT INTO intercept_token_counts (token_display, rows)
      SELECT token_display, count(*) FROM intercept_logs GROUP BY 1`);

    await q.query(`
      CREATE TABLE binding_status_counts (
        status binding_status PRIMARY KEY,
        n      bigint NOT NULL
      )`);
    await q.query(`
      CREATE FUNCTION keypin_binding_status_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          UPDATE binding_status_counts SET n = 0;
          RETURN NULL;
        END IF;
        IF TG_OP = 'INSERT' THEN
          UPDATE binding_status_counts SET n = n + 1 WHERE status = NEW.status;
        ELSIF TG_OP = 'DELETE' THEN
          UPDATE binding_status_counts SET n = n - 1 WHERE status = OLD.status;
        ELSIF NEW.status < OLD.status THEN
          -- A change touches two rows: always the lower status first, so that
          -- a ban and an unban at the same time cannot deadlock.
          UPDATE binding_status_counts SET n = n + 1 WHERE status = NEW.status;
          UPDATE binding_status_counts SET n = n - 1 WHERE status = OLD.status;
        ELSE
          UPDATE binding_status_counts SET n = n - 1 WHERE status = OLD.status;
          UPDATE binding_status_counts SET n = n + 1 WHERE status = NEW.status;
        END IF;
        RETURN NULL;
      END $fn$`);
    await q.query(`LOCK TABLE bindings IN SHARE ROW EXCLUSIVE MODE`);
    await q.query(`
      CREATE TRIGGER bindings_status_count AFTER INSERT OR DELETE ON bindings
        FOR EACH ROW EXECUTE FUNCTION keypin_binding_status_count()`);
    await q.query(`
      CREATE TRIGGER bindings_status_change AFTER UPDATE OF status ON bindings
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION keypin_binding_status_count()`);
    await q.query(`
      CREATE TRIGGER bindings_status_truncate AFTER TRUNCATE ON bindings
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_binding_status_count()`);
    await q.query(`
      INSERT INTO binding_status_counts (status, n)
      SELECT s, (SELECT count(*) FROM bindings b WHERE b.status = s) FROM unnest(enum_range(NULL::binding_status)) AS s`);

    await q.query(
      `CREATE INDEX bindings_intercept_count_idx ON bindings (intercept_count DESC, id) WHERE intercept_count > 0`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    // Copies, backfills and index builds over a large log take longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`DROP INDEX bindings_intercept_count_idx`);
    await q.query(`DROP TRIGGER bindings_status_truncate ON bindings`);
    await q.query(`DROP TRIGGER bindings_status_change ON bindings`);
    await q.query(`DROP TRIGGER bindings_status_count ON bindings`);
    await q.query(`DROP FUNCTION keypin_binding_status_count()`);
    await q.query(`DROP TABLE binding_status_counts`);
    await q.query(`DROP TRIGGER intercept_token_counts_truncate ON intercept_logs`);
    await q.query(`DROP TRIGGER intercept_token_counts_delete ON intercept_logs`);
    await q.query(`DROP TRIGGER intercept_token_counts_insert ON intercept_logs`);
    await q.query(`DROP FUNCTION keypin_intercept_token_counts_clear()`);
    await q.query(`DROP FUNCTION keypin_intercept_token_counts_remove()`);
    await q.query(`DROP FUNCTION keypin_intercept_token_counts_add()`);
    await q.query(`DROP TABLE intercept_token_counts`);
  }
}
