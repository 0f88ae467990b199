import { canonicalKeyAt, isPrintableKey, type KeyRules, MAX_KEY_LENGTH } from '@keypin/shared';
import type { KeyCandidate } from './request-head';

export { MAX_KEY_LENGTH };

export type KeyResolution =
  | { kind: 'none' }
  | { kind: 'key'; canonical: string; raw: string }
  | { kind: 'ambiguous'; message: string }
  | { kind: 'invalid'; message: string };

/**
 * The request's one key, as the configured relay will read it
 * (docs/contract.md 2.1, docs/relays.md). Every candidate, from every place any relay reads, is canonicalised
 * by the relay's own rules and all must agree, so whichever of them the relay
 * picks, it is the key KeyPin judged. A key header on two lines is ambiguous
 * even when the values match (relays read the first line, Node's `headers`
 * the first or a join). Messages never echo a key.
 */
export function resolveApiKey(
  candidates: readonly KeyCandidate[],
  duplicateHeader: string | null,
  rules: KeyRules,
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
    const k = canonicalKeyAt(c.place, c.value, rules);
    if (k === null) continue;
    if (!isPrintableKey(k)) {
      return {
        kind: 'invalid',
        message: `The API key in ${placeName(c.place)} is empty or holds characters other than printable ASCII.`,
      };
    }
    if (canonical === undefined) {
      canonical = k;
      raw = c.value;
    } else if (k !== canonical) {
      return { kind: 'ambiguous', message: 'The request carries two different API keys; send exactly one.' };
    }
  }
  return canonical === undefined ? { kind: 'none' } : { kind: 'key', canonical, raw };
}

function placeName(place: KeyCandidate['place']): string {
  if (place === 'query') return 'the query parameter "key"';
  if (place === 'websocket-protocol') return 'the WebSocket subprotocol';
  return `the ${place} header`;
}
