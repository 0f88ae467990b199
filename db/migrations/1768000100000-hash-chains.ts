import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Hash chains over the intercept log and the audit trail (docs/integrity.md,
 * docs/contract.md 11):
 * - `seq`, `prev_hash`, `hash` on `intercept_logs` and `audit_logs`, NULL
 *   until the sealer takes the row (all three together, by a check), then
 *   never changed; `seq` is unique. Adding nullable columns rewrites
 *   nothing (the check and the indexes read the table once); existing rows
 *   are sealed by the first sealer runs, oldest first.
 * - a partial index over the rows still to seal (what the sealer reads) and
 *   the unique index on `seq` (what verification walks, in order);
 * - `integrity_heads`: the last seq and hash the sealer assigned per chain,
 *   written in the same transaction as the seals (so a deleted tail shows);
 * - `integrity_checkpoints`: the seq and hash of the last record removed
 *   (by retention) so what remains still verifies from there.
 */
export class HashChains1768000100000 implements MigrationInterface {
  name = 'HashChains1768000100000';

  async up(q: QueryRunner): Promise<void> {
    for (const table of ['intercept_logs', 'audit_logs']) {
      await q.query(`
        ALTER TABLE ${table}
          ADD COLUMN seq bigint,
          ADD COLUMN prev_hash char(64),
          ADD COLUMN hash char(64),
          ADD CONSTRAINT ${table}_seal_check CHECK (
            (seq IS NULL AND prev_hash IS NULL AND hash IS NULL) OR
            (seq >= 1 AND prev_hash IS NOT NULL AND hash IS NOT NULL))`);
      await q.query(`CREATE UNIQUE INDEX ${table}_seq_key ON ${table} (seq)`);
    }
    // The sealer's backlog: small, since sealed rows leave it.
    await q.query(
      `CREATE INDEX intercept_logs_unsealed_idx ON intercept_logs (intercepted_at, id) WHERE seq IS NULL`,
    );
    await q.query(`CREATE INDEX audit_logs_unsealed_idx ON audit_logs (id) WHERE seq IS NULL`);

    await q.query(`
      CREATE TABLE integrity_heads (
        chain      text PRIMARY KEY CHECK (chain IN ('intercepts', 'audit')),
        seq        bigint NOT NULL CHECK (seq >= 0),
        hash       char(64) NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      INSERT INTO integrity_heads (chain, seq, hash)
      VALUES ('intercepts', 0, repeat('0', 64)), ('audit', 0, repeat('0', 64))`);

    await q.query(`
      CREATE TABLE integrity_checkpoints (
        id    bigserial PRIMARY KEY,
        chain text NOT NULL CHECK (chain IN ('intercepts', 'audit')),
        seq   bigint NOT NULL CHECK (seq >= 1),
        hash  char(64) NOT NULL,
        why   text NOT NULL,
        at    timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT integrity_checkpoints_chain_seq_key UNIQUE (chain, seq)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE integrity_checkpoints`);
    await q.query(`DROP TABLE integrity_heads`);
    await q.query(`DROP INDEX audit_logs_unsealed_idx`);
    await q.query(`DROP INDEX intercept_logs_unsealed_idx`);
    for (const table of ['intercept_logs', 'audit_logs']) {
      await q.query(`DROP INDEX ${table}_seq_key`);
      await q.query(
        `ALTER TABLE ${table} DROP CONSTRAINT ${table}_seal_check, DROP COLUMN seq, DROP COLUMN prev_hash, DROP COLUMN hash`,
      );
    }
  }
}
