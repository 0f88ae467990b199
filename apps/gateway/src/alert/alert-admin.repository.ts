/**
 * The alerts list of the admin API. SQL: hand-written and parameterised,
 * run through TypeORM's DataSource, sharing `ALERT_COLUMNS` with the alert
 * repository so both read `alerts` the same way (`cidr[]` and `inet[]`
 * turned into text in PostgreSQL). One page and its total are two small
 * statements on the `occurred_at` index.
 */
import type { Alert } from '@keypin/shared';
import type { DataSource } from 'typeorm';
import type { Paging } from '../admin/common/paging';
import { ALERT_COLUMNS, type AlertRecord } from './alert.repository';

const iso = (d: Date | null): string | null => (d === null ? null : new Date(d).toISOString());

function toAlert(r: AlertRecord): Alert {
  return {
    id: r.id,
    binding_id: Number(r.binding_id),
    token_display: r.token_display,
    allowed_ips: r.allowed_ips ?? [],
    attempt_ips: r.attempt_ips ?? [],
    count: r.count,
    window_seconds: r.window_seconds,
    first_at: new Date(r.first_at).toISOString(),
    last_at: new Date(r.last_at).toISOString(),
    occurred_at: new Date(r.occurred_at).toISOString(),
    auto_banned: r.auto_banned,
    delivery_status: r.delivery_status,
    attempts: r.attempts,
    last_error: r.last_error,
    last_attempt_at: iso(r.last_attempt_at),
    delivered_at: iso(r.delivered_at),
  };
}

/** Alerts for the admin API, newest first (the occurred_at index). */
export class AlertAdminRepository {
  constructor(private readonly ds: DataSource) {}

  async list(p: Paging): Promise<{ items: Alert[]; total: number }> {
    const [rows, counted] = await Promise.all([
      this.ds.query<AlertRecord[]>(
        `SELECT ${ALERT_COLUMNS} FROM alerts ORDER BY occurred_at DESC, id DESC LIMIT $1 OFFSET $2`,
        [p.pageSize, p.offset],
      ),
      this.ds.query<{ n: string }[]>(`SELECT count(*) AS n FROM alerts`),
    ]);
    return { items: rows.map(toAlert), total: Number(counted[0]?.n ?? 0) };
  }
}
