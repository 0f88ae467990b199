import { anyCidrContains, type IpAddress, parseCidr } from '@keypin/shared';
import type { BindingRule, BindingRuleData } from './binding.types';

export type Verdict = 'allow' | 'key_banned' | 'ip_not_allowed';

/** CONTRACT.md 2.3 steps 2–3: banned, then rule `all`, then network membership. */
export function judge(rule: BindingRule, ip: IpAddress): Verdict {
  if (rule.status === 'banned') return 'key_banned';
  if (rule.ruleType === 'all') return 'allow';
  return anyCidrContains(rule.cidrs, ip) ? 'allow' : 'ip_not_allowed';
}

/** Builds the cached form; entries that do not parse (never written by KeyPin) are ignored. */
export function toBindingRule(data: BindingRuleData): BindingRule {
  const cidrs = [];
  for (const text of data.allowed_ips) {
    const r = parseCidr(text);
    if (r.ok) cidrs.push(r.cidr);
  }
  return {
    id: data.id,
    status: data.status,
    ruleType: data.rule_type,
    allowedIps: data.allowed_ips,
    cidrs,
    tokenDisplay: data.token_display,
  };
}

export function toBindingRuleData(rule: BindingRule): BindingRuleData {
  return {
    id: rule.id,
    status: rule.status,
    rule_type: rule.ruleType,
    allowed_ips: [...rule.allowedIps],
    token_display: rule.tokenDisplay,
  };
}
