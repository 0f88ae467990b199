/**
 * The network policy (docs/contract.md 10): who may use the gateway at all,
 * and from where a key may bind on first use. Checked before the binding
 * decision. Each list holds canonical CIDRs (an address alone is its /32 or
 * /128), as a binding's networks do.
 */
import { cidrErrorMessage, formatCidr, parseCidr } from './ip';

export interface NetworkPolicy {
  /** When not empty, requests from outside every listed network → 403 `network_not_allowed`. */
  allow: string[];
  /** Requests from inside a listed network → 403 `network_denied`. */
  deny: string[];
  /** When not empty, a key binds on first use only from inside these; elsewhere → 403 `first_use_not_allowed`. */
  first_use_from: string[];
}

export const NETWORK_POLICY_FIELDS = ['allow', 'deny', 'first_use_from'] as const;
export type NetworkPolicyField = (typeof NETWORK_POLICY_FIELDS)[number];

/** Entries per list at most. */
export const MAX_POLICY_NETWORKS = 1000;

export const EMPTY_NETWORK_POLICY: Readonly<NetworkPolicy> = Object.freeze({
  allow: [],
  deny: [],
  first_use_from: [],
});

export type NetworkPolicyResult =
  { ok: true; value: NetworkPolicy } | { ok: false; field: string; message: string };

/**
 * Validates a network policy object: the three lists (a missing one is
 * empty), each entry a canonical IP or CIDR. Answers the canonical forms
 * without duplicates, or the first bad field (`networks.deny[2]`).
 */
export function validateNetworkPolicy(input: unknown, field = 'networks'): NetworkPolicyResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, field, message: 'must be an object with allow, deny and first_use_from lists' };
  }
  const out: NetworkPolicy = { allow: [], deny: [], first_use_from: [] };
  for (const [name, value] of Object.entries(input as Record<string, unknown>)) {
    if (!(NETWORK_POLICY_FIELDS as readonly string[]).includes(name)) {
      return { ok: false, field: `${field}.${name}`, message: 'is not a network policy field' };
    }
    const list = validateCidrList(value, `${field}.${name}`);
    if (!list.ok) return list;
    out[name as NetworkPolicyField] = list.value;
  }
  return { ok: true, value: out };
}

/** One list of a network policy: canonical CIDR texts without duplicates. */
export function validateCidrList(
  value: unknown,
  field: string,
): { ok: true; value: string[] } | { ok: false; field: string; message: string } {
  if (!Array.isArray(value)) return { ok: false, field, message: 'must be a list of IPs or CIDRs' };
  if (value.length > MAX_POLICY_NETWORKS) {
    return { ok: false, field, message: `holds at most ${MAX_POLICY_NETWORKS} entries` };
  }
  const out: string[] = [];
  for (let i = 0; i < value.length; i++) {
    const e: unknown = value[i];
    if (typeof e !== 'string') return { ok: false, field: `${field}[${i}]`, message: 'must be a string' };
    const r = parseCidr(e.trim());
    if (!r.ok) return { ok: false, field: `${field}[${i}]`, message: cidrErrorMessage(e, r.error) };
    const canonical = formatCidr(r.cidr);
    if (!out.includes(canonical)) out.push(canonical);
  }
  return { ok: true, value: out };
}

/** True when the policy restricts nothing (the hot path then skips it). */
export function isOpenNetworkPolicy(p: NetworkPolicy): boolean {
  return p.allow.length === 0 && p.deny.length === 0 && p.first_use_from.length === 0;
}
