/**
 * Every statement of the hash chains (docs/integrity.md). Hand-written,
 * parameterised SQL through TypeORM's DataSource (the sealer, retention)
 * or a plain `pg` client (verification, which reads a whole chain in one
 * snapshot on a connection of its own, and `npm run verify`): both are
 * reached through {@link Sql}, so one set of statements serves both. Table
 * and column names come from the fixed {@link CHAINS} map below, never
 * from input; every value travels as a `$n` parameter.
 */
import type { Client } from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import { INTERCEPT_COLUMNS, type InterceptRow } from '../intercept/intercept-log.repository';
import { GENESIS_HASH } from './record-hash';

export type ChainName = 'intercepts' | 'audit';
export const CHAIN_NAMES: readonly ChainName[] = ['intercepts', 'audit'];

/** Where each chain lives: its table, the key of a row, its time column and the columns of its record. */
const CHAINS = {
  intercepts: {
    table: 'intercept_logs',
    key: 'id',
    keyType: 'uuid',
    time: 'intercepted_at',
    columns: INTERCEPT_COLUMNS,
    lockKey: 1,
  },
  audit: {
    table: 'audit_logs',
    key: 'id',
    keyType: 'bigint',
    time: 'at',
    columns: `id::text AS id, actor, action, target, before, after, host(ip) AS ip, at, seq, prev_hash, hash`,
    lockKey: 2,
  },
} as const;

/**
 * The chains' advisory lock namespace (two-key form: namespace, chain). The
 * other constants of this family: migrations …530, alert windows …531,
 * settings …532, routes and login …533.
 */
const CHAIN_LOCK_NAMESPACE = 728_461_540;

/** Runs SQL and returns the rows: an EntityManager, a DataSource, or a wrapped pg client. */
export interface Sql {
  query<T = unknown>(text: string, params?: unknown[]): Promise<T>;
}

/** A pg client as {@link Sql}. */
export function pgSql(client: Client): Sql {
  return {
    async query<T>(text: string, params?: unknown[]): Promise<T> {
      const r = await client.query(text, params);
      return r.rows as T;
    },
  };
}

/** An audit row as read (bigint id as text, jsonb parsed, inet as text). */
export interface AuditRow {
  id: string;
  actor: string;
  action: string;
  target: string | null;
  before: unknown;
  after: unknown;
  ip: string | null;
  at: Date | string;
  seq: string | number | null;
  prev_hash: string | null;
  hash: string | null;
}

export type ChainRow<C extends ChainName> = C extends 'intercepts' ? InterceptRow : AuditRow;

export interface ChainPoint {
  seq: number;
  hash: string;
}

export interface Seal {
  /** The row's key (the intercept uuid, the audit id as text). */
  key: string;
  seq: number;
  prevHash: string;
  hash: string;
}

/** A checkpoint: records up to `seq` may have been removed; `hash` is the hash of record `seq`. */
export interface Checkpoint extends ChainPoint {
  why: string;
  at: Date;
}

export class IntegrityRepository {
  /** `ds`: the shared pool (sealing, retention); null for a read-only user that brings its own Sql (`npm run verify`). */
  constructor(private readonly ds: DataSource | null) {}

  private get dataSource(): DataSource {
    if (this.ds === null) throw new Error('IntegrityRepository: no DataSource (read-only use)');
    return this.ds;
  }

  /**
   * Runs `fn` in a transaction that holds the chain's advisory lock
   * (`pg_advisory_xact_lock`, released at commit or rollback, also when the
   * process dies): whoever holds it is the chain's one writer. `try`: when
   * another process holds it, resolves null at once without running `fn`;
   * `wait`: waits up to `waitMs`.
   */
  async inChainLock<T>(
    chain: ChainName,
    mode: 'try' | 'wait',
    fn: (tx: EntityManager) => Promise<T>,
    waitMs = 10_000,
  ): Promise<T | null> {
    return this.dataSource.transaction(async (tx) => {
      const key = CHAINS[chain].lockKey;
      if (mode === 'try') {
        const rows: { ok: boolean }[] = await tx.query('SELECT pg_try_advisory_xact_lock($1, $2) AS ok', [
          CHAIN_LOCK_NAMESPACE,
          key,
        ]);
        if (rows[0]?.ok !== true) return null;
      } else {
        await tx.query(`SELECT set_config('lock_timeout', $1, true)`, [
          `${Math.max(1, Math.round(waitMs))}ms`,
        ]);
        await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [CHAIN_LOCK_NAMESPACE, key]);
        await tx.query(`SELECT set_config('lock_timeout', '0', true)`);
      }
      return fn(tx);
    });
  }

  /** The last seq the sealer assigned and its hash (0 and 64 zeros before the first). */
  async head(sql: Sql, chain: ChainName): Promise<ChainPoint> {
    const rows = await sql.query<{ seq: string; hash: string }[]>(
      'SELECT seq::text AS seq, hash FROM integrity_heads WHERE chain = $1',
      [chain],
    );
    const r = rows[0];
    return r ? { seq: Number(r.seq), hash: r.hash } : { seq: 0, hash: GENESIS_HASH };
  }

  /** The highest seq stored in the chain's table (0 when none); equal to the head unless rows were forged. */
  async maxSeq(sql: Sql, chain: ChainName): Promise<number> {
    const { table } = CHAINS[chain];
    const rows = await sql.query<{ n: string | null }[]>(`SELECT max(seq)::text AS n FROM ${table}`);
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Up to `limit` intercepts not sealed yet, oldest first (time, then id).
   * `marginMs`: only records whose time is at least that far in the past
   * (by the database's clock); null takes every stored record.
   */
  async unsealedIntercepts(tx: Sql, marginMs: number | null, limit: number): Promise<InterceptRow[]> {
    const recent =
      marginMs === null ? '' : `AND intercepted_at < now() - make_interval(secs => $2::float8 / 1000)`;
    return tx.query<InterceptRow[]>(
      `SELECT ${INTERCEPT_COLUMNS} FROM intercept_logs
        WHERE seq IS NULL ${recent}
        ORDER BY intercepted_at, id LIMIT $1`,
      marginMs === null ? [limit] : [limit, marginMs],
    );
  }

  /** Up to `limit` audit entries not sealed yet, in id order. */
  async unsealedAudit(tx: Sql, limit: number): Promise<AuditRow[]> {
    return tx.query<AuditRow[]>(
      `SELECT ${CHAINS.audit.columns} FROM audit_logs WHERE seq IS NULL ORDER BY id LIMIT $1`,
      [limit],
    );
  }

  /**
   * Writes the seals and moves the head, in the caller's locked
   * transaction. Throws when a row was not there to seal any more (removed
   * meanwhile): the transaction then rolls back, so no seq is skipped.
   */
  async seal(tx: Sql, chain: ChainName, seals: readonly Seal[]): Promise<void> {
    if (seals.length === 0) return;
    const { table, key, keyType } = CHAINS[chain];
    // Wrapped in a SELECT so that every Sql answers with rows (TypeORM answers a bare UPDATE with [rows, count]).
    const rows = await tx.query<{ n: number }[]>(
      `WITH sealed AS (
         UPDATE ${table} t SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
           FROM unnest($1::${keyType}[], $2::bigint[], $3::text[], $4::text[]) AS v(key, seq, prev_hash, hash)
          WHERE t.${key} = v.key AND t.seq IS NULL
          RETURNING 1)
       SELECT count(*)::int AS n FROM sealed`,
      [
        seals.map((s) => s.key),
        seals.map((s) => s.seq),
        seals.map((s) => s.prevHash),
        seals.map((s) => s.hash),
      ],
    );
    const n = rows[0]?.n ?? 0;
    if (n !== seals.length) {
      throw new Error(`${chain}: ${seals.length - n} of ${seals.length} rows changed while sealing`);
    }
    const last = seals[seals.length - 1]!;
    await tx.query(
      `INSERT INTO integrity_heads (chain, seq, hash, updated_at) VALUES ($1, $2, $3, now())
       ON CONFLICT (chain) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, updated_at = now()`,
      [chain, last.seq, last.hash],
    );
  }

  /** The checkpoint with the highest seq (where verification starts), or null. */
  async latestCheckpoint(sql: Sql, chain: ChainName): Promise<Checkpoint | null> {
    const rows = await sql.query<{ seq: string; hash: string; why: string; at: Date }[]>(
      `SELECT seq::text AS seq, hash, why, at FROM integrity_checkpoints
        WHERE chain = $1 ORDER BY seq DESC LIMIT 1`,
      [chain],
    );
    const r = rows[0];
    return r ? { seq: Number(r.seq), hash: r.hash, why: r.why, at: new Date(r.at) } : null;
  }

  async insertCheckpoint(tx: Sql, chain: ChainName, point: ChainPoint, why: string): Promise<void> {
    await tx.query(`INSERT INTO integrity_checkpoints (chain, seq, hash, why) VALUES ($1, $2, $3, $4)`, [
      chain,
      point.seq,
      point.hash,
      why,
    ]);
  }

  /**
   * Sealed rows with `afterSeq < seq <= untilSeq` (no upper bound when null),
   * in seq order, at most `limit`: one keyset page of a verification, read
   * through the unique index on seq.
   */
  async sealedPage<C extends ChainName>(
    sql: Sql,
    chain: C,
    afterSeq: number,
    untilSeq: number | null,
    limit: number,
  ): Promise<ChainRow<C>[]> {
    const { table, columns } = CHAINS[chain];
    const until = untilSeq === null ? '' : 'AND seq <= $3';
    return sql.query<ChainRow<C>[]>(
      `SELECT ${columns} FROM ${table} WHERE seq > $1 ${until} ORDER BY seq LIMIT $2`,
      untilSeq === null ? [afterSeq, limit] : [afterSeq, limit, untilSeq],
    );
  }

  /** Rows not sealed yet (read through the partial index of the sealer's backlog). */
  async unsealedCount(sql: Sql, chain: ChainName): Promise<number> {
    const { table } = CHAINS[chain];
    const rows = await sql.query<{ n: string }[]>(
      `SELECT count(*)::text AS n FROM ${table} WHERE seq IS NULL`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * The last seq that retention may remove for `cutoff`: the record before
   * the first one (after `afterSeq`, in seq order) whose time is at or after
   * the cutoff; the head when every sealed record is older. So only a
   * prefix of the chain is ever removed, and a late-sealed old record waits
   * for the newer ones sealed before it.
   */
  async retentionBoundary(sql: Sql, chain: ChainName, afterSeq: number, cutoff: Date): Promise<number> {
    const { table, time } = CHAINS[chain];
    const rows = await sql.query<{ seq: string }[]>(
      `SELECT seq::text AS seq FROM ${table} WHERE seq > $1 AND ${time} >= $2 ORDER BY seq LIMIT 1`,
      [afterSeq, cutoff],
    );
    if (rows[0]) return Number(rows[0].seq) - 1;
    return Math.max(afterSeq, (await this.head(sql, chain)).seq);
  }

  /** Deletes up to `limit` sealed rows with seq <= `throughSeq`, lowest first; returns how many. */
  async deleteThrough(sql: Sql, chain: ChainName, throughSeq: number, limit: number): Promise<number> {
    const { table } = CHAINS[chain];
    const rows = await sql.query<{ n: number }[]>(
      `WITH removed AS (
         DELETE FROM ${table} WHERE seq IN (
           SELECT seq FROM ${table} WHERE seq <= $1 ORDER BY seq LIMIT $2)
         RETURNING 1)
       SELECT count(*)::int AS n FROM removed`,
      [throughSeq, limit],
    );
    return rows[0]?.n ?? 0;
  }

  /** The shared pool as {@link Sql} (for reads outside a transaction). */
  get pool(): Sql {
    return this.dataSource;
  }
}
