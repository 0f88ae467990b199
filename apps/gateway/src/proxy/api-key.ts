import {
  canonicalKeyAt,
  isNewApiPlaceholder,
  isPrintableKey,
  type KeyRules,
  MAX_KEY_LENGTH,
} from '@keypin/shared';
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
  /** The request target as the client sent it. */
  target: string,
  /**
   * The path and query the relay will be asked for, from `target` (a
   * route's stripping and base path); called only when it matters, so the
   * hot path allocates nothing for it.
   */
  relayTargetOf: (target: string) => string = (t) => t,
): KeyResolution {
  if (duplicateHeader !== null) {
    return { kind: 'ambiguous', message: `The ${duplicateHeader} header was sent more than once.` };
  }
  let canonical: string | undefined;
  let raw = '';
  let placeholder = false;
  for (const c of candidates) {
    if (c.value.length > MAX_KEY_LENGTH) {
      return { kind: 'invalid', message: `The API key is longer than ${MAX_KEY_LENGTH} characters.` };
    }
    const k = canonicalKeyAt(c.place, c.value, rules);
    if (k === null) {
      if (rules.relay === 'newapi' && c.place === 'authorization' && isNewApiPlaceholder(c.value)) {
        placeholder = true;
      }
      continue;
    }
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
  if (placeholder && isUsageTokenTarget(relayTargetOf(target))) {
    return {
      kind: 'ambiguous',
      message:
        'On /api/usage/token the relay reads "midjourney-proxy" in Authorization as a key of its own; ' +
        'send the API key in Authorization.',
    };
  }
  return canonical === undefined ? { kind: 'none' } : { kind: 'key', canonical, raw };
}

/**
 * Whether a request target may reach New API's `GET /api/usage/token/`
 * (router/api-router.go), the one route behind TokenAuthReadOnly, which reads
 * Authorization alone and has no Midjourney placeholder: there
 * `Bearer midjourney-proxy` is the key `midjourney`, where TokenAuth (and
 * KeyPin) read mj-api-secret or nothing. Gin matches the unescaped path
 * exactly; this matches it anywhere in the path, unescaped where it can be,
 * and without case, so every spelling that could reach it is refused.
 */
export function isUsageTokenTarget(target: string): boolean {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  // Each escape to its byte (as Go unescapes), so no escape elsewhere in the path can hide it.
  const unescaped = path.replace(PERCENT_ESCAPE, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const needle = '/api/usage/token';
  return unescaped.toLowerCase().includes(needle) || path.toLowerCase().includes(needle);
}
const PERCENT_ESCAPE = /%([0-9a-fA-F]{2})/g;

function placeName(place: KeyCandidate['place']): string {
  if (place === 'query') return 'the query parameter "key"';
  if (place === 'websocket-protocol') return 'the WebSocket subprotocol';
  return `the ${place} header`;
}
