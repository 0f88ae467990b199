import {
  cidrErrorMessage,
  formatCidr,
  MAX_NETWORKS,
  parseCidr,
  type RuleType,
  validateNetworks,
} from '@keypin/shared';

/** What the rule-and-networks form holds while someone types. */
export interface NetworksValue {
  rule: RuleType;
  entries: string[];
}

export interface NetworksCheck {
  /** Per entry: the parser's complaint, or null (empty entries are not complaints). */
  entryErrors: (string | null)[];
  /** Per entry: the canonical form when it differs from what was typed (saved that way). */
  entryHints: (string | null)[];
  /** A complaint about the list as a whole (count for the rule, empty entries). */
  formError: string | null;
  /** The canonical list to send, or null while anything is wrong. */
  networks: string[] | null;
}

/**
 * Checks the form with the gateway's own parsers (`parseCidr` per entry as
 * it is typed, then `validateNetworks` for the rule), so what the form
 * accepts is exactly what `PUT /bindings/ip` accepts.
 */
export function checkNetworks(value: NetworksValue): NetworksCheck {
  const entryErrors: (string | null)[] = [];
  const entryHints: (string | null)[] = [];
  if (value.rule === 'all') {
    return { entryErrors, entryHints, formError: null, networks: [] };
  }
  let bad = false;
  let blank = 0;
  for (const raw of value.entries) {
    const entry = raw.trim();
    if (entry === '') {
      blank++;
      entryErrors.push(null);
      entryHints.push(null);
      continue;
    }
    const r = parseCidr(entry);
    if (r.ok) {
      const canonical = formatCidr(r.cidr);
      entryErrors.push(null);
      entryHints.push(canonical === entry ? null : `Saved as ${canonical}`);
    } else {
      bad = true;
      entryErrors.push(cidrErrorMessage(entry, r.error));
      entryHints.push(null);
    }
  }
  if (bad) return { entryErrors, entryHints, formError: null, networks: null };
  const filled = value.entries.map((e) => e.trim()).filter((e) => e !== '');
  if (filled.length === 0) {
    return {
      entryErrors,
      entryHints,
      formError:
        value.rule === 'single'
          ? 'Enter the IP address or CIDR the key is bound to.'
          : 'Enter at least one IP address or CIDR.',
      networks: null,
    };
  }
  if (blank > 0 && value.rule === 'multiple') {
    return { entryErrors, entryHints, formError: 'Fill in or remove the empty entries.', networks: null };
  }
  if (filled.length > MAX_NETWORKS) {
    return { entryErrors, entryHints, formError: `At most ${MAX_NETWORKS} networks.`, networks: null };
  }
  const r = validateNetworks(value.rule, filled);
  if (!r.ok) {
    if (r.index !== undefined) entryErrors[r.index] = r.message;
    return {
      entryErrors,
      entryHints,
      formError: r.index === undefined ? capitalize(r.message) : null,
      networks: null,
    };
  }
  return { entryErrors, entryHints, formError: null, networks: r.networks };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1) + (s.endsWith('.') ? '' : '.');
}

/** Splits pasted text ("10.0.0.0/24, 10.1.0.0/16\n…") into entries. */
export function splitEntries(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Moves a value to another rule, keeping what still fits. */
export function changeRule(value: NetworksValue, rule: RuleType): NetworksValue {
  if (rule === 'single') return { rule, entries: [value.entries.find((e) => e.trim() !== '') ?? ''] };
  if (rule === 'multiple') return { rule, entries: value.entries.length > 0 ? value.entries : [''] };
  return { rule, entries: value.entries };
}
