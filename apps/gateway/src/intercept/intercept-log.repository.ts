/**
 * The intercept log as the admin API reads it: one page, the latest few,
 * and a cursor over every match for the export.
 *
 * Hand-written parameterised SQL (through TypeORM's DataSource, and for the
 * cursor a plain `pg` client), for two reasons. The filters need
 * PostgreSQL's own operators in the form its indexes serve (`inet <<= cidr`
 * on the GiST index, an escaped `ILIKE`, enum and timestamptz casts; see
 * `whereOf`). And the export streams: `pg-query-stream` runs a server-side
 * cursor on a connection of its own, which takes SQL text, and that
 * connection's backend must be cancellable when the client goes away.
 * Every value travels as a `$n` parameter; no input is spliced into text.
 */
import type { Readable } from 'node:stream';
import type { Intercept, InterceptReason } from '@keypin/shared';
import { Client } from 'pg';
import QueryStream from 'pg-query-stream';
import type { Logger } from 'pino';
import type { DataSource } from 'typeorm';
import type { InterceptFilter } from './intercept-filter';

/** A row as PostgreSQL returns it (bigint as text, timestamptz as Date). */
export interface InterceptRow {
  id: string;
  binding_id: string | number | null;
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
  enforced: boolean;
  /** The hash chain (docs/integrity.md): bigint as text, NULL until sealed. */
  seq: string | number | null;
  prev_hash: string | null;
  hash: string | null;
}

/** Every field of an Intercept (the hash chain's `integrity/` reads the same ones). */
export const INTERCEPT_COLUMNS = `id, binding_id, token_display, host(attempt_ip) AS attempt_ip, allowed_ips::text[] AS allowed_ips,
  reason, method, path, user_agent, alerted, intercepted_at, count, enforced, seq, prev_hash, hash`;

/** Newest first; matches the (intercepted_at DESC, id DESC) index. */
const ORDER = `ORDER BY intercepted_at DESC, id DESC`;

export function toIntercept(r: InterceptRow): Intercept {
  return {
    id: r.id,
    binding_id: r.binding_id === null ? null : Number(r.binding_id),
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
    seq: r.seq === null ? null : Number(r.seq),
    hash: r.hash,
    prev_hash: r.prev_hash,
    enforced: r.enforced,
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

/**
 * The number of intercepts matching `f`, exactly as `count(*)` would give
 * it. Without a filter, or with only `reason`, `from` and `to` (filters that
 * can match millions of rows), most of it comes from the hourly counts
 * (`intercept_log_counts`, kept by triggers; docs/data.md): the whole UTC
 * hours inside the range are summed, and only the rows of the partial
 * hours at its ends are counted, through the (reason, time) or time index.
 * The masked key alone sums the per-key counts (`intercept_token_counts`)
 * of the keys that match, the IP or network alone the per-address counts
 * (`intercept_ip_counts`). The other combinations (a binding, a key or an
 * IP with another filter) are counted through their indexes.
 */
export function countQuery(f: InterceptFilter): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const where = whereOf(f, values);
  const timeOrReason = f.reason !== null || f.from !== null || f.to !== null;
  if (f.tokenLike !== null && f.bindingId === null && f.network === null && !timeOrReason) {
    // The masked key alone: the matching keys' record counts (a hot key has millions of rows).
    return {
      text: `SELECT coalesce(sum(rows), 0) AS n FROM intercept_token_counts WHERE token_display ILIKE $1`,
      values,
    };
  }
  if (f.network !== null && f.bindingId === null && f.tokenLike === null && !timeOrReason) {
    // The address or network alone: the matching addresses' record counts.
    return {
      text: `SELECT coalesce(sum(rows), 0) AS n FROM intercept_ip_counts WHERE attempt_ip <<= $1::cidr`,
      values,
    };
  }
  if (f.bindingId !== null || f.tokenLike !== null || f.network !== null) {
    return { text: `SELECT count(*) AS n FROM intercept_logs ${where}`, values };
  }
  const p = (v: unknown) => {
    values.push(v);
    return `$${values.length}`;
  };
  const and = where === '' ? 'WHERE' : `${where} AND`;
  // The first whole hour at or after `from`, and the start of the hour `to` falls in.
  const lo =
    f.from === null
      ? `'-infinity'::timestamptz`
      : `date_trunc('hour', ${p(f.from)}::timestamptz - interval '1 microsecond', 'UTC') + interval '1 hour'`;
  const hi =
    f.to === null ? `'infinity'::timestamptz` : `date_trunc('hour', ${p(f.to.at)}::timestamptz, 'UTC')`;
  const reason = f.reason === null ? '' : `AND c.reason = ${p(f.reason)}::intercept_reason`;
  return {
    // greatest(): a range within one hour has no whole hour; its rows are all counted (< lo or >= lo).
    text: `SELECT (SELECT coalesce(sum(c.rows), 0) FROM intercept_log_counts c
                    WHERE c.hour >= h.lo AND c.hour < h.hi ${reason})
                + (SELECT count(*) FROM intercept_logs ${and} intercepted_at < h.lo)
                + (SELECT count(*) FROM intercept_logs ${and} intercepted_at >= h.hi) AS n
             FROM (SELECT lo, greatest(lo, hi) AS hi FROM (SELECT ${lo} AS lo, ${hi} AS hi) x) h`,
    values,
  };
}

/** The export's query: every matching intercept, newest first, for a cursor. */
function exportQuery(f: InterceptFilter): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const where = whereOf(f, values);
  return { text: `SELECT ${INTERCEPT_COLUMNS} FROM intercept_logs ${where} ${ORDER}`, values };
}

/** An open export cursor: matching rows, newest first, fetched as they are read. */
export interface InterceptRowCursor {
  /**
   * Object-mode stream of {@link InterceptRow}s. The cursor fetches
   * `batchSize` rows per round trip and only when the stream is read, so a
   * slow consumer holds the query (backpressure) and memory stays flat.
   */
  readonly rows: Readable;
  /**
   * Closes the cursor's connection; when the rows have not all been read, the
   * query is first cancelled on the server (ending the socket alone would
   * leave a long sort running). Idempotent; never rejects.
   */
  close(): Promise<void>;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Reads the intercept log for the admin API. */
export class InterceptLogRepository {
  /**
   * `ds`: the shared pool (pages, the dashboard, cancelling a cursor);
   * `databaseUrl`: for the export cursors, each on a connection of its own
   * (a download holds its connection for as long as it lasts, which the
   * pool the hot path and the API share must not pay for).
   */
  constructor(
    private readonly ds: DataSource,
    private readonly databaseUrl: string,
    private readonly logger: Logger,
  ) {}

  /** One page, newest first, and the number of matching rows. */
  async list(
    f: InterceptFilter,
    limit: number,
    offset: number,
  ): Promise<{ items: Intercept[]; total: number }> {
    const params: unknown[] = [];
    const where = whereOf(f, params);
    const count = countQuery(f);
    const [rows, counted] = await Promise.all([
      this.ds.query<InterceptRow[]>(
        `SELECT ${INTERCEPT_COLUMNS} FROM intercept_logs ${where} ${ORDER} LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
        [...params, limit, offset],
      ),
      this.ds.query<{ n: string }[]>(count.text, count.values),
    ]);
    return { items: rows.map(toIntercept), total: Number(counted[0]?.n ?? 0) };
  }

  /** The latest `n` intercepts. */
  async recent(n: number): Promise<Intercept[]> {
    const rows: InterceptRow[] = await this.ds.query(
      `SELECT ${INTERCEPT_COLUMNS} FROM intercept_logs ${ORDER} LIMIT $1`,
      [n],
    );
    return rows.map(toIntercept);
  }

  /**
   * Opens a cursor over every intercept matching `f`, newest first, on a new
   * connection. Resolves once the connection is up (so a refused connection
   * is an error here, not in the stream); the caller must `close()` it.
   */
  async openCursor(f: InterceptFilter, batchSize: number): Promise<InterceptRowCursor> {
    const client = new Client({ connectionString: this.databaseUrl, application_name: 'keypin-export' });
    client.on('error', (err) => this.logger.debug({ err: err.message }, 'export connection error'));
    let pid: number;
    try {
      await client.connect();
      const r = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      pid = r.rows[0]!.pid;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }

    const { text, values } = exportQuery(f);
    const rows = client.query(new QueryStream(text, values, { batchSize }));
    let rowsDone = false;
    rows.once('end', () => (rowsDone = true));
    let closing: Promise<void> | null = null;
    const close = (): Promise<void> =>
      (closing ??= (async () => {
        if (!rowsDone) {
          await withTimeout(this.ds.query('SELECT pg_cancel_backend($1)', [pid]), 2000).catch(
            () => undefined,
          );
        }
        await client.end().catch(() => undefined);
      })());
    return { rows, close };
  }
}
