/**
 * API key canonical form and masked display (CONTRACT.md 2.1).
 * Pure functions; hashing lives in the gateway (it needs Node's crypto).
 */

export type TokenNormalize = 'newapi' | 'none';

export const TOKEN_NORMALIZE_VALUES: readonly TokenNormalize[] = ['newapi', 'none'];

/**
 * The key as the downstream compares it.
 * - `newapi` (New API, One API): trim, drop a leading `sk-`, cut everything
 *   from the first remaining `-` on. `sk-abc123-7`, `abc123` and ` sk-abc123 `
 *   are one key.
 * - `none`: trim only.
 * Returns '' when nothing is left (the caller treats that as no key).
 */
export function canonicalKey(raw: string, mode: TokenNormalize): string {
  let k = raw.trim();
  if (mode === 'none') return k;
  if (k.startsWith('sk-')) k = k.slice(3);
  const dash = k.indexOf('-');
  // Trimmed again: `sk- abc` is `abc`, and `sk- -` is no key at all.
  return (dash === -1 ? k : k.slice(0, dash)).trim();
}

const VENDOR_PREFIX = /^sk-[a-z]{2,8}-/;

/**
 * True when a raw key looks like a vendor key whose own text contains dashes
 * (`sk-proj-…`, `sk-ant-…`): under `newapi` such keys collapse to their vendor
 * word, so the operator should switch to `TOKEN_NORMALIZE=none`.
 */
export function looksLikeDashedVendorKey(raw: string): boolean {
  return VENDOR_PREFIX.test(raw.trim());
}

export const MASK = '\u2026';

/**
 * Masked display: at most the first 4 and last 4 characters, fewer for short
 * keys so that at most half of a key is ever shown.
 */
export function maskKey(canonical: string): string {
  const show = Math.min(4, Math.floor(canonical.length / 4));
  if (show === 0) return MASK;
  return `${canonical.slice(0, show)}${MASK}${canonical.slice(canonical.length - show)}`;
}
