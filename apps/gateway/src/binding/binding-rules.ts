import { anyCidrContains, type Cidr, type IpAddress, parseCidr, validatePolicy } from '@keypin/shared';
import { compilePolicy } from '../policy/compiled-policy';
import type { BindingRule, BindingRuleData, OwnPolicy } from './binding.types';

export type Verdict = 'allow' | 'key_banned' | 'ip_not_allowed';

/** docs/contract.md 2.3 steps 2–3: banned, then rule `all`, then network membership. */
export function judge(rule: BindingRule, ip: IpAddress): Verdict {
  if (rule.status === 'banned') return 'key_banned';
  if (rule.ruleType === 'all') return 'allow';
  return inNetworks(rule, ip) ? 'allow' : 'ip_not_allowed';
}

function inNetworks(rule: BindingRule, ip: IpAddress): boolean {
  if (ip.version === 6) return rule.v6.length > 0 && anyCidrContains(rule.v6, ip);
  const b = ip.bytes;
  // Signed 32-bit arithmetic throughout: the numbers stay small integers
  // (no heap-allocated doubles) in the cache.
  const n = (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!;
  const v4 = rule.v4;
  for (let i = 0; i < v4.length; i += 2) {
    if ((n & v4[i + 1]!) === v4[i]) return true;
  }
  return false;
}

const NO_V6: readonly Cidr[] = Object.freeze([]);
const NO_V4: readonly number[] = Object.freeze([]);

/** Builds the cached form; entries that do not parse (never written by KeyPin) are ignored. */
export function toBindingRule(data: BindingRuleData): BindingRule {
  let v4: number[] | null = null;
  let v6: Cidr[] | null = null;
  for (const text of data.allowed_ips) {
    const r = parseCidr(text);
    if (!r.ok) continue;
    const c = r.cidr;
    if (c.version === 6) {
      (v6 ??= []).push(c);
      continue;
    }
    const b = c.bytes;
    const mask = c.prefix === 0 ? 0 : -1 << (32 - c.prefix);
    (v4 ??= []).push(((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) & mask, mask);
  }
  return {
    id: data.id,
    // Interned: one string per value, not one per cached binding.
    status: data.status === 'banned' ? 'banned' : 'active',
    ruleType: data.rule_type === 'all' ? 'all' : data.rule_type === 'multiple' ? 'multiple' : 'single',
    allowedIps: data.allowed_ips,
    v4: v4 ?? NO_V4,
    v6: v6 ?? NO_V6,
    tokenDisplay: data.token_display,
    ownPolicy: ownPolicyOf(data.policy),
  };
}

/**
 * A stored policy, checked as the admin API checks it (only SQL behind the
 * API's back can store an invalid one; like an invalid stored setting, it
 * is then ignored and the default applies).
 */
function ownPolicyOf(stored: unknown): OwnPolicy | null {
  if (stored === null || stored === undefined) return null;
  const r = validatePolicy(stored);
  if (!r.ok || r.value === null) return null;
  return { raw: r.value, compiled: compilePolicy(r.value, 'binding') };
}

export function toBindingRuleData(rule: BindingRule): BindingRuleData {
  return {
    id: rule.id,
    status: rule.status,
    rule_type: rule.ruleType,
    allowed_ips: [...rule.allowedIps],
    token_display: rule.tokenDisplay,
    policy: rule.ownPolicy?.raw ?? null,
  };
}
