import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The admin lists within 200 ms at scale (1 million bindings, 100,000
 * alerts and audit entries; docs/data.md) with their exact totals:
 *
 * - `binding_counts (status, rule_type, n)`: bindings per status and rule,
 *   kept by row triggers on `bindings` (insert, delete, a status or rule
 *   that changes, truncate) like `binding_status_counts`. `GET /bindings`
 *   without a search (no filter, `status`, `rule_type`, both) sums it.
 * - `bindings_status_rule_idx (status, rule_type, id)`: a page of a
 *   `status` and/or `rule_type` filter reads each matching (status, rule)
 *   pair's newest ids in order, however rare the pair.
 * - `binding_networks (binding_id, network)`: one row per entry of a
 *   binding's `allowed_ips`, kept by row triggers (insert, delete, changed
 *   networks, truncate), with a GiST `inet_ops` index (covering the id):
 *   the networks that contain an address or overlap a network are found
 *   through it (no index serves containment inside a `cidr[]`). And
 *   `bindings_first_ip_idx` (btree, with the id; `=` and `<<=` as a range)
 *   beside the GiST one on `last_ip`.
 * - `alert_status_counts (status, n)`: alerts per status, row triggers;
 *   `alerts_status_at_idx (status, occurred_at DESC, id DESC)` for a page
 *   of one status.
 * - `audit_log_count (n)`: one row, the number of audit entries, kept by
 *   statement-level triggers (insert, delete, truncate).
 */
export class AdminListCounts1769000600000 implements MigrationInterface {
  name = 'AdminListCounts1769000600000';

  async up(q: QueryRunner): Promise<void> {
    // Backfills and index builds over a million bindings take longer than the pool's statement_timeout.
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`LOCK TABLE bindings IN SHARE ROW EXCLUSIVE MODE`);

    // Bindings per (status, rule).
    await q.query(`
      CREATE TABLE binding_counts (
        status    binding_status NOT NULL,
        rule_type binding_rule   NOT NULL,
        n         bigint         NOT NULL,
        PRIMARY KEY (status, rule_type)
      )`);
    await q.query(`
      CREATE FUNCTION keypin_binding_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          UPDATE binding_counts SET n = 0;
        ELSIF TG_OP = 'INSERT' THEN
          UPDATE binding_counts SET n = n + 1 WHERE status = NEW.status AND rule_type = NEW.rule_type;
        ELSIF TG_OP = 'DELETE' THEN
          UPDATE binding_counts SET n = n - 1 WHERE status = OLD.status AND rule_type = OLD.rule_type;
        ELSIF (NEW.status, NEW.rule_type) < (OLD.status, OLD.rule_type) THEN
          -- A change touches two rows: always the lower key first, so that
          -- concurrent changes lock them in one order and cannot deadlock.
          UPDATE binding_counts SET n = n + 1 WHERE status = NEW.status AND rule_type = NEW.rule_type;
          UPDATE binding_counts SET n = n - 1 WHERE status = OLD.status AND rule_type = OLD.rule_type;
        ELSE
          UPDATE binding_counts SET n = n - 1 WHERE status = OLD.status AND rule_type = OLD.rule_type;
          UPDATE binding_counts SET n = n + 1 WHERE status = NEW.status AND rule_type = NEW.rule_type;
        END IF;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE TRIGGER bindings_count AFTER INSERT OR DELETE ON bindings
        FOR EACH ROW EXECUTE FUNCTION keypin_binding_count()`);
    await q.query(`
      CREATE TRIGGER bindings_count_change AFTER UPDATE OF status, rule_type ON bindings
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.rule_type IS DISTINCT FROM NEW.rule_type)
        EXECUTE FUNCTION keypin_binding_count()`);
    await q.query(`
      CREATE TRIGGER bindings_count_truncate AFTER TRUNCATE ON bindings
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_binding_count()`);
    await q.query(`
      INSERT INTO binding_counts (status, rule_type, n)
      SELECT s, r, coalesce(c.n, 0)
        FROM unnest(enum_range(NULL::binding_status)) AS s
       CROSS JOIN unnest(enum_range(NULL::binding_rule)) AS r
        LEFT JOIN (SELECT status, rule_type, count(*) AS n FROM bindings GROUP BY 1, 2) c
               ON c.status = s AND c.rule_type = r`);
    await q.query(`CREATE INDEX bindings_status_rule_idx ON bindings (status, rule_type, id)`);

    // Each network of each binding, for the search by IP.
    await q.query(`
      CREATE TABLE binding_networks (
        binding_id bigint NOT NULL,
        network    cidr   NOT NULL
      )`);
    await q.query(`
      CREATE FUNCTION keypin_binding_networks() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          TRUNCATE binding_networks;
          RETURN NULL;
        END IF;
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
          DELETE FROM binding_networks WHERE binding_id = OLD.id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
          INSERT INTO binding_networks (binding_id, network) SELECT NEW.id, n FROM unnest(NEW.allowed_ips) AS n;
        END IF;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE TRIGGER bindings_networks AFTER INSERT OR DELETE ON bindings
        FOR EACH ROW EXECUTE FUNCTION keypin_binding_networks()`);
    await q.query(`
      CREATE TRIGGER bindings_networks_change AFTER UPDATE OF id, allowed_ips ON bindings
        FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.allowed_ips IS DISTINCT FROM NEW.allowed_ips)
        EXECUTE FUNCTION keypin_binding_networks()`);
    await q.query(`
      CREATE TRIGGER bindings_networks_truncate AFTER TRUNCATE ON bindings
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_binding_networks()`);
    await q.query(`
      INSERT INTO binding_networks (binding_id, network)
      SELECT b.id, n FROM bindings b, unnest(b.allowed_ips) AS n`);
    await q.query(`CREATE INDEX binding_networks_binding_idx ON binding_networks (binding_id)`);
    await q.query(
      `CREATE INDEX binding_networks_network_idx ON binding_networks USING gist (network inet_ops) INCLUDE (binding_id)`,
    );
    await q.query(`CREATE INDEX bindings_first_ip_idx ON bindings (first_ip) INCLUDE (id)`);
    await q.query(`ANALYZE binding_networks`);

    // Alerts per status.
    await q.query(`LOCK TABLE alerts IN SHARE ROW EXCLUSIVE MODE`);
    await q.query(`
      CREATE TABLE alert_status_counts (
        status alert_status PRIMARY KEY,
        n      bigint NOT NULL
      )`);
    await q.query(`
      CREATE FUNCTION keypin_alert_status_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          UPDATE alert_status_counts SET n = 0;
        ELSIF TG_OP = 'INSERT' THEN
          UPDATE alert_status_counts SET n = n + 1 WHERE status = NEW.status;
        ELSIF TG_OP = 'DELETE' THEN
          UPDATE alert_status_counts SET n = n - 1 WHERE status = OLD.status;
        ELSIF NEW.status < OLD.status THEN
          -- Two rows: the lower status first, so concurrent changes cannot deadlock.
          UPDATE alert_status_counts SET n = n + 1 WHERE status = NEW.status;
          UPDATE alert_status_counts SET n = n - 1 WHERE status = OLD.status;
        ELSE
          UPDATE alert_status_counts SET n = n - 1 WHERE status = OLD.status;
          UPDATE alert_status_counts SET n = n + 1 WHERE status = NEW.status;
        END IF;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE TRIGGER alerts_status_count AFTER INSERT OR DELETE ON alerts
        FOR EACH ROW EXECUTE FUNCTION keypin_alert_status_count()`);
    await q.query(`
      CREATE TRIGGER alerts_status_change AFTER UPDATE OF status ON alerts
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION keypin_alert_status_count()`);
    await q.query(`
      CREATE TRIGGER alerts_status_truncate AFTER TRUNCATE ON alerts
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_alert_status_count()`);
    await q.query(`
      INSERT INTO alert_status_counts (status, n)
      SELECT s, (SELECT count(*) FROM alerts a WHERE a.status = s) FROM unnest(enum_range(NULL::alert_status)) AS s`);
    await q.query(`CREATE INDEX alerts_status_at_idx ON alerts (status, occurred_at DESC, id DESC)`);

    // Audit entries.
    await q.query(`LOCK TABLE audit_logs IN SHARE ROW EXCLUSIVE MODE`);
    await q.query(`
      CREATE TABLE audit_log_count (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        n   bigint NOT NULL
      )`);
    await q.query(`
      CREATE FUNCTION keypin_audit_log_count() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          UPDATE audit_log_count SET n = 0;
        ELSIF TG_OP = 'INSERT' THEN
          UPDATE audit_log_count SET n = n + (SELECT count(*) FROM added);
        ELSE
          UPDATE audit_log_count SET n = n - (SELECT count(*) FROM removed);
        END IF;
        RETURN NULL;
      END $fn$`);
    await q.query(`
      CREATE TRIGGER audit_logs_count_insert AFTER INSERT ON audit_logs
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keypin_audit_log_count()`);
    await q.query(`
      CREATE TRIGGER audit_logs_count_delete AFTER DELETE ON audit_logs
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keypin_audit_log_count()`);
    await q.query(`
      CREATE TRIGGER audit_logs_count_truncate AFTER TRUNCATE ON audit_logs
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_audit_log_count()`);
    await q.query(`INSERT INTO audit_log_count (n) SELECT count(*) FROM audit_logs`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`DROP TRIGGER audit_logs_count_truncate ON audit_logs`);
    await q.query(`DROP TRIGGER audit_logs_count_delete ON audit_logs`);
    await q.query(`DROP TRIGGER audit_logs_count_insert ON audit_logs`);
    await q.query(`DROP FUNCTION keypin_audit_log_count()`);
    await q.query(`DROP TABLE audit_log_count`);
    await q.query(`DROP INDEX alerts_status_at_idx`);
    await q.query(`DROP TRIGGER alerts_status_truncate ON alerts`);
    await q.query(`DROP TRIGGER alerts_status_change ON alerts`);
    await q.query(`DROP TRIGGER alerts_status_count ON alerts`);
    await q.query(`DROP FUNCTION keypin_alert_status_count()`);
    await q.query(`DROP TABLE alert_status_counts`);
    await q.query(`DROP INDEX bindings_first_ip_idx`);
    await q.query(`DROP TRIGGER bindings_networks_truncate ON bindings`);
    await q.query(`DROP TRIGGER bindings_networks_change ON bindings`);
    await q.query(`DROP TRIGGER bindings_networks ON bindings`);
    await q.query(`DROP FUNCTION keypin_binding_networks()`);
    await q.query(`DROP TABLE binding_networks`);
    await q.query(`DROP INDEX bindings_status_rule_idx`);
    await q.query(`DROP TRIGGER bindings_count_truncate ON bindings`);
    await q.query(`DROP TRIGGER bindings_count_change ON bindings`);
    await q.query(`DROP TRIGGER bindings_count ON bindings`);
    await q.query(`DROP FUNCTION keypin_binding_count()`);
    await q.query(`DROP TABLE binding_counts`);
  }
}
