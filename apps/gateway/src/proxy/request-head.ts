/**
 * One pass over a request's raw header lines: finds the API key candidates,
 * the client-IP header lines, and builds the header list to send downstream
 * (hop-by-hop headers and the client's own IP claims removed).
 *
 * `rawHeaders` is used rather than `headers` because Node keeps only the
 * first of duplicate `Authorization` lines and joins other duplicates.
 */

/** Where a key candidate came from; shown in the ambiguous-key message. */
export type KeySource =
  | 'authorization'
  | 'x-api-key'
  | 'api-key'
  | 'x-goog-api-key'
  | 'mj-api-secret'
  | 'query'
  | 'websocket-protocol';

export interface KeyCandidate {
  source: KeySource;
  value: string;
}

export interface RequestHead {
  /** Raw key values in the order found (not yet canonical). */
  keys: KeyCandidate[];
  /** A key header given on more than one line. */
  duplicateKeyHeader: KeySource | null;
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
}

/** Headers that never cross a proxy (RFC 9110 7.6.1), plus those KeyPin sets itself. */
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
  'x-real-ip',
  'x-forwarded-for',
  'forwarded',
  'proxy-authorization',
]);

const KEY_HEADERS: ReadonlyMap<string, KeySource> = new Map([
  ['authorization', 'authorization'],
  ['x-api-key', 'x-api-key'],
  ['api-key', 'api-key'],
  ['x-goog-api-key', 'x-goog-api-key'],
  ['mj-api-secret', 'mj-api-secret'],
]);

const WS_KEY_PROTOCOL = 'openai-insecure-api-key.';
// `Bearer` alone (Node strips the trailing space of `Bearer `) is an empty key.
const BEARER = /^bearer(?:[ \t]+|$)/i;

/** The key inside an Authorization value: `Bearer <k>` (any case) or the bare value. */
export function keyFromAuthorization(value: string): string {
  const m = BEARER.exec(value);
  return m === null ? value : value.slice(m[0].length);
}

/**
 * Scans the raw header list once.
 * @param ipHeader the lower-case name of REAL_IP_HEADER.
 */
export function scanRequestHead(rawHeaders: readonly string[], ipHeader: string): RequestHead {
  const keys: KeyCandidate[] = [];
  const ipHeaderLines: string[] = [];
  const forward: string[] = [];
  let duplicateKeyHeader: KeySource | null = null;
  let seenKeyHeaders = 0; // bit set over KEY_HEADERS order
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

    const keySource = KEY_HEADERS.get(name);
    if (keySource !== undefined) {
      const bit = 1 << keyBit(keySource);
      if ((seenKeyHeaders & bit) !== 0) duplicateKeyHeader ??= keySource;
      seenKeyHeaders |= bit;
      keys.push({
        source: keySource,
        value: keySource === 'authorization' ? keyFromAuthorization(value) : value,
      });
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

  if (wsProtocols !== undefined) {
    for (const p of wsProtocols.split(',')) {
      const proto = p.trim();
      if (proto.startsWith(WS_KEY_PROTOCOL)) {
        keys.push({ source: 'websocket-protocol', value: proto.slice(WS_KEY_PROTOCOL.length) });
      }
    }
  }

  let result = forward;
  const connectionTokens = connectionValue ? tokens(connectionValue) : [];
  const named = connectionTokens.filter((t) => t !== 'close' && t !== 'keep-alive' && t !== 'upgrade');
  if (named.length > 0) {
    // Headers named in Connection are hop-by-hop too, except the key headers
    // the downstream needs.
    const drop = new Set(named.filter((t) => !KEY_HEADERS.has(t)));
    result = [];
    for (let i = 0; i + 1 < forward.length; i += 2) {
      if (!drop.has(forward[i]!.toLowerCase())) result.push(forward[i]!, forward[i + 1]!);
    }
  }

  const websocket =
    upgradeValue !== undefined &&
    upgradeValue.trim().toLowerCase() === 'websocket' &&
    connectionTokens.includes('upgrade');

  return { keys, duplicateKeyHeader, ipHeaderLines, forward: result, websocket, hasBody, host, userAgent };
}

function keyBit(source: KeySource): number {
  switch (source) {
    case 'authorization':
      return 0;
    case 'x-api-key':
      return 1;
    case 'api-key':
      return 2;
    case 'x-goog-api-key':
      return 3;
    default:
      return 4;
  }
}

function tokens(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

/**
 * The `key` query parameter values of a request target (`/path?a=1&key=…`).
 * Cheap when there is no `key=` in the URL, which is the common case.
 */
export function queryKeys(url: string): string[] {
  const q = url.indexOf('?');
  if (q === -1 || url.indexOf('key=', q) === -1) return [];
  return new URLSearchParams(url.slice(q + 1)).getAll('key');
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
