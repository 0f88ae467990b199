import type { Intercept, InterceptReason } from '@keypin/shared';
import type { DataSource } from 'typeorm';
import type { InterceptFilter } from './intercept-filter';

/** A row as PostgreSQL returns it (bigint as text, timestamptz as Date). */
export interface InterceptRow {
  id: string;
  binding_id: string | number;
  token_display: string;
  attempt_ip: string;
  allowed_ips: string[] | null;
  reason: InterceptReason;
  method: string;
  path: string;
  user_agent: string | null;
  alerted: boolean;
  intercepted_at: Date | string;
  count: number;
}

const COLUMNS = `id, binding_id, token_display, host(attempt_ip) AS attempt_ip, allowed_ips::text[] AS allowed_ips,
  reason, method, path, user_agent, alerted, intercepted_at, count`;

/** Newest first; matches the (intercepted_at DESC, id DESC) index. */
const ORDER = `ORDER BY intercepted_at DESC, id DESC`;

export function toIntercept(r: InterceptRow): Intercept {
  return {
    id: r.id,
    binding_id: Number(r.binding_id),
    token_display: r.token_display,
    attempt_ip: r.attempt_ip,
    allowed_ips: r.allowed_ips ?? [],
    reason: r.reason,
    method: r.method,
    path: r.path,
    user_agent: r.user_agent,
    alerted: r.alerted,
    intercepted_at: new Date(r.intercepted_at).toISOString(),
    count: Number(r.count),
  };
}

/**
 * The WHERE clause of a filter, each condition in a form an index can serve:
 * binding id → (binding_id, intercepted_at) btree, IP → GiST `inet_ops`
 * (`<<=`), time range → (intercepted_at, id) btree. The masked-key search is
 * a substring match and is applied as a filter on top of those.
 */
export function whereOf(f: InterceptFilter, params: unknown[]): string {
  const conditions: string[] = [];
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (f.bindingId !== null) conditions.push(`binding_id = ${p(f.bindingId)}::bigint`);
  if (f.tokenLike !== null) conditions.push(`token_display ILIKE ${p(f.tokenLike)}`);
  if (f.network !== null) conditions.push(`attempt_ip <<= ${p(f.network)}::cidr`);
  if (f.reason !== null) conditions.push(`reason = ${p(f.reason)}::intercept_reason`);
  if (f.from !== null) conditions.push(`intercepted_at >= ${p(f.from)}::timestamptz`);
  if (f.to !== null)
    conditions.push(`intercepted_at ${f.to.inclusive ? '<=' : '<'} ${p(f.to.at)}::timestamptz`);
  return conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
}

/** The export's query: every matching intercept, newest first, for a cursor. */
export function exportQuery(f: InterceptFilter): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const where = whereOf(f, values);
  return { text: `SELECT ${COLUMNS} FROM intercept_logs ${where} ${ORDER}`, values };
}

/** Reads the intercept log for the admin API. */
export class InterceptLogRepository {
  constructor(private readonly ds: DataSource) {}

  /** One page, newest first, and the number of matching rows. */
  async list(
    f: InterceptFilter,
    limit: number,
    offset: number,
  ): Promise<{ items: Intercept[]; total: number }> {
    const params: unknown[] = [];
    const where = whereOf(f, params);
    const [rows, counted] = await Promise.all([
      this.ds.query<InterceptRow[]>(
        `SELECT ${COLUMNS} FROM intercept_logs ${where} ${ORDER} LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
        [...params, limit, offset],
      ),
      this.ds.query<{ n: string }[]>(`SELECT count(*) AS n FROM intercept_logs ${where}`, params),
    ]);
    return { items: rows.map(toIntercept), total: Number(counted[0]?.n ?? 0) };
  }

  /** The latest `n` intercepts. */
  async recent(n: number): Promise<Intercept[]> {
    const rows: InterceptRow[] = await this.ds.query(
      `SELECT ${COLUMNS} FROM intercept_logs ${ORDER} LIMIT $1`,
      [n],
    );
    return rows.map(toIntercept);
  }
}
