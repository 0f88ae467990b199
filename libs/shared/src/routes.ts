/**
 * Routes (docs/contract.md 10): path prefixes sent to different upstreams.
 * The one definition of what a valid route is, used by the admin API, the
 * `ROUTES` environment variable and the console's form.
 */
import { KEY_HEADER_PLACES } from './key';
import { type Relay, RELAYS } from './relay';

/** A route as written: `POST /routes`, `ROUTES`, and (all fields optional) `PUT /routes/:id`. */
export interface RouteInput {
  prefix: string;
  upstream: string;
  /** Remove the prefix (keeping its leading `/`) before forwarding. */
  strip_prefix?: boolean;
  /** Whose key parsing applies on this route; null or absent: the `relay` setting. */
  relay?: Relay | null;
  /** Seconds the upstream has to answer (head) and between body chunks; null or absent: the global timeouts. */
  timeout_seconds?: number | null;
  /** Set on the way upstream (replacing the client's headers of those names); values may name `${env:NAME}`. Write-only. */
  upstream_headers?: Record<string, string>;
  /** A shared proxy token every request on the route must carry; removed before forwarding. Write-only value. */
  require_header?: { name: string; value: string } | null;
}

/** A route as the admin API answers it: header values are never shown. */
export interface Route {
  id: number;
  prefix: string;
  upstream: string;
  strip_prefix: boolean;
  relay: Relay | null;
  timeout_seconds: number | null;
  /** The names of the headers set upstream (their values are write-only). */
  upstream_header_names: string[];
  /** The proxy token's header name, or null when the route needs none (its value is write-only). */
  require_header_name: string | null;
  created_at: string;
  updated_at: string;
}

/** A validated route (header names lower case, values as written, references unresolved). */
export interface RouteSpec {
  prefix: string;
  upstream: string;
  strip_prefix: boolean;
  relay: Relay | null;
  timeout_seconds: number | null;
  upstream_headers: Record<string, string>;
  require_header: { name: string; value: string } | null;
}

export const ROUTE_LIMITS = {
  /** Routes at most. */
  routes: 100,
  prefixLength: 200,
  upstreamLength: 2048,
  headers: 20,
  headerValueLength: 8192,
  timeoutSeconds: { min: 1, max: 3600 },
} as const;

export const ROUTE_FIELDS: readonly (keyof RouteInput)[] = [
  'prefix',
  'upstream',
  'strip_prefix',
  'relay',
  'timeout_seconds',
  'upstream_headers',
  'require_header',
];

/**
 * Headers a route may not set: the connection's own (hop-by-hop, framing,
 * `Host`, which comes from the upstream URL) and the client address KeyPin
 * itself determines.
 */
export const UNSETTABLE_ROUTE_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'x-real-ip',
  'x-forwarded-for',
  'x-forwarded-host',
];

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

export type RouteResult<T> = { ok: true; value: T } | { ok: false; field: string; message: string };

function fail(field: string, message: string): { ok: false; field: string; message: string } {
  return { ok: false, field, message };
}

/**
 * A route prefix: starts and ends with `/` (so it matches whole path
 * segments), plain path characters only (nothing a server would resolve
 * differently: no `%`, `;`, `\`, `//`, dot segments, query or fragment), and
 * not under KeyPin's reserved paths.
 */
export function prefixError(prefix: string): string | null {
  if (prefix.length === 0 || prefix.length > ROUTE_LIMITS.prefixLength) {
    return `must be 1 to ${ROUTE_LIMITS.prefixLength} characters`;
  }
  if (!prefix.startsWith('/') || !prefix.endsWith('/'))
    return 'must start and end with "/" (like "/openai/")';
  if (!/^[A-Za-z0-9\-._~!$&'()*+,=:@/]+$/.test(prefix)) {
    return "may hold only letters, digits and - . _ ~ ! $ & ' ( ) * + , = : @ between slashes";
  }
  if (prefix.includes('//')) return 'may not hold an empty segment ("//")';
  if (prefix.split('/').some((seg) => seg === '.' || seg === '..'))
    return 'may not hold "." or ".." segments';
  const lower = prefix.toLowerCase();
  for (const reserved of ['/admin/', '/health/', '/ready/', '/metrics/']) {
    if (lower.startsWith(reserved)) return `is under KeyPin's reserved path ${reserved.slice(0, -1)}`;
  }
  return null;
}

/** An upstream URL: http or https, a host, no credentials, query or fragment. */
export function upstreamError(upstream: string): string | null {
  if (upstream.length > ROUTE_LIMITS.upstreamLength)
    return `must be at most ${ROUTE_LIMITS.upstreamLength} characters`;
  let u: URL;
  try {
    u = new URL(upstream);
  } catch {
    return 'must be an http or https URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an http or https URL';
  if (u.hostname === '') return 'must name a host';
  if (u.username !== '' || u.password !== '') return 'may not hold credentials (set a header instead)';
  if (u.search !== '' || u.hash !== '' || upstream.includes('?') || upstream.includes('#')) {
    return 'may not hold a query or fragment';
  }
  return null;
}

/** A header value: printable text (tabs allowed), `${env:NAME}` references well formed. */
function headerValueError(value: unknown): string | null {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0 || value.length > ROUTE_LIMITS.headerValueLength) {
    return `must be 1 to ${ROUTE_LIMITS.headerValueLength} characters`;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return 'may not hold control characters';
  const rest = value.replace(ENV_REF, '');
  if (rest.includes('${')) return 'holds a "${" that is not a reference like ${env:NAME}';
  return null;
}

function headerNameError(name: string): string | null {
  if (!TOKEN.test(name)) return 'is not a valid header name';
  if (UNSETTABLE_ROUTE_HEADERS.includes(name.toLowerCase()))
    return 'is set by KeyPin itself and cannot be configured';
  return null;
}

/**
 * Validates a route. `partial` (for `PUT /routes/:id`): every field is
 * optional and only those given are checked and returned.
 */
export function validateRoute(input: unknown, field: string, partial: true): RouteResult<Partial<RouteSpec>>;
export function validateRoute(input: unknown, field?: string, partial?: false): RouteResult<RouteSpec>;
export function validateRoute(
  input: unknown,
  field = 'route',
  partial = false,
): RouteResult<RouteSpec | Partial<RouteSpec>> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return fail(field, 'must be a JSON object');
  }
  const o = input as Record<string, unknown>;
  const at = (name: string) => (field === '' ? name : `${field}.${name}`);
  for (const name of Object.keys(o)) {
    if (!(ROUTE_FIELDS as readonly string[]).includes(name)) return fail(at(name), 'is not a route field');
  }
  const out: Partial<RouteSpec> = {};
  if (o.prefix !== undefined || !partial) {
    if (typeof o.prefix !== 'string') return fail(at('prefix'), 'is required: a path prefix like "/openai/"');
    const e = prefixError(o.prefix);
    if (e !== null) return fail(at('prefix'), e);
    out.prefix = o.prefix;
  }
  if (o.upstream !== undefined || !partial) {
    if (typeof o.upstream !== 'string') return fail(at('upstream'), 'is required: an http or https URL');
    const e = upstreamError(o.upstream);
    if (e !== null) return fail(at('upstream'), e);
    out.upstream = o.upstream.replace(/\/+$/, '');
  }
  if (o.strip_prefix !== undefined) {
    if (typeof o.strip_prefix !== 'boolean') return fail(at('strip_prefix'), 'must be true or false');
    out.strip_prefix = o.strip_prefix;
  } else if (!partial) out.strip_prefix = false;
  if (o.relay !== undefined && o.relay !== null) {
    if (typeof o.relay !== 'string' || !(RELAYS as readonly string[]).includes(o.relay)) {
      return fail(at('relay'), `must be one of ${RELAYS.join(', ')}, or null`);
    }
    out.relay = o.relay as Relay;
  } else if (o.relay === null || !partial) out.relay = null;
  if (o.timeout_seconds !== undefined && o.timeout_seconds !== null) {
    const t = o.timeout_seconds;
    const { min, max } = ROUTE_LIMITS.timeoutSeconds;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < min || t > max) {
      return fail(at('timeout_seconds'), `must be an integer from ${min} to ${max}, or null`);
    }
    out.timeout_seconds = t;
  } else if (o.timeout_seconds === null || !partial) out.timeout_seconds = null;
  if (o.upstream_headers !== undefined) {
    const h = o.upstream_headers;
    if (typeof h !== 'object' || h === null || Array.isArray(h)) {
      return fail(at('upstream_headers'), 'must be an object of header names and values');
    }
    const entries = Object.entries(h as Record<string, unknown>);
    if (entries.length > ROUTE_LIMITS.headers) {
      return fail(at('upstream_headers'), `holds at most ${ROUTE_LIMITS.headers} headers`);
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of entries) {
      const ne = headerNameError(name);
      if (ne !== null) return fail(at(`upstream_headers.${name}`), ne);
      const lower = name.toLowerCase();
      if (lower in headers) return fail(at(`upstream_headers.${name}`), 'is given twice');
      const ve = headerValueError(value);
      if (ve !== null) return fail(at(`upstream_headers.${name}`), ve);
      headers[lower] = value as string;
    }
    out.upstream_headers = headers;
  } else if (!partial) out.upstream_headers = {};
  if (o.require_header !== undefined && o.require_header !== null) {
    const r = o.require_header;
    if (typeof r !== 'object' || Array.isArray(r)) {
      return fail(at('require_header'), 'must be {"name": …, "value": …}, or null');
    }
    const { name, value, ...extra } = r as Record<string, unknown>;
    const unknownField = Object.keys(extra)[0];
    if (unknownField !== undefined) return fail(at(`require_header.${unknownField}`), 'is not a field');
    if (typeof name !== 'string') return fail(at('require_header.name'), 'is required');
    const ne = headerNameError(name);
    if (ne !== null) return fail(at('require_header.name'), ne);
    if (KEY_HEADER_PLACES.has(name.toLowerCase())) {
      return fail(at('require_header.name'), 'is a header KeyPin reads API keys from; choose another name');
    }
    const ve = headerValueError(value);
    if (ve !== null) return fail(at('require_header.value'), ve);
    out.require_header = { name: name.toLowerCase(), value: value as string };
  } else if (o.require_header === null || !partial) out.require_header = null;
  if (
    out.require_header &&
    out.upstream_headers !== undefined &&
    out.require_header.name in out.upstream_headers
  ) {
    return fail(at('require_header.name'), 'is also set in upstream_headers');
  }
  return { ok: true, value: out };
}

/** The environment variables a value names with `${env:NAME}`. */
export function envReferences(value: string): string[] {
  return [...value.matchAll(ENV_REF)].map((m) => m[1]!);
}

/**
 * A value with its `${env:NAME}` references replaced from `env`; the first
 * missing (or empty) variable's name when one is.
 */
export function resolveEnvReferences(
  value: string,
  env: Readonly<Record<string, string | undefined>>,
): { ok: true; value: string } | { ok: false; missing: string } {
  let missing: string | null = null;
  const out = value.replace(ENV_REF, (_, name: string) => {
    const v = env[name];
    if (v === undefined || v === '') {
      missing ??= name;
      return '';
    }
    return v;
  });
  return missing === null ? { ok: true, value: out } : { ok: false, missing };
}

/**
 * The route whose prefix is the longest one `target` (a path, with or
 * without its query) starts with. A prefix also matches its own path
 * without the final slash (`/openai` for `/openai/`). `routes` must be
 * sorted by prefix length, longest first. Allocation-free on a match.
 */
export function longestPrefixMatch<R extends { prefix: string }>(
  routes: readonly R[],
  target: string,
): R | null {
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const p = r.prefix;
    if (target.startsWith(p)) return r;
    const n = p.length - 1;
    if (n === 0 || target.length < n) continue;
    const c = target.charCodeAt(n);
    if ((Number.isNaN(c) || c === 63 /* ? */ || c === 35) /* # */ && p.startsWith(target.substring(0, n))) {
      return r;
    }
  }
  return null;
}
