import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';

const CHUNK = 1000;

/**
 * Moves bindings unused for `days` into `binding_archive` (kept for audit)
 * and out of the active set: the key binds afresh on its next use. Banned
 * bindings are never archived, so a ban cannot lapse by disuse. The delete
 * fires the bindings trigger, so every instance drops its cached copy.
 */
export class ArchiveService {
  constructor(
    private readonly ds: DataSource,
    private readonly evict: (hashHex: string) => Promise<void>,
    private readonly logger: Logger,
  ) {}

  async archiveUnused(days: number): Promise<number> {
    let total = 0;
    for (;;) {
      const rows: { hash: string }[] = await this.ds.query(
        `WITH moved AS (
           DELETE FROM bindings WHERE id IN (
             SELECT id FROM bindings
              WHERE status = 'active' AND coalesce(last_used_at, created_at) < now() - make_interval(days => $1)
              ORDER BY id LIMIT ${CHUNK} FOR UPDATE SKIP LOCKED)
           RETURNING *)
         INSERT INTO binding_archive (id, key_hash, token_display, rule_type, allowed_ips, status, first_ip, first_used_at,
                                      last_ip, last_used_at, request_count, intercept_count, note, created_at, updated_at,
                                      archive_reason)
         SELECT id, key_hash, token_display, rule_type, allowed_ips, status, first_ip, first_used_at, last_ip, last_used_at,
                request_count, intercept_count, note, created_at, updated_at, $2
           FROM moved
         RETURNING encode(key_hash, 'hex') AS hash`,
        [days, `unused for ${days} days`],
      );
      for (const r of rows) await this.evict(r.hash).catch(() => undefined);
      total += rows.length;
      if (rows.length < CHUNK) break;
    }
    if (total > 0) this.logger.info({ archived: total, days }, 'unused bindings archived');
    // Login failures older than a day count for nothing (the lockout window is 15 minutes).
    await this.ds.query(`DELETE FROM login_failures WHERE at < now() - interval '1 day'`);
    return total;
  }
}
