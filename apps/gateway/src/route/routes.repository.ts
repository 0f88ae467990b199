/**
 * Every SQL statement of the routes domain (the `routes` table,
 * docs/contract.md 10). Header values arrive and leave sealed; this class
 * never sees them in clear.
 *
 * Writers run in one transaction holding the routes write lock
 * (`pg_advisory_xact_lock`), so the count behind the route limit, the row
 * a change is audited against, and the seeding of `ROUTES` into an empty
 * table are each exact across instances. The trigger on the table NOTIFYs
 * `keypin_routes_changed` at commit.
 */
import type { Relay } from '@keypin/shared';
import type { DataSource, EntityManager } from 'typeorm';
import { queryRows, type SqlRunner } from '../infra/database/rows';
import { KeypinError } from '../infra/http/all-exceptions.filter';
import type { SealedSecret } from '../settings/secret-box';
import type { RouteSource, StoredRoute } from './route.types';

/** A route to write: everything but the id and the times. */
export type RouteWrite = Omit<StoredRoute, 'id' | 'created_at' | 'updated_at'>;

interface Row {
  id: number;
  prefix: string;
  upstream: string;
  strip_prefix: boolean;
  relay: Relay | null;
  timeout_seconds: number | null;
  upstream_headers: Record<string, SealedSecret> | null;
  require_header: { name: string; value: SealedSecret } | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id::int AS id, prefix, upstream, strip_prefix, relay, timeout_seconds, upstream_headers,
  require_header, created_at, updated_at`;

/** Serialises route writers on every instance (see the file comment). */
const ROUTES_WRITE_LOCK = 728_461_533;

const toStored = (r: Row): StoredRoute => ({
  id: Number(r.id),
  prefix: r.prefix,
  upstream: r.upstream,
  strip_prefix: r.strip_prefix,
  relay: r.relay,
  timeout_seconds: r.timeout_seconds === null ? null : Number(r.timeout_seconds),
  upstream_headers: r.upstream_headers ?? {},
  require_header: r.require_header,
  created_at: new Date(r.created_at),
  updated_at: new Date(r.updated_at),
});

const params = (w: RouteWrite): unknown[] => [
  w.prefix,
  w.upstream,
  w.strip_prefix,
  w.relay,
  w.timeout_seconds,
  JSON.stringify(w.upstream_headers),
  w.require_header === null ? null : JSON.stringify(w.require_header),
];

/** The 409 for a prefix another route has. */
export function prefixTaken(prefix: string): KeypinError {
  return new KeypinError('conflict', `A route with prefix "${prefix}" exists; edit that route instead.`, {
    field: 'prefix',
  });
}

const isUniqueViolation = (err: unknown): boolean => (err as { code?: unknown }).code === '23505';

export class RoutesRepository implements RouteSource {
  constructor(private readonly ds: DataSource) {}

  /**
   * Runs `work` in one transaction that holds the routes write lock from
   * its first statement; everything `work` does with `tx` (its audit rows
   * too) commits or rolls back together.
   */
  inWriteLock<T>(work: (tx: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [ROUTES_WRITE_LOCK]);
      return work(tx);
    });
  }

  /** Every route, by id (what a routing table is built from). */
  async listAll(runner: SqlRunner = this.ds): Promise<StoredRoute[]> {
    const rows = await queryRows<Row>(runner, `SELECT ${COLUMNS} FROM routes ORDER BY id`);
    return rows.map(toStored);
  }

  /** One page of routes, by id, and how many there are. */
  async page(limit: number, offset: number): Promise<{ items: StoredRoute[]; total: number }> {
    const rows = await queryRows<Row & { total: string }>(
      this.ds,
      `SELECT ${COLUMNS}, count(*) OVER () AS total FROM routes ORDER BY id LIMIT $1 OFFSET $2`,
      [limit, offset],
    );
    // An empty page past the end still reports the real total.
    const total = rows[0] ? Number(rows[0].total) : offset > 0 ? await this.count() : 0;
    return { items: rows.map(toStored), total };
  }

  /** One route; `lock` (inside a transaction) holds its row until the transaction ends. */
  async findById(id: number, runner: SqlRunner = this.ds, lock = false): Promise<StoredRoute | null> {
    const rows = await queryRows<Row>(
      runner,
      `SELECT ${COLUMNS} FROM routes WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return rows[0] ? toStored(rows[0]) : null;
  }

  async count(runner: SqlRunner = this.ds): Promise<number> {
    const rows = await queryRows<{ n: string }>(runner, 'SELECT count(*) AS n FROM routes');
    return Number(rows[0]?.n ?? 0);
  }

  /** Adds a route; 409 `conflict` when its prefix is taken. */
  async insert(runner: SqlRunner, w: RouteWrite): Promise<StoredRoute> {
    const rows = await queryRows<Row>(
      runner,
      `INSERT INTO routes (prefix, upstream, strip_prefix, relay, timeout_seconds, upstream_headers, require_header)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)
       ON CONFLICT (prefix) DO NOTHING
       RETURNING ${COLUMNS}`,
      params(w),
    );
    if (!rows[0]) throw prefixTaken(w.prefix);
    return toStored(rows[0]);
  }

  /**
   * Replaces a route's fields; null when there is no such route, 409
   * `conflict` when the new prefix is another route's. A unique violation
   * aborts the transaction: the caller's transaction ends with this error.
   */
  async update(runner: SqlRunner, id: number, w: RouteWrite): Promise<StoredRoute | null> {
    let rows: Row[];
    try {
      rows = await queryRows<Row>(
        runner,
        `UPDATE routes SET prefix = $2, upstream = $3, strip_prefix = $4, relay = $5, timeout_seconds = $6,
                upstream_headers = $7::jsonb, require_header = $8::jsonb, updated_at = now()
          WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, ...params(w)],
      );
    } catch (err) {
      if (isUniqueViolation(err)) throw prefixTaken(w.prefix);
      throw err;
    }
    return rows[0] ? toStored(rows[0]) : null;
  }

  /** Removes a route; answers it as it was, or null when there was none. */
  async delete(runner: SqlRunner, id: number): Promise<StoredRoute | null> {
    const rows = await queryRows<Row>(runner, `DELETE FROM routes WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
    return rows[0] ? toStored(rows[0]) : null;
  }
}
