/**
 * What each chain hashes, and how (docs/integrity.md):
 *
 *     hash = hex(SHA-256(prev_hash + "\n" + canonical JSON of the record))
 *
 * over the UTF-8 bytes, `prev_hash` being the previous record's hash (64
 * lower-case hex digits; 64 zeros before the first record).
 *
 * The record is the row's evidence as the admin API shows it, every field
 * present (null when empty):
 * - times: ISO-8601 UTC with milliseconds, `2025-01-02T03:04:05.678Z`
 *   (`Date.prototype.toISOString`; KeyPin writes times to the millisecond);
 * - addresses: as PostgreSQL prints them (`host(inet)` for one address,
 *   `cidr` text, with its prefix length, for a network), so IPv6 is in its
 *   compressed lower-case form;
 * - ids and counts: JSON integers (the intercept id is its UUID text).
 *
 * An intercept's `alerted` flag and `alert_id` are left out on purpose: an
 * alert raised after the record was written sets them, by design, so they
 * are workflow state outside the chain, not evidence.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json';

/** The `prev_hash` of seq 1. */
export const GENESIS_HASH = '0'.repeat(64);

export const HASH_PATTERN = /^[0-9a-f]{64}$/;

/** The intercept fields a hash covers: everything of the record but the alert workflow. */
export interface InterceptEvidence {
  id: string;
  binding_id: number | null;
  token_display: string;
  attempt_ip: string;
  allowed_ips: readonly string[];
  reason: string;
  method: string;
  path: string;
  /** An empty user agent is hashed as null (a CSV cannot tell the two apart). */
  user_agent: string | null;
  /** False: monitor mode, the request was forwarded all the same. */
  enforced: boolean;
  intercepted_at: string;
  count: number;
}

/** The audit fields a hash covers: the whole entry. */
export interface AuditEvidence {
  id: number;
  actor: string;
  action: string;
  target: string | null;
  before: unknown;
  after: unknown;
  ip: string | null;
  at: string;
}

/** The names of the fields hashed, per chain, in canonical (sorted) order. */
export const HASHED_FIELDS = {
  intercepts: [
    'allowed_ips',
    'attempt_ip',
    'binding_id',
    'count',
    'enforced',
    'id',
    'intercepted_at',
    'method',
    'path',
    'reason',
    'token_display',
    'user_agent',
  ],
  audit: ['action', 'actor', 'after', 'at', 'before', 'id', 'ip', 'target'],
} as const;

export function interceptCanonical(e: InterceptEvidence): string {
  return canonicalJson({
    id: e.id,
    binding_id: e.binding_id,
    token_display: e.token_display,
    attempt_ip: e.attempt_ip,
    allowed_ips: e.allowed_ips,
    reason: e.reason,
    method: e.method,
    path: e.path,
    user_agent: e.user_agent === '' ? null : e.user_agent,
    enforced: e.enforced,
    intercepted_at: e.intercepted_at,
    count: e.count,
  });
}

export function auditCanonical(a: AuditEvidence): string {
  return canonicalJson({
    id: a.id,
    actor: a.actor,
    action: a.action,
    target: a.target,
    before: a.before ?? null,
    after: a.after ?? null,
    ip: a.ip,
    at: a.at,
  });
}

/** hex(SHA-256(prev_hash + "\n" + canonical)). */
export function chainHash(prevHash: string, canonical: string): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonical, 'utf8').digest('hex');
}

export function interceptHash(prevHash: string, e: InterceptEvidence): string {
  return chainHash(prevHash, interceptCanonical(e));
}

export function auditHash(prevHash: string, a: AuditEvidence): string {
  return chainHash(prevHash, auditCanonical(a));
}
