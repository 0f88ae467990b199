import type { BindingStatus, Cidr, RuleType } from '@keypin/shared';

/** What the hot path needs to judge a request: small, immutable, cached. */
export interface BindingRule {
  readonly id: number;
  readonly status: BindingStatus;
  readonly ruleType: RuleType;
  /** Canonical CIDR text, as stored. */
  readonly allowedIps: readonly string[];
  /** IPv4 networks parsed once when cached, as flat [network, mask, …] 32-bit numbers (compact: 100k entries stay small). */
  readonly v4: readonly number[];
  /** IPv6 networks parsed once when cached. */
  readonly v6: readonly Cidr[];
  readonly tokenDisplay: string;
}

/** The serialisable part of a BindingRule (what Redis holds). */
export interface BindingRuleData {
  id: number;
  status: BindingStatus;
  rule_type: RuleType;
  allowed_ips: string[];
  token_display: string;
}

export interface FirstUse {
  tokenDisplay: string;
  /** Canonical CIDR text of the client's network. */
  network: string;
  ip: string;
  at: Date;
}
