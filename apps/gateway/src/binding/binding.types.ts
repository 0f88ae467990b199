import type { BindingStatus, Cidr, KeyPolicy, RuleType } from '@keypin/shared';
import type { CompiledPolicy } from '../policy/compiled-policy';

/** A binding's own policy (docs/contract.md 9), compiled once when cached. */
export interface OwnPolicy {
  readonly raw: KeyPolicy;
  /** null: the policy limits nothing (`{}`), which overrides the default. */
  readonly compiled: CompiledPolicy | null;
}

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
  /** null: no policy of its own (the default applies). */
  readonly ownPolicy: OwnPolicy | null;
}

/** The serialisable part of a BindingRule (what Redis holds). */
export interface BindingRuleData {
  id: number;
  status: BindingStatus;
  rule_type: RuleType;
  allowed_ips: string[];
  token_display: string;
  /** Absent in entries cached before policies existed: none. */
  policy?: KeyPolicy | null;
}

export interface FirstUse {
  tokenDisplay: string;
  /** Canonical CIDR text of the client's network. */
  network: string;
  ip: string;
  at: Date;
}
