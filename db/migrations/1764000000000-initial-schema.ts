import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Bindings (the pinned keys), their archive, run-time settings and the
 * intercept log. Binding and settings changes are announced with NOTIFY so
 * every gateway instance drops its cached copy, whoever made the change
 * (the admin API, a script, or a person in psql).
 */
export class InitialSchema1764000000000 implements MigrationInterface {
  name = 'InitialSchema1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TYPE binding_rule AS ENUM ('single', 'multiple', 'all')`);
    await q.query(`CREATE TYPE binding_status AS ENUM ('active', 'banned')`);
    await q.query(`CREATE TYPE intercept_reason AS ENUM ('ip_not_allowed', 'key_banned')`);

    await q.query(`
      CREATE TABLE bindings (
        id              bigserial PRIMARY KEY,
        key_hash        bytea NOT NULL CONSTRAINT bindings_key_hash_key UNIQUE
                        CONSTRAINT bindings_key_hash_len CHECK (octet_length(key_hash) = 32),
        token_display   text NOT NULL,
        rule_type       binding_rule NOT NULL DEFAULT 'single',
        allowed_ips     cidr[] NOT NULL DEFAULT '{}',
        status          binding_status NOT NULL DEFAULT 'active',
        first_ip        inet,
        first_used_at   timestamptz,
        last_ip         inet,
        last_used_at    timestamptz,
        request_count   bigint NOT NULL DEFAULT 0,
        intercept_count bigint NOT NULL DEFAULT 0,
        note            text,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT bindings_rule_networks CHECK (
          (rule_type = 'all' AND cardinality(allowed_ips) = 0) OR
          (rule_type = 'single' AND cardinality(allowed_ips) = 1) OR
          (rule_type = 'multiple' AND cardinality(allowed_ips) BETWEEN 1 AND 100)
        )
      )`);
    await q.query(`CREATE INDEX bindings_last_used_at_idx ON bindings (coalesce(last_used_at, created_at))`);
    await q.query(`CREATE INDEX bindings_status_idx ON bindings (status)`);
    await q.query(`CREATE INDEX bindings_last_ip_idx ON bindings USING gist (last_ip inet_ops)`);
    await q.query(
      `CREATE INDEX bindings_token_display_idx ON bindings (lower(token_display) text_pattern_ops)`,
    );

    await q.query(`
      CREATE TABLE binding_archive (
        archive_id      bigserial PRIMARY KEY,
        id              bigint NOT NULL,
        key_hash        bytea NOT NULL,
        token_display   text NOT NULL,
        rule_type       binding_rule NOT NULL,
        allowed_ips     cidr[] NOT NULL,
        status          binding_status NOT NULL,
        first_ip        inet,
        first_used_at   timestamptz,
        last_ip         inet,
        last_used_at    timestamptz,
        request_count   bigint NOT NULL,
        intercept_count bigint NOT NULL,
        note            text,
        created_at      timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL,
        archived_at     timestamptz NOT NULL DEFAULT now(),
        archive_reason  text NOT NULL
      )`);
    await q.query(`CREATE INDEX binding_archive_key_hash_idx ON binding_archive (key_hash)`);
    await q.query(`CREATE INDEX binding_archive_id_idx ON binding_archive (id)`);

    await q.query(`
      CREATE TABLE settings (
        key        text PRIMARY KEY,
        value      jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by text
      )`);

    await q.query(`
      CREATE TABLE intercept_logs (
        id             uuid PRIMARY KEY,
        binding_id     bigint NOT NULL,
        token_display  text NOT NULL,
        attempt_ip     inet NOT NULL,
        allowed_ips    cidr[] NOT NULL,
        reason         intercept_reason NOT NULL,
        method         text NOT NULL,
        path           text NOT NULL,
        user_agent     text,
        enforced       boolean NOT NULL DEFAULT true,
        alerted        boolean NOT NULL DEFAULT false,
        intercepted_at timestamptz NOT NULL
      )`);
    await q.query(`CREATE INDEX intercept_logs_at_idx ON intercept_logs (intercepted_at DESC, id DESC)`);
    await q.query(
      `CREATE INDEX intercept_logs_binding_at_idx ON intercept_logs (binding_id, intercepted_at DESC)`,
    );
    await q.query(
      `CREATE INDEX intercept_logs_attempt_ip_idx ON intercept_logs USING gist (attempt_ip inet_ops)`,
    );

    await q.query(`
      CREATE FUNCTION keypin_binding_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('keypin_binding_changed', encode(OLD.key_hash, 'hex'));
        RETURN NULL;
      END $$`);
    await q.query(`
      CREATE TRIGGER bindings_changed
        AFTER UPDATE OF key_hash, rule_type, allowed_ips, status OR DELETE ON bindings
        FOR EACH ROW EXECUTE FUNCTION keypin_binding_changed()`);
    await q.query(`
      CREATE FUNCTION keypin_settings_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('keypin_settings_changed', '');
        RETURN NULL;
      END $$`);
    await q.query(`
      CREATE TRIGGER settings_changed AFTER INSERT OR UPDATE OR DELETE ON settings
        FOR EACH STATEMENT EXECUTE FUNCTION keypin_settings_changed()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE settings`);
    await q.query(`DROP FUNCTION keypin_settings_changed CASCADE`);
    await q.query(`DROP TABLE intercept_logs`);
    await q.query(`DROP TABLE binding_archive`);
    await q.query(`DROP TABLE bindings`);
    await q.query(`DROP FUNCTION keypin_binding_changed CASCADE`);
    await q.query(`DROP TYPE intercept_reason`);
    await q.query(`DROP TYPE binding_status`);
    await q.query(`DROP TYPE binding_rule`);
  }
}
