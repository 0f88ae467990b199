import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `GET /bindings?search=<part of a masked key>` matches
 * `lower(token_display) LIKE '%…%'`, which the existing
 * `text_pattern_ops` index serves only for a prefix: with a million
 * bindings every such search read the whole table. A trigram index serves
 * any substring (docs/data.md).
 */
export class BindingSearchIndex1769000500000 implements MigrationInterface {
  name = 'BindingSearchIndex1769000500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`SET LOCAL statement_timeout = 0`);
    await q.query(`CREATE EXTENSION IF NOT EXISTS pg_trgm`);
    await q.query(
      `CREATE INDEX bindings_token_display_trgm_idx ON bindings USING gin (lower(token_display) gin_trgm_ops)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX bindings_token_display_trgm_idx`);
  }
}
