/**
 * Which key a request carries, exactly as the relay behind KeyPin will read
 * it (docs/contract.md 2.1). Pure functions over header and query values as Node
 * gives them: latin1 strings, one char per byte, so a UTF-8 sequence such as
 * U+00A0 arrives as the two chars "\u00c2\u00a0" and is matched as bytes,
 * the way Go and Python see it. Each rule below is taken from the relay's
 * own source; `docs/relays.md` keeps the table with file and commit.
 * Hashing lives in the gateway (it needs Node's crypto).
 */
import type { KeyCase, Relay } from './relay';

export type TokenNormalize = 'newapi' | 'none';

export const TOKEN_NORMALIZE_VALUES: readonly TokenNormalize[] = ['newapi', 'none'];

/**
 * Every place any supported relay reads a key from (the union: KeyPin reads
 * all of them whatever relay is configured, so a key the relay finds in a
 * place KeyPin skipped cannot exist).
 */
export type KeyPlace =
  | 'authorization'
  | 'x-api-key'
  | 'api-key'
  | 'x-goog-api-key'
  | 'x-litellm-api-key'
  | 'ocp-apim-subscription-key'
  | 'mj-api-secret'
  | 'litellm_user_api_key'
  | 'query'
  | 'websocket-protocol';

/** The header places, by lower-case header name. */
export const KEY_HEADER_PLACES: ReadonlyMap<string, KeyPlace> = new Map<string, KeyPlace>([
  ['authorization', 'authorization'],
  ['x-api-key', 'x-api-key'],
  ['api-key', 'api-key'],
  ['x-goog-api-key', 'x-goog-api-key'],
  ['x-litellm-api-key', 'x-litellm-api-key'],
  ['ocp-apim-subscription-key', 'ocp-apim-subscription-key'],
  ['mj-api-secret', 'mj-api-secret'],
  ['litellm_user_api_key', 'litellm_user_api_key'],
]);

/** The settings that decide a key's identity. */
export interface KeyRules {
  relay: Relay;
  tokenNormalize: TokenNormalize;
  keyCase: KeyCase;
}

/** Longest key value accepted; anything longer is refused rather than hashed. */
export const MAX_KEY_LENGTH = 4096;

/**
 * The canonical key the relay looks up for `value` found at `place`:
 * - `null`: the relay finds no key there (an empty value, a bare scheme word,
 *   New API's `midjourney-proxy` placeholder);
 * - `''`: the relay's stripping left nothing (the caller refuses: invalid_key);
 * - otherwise the key, which the caller still checks with `isPrintableKey`.
 */
export function canonicalKeyAt(place: KeyPlace, value: string, rules: KeyRules): string | null {
  if (value === '' || isBareScheme(value)) return null;
  let k: string | null;
  switch (rules.relay) {
    case 'newapi':
      k = newApiKey(place, value, rules.tokenNormalize);
      break;
    case 'litellm':
      k = liteLlmKey(place, value);
      break;
    case 'openai':
      k = place === 'authorization' ? stripBearerAnyCase(value) : value;
      break;
  }
  if (k === null) return null;
  return rules.keyCase === 'insensitive' ? k.toLowerCase() : k;
}

/** A key the relay could store: 1 to MAX_KEY_LENGTH printable ASCII characters (0x21–0x7E). */
export function isPrintableKey(k: string): boolean {
  return k.length > 0 && k.length <= MAX_KEY_LENGTH && PRINTABLE.test(k);
}
const PRINTABLE = /^[\x21-\x7e]+$/;

/**
 * A key pasted by an admin (pre-bind, search by full key), read as a client
 * would send it in a header of its own: surrounding white space and a
 * `Bearer ` prefix are the admin's, not the key's.
 */
export function canonicalPastedKey(text: string, rules: KeyRules): string | null {
  const v = stripBearerAnyCase(text.trim()).trim();
  return canonicalKeyAt('x-api-key', v, rules);
}

/**
 * New API's token form (`TOKEN_NORMALIZE=newapi`): drop one leading `sk-`,
 * then keep what precedes the first `-` (the rest selects a channel).
 * `sk-abc123-7`, `abc123` and `sk-abc123` are one key. `none`: unchanged.
 * The value is taken as already trimmed: New API trims before, not after.
 */
export function canonicalKey(value: string, mode: TokenNormalize): string {
  if (mode === 'none') return value;
  const k = value.startsWith('sk-') ? value.slice(3) : value;
  const dash = k.indexOf('-');
  return dash === -1 ? k : k.slice(0, dash);
}

// --- New API and One API (docs/relays.md [N1], [O1]) ------------------------
//
// Every place but Authorization and mj-api-secret is copied into
// `Authorization: Bearer <value>` first, so it is trimmed like a bearer
// token. `Bearer ` is stripped only in the spellings `Bearer ` and `bearer `,
// then Go's strings.TrimSpace (Unicode white space) runs once; `sk-` and the
// channel suffix are cut after that, with no second trim.
function newApiKey(place: KeyPlace, value: string, mode: TokenNormalize): string | null {
  const k = place === 'authorization' || place === 'mj-api-secret' ? newApiBearer(value) : goTrimSpace(value);
  if (place === 'mj-api-secret') return canonicalKey(k, mode);
  // An empty key or this placeholder in Authorization (where every other
  // place is copied first) makes New API read mj-api-secret instead.
  if (k === '' || k === NEWAPI_MJ_PLACEHOLDER) return null;
  return canonicalKey(k, mode);
}

const NEWAPI_MJ_PLACEHOLDER = 'midjourney-proxy';

/** `Bearer ` or `bearer ` stripped, then Go's TrimSpace; any other value as it is. */
function newApiBearer(value: string): string {
  return value.startsWith('Bearer ') || value.startsWith('bearer ') ? goTrimSpace(value.slice(7)) : value;
}

/**
 * Whether New API's TokenAuth reads this Authorization value as its
 * Midjourney placeholder ("no key here, read mj-api-secret"). Its
 * TokenAuthReadOnly has no placeholder: there the value is the key
 * `midjourney` (docs/relays.md, "The usage endpoint").
 */
export function isNewApiPlaceholder(authorization: string): boolean {
  return newApiBearer(authorization) === NEWAPI_MJ_PLACEHOLDER;
}

// --- LiteLLM (docs/relays.md [L1]) ---------------------------------------------
//
// Authorization goes through _get_bearer_token (an unknown scheme is no key),
// x-litellm-api-key through _get_bearer_token_or_received_api_key (an
// unknown scheme is the key as sent); every other place is taken as sent.
// Python's str.replace removes *every* occurrence of the scheme prefix.
function liteLlmKey(place: KeyPlace, value: string): string | null {
  if (place === 'authorization') return liteLlmBearer(value, false);
  if (place === 'x-litellm-api-key' || place === 'mj-api-secret') return liteLlmBearer(value, true);
  return value;
}

const SIGV4_BEARER = /Credential=Bearer\s+([^/\s,]+)/;
const SIGV4 = /Credential=([^/\s,]+)/;

function liteLlmBearer(v: string, keepUnknown: boolean): string | null {
  if (v.startsWith('Bearer ')) return v.replaceAll('Bearer ', '');
  if (v.startsWith('Basic ')) return v.replaceAll('Basic ', '');
  if (v.startsWith('bearer ')) return v.replaceAll('bearer ', '');
  if (v.startsWith('AWS4-HMAC-SHA256')) {
    const m = SIGV4_BEARER.exec(v) ?? SIGV4.exec(v);
    if (m !== null) return m[1]!;
    return keepUnknown ? v : '';
  }
  return keepUnknown ? v : '';
}

// --- plain upstream ------------------------------------------------------------

const BEARER_ANY_CASE = /^bearer[ \t]+/i;

function stripBearerAnyCase(v: string): string {
  const m = BEARER_ANY_CASE.exec(v);
  return m === null ? v : v.slice(m[0].length);
}

/** `Bearer` alone (Node drops the trailing space of `Bearer `): a scheme without a key. */
function isBareScheme(v: string): boolean {
  return v.length === 6 && v.toLowerCase() === 'bearer';
}

// --- Go's strings.TrimSpace over a byte string ----------------------------------

/**
 * Go's strings.TrimSpace on a latin1 string standing for bytes: trims ASCII
 * white space (\t \n \v \f \r and space) and the UTF-8 encodings of Unicode
 * white space (unicode.IsSpace: U+0085, U+00A0, U+1680, U+2000–U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000) from both ends.
 */
export function goTrimSpace(s: string): string {
  let start = 0;
  let end = s.length;
  for (;;) {
    const n = spaceAt(s, start, end);
    if (n === 0) break;
    start += n;
  }
  for (;;) {
    const n = spaceBefore(s, start, end);
    if (n === 0) break;
    end -= n;
  }
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** Length of the UTF-8 white-space sequence starting at `i` (0 when none). */
function spaceAt(s: string, i: number, end: number): number {
  if (i >= end) return 0;
  const c = s.charCodeAt(i);
  if (isAsciiSpace(c)) return 1;
  if (c === 0xc2 && i + 1 < end) {
    const d = s.charCodeAt(i + 1);
    return d === 0x85 || d === 0xa0 ? 2 : 0;
  }
  if ((c === 0xe1 || c === 0xe2 || c === 0xe3) && i + 2 < end) {
    return isSpace3(c, s.charCodeAt(i + 1), s.charCodeAt(i + 2)) ? 3 : 0;
  }
  return 0;
}

/** Length of the UTF-8 white-space sequence ending just before `end` (0 when none). */
function spaceBefore(s: string, start: number, end: number): number {
  if (end <= start) return 0;
  const c = s.charCodeAt(end - 1);
  if (isAsciiSpace(c)) return 1;
  if (end - 2 >= start && s.charCodeAt(end - 2) === 0xc2 && (c === 0x85 || c === 0xa0)) return 2;
  if (end - 3 >= start && isSpace3(s.charCodeAt(end - 3), s.charCodeAt(end - 2), c)) return 3;
  return 0;
}

function isSpace3(a: number, b: number, c: number): boolean {
  if (a === 0xe1) return b === 0x9a && c === 0x80; // U+1680
  if (a === 0xe3) return b === 0x80 && c === 0x80; // U+3000
  if (a !== 0xe2) return false;
  if (b === 0x80) return (c >= 0x80 && c <= 0x8a) || c === 0xa8 || c === 0xa9 || c === 0xaf; // U+2000–200A, 2028, 2029, 202F
  return b === 0x81 && c === 0x9f; // U+205F
}

/**
 * Python's `str.strip()` on a header decoded as latin-1 (Starlette's
 * headers), which is how LiteLLM trims WebSocket subprotocol entries and
 * its WebSocket `Authorization`: single bytes 0x09–0x0D, 0x1C–0x1F, 0x20,
 * 0x85 and 0xA0 (`str.isspace()` in that range).
 */
export function pyLatin1Strip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isPyLatin1Space(s.charCodeAt(start))) start++;
  while (end > start && isPyLatin1Space(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

function isPyLatin1Space(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0;
}

const VENDOR_PREFIX = /^(?:[Bb]earer[ \t]+)?sk-[a-z]{2,8}-/;

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
