/**
 * The alerts of the admin API: the list (with its filters), one alert, and
 * the alert side of an action (docs/alerts.md). SQL: hand-written and
 * parameterised, run through TypeORM's DataSource, sharing `ALERT_COLUMNS`
 * with the alert repository so both read `alerts` the same way (`cidr[]`
 * and `inet[]` turned into text in PostgreSQL). One page and its total are
 * two small statements: the page on the `occurred_at` index (the status's or the
 * binding's), the total from `alert_status_counts` (or the binding's index).
 * An action locks the alert's row (`FOR UPDATE`) and closes it with one
 * conditional `UPDATE … WHERE status = 'open'`.
 */
import { type Alert, type AlertStatus, formatCidr, parseCidr } from '@keypin/shared';
import type { DataSource } from 'typeorm';
import type { Paging } from '../admin/common/paging';
import { queryRows, type SqlRunner } from '../infra/database/rows';
import { ALERT_COLUMNS, type AlertRecord } from './alert.repository';

const iso = (d: Date | null): string | null => (d === null ? null : new Date(d).toISOString());

/** PostgreSQL's text for a network, in the project's canonical spelling (what `allow-network` compares). */
const cidrText = (s: string): string => {
  const c = parseCidr(s);
  return c.ok ? formatCidr(c.cidr) : s;
};

/** An alert row as the admin API (and the webhook) shows it. */
export function toAlert(r: AlertRecord): Alert {
  return {
    id: r.id,
    binding_id: Number(r.binding_id),
    token_display: r.token_display,
    allowed_ips: r.allowed_ips ?? [],
    attempt_ips: r.attempt_ips ?? [],
    attempt_networks: (r.attempt_networks ?? []).map(cidrText),
    status: r.status,
    acted_by: r.acted_by,
    acted_at: iso(r.acted_at),
    allowed_network: r.allowed_network === null ? null : cidrText(r.allowed_network),
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

export interface AlertFilter {
  bindingId: number | null;
  status: AlertStatus | null;
}

/** The WHERE clause and parameters of a list filter (parameters numbered from 1). */
export function alertFilterSql(f: AlertFilter): { where: string; params: unknown[] } {
  const conds: string[] = [];
  const params: unknown[] = [];
  if (f.bindingId !== null) {
    params.push(f.bindingId);
    conds.push(`binding_id = $${params.length}`);
  }
  if (f.status !== null) {
    params.push(f.status);
    conds.push(`status = $${params.length}::alert_status`);
  }
  return { where: conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '', params };
}

/** Alerts for the admin API, newest first. */
export class AlertAdminRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * A page, newest first, and its exact total: from `alert_status_counts` (kept by triggers)
   * without a binding, counted through the binding's index with one (a key's alerts are few).
   */
  async list(f: AlertFilter, p: Paging): Promise<{ items: Alert[]; total: number }> {
    const { where, params } = alertFilterSql(f);
    const n = params.length;
    const counted =
      f.bindingId === null
        ? this.ds.query<{ n: string }[]>(
            `SELECT coalesce(sum(n), 0) AS n FROM alert_status_counts ${where}`,
            params,
          )
        : this.ds.query<{ n: string }[]>(`SELECT count(*) AS n FROM alerts ${where}`, params);
    const [rows, total] = await Promise.all([
      this.ds.query<AlertRecord[]>(
        `SELECT ${ALERT_COLUMNS} FROM alerts ${where}
          ORDER BY occurred_at DESC, id DESC LIMIT $${n + 1} OFFSET $${n + 2}`,
        [...params, p.pageSize, p.offset],
      ),
      counted,
    ]);
    return { items: rows.map(toAlert), total: Number(total[0]?.n ?? 0) };
  }

  async get(id: string): Promise<Alert | null> {
    const rows = await this.ds.query<AlertRecord[]>(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1`, [
      id,
    ]);
    return rows[0] ? toAlert(rows[0]) : null;
  }

  /** Reads an alert and locks its row until the transaction ends. */
  async lock(tx: SqlRunner, id: string): Promise<Alert | null> {
    const rows = await queryRows<AlertRecord>(
      tx,
      `SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1 FOR UPDATE`,
      [id],
    );
    return rows[0] ? toAlert(rows[0]) : null;
  }

  /** Moves an open alert to `status`; null when it is not open (any more). */
  async close(
    tx: SqlRunner,
    id: string,
    status: Exclude<AlertStatus, 'open'>,
    actor: string,
    network: string | null,
  ): Promise<Alert | null> {
    const rows = await queryRows<AlertRecord>(
      tx,
      `UPDATE alerts SET status = $2::alert_status, acted_by = $3, acted_at = now(), allowed_network = $4::cidr
        WHERE id = $1 AND status = 'open'
        RETURNING ${ALERT_COLUMNS}`,
      [id, status, actor, network],
    );
    return rows[0] ? toAlert(rows[0]) : null;
  }
}
