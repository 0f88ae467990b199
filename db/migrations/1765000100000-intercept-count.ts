import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An intercept record may stand for several refused requests (those of one
 * key from one IP for one reason within one second): `count` says how many.
 * Existing rows each stood for one. The default is a constant, so adding
 * the column rewrites nothing; the check reads the table once.
 */
export class InterceptCount1765000100000 implements MigrationInterface {
  name = 'InterceptCount1765000100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE intercept_logs ADD COLUMN count integer NOT NULL DEFAULT 1
         CONSTRAINT intercept_logs_count_check CHECK (count >= 1)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE intercept_logs DROP COLUMN count`);
  }
}
