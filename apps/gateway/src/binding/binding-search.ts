import {
  canonicalPastedKey,
  isPrintableKey,
  formatCidr,
  formatIp,
  MASK,
  maskKey,
  parseCidr,
  parseIp,
  type KeyRules,
} from '@keypin/shared';

/**
 * What a `GET /bindings?search=` string asks for:
 * - `ip`: bindings whose networks contain the address, or whose first or
 *   last IP it is (canonical address text);
 * - `network`: bindings whose networks overlap the CIDR, or whose first or
 *   last IP lies inside it (canonical CIDR text);
 * - `key`: a case-insensitive substring of the masked key (`like`, a ready
 *   LIKE pattern with `\` as escape; null when the text is longer than any
 *   mask, so a pasted raw key never reaches the database in clear), or a
 *   full raw key (`hashHex`, the HMAC of its canonical form; null when
 *   nothing canonical is left).
 */
export type BindingSearch =
  | { kind: 'ip'; ip: string }
  | { kind: 'network'; cidr: string }
  | { kind: 'key'; like: string | null; hashHex: string | null };

/** The longest masked key there is (`abcd…wxyz`). */
export const MAX_MASK_LENGTH = maskKey('x'.repeat(64)).length;

/** Escapes LIKE's wildcards so the text matches literally. */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Reads a search string. Returns null for an empty one. `hash` turns a
 * canonical key into its stored hash; the raw text is not kept in the result.
 */
export function parseBindingSearch(
  raw: string,
  rules: KeyRules,
  hash: (canonical: string) => string,
): BindingSearch | null {
  const text = raw.trim();
  if (text === '') return null;

  const ip = parseIp(text);
  if (ip !== null) return { kind: 'ip', ip: formatIp(ip) };
  if (text.includes('/')) {
    const cidr = parseCidr(text);
    if (cidr.ok) return { kind: 'network', cidr: formatCidr(cidr.cidr) };
  }

  // The console shows masks with "…"; people type "...".
  const masked = text.replace(/\.\.\./g, MASK).toLowerCase();
  // A pasted `Authorization` value (`Bearer sk-…`) counts as the key it carries.
  const canonical = canonicalPastedKey(text, rules);
  return {
    kind: 'key',
    like: masked.length > MAX_MASK_LENGTH ? null : `%${escapeLike(masked)}%`,
    hashHex: canonical === null || !isPrintableKey(canonical) ? null : hash(canonical),
  };
}
