import {
  BINDING_STATUSES,
  type Binding,
  type BindingStatus,
  canonicalIp,
  formatCidr,
  type KeyPolicy,
  parseCidr,
  RULE_TYPES,
  type RuleType,
} from '@keypin/shared';
import type { DataSource } from 'typeorm';
import { queryRows, type SqlRunner } from '../infra/database/rows';
import type { BindingSearch } from './binding-search';

/** A binding as the admin API shows it, plus its key hash (never shown; used to invalidate caches). */
export interface BindingRecord {
  binding: Binding;
  hashHex: string;
}

export interface BindingFilter {
  search: BindingSearch | null;
  status: BindingStatus | null;
  ruleType: RuleType | null;
}

interface Row {
  id: string;
  hash_hex: string;
  token_display: string;
  rule_type: RuleType;
  allowed_ips: string[];
  status: BindingStatus;
  first_ip: string | null;
  first_used_at: Date | null;
  last_ip: string | null;
  last_used_at: Date | null;
  request_count: string;
  intercept_count: string;
  note: string | null;
  created_at: Date;
  updated_at: Date;
  policy: KeyPolicy | null;
  requests_today: string | null;
}

/** Every column the API shows, in the shape `toRecord` reads (works on `bindings` and on a RETURNING list). */
const COLUMNS = `id, encode(key_hash, 'hex') AS hash_hex, token_display, rule_type,
  allowed_ips::text[] AS allowed_ips, status, host(first_ip) AS first_ip, first_used_at,
  host(last_ip) AS last_ip, last_used_at, request_count, intercept_count, note, created_at, updated_at, policy,
  (SELECT u.count FROM binding_daily_usage u
    WHERE u.binding_id = id AND u.day = (now() AT TIME ZONE 'UTC')::date) AS requests_today`;

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

/** PostgreSQL's text for an address or network, in the project's canonical spelling. */
const ipText = (s: string | null): string | null => (s === null ? null : (canonicalIp(s) ?? s));
const cidrText = (s: string): string => {
  const c = parseCidr(s);
  return c.ok ? formatCidr(c.cidr) : s;
};

function toRecord(r: Row): BindingRecord {
  return {
    hashHex: r.hash_hex,
    binding: {
      id: Number(r.id),
      token_display: r.token_display,
      rule_type: r.rule_type,
      allowed_ips: r.allowed_ips.map(cidrText),
      status: r.status,
      first_ip: ipText(r.first_ip),
      first_used_at: iso(r.first_used_at),
      last_ip: ipText(r.last_ip),
      last_used_at: iso(r.last_used_at),
      request_count: Number(r.request_count),
      intercept_count: Number(r.intercept_count),
      note: r.note,
      created_at: iso(r.created_at)!,
      updated_at: iso(r.updated_at)!,
      policy: r.policy,
      requests_today: Number(r.requests_today ?? 0),
    },
  };
}

/** The WHERE clause and parameters for a list filter (parameters numbered from 1). */
export function filterSql(f: BindingFilter): { where: string; params: unknown[] } {
  const conds: string[] = [];
  const params: unknown[] = [];
  const p = (v: unknown) => {
    params.push(v);
    return `$${params.length}`;
  };
  if (f.status !== null) conds.push(`status = ${p(f.status)}::binding_status`);
  if (f.ruleType !== null) conds.push(`rule_type = ${p(f.ruleType)}::binding_rule`);
  const s = f.search;
  // An address or a network: the ids found through `binding_networks` (one row per entry of
  // `allowed_ips`, GiST `inet_ops`), `last_ip` (GiST) and `first_ip` (btree) — no index serves
  // containment inside the `cidr[]` itself (migration 1769000600000).
  if (s?.kind === 'ip') {
    const ip = p(s.ip);
    conds.push(
      `id IN (SELECT binding_id FROM binding_networks WHERE network >>= ${ip}::inet` +
        ` UNION SELECT id FROM bindings WHERE last_ip = ${ip}::inet` +
        ` UNION SELECT id FROM bindings WHERE first_ip = ${ip}::inet)`,
    );
  } else if (s?.kind === 'network') {
    const net = p(s.cidr);
    conds.push(
      `id IN (SELECT binding_id FROM binding_networks WHERE network && ${net}::cidr` +
        ` UNION SELECT id FROM bindings WHERE last_ip <<= ${net}::cidr` +
        ` UNION SELECT id FROM bindings WHERE first_ip <<= ${net}::cidr)`,
    );
  } else if (s?.kind === 'key') {
    const either: string[] = [];
    if (s.like !== null) either.push(`lower(token_display) LIKE ${p(s.like)} ESCAPE '\\'`);
    if (s.hashHex !== null) either.push(`key_hash = decode(${p(s.hashHex)}, 'hex')`);
    conds.push(either.length === 0 ? 'false' : `(${either.join(' OR ')})`);
  }
  return { where: conds.length > 0 ? `WHERE ${conds.join(' AND ')}` : '', params };
}

/**
 * The bindings table as the admin API sees it (the hot path has its own,
 * smaller repository). Plain SQL, plain objects; each change method takes
 * the transaction it belongs to.
 */
export class BindingAdminRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * A page, newest first, and the exact total (docs/data.md). Without a search the total is
   * summed from `binding_counts` (kept by triggers) and a page of `status` and/or `rule_type`
   * merges the newest ids of each matching (status, rule) pair from `bindings_status_rule_idx`;
   * page and total are one statement, so one snapshot. A search counts its matches, found
   * through its indexes (the trigram index on the masked key, the key hash, the IP indexes).
   */
  async list(f: BindingFilter, limit: number, offset: number): Promise<{ items: Binding[]; total: number }> {
    if (f.search === null) return this.listUnsearched(f, limit, offset);
    const { where, params } = filterSql(f);
    const n = params.length;
    const rows = await queryRows<Row & { total: string }>(
      this.ds,
      `SELECT ${COLUMNS}, count(*) OVER () AS total FROM bindings ${where}
        ORDER BY id DESC LIMIT $${n + 1} OFFSET $${n + 2}`,
      [...params, limit, offset],
    );
    let total = rows[0] ? Number(rows[0].total) : 0;
    if (!rows[0] && offset > 0) {
      // An empty page past the end still reports the real total.
      const c = await queryRows<{ n: string }>(
        this.ds,
        `SELECT count(*) AS n FROM bindings ${where}`,
        params,
      );
      total = Number(c[0]?.n ?? 0);
    }
    return { items: rows.map((r) => toRecord(r).binding), total };
  }

  private async listUnsearched(
    f: BindingFilter,
    limit: number,
    offset: number,
  ): Promise<{ items: Binding[]; total: number }> {
    // Taken from the constants, never from the request: the branches below spell them as literals.
    const statuses = BINDING_STATUSES.filter((st) => f.status === null || st === f.status);
    const rules = RULE_TYPES.filter((r) => f.ruleType === null || r === f.ruleType);
    // $1 limit, $2 offset, $3 statuses, $4 rules.
    let ids: string;
    if (f.status === null && f.ruleType === null) {
      ids = `SELECT id FROM bindings ORDER BY id DESC LIMIT $1 OFFSET $2`;
    } else {
      const pairs = statuses.flatMap((st) => rules.map((r) => [st, r] as const));
      const branches = pairs.map(
        ([st, r]) =>
          `(SELECT id FROM bindings WHERE status = '${st}' AND rule_type = '${r}' ORDER BY id DESC LIMIT $1::bigint + $2::bigint)`,
      );
      ids = `SELECT id FROM (${branches.join(' UNION ALL ')}) AS u ORDER BY id DESC LIMIT $1 OFFSET $2`;
    }
    const rows = await queryRows<Row & { total: string }>(
      this.ds,
      `WITH page AS (SELECT ${COLUMNS} FROM bindings WHERE id IN (${ids}))
       SELECT t.total, page.*
         FROM (SELECT coalesce(sum(n), 0) AS total FROM binding_counts
                WHERE status = ANY ($3::binding_status[]) AND rule_type = ANY ($4::binding_rule[])) AS t
         LEFT JOIN page ON true
        ORDER BY page.id DESC`,
      [limit, offset, statuses, rules],
    );
    return {
      items: rows.filter((r) => r.id !== null).map((r) => toRecord(r).binding),
      total: Number(rows[0]?.total ?? 0),
    };
  }

  async findById(id: number): Promise<Binding | null> {
    const rows = await queryRows<Row>(this.ds, `SELECT ${COLUMNS} FROM bindings WHERE id = $1`, [id]);
    return rows[0] ? toRecord(rows[0]).binding : null;
  }

  /** Reads a binding and locks its row until the transaction ends. */
  async lock(tx: SqlRunner, id: number): Promise<BindingRecord | null> {
    const rows = await queryRows<Row>(tx, `SELECT ${COLUMNS} FROM bindings WHERE id = $1 FOR UPDATE`, [id]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Pre-binds a key; null when the key hash is bound already. */
  async create(
    tx: SqlRunner,
    b: { hashHex: string; tokenDisplay: string; ruleType: RuleType; networks: string[]; note: string | null },
  ): Promise<BindingRecord | null> {
    const rows = await queryRows<Row>(
      tx,
      `INSERT INTO bindings (key_hash, token_display, rule_type, allowed_ips, note)
       VALUES (decode($1, 'hex'), $2, $3::binding_rule, $4::cidr[], $5)
       ON CONFLICT (key_hash) DO NOTHING
       RETURNING ${COLUMNS}`,
      [b.hashHex, b.tokenDisplay, b.ruleType, b.networks, b.note],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async setNetworks(
    tx: SqlRunner,
    id: number,
    ruleType: RuleType,
    networks: string[],
  ): Promise<BindingRecord | null> {
    const rows = await queryRows<Row>(
      tx,
      `UPDATE bindings SET rule_type = $2::binding_rule, allowed_ips = $3::cidr[], updated_at = now()
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, ruleType, networks],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Sets the key's own policy (null: the default applies). */
  async setPolicy(tx: SqlRunner, id: number, policy: KeyPolicy | null): Promise<BindingRecord | null> {
    const rows = await queryRows<Row>(
      tx,
      `UPDATE bindings SET policy = $2::jsonb, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, policy === null ? null : JSON.stringify(policy)],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  async setStatus(tx: SqlRunner, id: number, status: BindingStatus): Promise<BindingRecord | null> {
    const rows = await queryRows<Row>(
      tx,
      `UPDATE bindings SET status = $2::binding_status, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, status],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Deletes a binding, keeping a copy in `binding_archive`; answers the removed binding. */
  async remove(tx: SqlRunner, id: number, reason: string): Promise<BindingRecord | null> {
    const rows = await queryRows<Row>(
      tx,
      `WITH gone AS (DELETE FROM bindings WHERE id = $1 RETURNING *),
            kept AS (
              INSERT INTO binding_archive (id, key_hash, token_display, rule_type, allowed_ips, status, first_ip,
                                           first_used_at, last_ip, last_used_at, request_count, intercept_count,
                                           note, created_at, updated_at, policy, archive_reason)
              SELECT id, key_hash, token_display, rule_type, allowed_ips, status, first_ip, first_used_at, last_ip,
                     last_used_at, request_count, intercept_count, note, created_at, updated_at, policy, $2
                FROM gone)
       SELECT ${COLUMNS} FROM gone`,
      [id, reason],
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }
}
