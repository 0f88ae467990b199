import { type InterceptRow, toIntercept } from '../intercept/intercept-log.repository';
import type { SealedRecord } from './chain-check';
import type { AuditRow, ChainName, ChainRow } from './integrity.repository';
import {
  type AuditEvidence,
  auditCanonical,
  type InterceptEvidence,
  interceptCanonical,
} from './record-hash';

/**
 * An intercept row's evidence, read exactly as the admin API and the CSV
 * export show the record (the same mapping, `toIntercept`), so that what an
 * auditor sees is what was hashed.
 */
export function interceptEvidence(r: InterceptRow): InterceptEvidence {
  const i = toIntercept(r);
  return {
    id: i.id,
    binding_id: i.binding_id,
    token_display: i.token_display,
    attempt_ip: i.attempt_ip,
    allowed_ips: i.allowed_ips,
    reason: i.reason,
    method: i.method,
    path: i.path,
    user_agent: i.user_agent,
    enforced: r.enforced,
    intercepted_at: i.intercepted_at,
    count: i.count,
  };
}

/** An audit row's evidence, as `GET /audit` shows the entry. */
export function auditEvidence(r: AuditRow): AuditEvidence {
  return {
    id: Number(r.id),
    actor: r.actor,
    action: r.action,
    target: r.target,
    before: r.before,
    after: r.after,
    ip: r.ip,
    at: new Date(r.at).toISOString(),
  };
}

export function canonicalOf<C extends ChainName>(chain: C, row: ChainRow<C>): string {
  return chain === 'intercepts'
    ? interceptCanonical(interceptEvidence(row as InterceptRow))
    : auditCanonical(auditEvidence(row as AuditRow));
}

/** The row's key in its table: the intercept uuid, the audit id (as text). */
export function keyOf<C extends ChainName>(_chain: C, row: ChainRow<C>): string {
  return row.id;
}

/** A sealed row as verification reads it (null for a row not sealed). */
export function sealedRecordOf<C extends ChainName>(chain: C, row: ChainRow<C>): SealedRecord | null {
  if (row.seq === null || row.hash === null || row.prev_hash === null) return null;
  return {
    seq: Number(row.seq),
    prevHash: row.prev_hash,
    hash: row.hash,
    canonical: canonicalOf(chain, row),
  };
}
