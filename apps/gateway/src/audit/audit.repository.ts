import type { AuditEntry } from '@keypin/shared';
import type { DataSource, EntityManager } from 'typeorm';
import type { Caller } from '../admin/common/roles';
import type { Paging } from '../admin/common/paging';

/** The audit trail: one row per change made through the admin API. */
export class AuditRepository {
  constructor(private readonly ds: DataSource) {}

  /** Records a change; pass the transaction's manager so the row commits with the change. */
  async record(
    caller: Caller,
    action: string,
    target: string | null,
    before: unknown,
    after: unknown,
    tx?: EntityManager,
  ): Promise<void> {
    const runner = tx ?? this.ds;
    await runner.query(
      `INSERT INTO audit_logs (actor, action, target, before, after, ip) VALUES ($1, $2, $3, $4, $5, $6::inet)`,
      [
        caller.username,
        action,
        target,
        before === undefined ? null : JSON.stringify(before),
        after === undefined ? null : JSON.stringify(after),
        caller.ip,
      ],
    );
  }

  /**
   * A page, newest first (the `at` index), and the exact total from `audit_log_count` (kept by
   * triggers): one statement, so one snapshot, also for a page past the end.
   */
  async list(p: Paging): Promise<{ items: AuditEntry[]; total: number }> {
    const rows: (Omit<AuditEntry, 'id'> & { id: number | null; total: string })[] = await this.ds.query(
      `WITH page AS (
         SELECT id::int AS id, actor, action, target, before, after, host(ip) AS ip, at, seq::int AS seq, hash
           FROM audit_logs ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2)
       SELECT t.n AS total, page.*
         FROM (SELECT coalesce(sum(n), 0) AS n FROM audit_log_count) AS t
         LEFT JOIN page ON true
        ORDER BY page.at DESC, page.id DESC`,
      [p.pageSize, p.offset],
    );
    return {
      items: rows
        .filter((r) => r.id !== null)
        .map(({ total: _t, ...r }) => ({ ...r, id: r.id!, at: new Date(r.at).toISOString() })),
      total: Number(rows[0]?.total ?? 0),
    };
  }
}
