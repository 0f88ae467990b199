/**
 * Models of the relays KeyPin stands in front of, for the relay-parity tests
 * (docs/contract.md 2.1: "a request that the relay authenticates as key K must have
 * been judged by KeyPin as key K").
 *
 * Each model decides which key a request carries exactly as the relay's own
 * source does (cited above every rule, with file and commit), and
 * `RelayModel` serves it on loopback as the downstream of a real gateway,
 * recording for every request which known token (if any) it authenticated.
 *
 * Values are byte strings: Node hands header values and the request-target
 * over as latin1 strings (one char per byte). That is exactly a Go string
 * (New API) and exactly Starlette's `bytes.decode("latin-1")` (LiteLLM), so
 * the rules below run on them unchanged; Unicode white space such as U+3000
 * appears as its UTF-8 bytes "\xe3\x80\x80".
 *
 * Nothing here is shared with KeyPin's own parsing (libs/shared/src/key.ts,
 * apps/gateway/src/proxy/request-head.ts): the models are written from the
 * relays' sources so that the two can be compared.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import fc from 'fast-check';

export type RelayProfile = 'newapi' | 'litellm' | 'openai';

/** A request as the relay's HTTP server hands it to the application. */
export interface RelayRequest {
  method: string;
  /** The request-target in origin form, as sent (`/path?query`). */
  target: string;
  /** Node's flat [name, value, name, value, …] list: every line, in order, latin1. */
  rawHeaders: readonly string[];
  /** `Upgrade: websocket` (with `Connection: upgrade`). */
  websocket: boolean;
}

export interface RelayModelOptions {
  /**
   * New API on MySQL: the `tokens.key` column compares without case and, with
   * a PAD SPACE collation, ignores trailing spaces (see `lookupToken`).
   */
  caseInsensitive?: boolean;
}

// ------------------------------------------------------------ request parts

export const WS_KEY_PROTOCOL = 'openai-insecure-api-key.';

/** Path and query of an origin-form request-target (no fragment handling: servers see none). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q === -1 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/** Every value of one header, first line first (names compared without case). */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  const lower = name.toLowerCase();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === lower) out.push(rawHeaders[i + 1]!);
  }
  return out;
}

/** The first value of one header, as Go's Header.Get and Starlette's Headers.get return it. */
export function firstHeader(rawHeaders: readonly string[], name: string): string | undefined {
  return headerValues(rawHeaders, name)[0];
}

// ------------------------------------------------------------ Go (New API)

/**
 * A Go `http.Header` over the request's lines: names are canonicalised
 * (CanonicalMIMEHeaderKey), which for the token names that reach a handler
 * is comparison without case; `Get` is the first value, `Set` replaces all.
 */
class GoHeader {
  private readonly m = new Map<string, string[]>();
  constructor(rawHeaders: readonly string[]) {
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const k = rawHeaders[i]!.toLowerCase();
      const vs = this.m.get(k);
      if (vs) vs.push(rawHeaders[i + 1]!);
      else this.m.set(k, [rawHeaders[i + 1]!]);
    }
  }
  get(name: string): string {
    return this.m.get(name.toLowerCase())?.[0] ?? '';
  }
  values(name: string): string[] {
    return this.m.get(name.toLowerCase()) ?? [];
  }
  set(name: string, value: string): void {
    this.m.set(name.toLowerCase(), [value]);
  }
}

/** unicode.IsSpace (Go): the Latin-1 spaces plus the White_Space property. */
function goIsSpace(r: number): boolean {
  if (r <= 0xff) return r === 0x20 || (r >= 0x09 && r <= 0x0d) || r === 0x85 || r === 0xa0;
  return (
    r === 0x1680 ||
    (r >= 0x2000 && r <= 0x200a) ||
    r === 0x2028 ||
    r === 0x2029 ||
    r === 0x202f ||
    r === 0x205f ||
    r === 0x3000
  );
}

const RUNE_ERROR = 0xfffd;

/**
 * utf8.DecodeRuneInString over a byte string: [rune, size]; an invalid or
 * truncated sequence (also overlong forms and surrogates) is [RuneError, 1].
 */
export function goDecodeRune(s: string, i: number): [number, number] {
  const b0 = s.charCodeAt(i);
  if (b0 < 0x80) return [b0, 1];
  const cont = (j: number) => i + j < s.length && (s.charCodeAt(i + j) & 0xc0) === 0x80;
  const c = (j: number) => s.charCodeAt(i + j) & 0x3f;
  if (b0 >= 0xc2 && b0 <= 0xdf && cont(1)) return [((b0 & 0x1f) << 6) | c(1), 2];
  if (b0 >= 0xe0 && b0 <= 0xef && cont(1) && cont(2)) {
    const r = ((b0 & 0x0f) << 12) | (c(1) << 6) | c(2);
    if (r >= 0x800 && (r < 0xd800 || r > 0xdfff)) return [r, 3];
  }
  if (b0 >= 0xf0 && b0 <= 0xf4 && cont(1) && cont(2) && cont(3)) {
    const r = ((b0 & 0x07) << 18) | (c(1) << 12) | (c(2) << 6) | c(3);
    if (r >= 0x10000 && r <= 0x10ffff) return [r, 4];
  }
  return [RUNE_ERROR, 1];
}

/** utf8.DecodeLastRuneInString over s[0:end]: [rune, size]. */
function goDecodeLastRune(s: string, end: number): [number, number] {
  const last = s.charCodeAt(end - 1);
  if (last < 0x80) return [last, 1];
  // Back up to the start of the last rune (at most 4 bytes), as Go does.
  let start = end - 1;
  const lim = Math.max(0, end - 4);
  for (start--; start >= lim; start--) {
    if ((s.charCodeAt(start) & 0xc0) !== 0x80) break;
  }
  if (start < 0) start = 0;
  const [r, size] = goDecodeRune(s.slice(0, end), start);
  return start + size === end ? [r, size] : [RUNE_ERROR, 1];
}

/**
 * Go's strings.TrimSpace on a byte string: trims unicode.IsSpace runes,
 * decoded as UTF-8, from both ends; an invalid byte is RuneError, which is
 * not a space, so trimming stops there (a lone 0xA0 byte stays).
 */
export function goTrimSpace(s: string): string {
  let start = 0;
  while (start < s.length) {
    const [r, n] = goDecodeRune(s, start);
    if (!goIsSpace(r)) break;
    start += n;
  }
  let end = s.length;
  while (end > start) {
    const [r, n] = goDecodeLastRune(s, end);
    if (!goIsSpace(r)) break;
    end -= n;
  }
  return s.slice(start, end);
}

const HEX2 = /^[0-9a-fA-F]{2}$/;

/**
 * Go's net/url unescape: `%XX` becomes the byte XX; a `%` not followed by two
 * hex digits is an error (null). In a query component (`QueryUnescape`)
 * `+` is a space; in a path (`url.URL.Path`) it stays `+`.
 */
export function goUnescape(s: string, mode: 'path' | 'query'): string | null {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!HEX2.test(hex)) return null;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else {
      out += mode === 'query' && ch === '+' ? ' ' : ch;
    }
  }
  return out;
}

/**
 * Go's url.ParseQuery (Go 1.17 and later): pairs split on `&` only; a pair
 * holding `;` is skipped (an error is noted, parsing goes on); empty pairs
 * are skipped; name and value are QueryUnescape'd and a pair with an invalid
 * escape is skipped. Values keep their order; Gin's `c.Query` is the first.
 */
export function goParseQuery(query: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const pair of query.split('&')) {
    if (pair.includes(';') || pair === '') continue;
    const eq = pair.indexOf('=');
    const name = goUnescape(eq === -1 ? pair : pair.slice(0, eq), 'query');
    const value = goUnescape(eq === -1 ? '' : pair.slice(eq + 1), 'query');
    if (name === null || value === null) continue;
    const vs = m.get(name);
    if (vs) vs.push(value);
    else m.set(name, [value]);
  }
  return m;
}

const hasBearerPrefix = (v: string) => v.startsWith('Bearer ') || v.startsWith('bearer ');

/** strings.TrimPrefix(key, "sk-") then strings.Split(key, "-")[0]. */
const newApiCut = (key: string) => (key.startsWith('sk-') ? key.slice(3) : key).split('-')[0]!;

/**
 * New API — QuantumNous/new-api, middleware/auth.go, TokenAuth and
 * applyWebSocketSubprotocolAuthorization / apiKeyFromWebSocketSubprotocol,
 * commit 040b46a083e17f85b970a9775674b0e58c1b26e9. Returns the string handed
 * to model.ValidateUserToken (model/token.go, commit
 * 0067bd93739dbf07a62b656afe48d71ddcefae4f), or null when it is empty (New
 * API answers 401 without a lookup) or when Go's server refuses the
 * request-target (an invalid `%` escape in the path: 400).
 *
 * TokenAuth runs on the whole relay router, WebSocket upgrades included, so
 * the model applies it to every request but the usage endpoint's.
 */
export function newApiPresentedKey(req: RelayRequest): string | null {
  const { path: rawPath, query } = splitTarget(req.target);
  // url.ParseRequestURI: URL.Path is the unescaped path.
  const path = goUnescape(rawPath, 'path');
  if (path === null) return null;
  const h = new GoHeader(req.rawHeaders);

  // GET /api/usage/token/ is the one route behind TokenAuthReadOnly instead
  // (router/api-router.go: the group /usage/token with GET "/"; Gin
  // redirects /api/usage/token there, and earlier versions served it
  // without the slash, so the model reads both): Authorization alone,
  // "Bearer "/"bearer " stripped and TrimSpace'd, sk- and the channel suffix
  // cut, and no Midjourney placeholder. Gin matches the unescaped path
  // exactly; another method finds no route and authenticates nothing.
  if (path === '/api/usage/token' || path === '/api/usage/token/') {
    if (req.method !== 'GET') return null;
    let key = h.get('Authorization');
    if (hasBearerPrefix(key)) key = goTrimSpace(key.slice(7));
    key = newApiCut(key);
    return key === '' ? null : key;
  }

  // a. Every Sec-WebSocket-Protocol value joined with ",", split on ",",
  //    strings.TrimSpace'd; the FIRST part with the (case-sensitive) prefix
  //    decides: a non-empty rest replaces Authorization.
  const protocols = h.values('Sec-WebSocket-Protocol').join(',');
  if (protocols !== '') {
    for (const raw of protocols.split(',')) {
      const part = goTrimSpace(raw);
      if (part.startsWith(WS_KEY_PROTOCOL)) {
        const key = part.slice(WS_KEY_PROTOCOL.length);
        if (key !== '') h.set('Authorization', `Bearer ${key}`);
        break;
      }
    }
  }
  // b. Anthropic style: a path containing /v1/messages or /v1/models takes x-api-key.
  if (path.includes('/v1/messages') || path.includes('/v1/models')) {
    const anthropicKey = h.get('x-api-key');
    if (anthropicKey !== '') h.set('Authorization', `Bearer ${anthropicKey}`);
  }
  // c. Gemini style: ?key= (c.Query: first value) and then x-goog-api-key (wins).
  if (
    path === '/v1/models' ||
    path.startsWith('/v1beta/models') ||
    path.startsWith('/v1beta/openai/models') ||
    path.startsWith('/v1/models/')
  ) {
    const skKey = goParseQuery(query).get('key')?.[0] ?? '';
    if (skKey !== '') h.set('Authorization', `Bearer ${skKey}`);
    const xGoogKey = h.get('x-goog-api-key');
    if (xGoogKey !== '') h.set('Authorization', `Bearer ${xGoogKey}`);
  }
  // d. "Bearer " / "bearer " (only these spellings) stripped, then TrimSpace.
  let key = h.get('Authorization');
  if (hasBearerPrefix(key)) key = goTrimSpace(key.slice(7));
  // e. Nothing (or the Midjourney placeholder): mj-api-secret instead.
  if (key === '' || key === 'midjourney-proxy') {
    key = h.get('mj-api-secret');
    if (hasBearerPrefix(key)) key = goTrimSpace(key.slice(7));
  }
  key = newApiCut(key);
  return key === '' ? null : key;
}

// ------------------------------------------------------- Python (LiteLLM)

/** str.isspace() (and the `\s` of a str regex) for the chars a latin-1 decoded header can hold, and beyond. */
function pyIsSpace(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0 || goIsSpace(c);
}

/** Python's str.strip() with no argument. */
export function pyStrip(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && pyIsSpace(s.charCodeAt(start))) start++;
  while (end > start && pyIsSpace(s.charCodeAt(end - 1))) end--;
  return s.slice(start, end);
}

/** The white space of Python's `\s` (str patterns), as a regex class body. */
const PY_WS =
  '\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SIGV4_BEARER = new RegExp(`Credential=Bearer[${PY_WS}]+([^/${PY_WS},]+)`);
const SIGV4 = new RegExp(`Credential=([^/${PY_WS},]+)`);

/**
 * urllib.parse.unquote(s) (encoding utf-8, errors "replace") on a str: each
 * run of ASCII characters is percent-decoded to bytes and decoded as UTF-8
 * (invalid sequences become U+FFFD); an invalid escape stays as it is;
 * non-ASCII characters pass through unchanged.
 */
export function pyUnquote(s: string): string {
  if (!s.includes('%')) return s;
  // ignoreBOM: keep a leading U+FEFF, as Python's utf-8 codec does.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  // Runs of ASCII (everything below U+0080).
  return s.replace(/[^\u0080-\uffff]+/g, (run) => {
    const bits = run.split('%');
    const bytes: number[] = [...Buffer.from(bits[0]!, 'latin1')];
    for (const item of bits.slice(1)) {
      const hex = item.slice(0, 2);
      if (HEX2.test(hex)) bytes.push(parseInt(hex, 16), ...Buffer.from(item.slice(2), 'latin1'));
      else bytes.push(0x25, ...Buffer.from(item, 'latin1'));
    }
    return decoder.decode(Uint8Array.from(bytes));
  });
}

/**
 * urllib.parse.parse_qsl(qs, keep_blank_values=True) as Starlette's
 * QueryParams calls it on `scope["query_string"].decode("latin-1")`: pairs
 * split on `&` only, empty pairs skipped, a pair without `=` has the value
 * "", `+` is a space, then unquote.
 */
export function pyParseQsl(query: string): [string, string][] {
  const out: [string, string][] = [];
  for (const pair of query === '' ? [] : query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    out.push([pyUnquote(name.replaceAll('+', ' ')), pyUnquote(value.replaceAll('+', ' '))]);
  }
  return out;
}

/** Starlette's QueryParams.get: the LAST value of the name (its dict keeps the last pair). */
export function starletteQueryGet(query: string, name: string): string | undefined {
  let found: string | undefined;
  for (const [k, v] of pyParseQsl(query)) if (k === name) found = v;
  return found;
}

/**
 * LiteLLM — BerriAI/litellm, litellm/proxy/auth/user_api_key_auth.py,
 * commit 0009d07f70e0aae40497197a8f3d6faf3456e3cf: `_get_bearer_token`
 * (`keepUnknown` false: an Authorization in another form is no key) and
 * `_get_bearer_token_or_received_api_key` (`keepUnknown` true). Python's
 * str.replace removes EVERY occurrence of the prefix, not just the leading one.
 */
export function liteLlmBearer(v: string, keepUnknown: boolean): string {
  if (v.startsWith('Bearer ')) return v.replaceAll('Bearer ', '');
  if (v.startsWith('Basic ')) return v.replaceAll('Basic ', '');
  if (v.startsWith('bearer ')) return v.replaceAll('bearer ', '');
  if (v.startsWith('AWS4-HMAC-SHA256')) {
    const m = SIGV4_BEARER.exec(v) ?? SIGV4.exec(v);
    if (m) return m[1]!;
    return keepUnknown ? v : '';
  }
  return keepUnknown ? v : '';
}

/**
 * LiteLLMRoutes.mapped_pass_through_routes (litellm/proxy/_types.py, same
 * repository; the union of its recent versions): on a route starting with
 * one of these (a plain prefix test), the header `litellm_user_api_key`
 * replaces the key (check_api_key_for_custom_headers_or_pass_through_endpoints).
 */
const LITELLM_MAPPED_PASS_THROUGH = [
  '/bedrock',
  '/comprehendmedical',
  '/vertex-ai',
  '/vertex_ai',
  '/cohere',
  '/cursor',
  '/gemini',
  '/anthropic',
  '/langfuse',
  '/azure',
  '/azure_ai',
  '/openai',
  '/openai_passthrough',
  '/assemblyai',
  '/eu.assemblyai',
  '/vllm',
  '/mistral',
  '/milvus',
  '/watsonx',
];

/** LiteLLM's realtime WebSocket routes (proxy_server.py: `/v1/realtime`, `/realtime`). */
const LITELLM_REALTIME = new Set(['/v1/realtime', '/realtime']);

/**
 * FastAPI's APIKeyHeader(auto_error=False): `request.headers.get(name)` (the
 * first line), and None when missing or empty.
 */
const apiKeyHeader = (raw: readonly string[], name: string): string | undefined => {
  const v = firstHeader(raw, name);
  return v === undefined || v === '' ? undefined : v;
};

/**
 * LiteLLM — BerriAI/litellm, litellm/proxy/auth/user_api_key_auth.py, commit
 * 0009d07f70e0aae40497197a8f3d6faf3456e3cf: `get_api_key`, then
 * `check_api_key_for_custom_headers_or_pass_through_endpoints`; for a
 * WebSocket, `user_api_key_auth_websocket`. Returns the key LiteLLM hashes
 * and looks up (whole, `sk-` included), or null when it refuses first (no
 * key, an empty or malformed one: "Malformed API Key passed in").
 *
 * The route is uvicorn's `scope["path"]` (percent-decoded); every HTTP
 * request is modelled as reaching a route guarded by `user_api_key_auth`.
 */
export function liteLlmPresentedKey(req: RelayRequest): string | null {
  const { path, query } = splitTarget(req.target);
  const route = pyUnquote(path);
  if (req.websocket) return liteLlmWebSocketKey(req.rawHeaders, route);
  const raw = req.rawHeaders;

  let apiKey: string | undefined;
  const custom = apiKeyHeader(raw, 'x-litellm-api-key');
  const authorization = apiKeyHeader(raw, 'Authorization');
  if (custom !== undefined) apiKey = liteLlmBearer(custom, true);
  else if (authorization !== undefined) apiKey = liteLlmBearer(authorization, false);
  else {
    apiKey =
      apiKeyHeader(raw, 'api-key') ??
      apiKeyHeader(raw, 'x-api-key') ??
      apiKeyHeader(raw, 'x-goog-api-key') ??
      apiKeyHeader(raw, 'Ocp-Apim-Subscription-Key');
    // RouteChecks.is_generate_content_route (litellm/proxy/auth/route_checks.py):
    // "generateContent" or "streamGenerateContent" anywhere in the route,
    // colon or not; then `?key=` (Starlette: the last value).
    if (
      apiKey === undefined &&
      (route.includes('generateContent') || route.includes('streamGenerateContent'))
    ) {
      const q = starletteQueryGet(query, 'key');
      if (q !== undefined && q !== '') apiKey = q;
    }
  }
  // A mapped pass-through route: `litellm_user_api_key` (present, even empty) wins, as sent.
  if (LITELLM_MAPPED_PASS_THROUGH.some((p) => route.startsWith(p))) {
    const passThrough = firstHeader(raw, 'litellm_user_api_key');
    if (passThrough !== undefined) apiKey = passThrough;
  }
  return apiKey === undefined || apiKey === '' ? null : apiKey;
}

/**
 * `user_api_key_auth_websocket`: Authorization (first line); if missing or
 * empty, `api-key`, else the FIRST Sec-WebSocket-Protocol line split on ","
 * and str.strip()'ed, whose first entry with the prefix gives the key. An
 * Authorization not starting with "Bearer " is refused; otherwise its rest
 * is str.strip()'ed. The key then goes to user_api_key_auth as
 * "Bearer <key>", i.e. through `_get_bearer_token` once more (every
 * "Bearer " inside removed). A WebSocket on another route matches no
 * WebSocket endpoint: refused before any authentication.
 */
function liteLlmWebSocketKey(raw: readonly string[], route: string): string | null {
  if (!LITELLM_REALTIME.has(route)) return null;
  const authorization = firstHeader(raw, 'authorization');
  let apiKey: string | undefined;
  if (authorization === undefined || authorization === '') {
    apiKey = firstHeader(raw, 'api-key');
    if (apiKey === undefined || apiKey === '') {
      for (const entry of (firstHeader(raw, 'sec-websocket-protocol') ?? '').split(',')) {
        const protocol = pyStrip(entry);
        if (protocol.startsWith(WS_KEY_PROTOCOL)) {
          apiKey = protocol.slice(WS_KEY_PROTOCOL.length);
          break;
        }
      }
    }
    if (apiKey === undefined || apiKey === '') return null;
  } else {
    if (!authorization.startsWith('Bearer ')) return null;
    apiKey = pyStrip(authorization.slice('Bearer '.length));
  }
  const key = liteLlmBearer(`Bearer ${apiKey}`, false);
  return key === '' ? null : key;
}

// ------------------------------------------------------ plain upstream

const BEARER_ANY_CASE = /^bearer[ \t]+/i;

/**
 * A plain OpenAI-compatible upstream that takes the key as sent:
 * `Authorization: Bearer <k>` (scheme without case, then spaces or tabs),
 * else `x-api-key`, else `api-key` (first lines, raw). A WebSocket may also
 * offer it as the subprotocol `openai-insecure-api-key.<k>` (OpenAI's own
 * browser form; entries split on "," and trimmed of spaces and tabs).
 */
export function openAiPresentedKey(req: RelayRequest): string | null {
  const raw = req.rawHeaders;
  const authorization = firstHeader(raw, 'authorization') ?? '';
  const m = BEARER_ANY_CASE.exec(authorization);
  let key: string | undefined = m ? authorization.slice(m[0].length) : undefined;
  if (!key) key = firstHeader(raw, 'x-api-key') || firstHeader(raw, 'api-key');
  if (!key && req.websocket) {
    for (const entry of headerValues(raw, 'sec-websocket-protocol').join(',').split(',')) {
      const protocol = entry.replace(/^[ \t]+|[ \t]+$/g, '');
      if (protocol.startsWith(WS_KEY_PROTOCOL)) {
        key = protocol.slice(WS_KEY_PROTOCOL.length);
        break;
      }
    }
  }
  return key ? key : null;
}

// ----------------------------------------------------------------- lookup

/** The key each relay looks up for a request (null: none; the relay answers 401). */
export function presentedKey(profile: RelayProfile, req: RelayRequest): string | null {
  switch (profile) {
    case 'newapi':
      return newApiPresentedKey(req);
    case 'litellm':
      return liteLlmPresentedKey(req);
    case 'openai':
      return openAiPresentedKey(req);
  }
}

/**
 * How MySQL's case-insensitive collations compare a key (New API on MySQL:
 * `key = ?` on a varchar column with the server's default collation), taken
 * at its most permissive so that the model authenticates whenever MySQL
 * might: the byte string as UTF-8 (invalid UTF-8 is an error: no match),
 * compatibility-decomposed with accents dropped (`_ai_ci`: "Ｋ", "ſ" and "é"
 * compare as "k", "s" and "e"), without case, and trailing spaces ignored
 * (PAD SPACE collations such as utf8mb4_general_ci).
 */
export function mysqlCollationKey(bytes: string): string | null {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.from(bytes, 'latin1'));
  } catch {
    return null;
  }
  return text.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase().replace(/ +$/, '');
}

/** The known token the relay's store returns for `presented`, if any. */
export function lookupToken(
  presented: string | null,
  tokens: readonly string[],
  options: RelayModelOptions = {},
): string | null {
  if (presented === null) return null;
  if (!options.caseInsensitive) return tokens.includes(presented) ? presented : null;
  const wanted = mysqlCollationKey(presented);
  if (wanted === null) return null;
  return tokens.find((t) => mysqlCollationKey(t) === wanted) ?? null;
}

// ------------------------------------------------------------- the server

export interface AuthRecord {
  /** Position in `records`. */
  seq: number;
  method: string;
  target: string;
  /** The first X-Real-IP line (KeyPin sets it to the client it judged). */
  realIp: string | null;
  websocket: boolean;
  /**
   * The request came on a connection after a refused upgrade: bytes the
   * client sent behind an upgrade request that reached the relay as HTTP
   * (KeyPin never writes a second request there itself), so its X-Real-IP
   * is whatever the client wrote.
   */
  smuggled: boolean;
  /** What the relay looked up (null: no key). */
  presented: string | null;
  /** The known token it authenticated (null: none, answered 401/403). */
  key: string | null;
  status: number;
}

/**
 * One relay model on loopback (port 0). Answers 200 with JSON when the key it
 * finds is a known token, 401 otherwise, and records every request.
 *
 * WebSocket upgrades are authenticated the same way: 101 on a realtime path
 * with a known token. Any other answer to an upgrade request is what the
 * real relay does: New API (Go's net/http) and a plain upstream answer it
 * like any request and keep reading the connection as HTTP; LiteLLM
 * (uvicorn) refuses with 403 and closes.
 */
export class RelayModel {
  readonly records: AuthRecord[] = [];
  port = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly afterUpgrade = new WeakSet<Socket>();

  constructor(
    readonly profile: RelayProfile,
    readonly tokens: readonly string[],
    readonly options: RelayModelOptions = {},
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Authentications of `token`, from record `fromSeq` on. */
  authenticationsOf(token: string, fromSeq = 0): AuthRecord[] {
    return this.records.slice(fromSeq).filter((r) => r.key === token);
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      const rec = this.record(req, false);
      req.resume();
      req.on('end', () => {
        res.writeHead(rec.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(rec.key === null ? { error: { message: 'invalid token' } } : { ok: true }));
      });
    });
    server.keepAliveTimeout = 60_000;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    this.server = server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private record(req: IncomingMessage, websocket: boolean): AuthRecord {
    const request: RelayRequest = {
      method: req.method ?? '',
      target: req.url ?? '',
      rawHeaders: req.rawHeaders,
      websocket,
    };
    const presented = presentedKey(this.profile, request);
    const key = lookupToken(presented, this.tokens, this.options);
    const rec: AuthRecord = {
      seq: this.records.length,
      method: request.method,
      target: request.target,
      realIp: firstHeader(req.rawHeaders, 'x-real-ip') ?? null,
      websocket,
      smuggled: this.afterUpgrade.has(req.socket),
      presented,
      key,
      status: key === null ? 401 : 200,
    };
    this.records.push(rec);
    return rec;
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined);
    const websocket = (req.headers.upgrade ?? '').trim().toLowerCase() === 'websocket';
    const rec = this.record(req, websocket);
    const path = splitTarget(rec.target).path;
    if (websocket && rec.key !== null && (path === '/v1/realtime' || path === '/realtime')) {
      rec.status = 101;
      const accept = createHash('sha1')
        .update(`${req.headers['sec-websocket-key'] ?? ''}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      socket.end(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      return;
    }
    if (websocket && this.profile === 'litellm') {
      rec.status = 403;
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const body = JSON.stringify(rec.key === null ? { error: { message: 'invalid token' } } : { ok: true });
    socket.write(
      `HTTP/1.1 ${rec.status} ${rec.status === 200 ? 'OK' : 'Unauthorized'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // Keep reading the connection as HTTP, as Go's server does after answering.
    this.afterUpgrade.add(socket);
    if (head.length > 0) socket.unshift(head);
    this.server?.emit('connection', socket);
  }
}

// ================================================================ attacks
//
// The profiles under test and requests that carry a key in every place and
// spelling some relay reads, shared by test/relay-parity.int-spec.ts (sent
// raw over a socket, through KeyPin) and src/proxy/relay-parity.spec.ts
// (KeyPin's parsing, in process).

/** `prefix` padded with letters and digits to `length` characters. */
const fill = (prefix: string, length: number) =>
  (prefix + 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ'.repeat(2)).slice(0, length);

/** One relay configuration: the model, KeyPin's settings for it, and the two tokens. */
export interface ParityProfile {
  name: string;
  relay: RelayProfile;
  /** KeyPin's key settings (environment: RELAY, TOKEN_NORMALIZE, KEY_CASE). */
  tokenNormalize: 'newapi' | 'none';
  keyCase: 'sensitive' | 'insensitive';
  keys: ParityKeys;
}

// New API stores 48 letters and digits and clients send `sk-<token>`;
// LiteLLM and a plain upstream store the key whole (dashes inside stay).
const newApiKeys = (): ParityKeys => {
  const ownerToken = fill('OwnerTok', 48);
  const attackerToken = fill('ThiefTok', 48);
  return { ownerToken, owner: `sk-${ownerToken}`, attackerToken, attacker: `sk-${attackerToken}` };
};
const wholeKeys = (owner: string, attacker: string): ParityKeys => ({
  ownerToken: owner,
  owner,
  attackerToken: attacker,
  attacker,
});

export const PARITY_PROFILES: readonly ParityProfile[] = [
  { name: 'newapi', relay: 'newapi', tokenNormalize: 'newapi', keyCase: 'sensitive', keys: newApiKeys() },
  {
    name: 'newapi on MySQL (KEY_CASE=insensitive)',
    relay: 'newapi',
    tokenNormalize: 'newapi',
    keyCase: 'insensitive',
    keys: newApiKeys(),
  },
  {
    name: 'litellm',
    relay: 'litellm',
    tokenNormalize: 'newapi',
    keyCase: 'sensitive',
    keys: wholeKeys(fill('sk-litellm-Owner', 40), fill('sk-Thief', 40)),
  },
  {
    name: 'openai',
    relay: 'openai',
    tokenNormalize: 'newapi',
    keyCase: 'sensitive',
    keys: wholeKeys(fill('sk-proj-Owner', 48), fill('sk-Thief', 48)),
  },
];

/** The model of a profile, knowing its two tokens. */
export const modelOf = (p: ParityProfile): RelayModel =>
  new RelayModel(p.relay, [p.keys.ownerToken, p.keys.attackerToken], {
    caseInsensitive: p.keyCase === 'insensitive',
  });

/** The tokens of one test: the owner's (the one to steal) and the attacker's own. */
export interface ParityKeys {
  /** The owner's token as the relay stores it (New API: without `sk-`). */
  ownerToken: string;
  /** How a client sends it (New API: `sk-<token>`). */
  owner: string;
  attackerToken: string;
  attacker: string;
}

/** One place of a key: a header line, or one `name=value` pair of the query (raw, as sent). */
export type Entry = { header: string; value: string } | { query: string };

export interface Attack {
  method: 'GET' | 'POST';
  path: string;
  entries: Entry[];
  /** Sent as a WebSocket upgrade (GET, Upgrade: websocket). */
  websocket: boolean;
  /** Sent pipelined behind a keyless WebSocket upgrade on the same connection. */
  behindKeylessUpgrade: boolean;
}

/** UTF-8 bytes of `s` as a byte string. */
export const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

/**
 * White space of every kind, as bytes: ASCII (an HTTP parser trims it at
 * the ends of a header value), the Unicode spaces Go's TrimSpace trims,
 * two that it does not (U+200B, U+FEFF), and lone 0xA0 / 0x85 bytes, which
 * are white space to Python on a latin-1 decoded header but not UTF-8.
 */
export const SPACES: readonly string[] = [
  ' ',
  '\t',
  '  ',
  ...['\u00a0', '\u3000', '\u0085', '\u2028', '\u2029', '\u1680', '\u2000', '\u200a', '\u202f', '\u205f'].map(
    utf8,
  ),
  utf8('\u200b'),
  utf8('\ufeff'),
  '\xa0',
  '\x85',
];

export const PATHS: readonly string[] = [
  '/v1/chat/completions',
  '/v1/messages',
  '/v1/messages/count_tokens',
  '/v1/models',
  '/v1/models/gpt-4o',
  '/v1/%6Dodels',
  '/v1beta/models/gemini-2.0-flash:generateContent',
  '/v1beta/models/gemini-2.0-flash:streamGenerateContent',
  '/v1beta/openai/models',
  '/anthropic/v1/messages',
  '/gemini/v1beta/models/gemini-2.0-flash:generateContent',
  '/openai/v1/chat/completions',
  '/mj/submit/imagine',
  '/v1/realtime',
  '/api/usage/token/',
  '/api/usage/%74oken',
];

export const KEY_HEADER_NAMES: readonly string[] = [
  'Authorization',
  'x-api-key',
  'api-key',
  'x-goog-api-key',
  'x-litellm-api-key',
  'Ocp-Apim-Subscription-Key',
  'mj-api-secret',
  'litellm_user_api_key',
];

const WS_HEADERS = [
  'Connection: Upgrade',
  'Upgrade: websocket',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
];

const AWS_TAIL =
  '/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=5d672d79';

const swapCase = (s: string) =>
  [...s].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('');

const nameCase = fc.constantFrom<(n: string) => string>(
  (n) => n,
  (n) => n.toLowerCase(),
  (n) => n.toUpperCase(),
  swapCase,
);

/** One of `choices`, each with its weight. */
const weighted = <T>(...choices: [number, T][]): fc.Arbitrary<T> =>
  fc.oneof(...choices.map(([weight, v]) => ({ weight, arbitrary: fc.constant(v) })));

/** White space around a key: mostly none (a key wrapped in it is rarely one the relay accepts). */
const pad = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: fc.constantFrom(...SPACES) },
  { weight: 1, arbitrary: fc.constantFrom('\xa0', '\x85') },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...SPACES), fc.constantFrom(...SPACES)).map(([a, b]) => a + b),
  },
);

/** White space around a list entry, where parsers trim: mostly some, lone bytes often. */
const edge = fc.oneof(
  { weight: 2, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: fc.constantFrom(...SPACES) },
  // Lone bytes get their own share: they are where byte-level handling differs.
  { weight: 3, arbitrary: fc.constantFrom('\xa0', '\x85') },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...SPACES), fc.constantFrom(...SPACES)).map(([a, b]) => a + b),
  },
);

/** A spelling of the owner's key: mostly as sent, else `sk-` added or dropped, a channel suffix, another case. */
function ownerVariant(keys: ParityKeys): fc.Arbitrary<string> {
  return fc
    .record({
      sk: weighted<'as sent' | 'add sk-' | 'drop sk-' | 'token'>(
        [5, 'as sent'],
        [1, 'add sk-'],
        [1, 'drop sk-'],
        [1, 'token'],
      ),
      suffix: fc.oneof(
        { weight: 6, arbitrary: fc.constant('') },
        { weight: 4, arbitrary: fc.constantFrom('-1', '-0', '-abc', '-', ' -1', '\t-2', '--1') },
      ),
      kase: weighted<(s: string) => string>(
        [6, (s) => s],
        [1, (s) => s.toUpperCase()],
        [1, (s) => s.toLowerCase()],
        [1, swapCase],
      ),
    })
    .map(({ sk, suffix, kase }) => {
      const k = keys.owner;
      const base =
        sk === 'add sk-'
          ? `sk-${k}`
          : sk === 'drop sk-'
            ? k.replace(/^sk-/, '')
            : sk === 'token'
              ? keys.ownerToken
              : k;
      return kase(base) + suffix;
    });
}

/** The text where a key goes: mostly the owner's key, else the attacker's own, an unknown one, or none. */
function keyText(keys: ParityKeys): fc.Arbitrary<string> {
  const wrapped = fc.tuple(pad, ownerVariant(keys), pad).map(([l, k, r]) => l + k + r);
  return fc.oneof(
    { weight: 8, arbitrary: wrapped },
    { weight: 2, arbitrary: fc.constant(keys.attacker) },
    { weight: 1, arbitrary: fc.constantFrom('sk-nobodyKnowsThisKey0123456789', 'nobody') },
    { weight: 1, arbitrary: fc.constantFrom('', 'midjourney-proxy', 'Bearer') },
  );
}

/** A header value around a key: a scheme (any case, any separator), bare, Basic, or AWS SigV4. */
function credential(keys: ParityKeys): fc.Arbitrary<string> {
  const k = keyText(keys);
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .tuple(
          fc.constantFrom(
            '',
            'Bearer ',
            'Bearer ',
            'bearer ',
            'BEARER ',
            'BeArEr ',
            'Bearer  ',
            'Bearer\t',
            'Basic ',
            'basic ',
            'Token ',
            'Bearer Bearer ',
            'bearer Bearer ',
          ),
          k,
        )
        .map(([scheme, key]) => scheme + key),
    },
    { weight: 1, arbitrary: k.map((key) => `AWS4-HMAC-SHA256 Credential=${key}${AWS_TAIL}`) },
    { weight: 1, arbitrary: k.map((key) => `AWS4-HMAC-SHA256 Credential=Bearer ${key}${AWS_TAIL}`) },
  );
}

/** Percent-encodes a byte string for a query: only what must be, everything, in lower case, or `+` for spaces. */
const queryEncoding = fc.constantFrom<(v: string) => string>(
  (v) =>
    v.replace(
      /[^\x21-\x7e]|[#%&+]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
    ),
  (v) => [...v].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  (v) => [...v].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''),
  (v) =>
    v.replace(/[^\x21-\x7e]|[#%&+]/g, (c) =>
      c === ' ' ? '+' : `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
    ),
);

function queryEntry(keys: ParityKeys): fc.Arbitrary<Entry> {
  return fc
    .record({
      name: fc.constantFrom(
        'key',
        'key',
        'key',
        '%6Bey',
        'k%65y',
        'ke%79',
        '%6b%65%79',
        'KEY',
        'key+',
        'ke+y',
      ),
      value: fc.tuple(credential(keys), queryEncoding).map(([v, enc]) => enc(v)),
      shape: fc.constantFrom('pair', 'pair', 'pair', 'semicolon', 'bad escape', 'no value'),
    })
    .map(({ name, value, shape }): Entry => {
      if (shape === 'semicolon') return { query: `${name}=${value};x=1` };
      if (shape === 'bad escape') return { query: `${name}=%zz${value}` };
      if (shape === 'no value') return { query: name };
      return { query: `${name}=${value}` };
    });
}

function keyHeaderEntry(keys: ParityKeys): fc.Arbitrary<Entry> {
  return fc
    .tuple(fc.constantFrom(...KEY_HEADER_NAMES), nameCase, credential(keys))
    .map(([name, kase, value]): Entry => ({ header: kase(name), value }));
}

/** `Sec-WebSocket-Protocol` offering a key, among other subprotocols, with any spacing. */
function subprotocolEntry(keys: ParityKeys): fc.Arbitrary<Entry> {
  const keyed = fc
    .tuple(edge, weighted([4, WS_KEY_PROTOCOL], [1, 'OpenAI-Insecure-API-Key.']), keyText(keys), edge)
    .map(([l, prefix, k, r]) => l + prefix + k + r);
  const other = fc.constantFrom('realtime', 'openai-beta.realtime-v1');
  return fc
    .tuple(
      nameCase,
      fc.array(fc.oneof({ weight: 3, arbitrary: keyed }, { weight: 1, arbitrary: other }), {
        minLength: 1,
        maxLength: 3,
      }),
      fc.constantFrom(',', ', ', ' , ', ',\t'),
    )
    .map(([kase, parts, sep]): Entry => ({ header: kase('Sec-WebSocket-Protocol'), value: parts.join(sep) }));
}

const decoyEntry: fc.Arbitrary<Entry> = fc.constantFrom<Entry>(
  { header: 'X-Real-IP', value: '127.0.0.2' },
  { header: 'X-Forwarded-For', value: '127.0.0.2' },
  { header: 'x_api_key', value: 'decoy' },
  { header: 'Proxy-Authorization', value: 'Bearer decoy' },
  { query: 'model=gpt-4o' },
  { query: 'alt=sse' },
  { query: 'key=' },
);

/**
 * Requests from the attacker carrying the owner's key (or its spellings) in
 * one to three places at once: any request, or a WebSocket upgrade to a
 * realtime path (where the relays read keys their own way).
 */
export function attackArbitrary(keys: ParityKeys): fc.Arbitrary<Attack> {
  const anyEntry = fc.oneof(
    { weight: 5, arbitrary: keyHeaderEntry(keys) },
    { weight: 3, arbitrary: queryEntry(keys) },
    { weight: 2, arbitrary: subprotocolEntry(keys) },
    { weight: 1, arbitrary: decoyEntry },
  );
  const wsEntry = fc.oneof(
    { weight: 3, arbitrary: subprotocolEntry(keys) },
    { weight: 2, arbitrary: keyHeaderEntry(keys) },
    { weight: 1, arbitrary: queryEntry(keys) },
  );
  const anyRequest = fc.record({
    method: fc.constantFrom<'GET' | 'POST'>('GET', 'POST'),
    path: fc.constantFrom(...PATHS),
    entries: fc.array(anyEntry, { minLength: 1, maxLength: 3 }),
    websocket: fc.oneof(
      { weight: 4, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
    behindKeylessUpgrade: fc.oneof(
      { weight: 8, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
  });
  const realtimeUpgrade = fc.record({
    method: fc.constant<'GET' | 'POST'>('GET'),
    path: fc.constantFrom('/v1/realtime', '/realtime'),
    entries: fc.array(wsEntry, { minLength: 1, maxLength: 2 }),
    websocket: fc.constant(true),
    behindKeylessUpgrade: fc.constant(false),
  });
  return fc.oneof({ weight: 3, arbitrary: anyRequest }, { weight: 2, arbitrary: realtimeUpgrade });
}

const KEYLESS_UPGRADE = `GET /v1/realtime HTTP/1.1\r\nHost: relay.test\r\n${WS_HEADERS.join('\r\n')}\r\n\r\n`;

export function attackTarget(a: Attack): string {
  const query = a.entries.flatMap((e) => ('query' in e ? [e.query] : [])).join('&');
  return query === '' ? a.path : `${a.path}?${query}`;
}

/** The header lines of an attack, in order (names and values as sent). */
export function attackHeaderLines(a: Attack): [string, string][] {
  const lines: [string, string][] = [['Host', 'relay.test']];
  for (const e of a.entries) if ('header' in e) lines.push([e.header, e.value]);
  if (a.websocket) for (const l of WS_HEADERS) lines.push(l.split(': ') as [string, string]);
  else lines.push(['Connection', 'close']);
  if (!a.websocket && a.method === 'POST')
    lines.push(['Content-Type', 'application/json'], ['Content-Length', '2']);
  return lines;
}

/** The attack as bytes on the wire (a latin1 string). */
export function renderAttack(a: Attack): string {
  const method = a.websocket ? 'GET' : a.method;
  const head = [
    `${method} ${attackTarget(a)} HTTP/1.1`,
    ...attackHeaderLines(a).map(([n, v]) => `${n}: ${v}`),
  ];
  const request = `${head.join('\r\n')}\r\n\r\n${method === 'POST' ? '{}' : ''}`;
  return a.behindKeylessUpgrade ? KEYLESS_UPGRADE + request : request;
}

/**
 * The attack as an HTTP server parses it (header values lose leading and
 * trailing spaces and tabs), before any proxy: the input of KeyPin's own
 * parsing in the unit-level comparison.
 */
export function parsedAttack(a: Attack): RelayRequest {
  const rawHeaders = attackHeaderLines(a).flatMap(([n, v]) => [n, v.replace(/^[ \t]+|[ \t]+$/g, '')]);
  return {
    method: a.websocket ? 'GET' : a.method,
    target: attackTarget(a),
    rawHeaders,
    websocket: a.websocket,
  };
}

/** A byte string shown with every byte outside printable ASCII escaped (\xHH; \u{…} above 0xFF). */
export function showBytes(s: string): string {
  const named: Record<string, string> = { '\r': '\\r', '\n': '\\n', '\t': '\\t', '"': '\\"', '\\': '\\\\' };
  const escape = (c: string) => {
    const n = c.charCodeAt(0);
    return named[c] ?? (n > 0xff ? `\\u{${n.toString(16)}}` : `\\x${n.toString(16).padStart(2, '0')}`);
  };
  return `"${s.replace(/[^\x20-\x7e]|["\\]/g, escape)}"`;
}
