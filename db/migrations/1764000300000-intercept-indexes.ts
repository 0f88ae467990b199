import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The intercept log is written at attack rates: a B-tree on the attempted
 * address (PostgreSQL turns `<<=` on inet into a range scan on it) is far
 * cheaper to keep up than the GiST index it replaces.
 */
export class InterceptIndexes1764000300000 implements MigrationInterface {
  name = 'InterceptIndexes1764000300000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX intercept_logs_attempt_ip_idx`);
    await q.query(`CREATE INDEX intercept_logs_attempt_ip_idx ON intercept_logs (attempt_ip)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX intercept_logs_attempt_ip_idx`);
    await q.query(
      `CREATE INDEX intercept_logs_attempt_ip_idx ON intercept_logs USING gist (attempt_ip inet_ops)`,
    );
  }
}
