import type { ErrorCode, IpAddress, NetworkPolicy } from '@keypin/shared';
import { isEmptyNetList, type NetList, netListContains, toNetList } from './net-list';

/** A network policy refusal's code (docs/contract.md 10). */
export type NetworkRefusal = Extract<
  ErrorCode,
  'network_denied' | 'network_not_allowed' | 'first_use_not_allowed'
>;

/**
 * The network policy of the current settings, compiled once per settings
 * change (the settings object is replaced on every change, so identity
 * tells when to rebuild). Checks are allocation-free.
 */
export class NetworkGate {
  private of: NetworkPolicy | null = null;
  private allow: NetList | null = null;
  private deny: NetList | null = null;
  private firstUse: NetList | null = null;

  /** Compiles `policy` unless it is the one compiled last. */
  use(policy: NetworkPolicy): void {
    if (policy === this.of) return;
    this.of = policy;
    this.allow = orNull(toNetList(policy.allow));
    this.deny = orNull(toNetList(policy.deny));
    this.firstUse = orNull(toNetList(policy.first_use_from));
  }

  /** Whether the policy refuses nothing by address (the common case: no check at all). */
  get open(): boolean {
    return this.allow === null && this.deny === null;
  }

  /** `deny` first (a denied network inside an allowed one stays denied), then `allow`. */
  refusal(ip: IpAddress): NetworkRefusal | null {
    if (this.deny !== null && netListContains(this.deny, ip)) return 'network_denied';
    if (this.allow !== null && !netListContains(this.allow, ip)) return 'network_not_allowed';
    return null;
  }

  /** Whether a key that has no binding may bind on first use from `ip`. */
  mayBindFrom(ip: IpAddress): boolean {
    return this.firstUse === null || netListContains(this.firstUse, ip);
  }
}

function orNull(list: NetList): NetList | null {
  return isEmptyNetList(list) ? null : list;
}

/** The answer's message for each refusal, naming the caller's address (never the configured networks). */
export function networkRefusalMessage(code: NetworkRefusal, ip: string): string {
  switch (code) {
    case 'network_denied':
      return `Requests from ${ip} are not allowed: its network is denied.`;
    case 'network_not_allowed':
      return `Requests from ${ip} are not allowed: it is outside the networks this gateway serves.`;
    case 'first_use_not_allowed':
      return `This API key has not been used yet and cannot be used for the first time from ${ip}; use it first from an approved network.`;
  }
}
