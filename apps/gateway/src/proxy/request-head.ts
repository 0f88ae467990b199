/**
 * One pass over a request's raw header lines: finds the API key candidates,
 * the client-IP header lines, and builds the header list to send downstream
 * (hop-by-hop headers and the client's own IP claims removed).
 *
 * `rawHeaders` is used rather than `headers` because Node keeps only the
 * first of duplicate `Authorization` lines and joins other duplicates.
 */
import { goTrimSpace, KEY_HEADER_PLACES, type KeyPlace, pyLatin1Strip } from '@keypin/shared';
import type { CompiledRoute } from '../route/route-table';
import { HOP_BY_HOP_HEADERS } from './hop-by-hop';

export interface KeyCandidate {
  place: KeyPlace;
  /** The value exactly as sent (canonicalised later, per relay). */
  value: string;
}

export interface RequestHead {
  /** Raw key values in the order found (not yet canonical). */
  keys: KeyCandidate[];
  /** A key header given on more than one line. */
  duplicateKeyHeader: KeyPlace | null;
  /** Every line of the configured client-IP header. */
  ipHeaderLines: string[];
  /** Flat [name, value, name, value, …] list for the downstream request. */
  forward: string[];
  /** The request asks for a WebSocket upgrade. */
  websocket: boolean;
  /** The request has a body (non-zero Content-Length or Transfer-Encoding). */
  hasBody: boolean;
  host: string | undefined;
  userAgent: string | null;
  /** The masked key, set by the decision only when ACCESS_LOG is on. */
  keyDisplay: string | null;
  /** The client IP as KeyPin determined it, set by the decision only when ACCESS_LOG is on. */
  clientIp: string | null;
  /** The route the request takes, set by the decision once its checks passed. */
  route: CompiledRoute | null;
}

/** Hop-by-hop headers (`hop-by-hop.ts`), plus those KeyPin handles or sets itself. */
const DROP: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP_HEADERS,
  'expect',
  'host',
  'x-real-ip',
  'x-forwarded-for',
  'forwarded',
  'proxy-authorization',
]);

const WS_KEY_PROTOCOL = 'openai-insecure-api-key.';

/**
 * Scans the raw header list once.
 * @param ipHeader the lower-case name of REAL_IP_HEADER.
 */
export function scanRequestHead(rawHeaders: readonly string[], ipHeader: string): RequestHead {
  const keys: KeyCandidate[] = [];
  const ipHeaderLines: string[] = [];
  const forward: string[] = [];
  let duplicateKeyHeader: KeyPlace | null = null;
  let connectionValue: string | undefined;
  let upgradeValue: string | undefined;
  let wsProtocols: string | undefined;
  let host: string | undefined;
  let hasBody = false;
  let userAgent: string | null = null;

  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const rawName = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const name = rawName.toLowerCase();

    const place = KEY_HEADER_PLACES.get(name);
    if (place !== undefined) {
      for (const k of keys) if (k.place === place) duplicateKeyHeader ??= place;
      keys.push({ place, value });
      forward.push(rawName, value);
      continue;
    }
    if (name === ipHeader) {
      ipHeaderLines.push(value);
      continue;
    }
    if (DROP.has(name)) {
      if (name === 'connection') connectionValue = connectionValue ? `${connectionValue},${value}` : value;
      else if (name === 'upgrade') upgradeValue = value;
      else if (name === 'host') host = value;
      else if (name === 'transfer-encoding') hasBody = true;
      continue;
    }
    if (name === 'content-length' && value !== '0') hasBody = true;
    else if (name === 'user-agent') userAgent = value;
    if (name === 'sec-websocket-protocol') {
      wsProtocols = wsProtocols === undefined ? value : `${wsProtocols},${value}`;
    }
    forward.push(rawName, value);
  }

  if (wsProtocols !== undefined) keys.push(...protocolKeys(wsProtocols));

  let result = forward;
  const connectionTokens = connectionValue ? tokens(connectionValue) : [];
  // `close` names no header, and hop-by-hop ones are dropped already: only
  // other names need the second pass below.
  const named = connectionTokens.filter((t) => t !== 'close' && !HOP_BY_HOP_HEADERS.has(t));
  if (named.length > 0) {
    // Headers named in Connection are hop-by-hop too, except the key headers
    // the downstream needs.
    const drop = new Set(named.filter((t) => !KEY_HEADER_PLACES.has(t)));
    result = [];
    for (let i = 0; i + 1 < forward.length; i += 2) {
      if (!drop.has(forward[i]!.toLowerCase())) result.push(forward[i]!, forward[i + 1]!);
    }
  }

  const websocket =
    upgradeValue !== undefined &&
    upgradeValue.trim().toLowerCase() === 'websocket' &&
    connectionTokens.includes('upgrade');

  return {
    keys,
    duplicateKeyHeader,
    ipHeaderLines,
    forward: result,
    websocket,
    hasBody,
    host,
    userAgent,
    keyDisplay: null,
    clientIp: null,
    route: null,
  };
}

/**
 * Keys offered as WebSocket subprotocols (`openai-insecure-api-key.<k>`),
 * from every `Sec-WebSocket-Protocol` line: New API joins all lines, LiteLLM
 * reads the first; both split on commas and trim each entry (Go's TrimSpace,
 * Python's strip). The prefix is matched without case so that no spelling a
 * relay might accept goes unjudged.
 */
function protocolKeys(protocols: string): KeyCandidate[] {
  const out: KeyCandidate[] = [];
  for (const p of protocols.split(',')) {
    // Trimmed both ways (Go's TrimSpace on UTF-8, Python's strip on latin-1
    // text): where they differ, both readings are candidates, and they must
    // agree like any two places.
    const go = goTrimSpace(p);
    const py = pyLatin1Strip(p);
    for (const proto of go === py ? [go] : [go, py]) {
      if (offersKey(proto)) {
        out.push({ place: 'websocket-protocol', value: proto.slice(WS_KEY_PROTOCOL.length) });
      }
    }
  }
  return out;
}

function offersKey(proto: string): boolean {
  return (
    proto.length > WS_KEY_PROTOCOL.length &&
    proto.slice(0, WS_KEY_PROTOCOL.length).toLowerCase() === WS_KEY_PROTOCOL
  );
}

/**
 * Whether one comma-separated `Sec-WebSocket-Protocol` entry offers a key,
 * in either reading `protocolKeys` judges: a route that sends a provider key
 * of its own removes such entries, so the client's key never reaches that
 * upstream.
 */
export function isKeyProtocol(entry: string): boolean {
  return offersKey(goTrimSpace(entry)) || offersKey(pyLatin1Strip(entry));
}

function tokens(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

/**
 * Every value of the query parameter `key`, as any relay's framework could
 * decode it: pairs split on `&` (and on `;`, which old Go versions split on),
 * names and values percent-decoded with `+` as a space (Go's
 * url.ParseQuery, Python's parse_qsl), so `?%6Bey=` is a key too. Invalid
 * escapes stay literal (Python keeps them; Go drops the pair, which only
 * makes this list a superset). Values are byte strings (one char per byte),
 * like header values. Cheap when the query holds neither `key` nor `%`.
 */
export function queryKeys(url: string): string[] {
  const q = url.indexOf('?');
  if (q === -1) return [];
  if (url.indexOf('key', q) === -1 && url.indexOf('%', q) === -1) return [];
  const out: string[] = [];
  for (const pair of url.slice(q + 1).split(/[&;]/)) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    if (name.length < 3 || formDecode(name) !== 'key') continue;
    out.push(eq === -1 ? '' : formDecode(pair.slice(eq + 1)));
  }
  return out;
}

const ESCAPE = /%([0-9a-fA-F]{2})/g;

/** `+` → space and `%XX` → the byte XX (as one char); anything else unchanged. */
function formDecode(s: string): string {
  const plus = s.includes('+') ? s.replaceAll('+', ' ') : s;
  return plus.includes('%')
    ? plus.replace(ESCAPE, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    : plus;
}

/** True when the raw headers ask for a WebSocket upgrade (`Upgrade: websocket` + `Connection: upgrade`). */
export function isWebSocketUpgrade(rawHeaders: readonly string[]): boolean {
  let upgrade = false;
  let connection = false;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'upgrade') upgrade = rawHeaders[i + 1]!.trim().toLowerCase() === 'websocket';
    else if (name === 'connection') connection ||= tokens(rawHeaders[i + 1]!).includes('upgrade');
  }
  return upgrade && connection;
}

export function hasRequestBody(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === 'transfer-encoding' || (name === 'content-length' && rawHeaders[i + 1] !== '0')) return true;
  }
  return false;
}
