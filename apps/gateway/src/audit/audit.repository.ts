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

  async list(p: Paging): Promise<{ items: AuditEntry[]; total: number }> {
    const rows: (AuditEntry & { total: string })[] = await this.ds.query(
      `SELECT id::int AS id, actor, action, target, before, after, host(ip) AS ip, at, seq::int AS seq, hash,
              count(*) OVER () AS total
         FROM audit_logs ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2`,
      [p.pageSize, p.offset],
    );
    const total = rows[0] ? Number(rows[0].total) : await this.count();
    return {
      items: rows.map(({ total: _t, ...r }) => ({ ...r, at: new Date(r.at).toISOString() })),
      total,
    };
  }

  private async count(): Promise<number> {
    const rows: { n: string }[] = await this.ds.query('SELECT count(*) AS n FROM audit_logs');
    return Number(rows[0]?.n ?? 0);
  }
}
