/**
 * Every SQL statement of the settings domain: the `settings` table (one row
 * per overridden setting, the value as JSON) and the one question a change
 * asks of `bindings`.
 *
 * Hand-written, parameterised SQL rather than TypeORM's entity API, because
 * the guarantees are in the statements: each override is written by one
 * `INSERT … ON CONFLICT DO UPDATE` (no read-then-write race between
 * instances), and a change runs in one transaction that first takes the
 * settings write lock (`pg_advisory_xact_lock`, released at commit or
 * rollback), so the rows it compares with and audits against are the ones
 * it replaces, and the binding count behind `would_unbind_all` is taken in
 * that same transaction. The rules themselves live in `SettingsService`.
 */
import type { DataSource, EntityManager } from 'typeorm';
import type { SqlRunner } from '../infra/database/rows';

/** One stored override, as the table holds it. */
export interface SettingsRow {
  key: string;
  value: unknown;
}

/** How many bindings exist, and how many of them are banned. */
export interface BindingCount {
  total: number;
  banned: number;
}

/**
 * Serialises settings writers on every instance, so the "before" a change is
 * compared with (identity settings) and audited against is the one it replaces.
 */
const SETTINGS_WRITE_LOCK = 728_461_532;

export class SettingsRepository {
  constructor(private readonly ds: DataSource) {}

  /** Every stored override; pass a transaction's manager to read inside it. */
  rows(runner: SqlRunner = this.ds): Promise<SettingsRow[]> {
    return runner.query('SELECT key, value FROM settings') as Promise<SettingsRow[]>;
  }

  /**
   * Runs `work` in one transaction that holds the settings write lock from
   * its first statement; everything `work` does with `tx` commits or rolls
   * back together.
   */
  inWriteLock<T>(work: (tx: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [SETTINGS_WRITE_LOCK]);
      return work(tx);
    });
  }

  /** The bindings an identity change would leave behind (one statement). */
  async countBindings(tx: EntityManager): Promise<BindingCount> {
    const [n]: { total: string; banned: string }[] = await tx.query(
      `SELECT count(*) AS total, count(*) FILTER (WHERE status = 'banned') AS banned FROM bindings`,
    );
    return { total: Number(n?.total ?? 0), banned: Number(n?.banned ?? 0) };
  }

  /** Stores one override (inserted or replaced in one statement). */
  async upsert(tx: EntityManager, key: string, value: unknown, actor: string): Promise<void> {
    await tx.query(
      `INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2::jsonb, now(), $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by`,
      [key, JSON.stringify(value), actor],
    );
  }

  /** Removes one override (the environment's value applies again). */
  async remove(tx: EntityManager, key: string): Promise<void> {
    await tx.query(`DELETE FROM settings WHERE key = $1`, [key]);
  }
}
