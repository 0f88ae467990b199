import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Alerts (one per key and window) with their webhook delivery state, and the
 * link from each intercept to the alert that covered it.
 */
export class Alerts1764000100000 implements MigrationInterface {
  name = 'Alerts1764000100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TYPE alert_delivery_status AS ENUM ('pending', 'delivered', 'failed')`);
    await q.query(`
      CREATE TABLE alerts (
        id              uuid PRIMARY KEY,
        binding_id      bigint NOT NULL,
        token_display   text NOT NULL,
        allowed_ips     cidr[] NOT NULL,
        attempt_ips     inet[] NOT NULL,
        count           integer NOT NULL,
        window_seconds  integer NOT NULL,
        first_at        timestamptz NOT NULL,
        last_at         timestamptz NOT NULL,
        window_end      timestamptz NOT NULL,
        occurred_at     timestamptz NOT NULL DEFAULT now(),
        auto_banned     boolean NOT NULL DEFAULT false,
        delivery_status alert_delivery_status NOT NULL DEFAULT 'pending',
        attempts        integer NOT NULL DEFAULT 0,
        last_error      text,
        last_attempt_at timestamptz,
        delivered_at    timestamptz,
        CONSTRAINT alerts_binding_window_key UNIQUE (binding_id, first_at)
      )`);
    await q.query(`CREATE INDEX alerts_occurred_at_idx ON alerts (occurred_at DESC)`);
    await q.query(`CREATE INDEX alerts_binding_window_idx ON alerts (binding_id, window_end DESC)`);
    await q.query(
      `CREATE INDEX alerts_pending_idx ON alerts (occurred_at) WHERE delivery_status = 'pending'`,
    );
    await q.query(`ALTER TABLE intercept_logs ADD COLUMN alert_id uuid`);
    await q.query(
      `CREATE INDEX intercept_logs_unalerted_idx ON intercept_logs (binding_id, intercepted_at) WHERE NOT alerted`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX intercept_logs_unalerted_idx`);
    await q.query(`ALTER TABLE intercept_logs DROP COLUMN alert_id`);
    await q.query(`DROP TABLE alerts`);
    await q.query(`DROP TYPE alert_delivery_status`);
  }
}
