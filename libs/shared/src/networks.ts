import { cidrErrorMessage, formatCidr, parseCidr } from './ip';
import type { RuleType } from './settings';

export const MAX_NETWORKS = 100;

export type NetworksResult =
  { ok: true; networks: string[] } | { ok: false; message: string; index?: number };

/**
 * Validates a binding's rule and networks (docs/contract.md 4, `PUT /bindings/ip`):
 * `single` exactly one, `multiple` 1 to 100, `all` none; every entry a
 * canonical IP or CIDR (host bits zero, IPv4 in four plain decimal parts,
 * no zone ids). Returns the canonical `a.b.c.d/p` forms, without duplicates.
 * Used by the gateway and, as you type, by the console.
 */
export function validateNetworks(rule: RuleType, entries: readonly unknown[]): NetworksResult {
  if (rule === 'all') {
    return entries.length === 0
      ? { ok: true, networks: [] }
      : { ok: false, message: 'rule "all" takes no networks' };
  }
  if (entries.length === 0) return { ok: false, message: `rule "${rule}" needs at least one IP or CIDR` };
  if (rule === 'single' && entries.length !== 1) {
    return { ok: false, message: 'rule "single" takes exactly one IP or CIDR' };
  }
  if (entries.length > MAX_NETWORKS) return { ok: false, message: `at most ${MAX_NETWORKS} networks` };
  const out: string[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (typeof e !== 'string') return { ok: false, message: `entry ${i + 1} is not a string`, index: i };
    const r = parseCidr(e);
    if (!r.ok) return { ok: false, message: cidrErrorMessage(e, r.error), index: i };
    const canonical = formatCidr(r.cidr);
    if (!out.includes(canonical)) out.push(canonical);
  }
  return { ok: true, networks: out };
}
