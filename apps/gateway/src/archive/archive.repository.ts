/**
 * The archive schedule's statements. SQL: hand-written and parameterised,
 * run through TypeORM's DataSource, because moving a chunk of bindings must
 * be one statement: a data-modifying CTE deletes the rows from `bindings`
 * (`FOR UPDATE SKIP LOCKED`, so concurrent runs take disjoint chunks) and
 * inserts the same rows into `binding_archive`, so a binding is never in
 * both tables nor in neither, and the delete fires the bindings trigger that
 * tells every instance. Values travel as `$n` parameters (the chunk size is
 * a constant of this file).
 */
import type { DataSource } from 'typeorm';

/** Bindings moved per statement. */
export const ARCHIVE_CHUNK = 1000;

export class ArchiveRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Moves up to {@link ARCHIVE_CHUNK} active bindings unused for `days` (by
   * `last_used_at`, or `created_at` if never used) into `binding_archive`
   * with `reason`, in one statement. Banned bindings are never taken.
   * Returns the key hashes (hex) of the bindings moved.
   */
  async moveUnusedChunk(days: number, reason: string): Promise<string[]> {
    const rows: { hash: string }[] = await this.ds.query(
      `WITH moved AS (
         DELETE FROM bindings WHERE id IN (
           SELECT id FROM bindings
            WHERE status = 'active' AND coalesce(last_used_at, created_at) < now() - make_interval(days => $1)
            ORDER BY id LIMIT ${ARCHIVE_CHUNK} FOR UPDATE SKIP LOCKED)
         RETURNING *)
       INSERT INTO binding_archive (id, key_hash, token_display, rule_type, allowed_ips, status, first_ip, first_used_at,
                                    last_ip, last_used_at, request_count, intercept_count, note, created_at, updated_at,
                                    policy, archive_reason)
       SELECT id, key_hash, token_display, rule_type, allowed_ips, status, first_ip, first_used_at, last_ip, last_used_at,
              request_count, intercept_count, note, created_at, updated_at, policy, $2
         FROM moved
       RETURNING encode(key_hash, 'hex') AS hash`,
      [days, reason],
    );
    return rows.map((r) => r.hash);
  }

  /** Drops login failures older than a day: they count for nothing (the lockout window is 15 minutes). */
  async pruneLoginFailures(): Promise<void> {
    await this.ds.query(`DELETE FROM login_failures WHERE at < now() - interval '1 day'`);
  }
}
