import { type IpAddress, validatePolicy } from '@keypin/shared';
import { netListContains, toNetList } from '../network/net-list';
import { compilePolicy } from '../policy/compiled-policy';
import type { BindingRule, BindingRuleData, OwnPolicy } from './binding.types';

export type Verdict = 'allow' | 'key_banned' | 'ip_not_allowed';

/** docs/contract.md 2.3 steps 2–3: banned, then rule `all`, then network membership. */
export function judge(rule: BindingRule, ip: IpAddress): Verdict {
  if (rule.status === 'banned') return 'key_banned';
  if (rule.ruleType === 'all') return 'allow';
  return netListContains(rule, ip) ? 'allow' : 'ip_not_allowed';
}

/** Builds the cached form; entries that do not parse (never written by KeyPin) are ignored. */
export function toBindingRule(data: BindingRuleData): BindingRule {
  const nets = toNetList(data.allowed_ips);
  return {
    id: data.id,
    // Interned: one string per value, not one per cached binding.
    status: data.status === 'banned' ? 'banned' : 'active',
    ruleType: data.rule_type === 'all' ? 'all' : data.rule_type === 'multiple' ? 'multiple' : 'single',
    allowedIps: data.allowed_ips,
    v4: nets.v4,
    v6: nets.v6,
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
