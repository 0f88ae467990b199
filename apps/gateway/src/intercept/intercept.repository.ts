import type { DataSource } from 'typeorm';
import { type InterceptEvent, requestsOf } from './intercept.types';

/** Longest path / user agent kept in the log (the rest is cut). */
const MAX_TEXT = 2048;

export class InterceptRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Inserts a batch idempotently (the intercept id, with its time, is the
   * primary key of the partitioned log; a replay carries both) and
   * adds the requests of the newly inserted records (their `count`s) to
   * their bindings' intercept counts. A record's count never changes once
   * it has left the recorder, so a replayed id adds nothing twice.
   * Returns how many rows were new.
   */
  async insertBatch(
    events: readonly InterceptEvent[],
    alertOf: (e: InterceptEvent) => string | null = () => null,
  ): Promise<number> {
    if (events.length === 0) return 0;
    const rows: { n: string }[] = await this.ds.query(
      `WITH ins AS (
         INSERT INTO intercept_logs (id, binding_id, token_display, attempt_ip, allowed_ips, reason,
                                     method, path, user_agent, enforced, intercepted_at, alerted, alert_id, count)
         SELECT e.id, e.binding_id, e.token_display, e.attempt_ip, e.allowed_ips::cidr[], e.reason::intercept_reason,
                e.method, e.path, e.user_agent, e.enforced, e.at, e.alert_id IS NOT NULL, e.alert_id, e.count
           FROM json_to_recordset($1::json) AS e(id uuid, binding_id bigint, token_display text, attempt_ip inet,
                allowed_ips text[], reason text, method text, path text, user_agent text, enforced boolean,
                at timestamptz, alert_id uuid, count integer)
         ON CONFLICT (id, intercepted_at) DO NOTHING
         RETURNING binding_id, count
       ), counted AS (
         UPDATE bindings b SET intercept_count = b.intercept_count + c.n
           FROM (SELECT binding_id, sum(count) AS n FROM ins GROUP BY binding_id) c
          WHERE b.id = c.binding_id
       )
       SELECT count(*)::text AS n FROM ins`,
      [
        JSON.stringify(
          events.map((e) => ({
            id: e.id,
            binding_id: e.bindingId,
            token_display: e.tokenDisplay,
            attempt_ip: e.attemptIp,
            allowed_ips: e.allowedIps,
            reason: e.reason,
            method: e.method.slice(0, 32),
            path: e.path.slice(0, MAX_TEXT),
            user_agent: e.userAgent === null ? null : e.userAgent.slice(0, MAX_TEXT),
            enforced: e.enforced,
            at: e.at.toISOString(),
            alert_id: alertOf(e),
            count: requestsOf(e),
          })),
        ),
      ],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Which of these intercept ids are stored. */
  async existingIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows: { id: string }[] = await this.ds.query(
      'SELECT id FROM intercept_logs WHERE id = ANY($1::uuid[])',
      [ids],
    );
    return new Set(rows.map((r) => r.id));
  }
}
