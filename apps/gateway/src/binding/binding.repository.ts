import type { BindingStatus, KeyPolicy, RuleType } from '@keypin/shared';
import type { DataSource } from 'typeorm';
import { queryRows } from '../infra/database/rows';
import type { BindingRuleData, FirstUse } from './binding.types';

interface RuleRow {
  id: string;
  status: BindingStatus;
  rule_type: RuleType;
  allowed_ips: string[];
  token_display: string;
  policy: KeyPolicy | null;
}

/** Forwarded requests of one binding today and this month (UTC), from `binding_daily_usage`. */
export interface UsageTotals {
  today: number;
  month: number;
}

export interface UsageUpdate {
  id: number;
  count: number;
  lastIp: string;
  lastAt: Date;
  /** The same requests by UTC day (`YYYY-MM-DD`); usually one entry, two around midnight. */
  days: { day: string; count: number }[];
}

const RULE_COLUMNS = `id, status, rule_type, allowed_ips::text[] AS allowed_ips, token_display, policy`;

function toData(row: RuleRow): BindingRuleData {
  return {
    id: Number(row.id),
    status: row.status,
    rule_type: row.rule_type,
    allowed_ips: row.allowed_ips,
    token_display: row.token_display,
    policy: row.policy,
  };
}

/** The bindings table, as the hot path needs it. Returns plain objects. */
export class BindingRepository {
  constructor(private readonly ds: DataSource) {}

  async findRuleByHash(hashHex: string): Promise<BindingRuleData | null> {
    const rows: RuleRow[] = await this.ds.query(
      `SELECT ${RULE_COLUMNS} FROM bindings WHERE key_hash = decode($1, 'hex')`,
      [hashHex],
    );
    return rows[0] ? toData(rows[0]) : null;
  }

  /**
   * First use: inserts a `single` binding to the client's network unless the
   * key is bound already. Exactly one concurrent caller, on any instance,
   * gets `created: true`; every other gets the winner's binding.
   */
  async bindFirstUse(
    hashHex: string,
    first: FirstUse,
    attempt = 1,
  ): Promise<{ data: BindingRuleData; created: boolean }> {
    const inserted: RuleRow[] = await this.ds.query(
      `INSERT INTO bindings (key_hash, token_display, rule_type, allowed_ips, first_ip, first_used_at, created_at, updated_at)
       VALUES (decode($1, 'hex'), $2, 'single', ARRAY[$3::cidr], $4::inet, $5, $5, $5)
       ON CONFLICT (key_hash) DO NOTHING
       RETURNING ${RULE_COLUMNS}`,
      [hashHex, first.tokenDisplay, first.network, first.ip, first.at],
    );
    if (inserted[0]) return { data: toData(inserted[0]), created: true };
    const winner = await this.findRuleByHash(hashHex);
    if (winner) return { data: winner, created: false };
    // The winner was removed between our insert and read: try again.
    if (attempt >= 3) throw new Error('binding kept disappearing during first use');
    return this.bindFirstUse(hashHex, first, attempt + 1);
  }

  /**
   * Deletes a binding made by a first use, unless something changed it since:
   * still `single` and active, and never edited (an admin edit, ban or
   * auto-ban moves `updated_at` past `created_at`; usage batches do not). Ids
   * are never reused, so the id alone names the row that first use created.
   * Nothing is archived: a key the relay refused leaves no trace. Returns
   * the key hash (hex) of the deleted row, or null when none was deleted.
   */
  async deleteUntouchedFirstUse(id: number): Promise<string | null> {
    const rows = await queryRows<{ key_hash: string }>(
      this.ds,
      `DELETE FROM bindings
        WHERE id = $1 AND status = 'active' AND rule_type = 'single' AND updated_at = created_at
        RETURNING encode(key_hash, 'hex') AS key_hash`,
      [id],
    );
    return rows[0]?.key_hash ?? null;
  }

  /**
   * Adds a batch of usage counts; last-used time and IP only move forward.
   * The per-day counts go to `binding_daily_usage` in the same statement
   * (bindings removed meanwhile are skipped, not an error).
   */
  async applyUsage(batch: readonly UsageUpdate[]): Promise<void> {
    if (batch.length === 0) return;
    const ids: number[] = [];
    const days: string[] = [];
    const counts: number[] = [];
    for (const u of batch) {
      for (const d of u.days) {
        ids.push(u.id);
        days.push(d.day);
        counts.push(d.count);
      }
    }
    await this.ds.query(
      `WITH updated AS (
         UPDATE bindings b
            SET request_count = b.request_count + u.count,
                last_used_at = GREATEST(b.last_used_at, u.at),
                last_ip = CASE WHEN b.last_used_at IS NULL OR u.at >= b.last_used_at THEN u.ip ELSE b.last_ip END
           FROM unnest($1::bigint[], $2::bigint[], $3::inet[], $4::timestamptz[]) AS u(id, count, ip, at)
          WHERE b.id = u.id
         RETURNING b.id)
       INSERT INTO binding_daily_usage (binding_id, day, count)
       SELECT d.id, d.day, d.count
         FROM unnest($5::bigint[], $6::date[], $7::bigint[]) AS d(id, day, count)
        WHERE d.id IN (SELECT id FROM updated)
       ON CONFLICT (binding_id, day) DO UPDATE SET count = binding_daily_usage.count + EXCLUDED.count`,
      [
        batch.map((u) => u.id),
        batch.map((u) => u.count),
        batch.map((u) => u.lastIp),
        batch.map((u) => u.lastAt.toISOString()),
        ids,
        days,
        counts,
      ],
    );
  }

  /** Requests forwarded today and this month (UTC), as the usage batches wrote them. */
  async usageTotals(id: number): Promise<UsageTotals> {
    const rows = await queryRows<{ today: string | null; month: string | null }>(
      this.ds,
      `SELECT sum(count) FILTER (WHERE day = (now() AT TIME ZONE 'UTC')::date) AS today,
              sum(count) AS month
         FROM binding_daily_usage
        WHERE binding_id = $1 AND day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date`,
      [id],
    );
    return { today: Number(rows[0]?.today ?? 0), month: Number(rows[0]?.month ?? 0) };
  }
}
