import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Key policies (docs/contract.md 9):
 * - `bindings.policy`: the key's own policy as JSON (null = the default
 *   policy applies). A change of it is announced like a rule change, so the
 *   trigger now also fires on `policy`.
 * - `binding_daily_usage`: forwarded requests per binding and UTC day, added
 *   in the same batches as `request_count` (for `requests_today` and
 *   `GET /bindings/:id/usage`; enforcement counts in Redis).
 * - `daily_refusals`: refused requests per UTC day and error code, for the
 *   dashboard.
 * `binding_archive` keeps an archived binding's policy with the rest of it.
 * Adding a nullable column rewrites nothing.
 */
export class KeyPolicies1766000100000 implements MigrationInterface {
  name = 'KeyPolicies1766000100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE bindings ADD COLUMN policy jsonb`);
    await q.query(`ALTER TABLE binding_archive ADD COLUMN policy jsonb`);
    await q.query(`DROP TRIGGER bindings_changed ON bindings`);
    await q.query(`
      CREATE TRIGGER bindings_changed
        AFTER UPDATE OF key_hash, rule_type, allowed_ips, status, policy OR DELETE ON bindings
        FOR EACH ROW EXECUTE FUNCTION keypin_binding_changed()`);
    await q.query(`
      CREATE TABLE binding_daily_usage (
        binding_id bigint NOT NULL REFERENCES bindings (id) ON DELETE CASCADE,
        day date NOT NULL,
        count bigint NOT NULL CHECK (count >= 0),
        PRIMARY KEY (binding_id, day)
      )`);
    await q.query(`
      CREATE TABLE daily_refusals (
        day date NOT NULL,
        code text NOT NULL,
        count bigint NOT NULL CHECK (count >= 0),
        PRIMARY KEY (day, code)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE daily_refusals`);
    await q.query(`DROP TABLE binding_daily_usage`);
    await q.query(`DROP TRIGGER bindings_changed ON bindings`);
    await q.query(`
      CREATE TRIGGER bindings_changed
        AFTER UPDATE OF key_hash, rule_type, allowed_ips, status OR DELETE ON bindings
        FOR EACH ROW EXECUTE FUNCTION keypin_binding_changed()`);
    await q.query(`ALTER TABLE binding_archive DROP COLUMN policy`);
    await q.query(`ALTER TABLE bindings DROP COLUMN policy`);
  }
}
