/**
 * Alerts and the alert side of intercept rows. SQL: hand-written and
 * parameterised, run through TypeORM's DataSource and its transactions,
 * because the guarantees live in single statements and locks: evaluation
 * runs under a per-binding `pg_advisory_xact_lock`; an alert is inserted by
 * `INSERT … ON CONFLICT (binding_id, first_at) DO NOTHING RETURNING`, so any
 * number of evaluators raise it once; a ban is one conditional `UPDATE …
 * RETURNING`; a delivery attempt is recorded in one `UPDATE` (`attempts =
 * attempts + 1`). The `inet`/`cidr` arrays are cast in SQL. Values travel as
 * `$n` parameters.
 */
import type { Alert } from '@keypin/shared';
import type { DataSource, EntityManager } from 'typeorm';
import { queryRows } from '../infra/database/rows';
import type { OpenAlert, WindowItem } from './alert-window';

/** An alert row as PostgreSQL returns it: timestamps as `Date`, the bigint id as text. */
export interface AlertRecord extends Omit<
  Alert,
  'binding_id' | 'first_at' | 'last_at' | 'occurred_at' | 'last_attempt_at' | 'delivered_at' | 'acted_at'
> {
  binding_id: string | number;
  first_at: Date;
  last_at: Date;
  occurred_at: Date;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
  acted_at: Date | null;
}

export interface NewAlert {
  id: string;
  bindingId: number;
  tokenDisplay: string;
  allowedIps: readonly string[];
  attemptIps: string[];
  /** The attempted IPs' networks under the binding prefixes (canonical CIDRs, first seen first). */
  attemptNetworks: string[];
  /** Refused requests in the window (not records). */
  count: number;
  windowSeconds: number;
  firstAt: Date;
  lastAt: Date;
  windowEnd: Date;
  autoBanned: boolean;
  itemIds: string[];
}

const ALERT_LOCK_NAMESPACE = 728_461_531;

/** The columns of an {@link AlertRecord}, for every reader of `alerts`. */
export const ALERT_COLUMNS = `id, binding_id, token_display, allowed_ips::text[] AS allowed_ips,
  array(SELECT host(x) FROM unnest(attempt_ips) x) AS attempt_ips, attempt_networks::text[] AS attempt_networks,
  status::text AS status, acted_by, acted_at, allowed_network::text AS allowed_network, count, window_seconds,
  first_at, last_at, occurred_at, auto_banned, delivery_status::text AS delivery_status, attempts, last_error,
  last_attempt_at, delivered_at`;

/** Alerts and the alert side of intercept rows. */
export class AlertRepository {
  constructor(private readonly ds: DataSource) {}

  /** Runs `fn` in a transaction holding this binding's alert lock (one evaluator at a time, any instance). */
  withBindingLock<T>(bindingId: number, fn: (tx: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [
        ALERT_LOCK_NAMESPACE,
        bindingId % 2_147_483_647,
      ]);
      return fn(tx);
    });
  }

  async lastAlert(tx: EntityManager, bindingId: number): Promise<(OpenAlert & { firstAt: number }) | null> {
    const rows: { id: string; first_at: Date; window_end: Date }[] = await tx.query(
      'SELECT id, first_at, window_end FROM alerts WHERE binding_id = $1 ORDER BY window_end DESC LIMIT 1',
      [bindingId],
    );
    const r = rows[0];
    return r
      ? { id: r.id, firstAt: new Date(r.first_at).getTime(), windowEnd: new Date(r.window_end).getTime() }
      : null;
  }

  /** Joins the binding's not-yet-alerted intercepts from `from` up to the alert's window end to that alert. */
  async attach(tx: EntityManager, bindingId: number, alert: OpenAlert, from: Date): Promise<void> {
    await tx.query(
      `UPDATE intercept_logs SET alerted = true, alert_id = $1
        WHERE binding_id = $2 AND NOT alerted AND intercepted_at >= $3 AND intercepted_at < $4`,
      [alert.id, bindingId, from, new Date(alert.windowEnd)],
    );
  }

  /** The snapshot data (masked key, networks) of one intercept. */
  async snapshot(
    tx: EntityManager,
    interceptId: string,
  ): Promise<{ tokenDisplay: string; allowedIps: string[] }> {
    const rows: { token_display: string; allowed_ips: string[] }[] = await tx.query(
      'SELECT token_display, allowed_ips::text[] AS allowed_ips FROM intercept_logs WHERE id = $1',
      [interceptId],
    );
    return { tokenDisplay: rows[0]?.token_display ?? '', allowedIps: rows[0]?.allowed_ips ?? [] };
  }

  /** Not-yet-alerted intercepts of a binding from `since` on, oldest first, with the requests each stands for. */
  async unalerted(tx: EntityManager, bindingId: number, since: Date): Promise<WindowItem[]> {
    const rows: { id: string; at: string; ip: string; count: number }[] = await tx.query(
      `SELECT id, (extract(epoch FROM intercepted_at) * 1000)::bigint::text AS at, host(attempt_ip) AS ip, count
         FROM intercept_logs
        WHERE binding_id = $1 AND NOT alerted AND intercepted_at >= $2
        ORDER BY intercepted_at, id
        LIMIT 20000`,
      [bindingId, since],
    );
    return rows.map((r) => ({ id: r.id, at: Number(r.at), ip: r.ip, count: Number(r.count) }));
  }

  async markAlerted(tx: EntityManager, alertId: string, interceptIds: string[]): Promise<void> {
    if (interceptIds.length === 0) return;
    await tx.query('UPDATE intercept_logs SET alerted = true, alert_id = $1 WHERE id = ANY($2::uuid[])', [
      alertId,
      interceptIds,
    ]);
  }

  async insert(tx: EntityManager, a: NewAlert): Promise<boolean> {
    const rows: unknown[] = await tx.query(
      `INSERT INTO alerts (id, binding_id, token_display, allowed_ips, attempt_ips, count, window_seconds,
                           first_at, last_at, window_end, auto_banned, attempt_networks, status, acted_at)
       VALUES ($1, $2, $3, $4::cidr[], $5::inet[], $6, $7, $8, $9, $10, $11, $12::cidr[],
               CASE WHEN $11::boolean THEN 'banned' ELSE 'open' END::alert_status,
               CASE WHEN $11::boolean THEN now() END)
       ON CONFLICT (binding_id, first_at) DO NOTHING
       RETURNING id`,
      [
        a.id,
        a.bindingId,
        a.tokenDisplay,
        a.allowedIps,
        a.attemptIps,
        a.count,
        a.windowSeconds,
        a.firstAt,
        a.lastAt,
        a.windowEnd,
        a.autoBanned,
        a.attemptNetworks,
      ],
    );
    return rows.length > 0;
  }

  /** Bans the binding (the change trigger tells every instance). Returns true when it was not banned yet. */
  async ban(tx: EntityManager, bindingId: number): Promise<boolean> {
    const rows = await queryRows(
      tx,
      `UPDATE bindings SET status = 'banned', updated_at = now() WHERE id = $1 AND status <> 'banned' RETURNING id`,
      [bindingId],
    );
    return rows.length > 0;
  }

  async get(id: string): Promise<AlertRecord | null> {
    const rows: AlertRecord[] = await this.ds.query(`SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1`, [
      id,
    ]);
    return rows[0] ?? null;
  }

  /** Alerts still waiting for delivery (for the sweeper that re-queues them). */
  async pendingIds(olderThan: Date, limit = 500): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM alerts WHERE delivery_status = 'pending' AND occurred_at < $1 ORDER BY occurred_at LIMIT $2`,
      [olderThan, limit],
    );
    return rows.map((r) => r.id);
  }

  async recordAttempt(
    id: string,
    outcome: { status: 'pending' | 'delivered' | 'failed'; error: string | null },
  ): Promise<void> {
    await this.ds.query(
      `UPDATE alerts SET attempts = attempts + 1, last_attempt_at = now(), delivery_status = $2::alert_delivery_status,
              last_error = $3::text,
              delivered_at = CASE WHEN $2::text = 'delivered' THEN now() ELSE delivered_at END
        WHERE id = $1`,
      [id, outcome.status, outcome.error],
    );
  }

  /** Marks an alert failed without an attempt (e.g. no webhook URL configured). */
  async markFailed(id: string, error: string): Promise<void> {
    await this.ds.query(`UPDATE alerts SET delivery_status = 'failed', last_error = $2::text WHERE id = $1`, [
      id,
      error,
    ]);
  }
}
