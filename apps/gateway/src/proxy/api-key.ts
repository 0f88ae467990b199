import { canonicalKey, type TokenNormalize } from '@keypin/shared';
import type { KeyCandidate } from './request-head';

/** Longest raw key accepted; anything longer is refused rather than hashed. */
export const MAX_KEY_LENGTH = 4096;

export type KeyResolution =
  | { kind: 'none' }
  | { kind: 'key'; canonical: string; raw: string }
  | { kind: 'ambiguous'; message: string }
  | { kind: 'invalid'; message: string };

/**
 * Picks the request's one key from every candidate: canonical forms must
 * agree; a key header on two lines is ambiguous even when the values match.
 * Empty keys (after canonicalisation) count as no key.
 */
export function resolveApiKey(
  candidates: readonly KeyCandidate[],
  duplicateHeader: string | null,
  mode: TokenNormalize,
): KeyResolution {
  if (duplicateHeader !== null) {
    return { kind: 'ambiguous', message: `The ${duplicateHeader} header was sent more than once.` };
  }
  let canonical: string | undefined;
  let raw = '';
  for (const c of candidates) {
    if (c.value.length > MAX_KEY_LENGTH) {
      return { kind: 'invalid', message: `The API key is longer than ${MAX_KEY_LENGTH} characters.` };
    }
    const k = canonicalKey(c.value, mode);
    if (k === '') continue;
    if (canonical === undefined) {
      canonical = k;
      raw = c.value;
    } else if (k !== canonical) {
      return {
        kind: 'ambiguous',
        message: 'The request carries two different API keys; send exactly one.',
      };
    }
  }
  return canonical === undefined ? { kind: 'none' } : { kind: 'key', canonical, raw };
}
