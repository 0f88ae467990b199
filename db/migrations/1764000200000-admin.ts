import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Admin accounts, the audit trail, and per-day counters for the dashboard
 * (so it never scans the big tables).
 */
export class Admin1764000200000 implements MigrationInterface {
  name = 'Admin1764000200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TYPE admin_role AS ENUM ('admin', 'auditor')`);
    await q.query(`
      CREATE TABLE admin_users (
        id                   bigserial PRIMARY KEY,
        username             text NOT NULL,
        password_hash        text NOT NULL,
        role                 admin_role NOT NULL,
        session_version      integer NOT NULL DEFAULT 1,
        created_at           timestamptz NOT NULL DEFAULT now(),
        updated_at           timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE UNIQUE INDEX admin_users_username_key ON admin_users (lower(username))`);
    await q.query(`
      CREATE TABLE audit_logs (
        id     bigserial PRIMARY KEY,
        actor  text NOT NULL,
        action text NOT NULL,
        target text,
        before jsonb,
        after  jsonb,
        ip     inet,
        at     timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX audit_logs_at_idx ON audit_logs (at DESC, id DESC)`);
    await q.query(`
      CREATE TABLE daily_stats (
        day         date PRIMARY KEY,
        allowed     bigint NOT NULL DEFAULT 0,
        intercepted bigint NOT NULL DEFAULT 0,
        first_binds bigint NOT NULL DEFAULT 0
      )`);
    await q.query(`CREATE TABLE login_failures (
        username text NOT NULL,
        ip       inet NOT NULL,
        at       timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX login_failures_key_idx ON login_failures (lower(username), ip, at DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE login_failures`);
    await q.query(`DROP TABLE daily_stats`);
    await q.query(`DROP TABLE audit_logs`);
    await q.query(`DROP TABLE admin_users`);
    await q.query(`DROP TYPE admin_role`);
  }
}
