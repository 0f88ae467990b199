import {
  type NetworkPolicy,
  type NetworkPolicyField,
  NETWORK_POLICY_FIELDS,
  validateCidrList,
} from '@keypin/shared';
import { ApiError } from '../../api/client';

/** The network policy as edited: each list as typed, one IP or CIDR per line. */
export type NetworkPolicyDraft = Record<NetworkPolicyField, string>;

export type NetworkPolicyErrors = Partial<Record<NetworkPolicyField, string>>;

/** The field names of the network policy's complaints: `networks.<list>[i]`. */
export const NETWORKS_PREFIX = 'networks';

/** How each list is named and what it does, in one sentence. */
export const NETWORK_LIST_INFO: Record<NetworkPolicyField, { label: string; help: string; empty: string }> = {
  allow: {
    label: 'Allowed networks',
    help:
      'When not empty, only requests from inside these networks are served; any other address gets ' +
      '403 network_not_allowed.',
    empty: 'Empty: every address',
  },
  deny: {
    label: 'Denied networks',
    help: 'Requests from inside these networks are always refused with 403 network_denied.',
    empty: 'Empty: none',
  },
  first_use_from: {
    label: 'First use only from',
    help:
      'When not empty, a key without a binding binds on its first use only from inside these networks; ' +
      'from elsewhere it gets 403 first_use_not_allowed and nothing is bound.',
    empty: 'Empty: anywhere',
  },
};

export function draftOfNetworkPolicy(p: NetworkPolicy): NetworkPolicyDraft {
  return { allow: p.allow.join('\n'), deny: p.deny.join('\n'), first_use_from: p.first_use_from.join('\n') };
}

/** The entries of a list as typed: one per line (commas and spaces also separate), blanks dropped. */
export function networkEntries(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((e) => e.trim())
    .filter((e) => e !== '');
}

export interface NetworkPolicyCheck {
  /** The policy to send, or undefined while a list is invalid. */
  policy: NetworkPolicy | undefined;
  errors: NetworkPolicyErrors;
  /** Per list: how entries will be saved when that differs from what was typed. */
  hints: Partial<Record<NetworkPolicyField, string>>;
}

function sentence(message: string): string {
  return `${message.charAt(0).toUpperCase()}${message.slice(1)}${message.endsWith('.') ? '' : '.'}`;
}

/**
 * Checks each list with the shared `validateCidrList` (the API's own check)
 * and answers the canonical policy it gives: every list, as `PUT /settings`
 * replaces the whole policy (a list left out would be emptied).
 */
export function checkNetworkPolicy(draft: NetworkPolicyDraft): NetworkPolicyCheck {
  const policy: NetworkPolicy = { allow: [], deny: [], first_use_from: [] };
  const errors: NetworkPolicyErrors = {};
  const hints: NetworkPolicyCheck['hints'] = {};
  for (const f of NETWORK_POLICY_FIELDS) {
    const typed = networkEntries(draft[f]);
    const r = validateCidrList(typed, `${NETWORKS_PREFIX}.${f}`);
    if (!r.ok) {
      errors[f] = sentence(r.message);
      continue;
    }
    policy[f] = r.value;
    const rewritten = typed
      .map((t) => ({ t, c: r.value.find((c) => c === t) ?? null }))
      .filter((x) => x.c === null)
      .map((x) => x.t);
    if (rewritten.length > 0 || r.value.length < typed.length) {
      hints[f] = `Saved as ${r.value.join(', ')}`;
      if (hints[f].length > 120) hints[f] = `${hints[f].slice(0, 119)}…`;
    }
  }
  return { policy: Object.keys(errors).length === 0 ? policy : undefined, errors, hints };
}

export function sameNetworkPolicy(a: NetworkPolicy, b: NetworkPolicy): boolean {
  return NETWORK_POLICY_FIELDS.every(
    (f) => a[f].length === b[f].length && a[f].every((e, i) => e === b[f][i]),
  );
}

/** The list a field of the validator or the API names (`networks.deny[2]` → `deny`), or null. */
export function networkListOf(field: string): NetworkPolicyField | null {
  if (!field.startsWith(`${NETWORKS_PREFIX}.`)) return null;
  const name = /^[a-z_]+/.exec(field.slice(NETWORKS_PREFIX.length + 1))?.[0];
  return (NETWORK_POLICY_FIELDS as readonly string[]).includes(name ?? '')
    ? (name as NetworkPolicyField)
    : null;
}

/** The API's 422 about a list of the network policy, in its own words, under that list. */
export function apiNetworkPolicyErrors(err: unknown): NetworkPolicyErrors {
  if (!(err instanceof ApiError) || err.code !== 'validation_failed' || err.field === null) return {};
  const list = networkListOf(err.field);
  return list === null ? {} : { [list]: err.message };
}
